"""Arditi et al.'s candidates: the build activations they come from, and their scores on the
validation prompts, one pass at a time, each pass its own cache entry.

A candidate (a difference in means at one layer and post-instruction position) is scored by
three passes over the validation prompts (PAPER.md, Paper B, "Selection"):

* ``induce``: the refusal score of each harmless prompt with the raw candidate added at its
  layer (a steer: the blocks below that layer are the unedited model's, so a local backend
  reuses them, :mod:`refusal_checks.models.prefix_store`);
* ``bypass``: the refusal score of each harmful prompt with the candidate ablated at every
  layer;
* ``kl``: the next-token ``KL(unedited || ablated)`` of each harmless prompt.

Each pass of each candidate is one cache entry, so a search that computes only some passes
(the filter order of :func:`refusal_checks.measure.selection.select_direction`) caches what
it computed and nothing else, and a later search that needs another pass of the same
candidate computes that pass alone: an entry is never marked complete for a pass it does
not hold. Releases before the filter order wrote one entry per candidate holding all three
passes (kind ``arditi_candidate``); it is looked up first and serves any pass of its
candidate, so a cache the full search wrote is served whole by either search.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from refusal_checks.cache.keys import cache_key
from refusal_checks.cache.store import ArrayCache
from refusal_checks.core import cost
from refusal_checks.measure.activations import activation_key
from refusal_checks.models.backend import Backend
from refusal_checks.models.interventions import Ablate, Intervention, Steer
from refusal_checks.models.scoring import kl_divergence, refusal_score
from refusal_checks.prompts.load import PromptSet

PASSES = ("bypass", "induce", "kl")  # the order of a whole (pre-filter-order) cache entry


def build_activations(backend: Backend, sets: Sequence[PromptSet], layers: list[int],
                      positions: list[int], cache: ArrayCache | None,
                      batch_size: int) -> np.ndarray:
    """``(prompt, layer, position, d_model)`` of every set, concatenated (cached per batch)."""
    from refusal_checks.cache.resume import ChunkStats, chunked_array

    parts = []
    for prompts in sets:
        def compute(sub: PromptSet, progress: Any) -> np.ndarray:
            return backend.residual_stream(sub, layers, positions, batch_size=batch_size,
                                           progress=progress)

        if cache is None:
            parts.append(compute(prompts, None))
        else:
            key = activation_key(backend, prompts, layers, positions)
            whole = cache.load(key)
            if whole is not None and len(whole) == len(prompts):
                cost.note(hits=1)
                parts.append(whole)
                continue
            stats = ChunkStats()
            parts.append(chunked_array(cache, key, prompts, batch_size, compute,
                                       meta={"model": backend.name, "set": prompts.name,
                                             "site": "resid_pre, Arditi candidates"},
                                       stats=stats))
            cost.note(computed=1, batches_resumed=stats.batches_cached,
                      prompts=stats.prompts_computed)
    return np.concatenate(parts)


class CandidateScores:
    """Per-prompt scores of candidates on fixed validation prompts, pass by pass, cached.

    Args:
        backend: The model (``last_logprobs``, ``input_digest``, ``fingerprint``).
        val_harmful: Validation harmful sets (one per category).
        val_harmless: Validation harmless sets.
        token_ids: Refusal tokens of the refusal score.
        cache: Where each pass is cached (None: nothing is).
        batch_size: Prompts per forward pass.
    """

    def __init__(self, backend: Any, val_harmful: Sequence[PromptSet],
                 val_harmless: Sequence[PromptSet], token_ids: Sequence[int],
                 cache: ArrayCache | None, batch_size: int) -> None:
        self.backend = backend
        self.val_harmful, self.val_harmless = tuple(val_harmful), tuple(val_harmless)
        self.token_ids = sorted(int(t) for t in token_ids)
        self.cache, self.batch_size = cache, batch_size
        self.n_harmful = sum(len(s) for s in self.val_harmful)
        self.n_harmless = sum(len(s) for s in self.val_harmless)
        self.inputs = [backend.input_digest(s) for s in self.val_harmful + self.val_harmless]
        self._base: np.ndarray | None = None
        self._whole: dict[tuple[int, str], np.ndarray | None] = {}

    def size(self, which: str) -> int:
        """Prompts one pass forwards: ``(prompt,)`` is the shape of its scores."""
        return self.n_harmful if which == "bypass" else self.n_harmless

    def logprobs(self, sets: Sequence[PromptSet], edit: Intervention | None) -> np.ndarray:
        return np.concatenate([self.backend.last_logprobs(s, intervention=edit,
                                                          batch_size=self.batch_size)
                               for s in sets])

    def harmless_base(self) -> np.ndarray:
        """Unedited next-token log-probabilities of the harmless prompts (the KL's other side)."""
        if self._base is None:
            self._base = self.logprobs(self.val_harmless, None)
        return self._base

    def baseline(self) -> dict[str, float]:
        """Mean refusal score of the unedited harmful and harmless validation prompts."""
        harmful = refusal_score(self.logprobs(self.val_harmful, None), self.token_ids)
        harmless = refusal_score(self.harmless_base(), self.token_ids)
        return {"harmful_refusal_score": mean(harmful), "harmless_refusal_score": mean(harmless)}

    def _edits(self, layer: int, direction: np.ndarray) -> tuple[Ablate, Steer]:
        label = f"Arditi candidate L{layer}"
        return Ablate(direction, label), Steer(layer, direction, alpha=1.0, label=label)

    def _compute(self, which: str, layer: int, direction: np.ndarray) -> np.ndarray:
        ablate, steer = self._edits(layer, direction)
        if which == "bypass":
            return refusal_score(self.logprobs(self.val_harmful, ablate), self.token_ids)
        if which == "induce":
            return refusal_score(self.logprobs(self.val_harmless, steer), self.token_ids)
        return kl_divergence(self.harmless_base(), self.logprobs(self.val_harmless, ablate))

    def whole_entry(self, layer: int, direction: np.ndarray) -> np.ndarray | None:
        """The candidate's pre-filter-order entry (all three passes), or None; read once."""
        memo = (layer, _digest(direction))
        if memo not in self._whole:
            found = None
            if self.cache is not None:
                ablate, steer = self._edits(layer, direction)
                key = cache_key(kind="arditi_candidate", model=self.backend.fingerprint,
                                dtype=self.backend.dtype, inputs=self.inputs, layer=layer,
                                ablate=ablate.key(), steer=steer.key(), tokens=self.token_ids)
                found = self.cache.load(key, (self.n_harmful + 2 * self.n_harmless,))
                if found is not None:
                    cost.note(hits=1)
            self._whole[memo] = found
        return self._whole[memo]

    def score(self, which: str, layer: int, direction: np.ndarray) -> np.ndarray:
        """One pass's per-prompt values, ``(prompt,)``: from a whole entry, its own entry,
        or computed (and stored)."""
        if which not in PASSES:
            raise ValueError(f"unknown candidate pass {which!r}; known: {', '.join(PASSES)}")
        whole = self.whole_entry(layer, direction)
        if whole is not None:
            n_h, n_b = self.n_harmful, self.n_harmless
            return {"bypass": whole[:n_h], "induce": whole[n_h:n_h + n_b],
                    "kl": whole[n_h + n_b:]}[which]
        n = self.size(which)
        if self.cache is None:
            cost.note(computed=1, prompts=n)
            return self._compute(which, layer, direction)
        ablate, steer = self._edits(layer, direction)
        edit = steer.key() if which == "induce" else ablate.key()
        inputs = self.inputs[len(self.val_harmful):] if which != "bypass" else \
            self.inputs[:len(self.val_harmful)]
        key = cache_key(kind=f"arditi_{which}", model=self.backend.fingerprint,
                        dtype=self.backend.dtype, inputs=inputs, edit=edit,
                        tokens=self.token_ids if which != "kl" else [])
        values, hit = self.cache.get_or_compute(
            key, lambda: self._compute(which, layer, direction),
            {"kind": f"arditi_{which}", "layer": layer}, expected_shape=(n,))
        cost.note(**({"hits": 1} if hit else {"computed": 1, "prompts": n}))
        return values


def mean(values: np.ndarray) -> float:
    """The mean, or NaN when empty or when any value is not finite."""
    values = np.asarray(values, np.float64)
    return float(values.mean()) if values.size and np.isfinite(values).all() else float("nan")


def _digest(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, np.float64).tobytes()
