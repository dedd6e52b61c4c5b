"""Batch-sized cache entries, so an interrupted run loses at most one batch of model work.

A prompt set's activations and a setting's replies are cached as one entry when they are
finished. While they are being computed, each batch is also stored on its own, under a
key made from the whole entry's key and the batch's prompt range: a run killed half-way
(Ctrl-C, an OOM kill, a dropped NDIF connection) leaves its finished batches behind, and
the rerun computes only the rest. Once the whole entry is stored, the batch entries are
deleted (not before: a whole entry a full disk refused leaves them for the next run); they
are never read when the whole entry exists.

Batches are cut at ``batch_size``, so a rerun with another ``--refusal-batch-size``
cannot use a half-finished set's batches (it still uses every finished set). Each
prompt's values do not depend on the batch it ran in (positions come from the attention
mask; tests/adapter/test_nnsight_backend.py), so stitching batches from two runs gives
the same array as one run, up to float32 accumulation order.

Every write goes through :class:`refusal_checks.cache.store.ArrayCache`: unique temporary
names and an atomic rename, so two runs sharing a cache folder (pytest-xdist workers,
two machines on one network folder) at worst both compute a batch, and never leave a
torn entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from refusal_checks.cache.keys import cache_key
from refusal_checks.cache.store import ArrayCache
from refusal_checks.prompts.sets import PromptSet

ProgressCallback = Callable[[int, int], None]


@dataclass
class ChunkStats:
    """What :func:`chunked_array` / :func:`chunked_texts` found and did (for reports)."""

    batches_cached: int = 0
    batches_computed: int = 0
    prompts_computed: int = 0


def part_key(key: str, start: int, stop: int) -> str:
    """The cache key of prompts ``start:stop`` of the entry ``key``."""
    return cache_key(part_of=key, start=start, stop=stop)


def _ranges(n: int, batch_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + batch_size, n)) for start in range(0, n, max(1, batch_size))]


def _slice(prompts: PromptSet, start: int, stop: int) -> PromptSet:
    return PromptSet(prompts.name, prompts.category, prompts.side, prompts.texts[start:stop],
                     prompts.source)


def chunked_array(cache: ArrayCache, key: str, prompts: PromptSet, batch_size: int,
                  compute: Callable[[PromptSet, ProgressCallback | None], np.ndarray],
                  *, meta: dict[str, Any] | None = None,
                  progress: ProgressCallback | None = None,
                  stats: ChunkStats | None = None) -> np.ndarray:
    """Compute ``compute(prompts)`` one batch at a time, each batch cached until all are done.

    Args:
        cache: Where the whole entry and the batch entries live.
        key: The whole entry's key (the caller has already found it missing).
        prompts: The prompt set; row ``i`` of the result belongs to ``prompts.texts[i]``.
        batch_size: Prompts per batch (and per batch entry).
        compute: ``(sub-set, progress) -> array`` with one row per prompt of the sub-set.
        meta: Stored with the whole entry.
        progress: Called with (done, total) over the whole set.
        stats: Filled in with what was cached and what was computed.

    Returns:
        The whole array, also stored under ``key``.
    """
    stats = stats if stats is not None else ChunkStats()
    parts: list[np.ndarray] = []
    for start, stop in _ranges(len(prompts), batch_size):
        sub_key = part_key(key, start, stop)
        array = cache.load(sub_key)
        if array is None or len(array) != stop - start:
            def moved(done: int, total: int, base: int = start) -> None:
                if progress is not None:
                    progress(base + done, len(prompts))

            array = np.asarray(compute(_slice(prompts, start, stop), moved))
            cache.store(sub_key, array, {"part_of": key, "start": start, "stop": stop})
            stats.batches_computed += 1
            stats.prompts_computed += stop - start
        else:
            stats.batches_cached += 1
        if progress is not None:
            progress(stop, len(prompts))
        parts.append(array)
    whole = np.concatenate(parts) if parts else compute(prompts, None)
    if cache.store(key, whole, meta):
        _discard_parts(cache, key, len(prompts), batch_size)
    return whole


def _discard_parts(cache: ArrayCache, key: str, n: int, batch_size: int) -> None:
    """Delete the batch entries of ``key``, once the whole entry is stored: while it is
    not (a full disk, a read-only folder), they are all the next run has of this work."""
    for start, stop in _ranges(n, batch_size):
        cache.discard(part_key(key, start, stop))


def chunked_texts(cache: ArrayCache, key: str, prompts: PromptSet, batch_size: int,
                  compute: Callable[[PromptSet, ProgressCallback | None], list[str]],
                  *, progress: ProgressCallback | None = None,
                  stats: ChunkStats | None = None) -> list[str]:
    """:func:`chunked_array` for replies: a list of strings per batch, stored as JSON."""
    stats = stats if stats is not None else ChunkStats()
    texts: list[str] = []
    for start, stop in _ranges(len(prompts), batch_size):
        sub_key = part_key(key, start, stop)
        hit = cache.load_json(sub_key)
        if isinstance(hit, list) and len(hit) == stop - start and all(
                isinstance(t, str) for t in hit):
            part = [str(t) for t in hit]
            stats.batches_cached += 1
        else:
            def moved(done: int, total: int, base: int = start) -> None:
                if progress is not None:
                    progress(base + done, len(prompts))

            part = list(compute(_slice(prompts, start, stop), moved))
            cache.store_json(sub_key, part)
            stats.batches_computed += 1
            stats.prompts_computed += stop - start
        if progress is not None:
            progress(stop, len(prompts))
        texts += part
    if cache.store_json(key, texts):
        _discard_parts(cache, key, len(prompts), batch_size)
    return texts
