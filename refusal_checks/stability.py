"""How stable a category's direction is under resampling of its prompts (PAPER.md A.2).

The paper compares directions built from independent 32/32 resamples of one split. Our
estimate is the mean split-half cosine (:func:`refusal_checks.geometry.split_half_cosines`:
halves of the 64 bundled refuse prompts, so 32 per half as in the paper). This module
gives it a confidence interval by resampling prompts, numpy only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from refusal_checks.geometry import _category_sets

FloatArray = NDArray[np.float64]


def _cluster_half_weights(counts: FloatArray, rng: np.random.Generator,
                          n_splits: int) -> tuple[FloatArray, FloatArray]:
    """Averaging weights of two halves of a bootstrap resample, split by ORIGINAL prompt.

    ``counts``: ``(n,)`` multinomial counts of one resample. Each split partitions the
    original prompt indices into halves A and B (``n // 2`` each); a half's weight of
    prompt ``i`` is its count. Splitting by original prompt keeps every copy of a prompt in
    one half, so the two half directions never share a prompt's noise, as with the
    unresampled data. Rows with no drawn prompt get zero weight (the caller drops them).

    Returns:
        ``(W_A, W_B)``, each ``(n_splits, n)``, rows summing to 1 (or 0 when empty).
    """
    n = counts.shape[0]
    h = n // 2
    perm = np.argsort(rng.random((n_splits, n)), axis=1)
    out = []
    for half in (perm[:, :h], perm[:, h : 2 * h]):
        mask = np.zeros((n_splits, n))
        np.put_along_axis(mask, half, 1.0, axis=1)
        weights = mask * counts[None, :]
        totals = weights.sum(axis=1, keepdims=True)
        out.append(np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0))
    return out[0], out[1]


def bootstrap_split_half(
    refuse: list[ArrayLike],
    benign: ArrayLike | list[ArrayLike],
    rng: np.random.Generator,
    n_boot: int = 500,
    n_splits: int = 32,
) -> FloatArray:
    """Bootstrap replicates of every category's mean split-half cosine.

    One replicate resamples every prompt set with replacement (a shared benign pool once,
    for every category, keeping the dependence between categories), then averages
    ``cos(d_A, d_B)`` over ``n_splits`` random half partitions of the original prompts
    (:func:`_cluster_half_weights`), ``d_A = mean_w(refuse_A) - mean_w(benign_A)``.

    A resample has fewer distinct prompts than the data, so its halves are noisier and the
    replicates sit below the estimate; read them with
    :func:`refusal_checks.stats.recentred_interval`, which takes width and skew from the
    replicates and location from the estimate.

    Args:
        refuse: ``k`` arrays ``(n_i, d_model)``, ``n_i >= 4``.
        benign: One shared ``(m, d_model)`` array or ``k`` arrays.
        rng: Source of resamples and splits.
        n_boot: Replicates.
        n_splits: Half partitions averaged per replicate.

    Returns:
        ``(n_boot, k)`` mean split-half cosines (NaN where no split had both halves).
    """
    sets, pools, pool_of = _category_sets(refuse, benign, min_rows=4)
    out = np.full((n_boot, len(sets)), np.nan)
    for b in range(n_boot):
        pool_halves = []
        for pool in pools:
            m = pool.shape[0]
            counts = rng.multinomial(m, np.full(m, 1.0 / m)).astype(np.float64)
            v_a, v_b = _cluster_half_weights(counts, rng, n_splits)
            pool_halves.append((v_a @ pool, v_b @ pool, v_a.sum(1) > 0, v_b.sum(1) > 0))
        for i, acts in enumerate(sets):
            n = acts.shape[0]
            counts = rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.float64)
            w_a, w_b = _cluster_half_weights(counts, rng, n_splits)
            ben_a, ben_b, ok_a, ok_b = pool_halves[pool_of[i]]
            d_a, d_b = w_a @ acts - ben_a, w_b @ acts - ben_b
            ok = ok_a & ok_b & (w_a.sum(1) > 0) & (w_b.sum(1) > 0)
            norms = np.linalg.norm(d_a, axis=1) * np.linalg.norm(d_b, axis=1)
            ok &= norms > 0
            if ok.any():
                cosines = np.einsum("sd,sd->s", d_a[ok], d_b[ok]) / norms[ok]
                out[b, i] = float(np.clip(cosines, -1.0, 1.0).mean())
    return out
