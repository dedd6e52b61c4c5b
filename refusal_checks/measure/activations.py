"""Activations and replies for a prompt collection, served from the on-disk cache when possible.

Cache keys name everything that changes the numbers: the model's weights (fingerprint),
exactly what the model reads (the chat-templated token ids, via ``input_digest``), the
prompt set's digest, layers, positions, dtype, and (through :func:`cache_key`) the
library version and cache format.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from refusal_checks.core import cost
from refusal_checks.models.backend import Backend, FirstLogprobs
from refusal_checks.cache.keys import cache_key
from refusal_checks.cache.store import ArrayCache
from refusal_checks.models.interventions import Intervention
from refusal_checks.prompts.sets import PromptCollection, PromptSet
from refusal_checks.cache.resume import ChunkStats, chunked_array, chunked_texts
from refusal_checks.measure.shared_replies import SharedStats, shared_replies, shares_replies

SITE = "resid_pre"

# The paper reads directions at a fixed mid layer: Gemma 20 of 42, Llama 15-16 of 32,
# i.e. about 0.48 of the depth (PAPER.md, "How directions are built").
PAPER_LAYER_FRACTION = 0.48


def paper_layer(n_layers: int) -> int:
    """The block whose input the paper's directions are read at: ``int(0.48 * n_layers)``."""
    return int(PAPER_LAYER_FRACTION * n_layers)


@dataclass
class CollectionActivations:
    """Residual stream of every prompt set of a collection at one position, all layers.

    Attributes:
        refuse: category -> ``(prompt, layer, d_model)``.
        matched: category -> ``(prompt, layer, d_model)`` for categories with a matched control.
        benign: the general benign pool, ``(prompt, layer, d_model)``.
        position: the template position (negative offset) these were read at.
        seconds: wall time spent computing (0 when everything came from the cache).
        hits: how many prompt sets were served from the cache.
    """

    refuse: dict[str, np.ndarray]
    matched: dict[str, np.ndarray]
    benign: np.ndarray
    position: int
    seconds: float = 0.0
    hits: int = 0
    misses: int = 0
    batches_cached: int = 0  # batches of unfinished sets an interrupted run left behind
    prompts_computed: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def categories(self) -> list[str]:
        return list(self.refuse)

    def at_layer(self, layer: int) -> "LayerView":
        return LayerView(
            refuse={c: a[:, layer, :] for c, a in self.refuse.items()},
            matched={c: a[:, layer, :] for c, a in self.matched.items()},
            benign=self.benign[:, layer, :],
            layer=layer,
        )


@dataclass(frozen=True)
class LayerView:
    """The same activations at one layer: ``(prompt, d_model)`` arrays."""

    refuse: dict[str, np.ndarray]
    matched: dict[str, np.ndarray]
    benign: np.ndarray
    layer: int


def activation_key(backend: Backend, prompts: PromptSet, layers: Sequence[int],
                   positions: Sequence[int]) -> str:
    return cache_key(
        site=SITE, model=backend.fingerprint, dtype=backend.dtype,
        inputs=backend.input_digest(prompts), prompts=prompts.digest,
        layers=list(layers), positions=list(positions),
    )


class Bar:
    """A rich progress bar, or nothing when no console is given."""

    def __init__(self, console: Any | None, description: str, total: int) -> None:
        self.progress = None
        if console is not None and total:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
            )
            self.task = self.progress.add_task(description, total=total)
        self.base = 0

    def __enter__(self) -> "Bar":
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def callback(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=self.base + done)

    def advance_base(self, n: int) -> None:
        self.base += n


def collect(
    backend: Backend,
    collection: PromptCollection,
    *,
    position: int,
    cache: ArrayCache | None,
    batch_size: int = 16,
    console: Any | None = None,
) -> CollectionActivations:
    """Residual stream for every set of ``collection`` at ``position``, at all layers.

    All layers are kept, so changing ``--refusal-layer`` or checking neighbouring layers
    costs no model work. Cached sets are loaded first; the rest are computed under one
    progress bar.
    """
    layers = list(range(backend.n_layers))
    sets: list[tuple[str, str, PromptSet]] = []
    for name, category in collection.categories.items():
        sets.append(("refuse", name, category.refuse))
        if category.matched is not None:
            sets.append(("matched", name, category.matched))
    sets.append(("benign", "benign", collection.benign))

    found: dict[tuple[str, str], np.ndarray] = {}
    todo: list[tuple[str, str, PromptSet, str]] = []
    for side, name, prompts in sets:
        key = activation_key(backend, prompts, layers, [position])
        shape = (len(prompts), len(layers), 1, backend.d_model)
        array = cache.load(key, expected_shape=shape) if cache is not None else None
        if array is None:
            todo.append((side, name, prompts, key))
        else:
            found[(side, name)] = array
    started = time.perf_counter()
    stats = ChunkStats()
    total = sum(len(p) for _, _, p, _ in todo)
    with Bar(console, f"activations {backend.name}", total) as bar:
        for side, name, prompts, key in todo:
            def compute(sub: PromptSet, progress: Any) -> np.ndarray:
                return backend.residual_stream(sub, layers, [position], batch_size=batch_size,
                                               progress=progress)

            if cache is None:
                array = compute(prompts, bar.callback)
            else:  # batch by batch, so an interrupted run keeps its finished batches
                array = chunked_array(cache, key, prompts, batch_size, compute,
                                      meta={"model": backend.name, "set": prompts.name,
                                            "site": SITE, "position": position},
                                      progress=bar.callback, stats=stats)
            bar.advance_base(len(prompts))
            found[(side, name)] = array
    seconds = time.perf_counter() - started if todo else 0.0
    cost.note(hits=len(sets) - len(todo), computed=len(todo),
              batches_resumed=stats.batches_cached,
              prompts=total if cache is None else stats.prompts_computed)
    pick = {k: v[:, :, 0, :] for k, v in found.items()}
    return CollectionActivations(
        refuse={n: pick[("refuse", n)] for n in collection.categories},
        matched={n: pick[("matched", n)] for n in collection.categories
                 if ("matched", n) in pick},
        benign=pick[("benign", "benign")],
        position=position, seconds=seconds, hits=len(sets) - len(todo), misses=len(todo),
        batches_cached=stats.batches_cached, prompts_computed=stats.prompts_computed,
    )


def replies(
    backend: Backend,
    prompts: PromptSet,
    *,
    max_new_tokens: int,
    cache: ArrayCache | None,
    batch_size: int = 16,
    console: Any | None = None,
    intervention: Intervention | None = None,
    first_logprobs: FirstLogprobs | None = None,
    plan: Any = None,
) -> list[str]:
    """Greedy replies (steered or ablated when an intervention is given), cached as JSON.

    The key names the intervention's kind, layer and the sha256 of its vector, so a
    different strength or direction can never be served from another's entry.
    ``first_logprobs`` is handed to the backend for the batches it generates (none when
    the replies are served from the cache). With a cache and a backend that hands back
    tokens, a missed entry is built by :func:`refusal_checks.measure.shared_replies.shared_replies`:
    each prompt's reply is the token prefix of one generation at the longest budget asked
    so far or planned (``plan``: a :class:`~refusal_checks.measure.shared_replies.ReplyPlan`).
    """
    parts: dict[str, Any] = dict(
        kind="replies", model=backend.fingerprint, dtype=backend.dtype,
        inputs=backend.input_digest(prompts), prompts=prompts.digest,
        max_new_tokens=max_new_tokens)
    if intervention is not None:
        parts["intervention"] = intervention.key()
    key = cache_key(**parts)
    if cache is not None:
        hit = cache.load_json(key)
        if isinstance(hit, list) and len(hit) == len(prompts) and all(isinstance(r, str)
                                                                       for r in hit):
            _index(cache, key, backend, prompts, intervention, max_new_tokens)
            cost.note(hits=1)
            return list(hit)

    def compute(sub: PromptSet, progress: Any) -> list[str]:
        # Only the arguments asked for: a backend written to the protocol's older form
        # (no intervention, no first_logprobs) keeps working where they are not used.
        extra: dict[str, Any] = {}
        if intervention is not None:
            extra["intervention"] = intervention
        if first_logprobs is not None:
            extra["first_logprobs"] = first_logprobs
        return backend.generate(sub, max_new_tokens, batch_size=batch_size,
                                progress=progress, **extra)

    if cache is not None and shares_replies(backend):
        shared = SharedStats()
        with Bar(console, f"replies {backend.name} {prompts.name}", len(prompts)) as bar:
            texts = shared_replies(backend, prompts, max_new_tokens=max_new_tokens,
                                   cache=cache, intervention=intervention,
                                   batch_size=batch_size, first_logprobs=first_logprobs,
                                   plan=plan, progress=bar.callback, stats=shared)
        cache.store_json(key, texts)
        cost.note(computed=1, replies=shared.generated, replies_shared=shared.served)
        _index(cache, key, backend, prompts, intervention, max_new_tokens)
        return texts
    with Bar(console, f"replies {backend.name} {prompts.name}", len(prompts)) as bar:
        if cache is None:
            cost.note(computed=1, replies=len(prompts))
            return compute(prompts, bar.callback)
        # Batch by batch, so an interrupted run keeps the replies it finished.
        stats = ChunkStats()
        texts = chunked_texts(cache, key, prompts, batch_size, compute, progress=bar.callback,
                              stats=stats)
    cost.note(computed=1, batches_resumed=stats.batches_cached, replies=stats.prompts_computed)
    _index(cache, key, backend, prompts, intervention, max_new_tokens)
    return texts


def _index(cache: ArrayCache, key: str, backend: Backend, prompts: PromptSet,
           intervention: Intervention | None, max_new_tokens: int) -> None:
    """Describe the cached replies so ``python -m refusal_checks label`` can find them."""
    from refusal_checks.cache.replies import condition_of, index_key, index_record

    where = index_key(key)
    if cache.load_json(where) is None:
        cache.store_json(where, index_record(
            key, fingerprint=backend.fingerprint, model=backend.name, prompt_set=prompts.name,
            side=prompts.side, condition=condition_of(intervention), prompts=prompts.texts,
            max_new_tokens=max_new_tokens))


@contextmanager
def timed(store: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        store[name] = store.get(name, 0.0) + time.perf_counter() - started
