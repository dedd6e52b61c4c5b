"""Sampling noise in directions: split-half reliability and disattenuated cosines.

Sampling noise shrinks cosines (PAPER.md, "Methodology notes"): two noisy estimates of
the same direction have cosine below 1. :func:`split_half_cosines`,
:func:`spearman_brown` and :func:`disattenuate` measure and undo that shrinkage, and
:func:`bootstrap_disattenuated` resamples prompts (not pairs) to give it an interval.
Cross-half products (:func:`cross_half_cosines`, :func:`disattenuated_cosines`) keep a
shared benign pool's noise out of between-category cosines.

Like :mod:`refusal_checks.stats.geometry`, everything takes and returns float64 numpy arrays,
and randomness is always an explicit ``np.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from refusal_checks.stats.geometry import FloatArray, category_sets, category_directions

# Reliability floor in disattenuate(): a category whose halves disagree completely has
# rho = 0; flooring keeps the division finite (and the result huge, i.e. uninformative).
RHO_FLOOR = 1e-6


def _half_weights(n: int, count: int, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Averaging weights for ``count`` random half-partitions of ``n`` prompts.

    Row ``s`` of ``W_A`` averages the ``h = n // 2`` prompts of half A of partition ``s``
    (``W_B``: the next ``h`` prompts), so ``W_A @ acts`` stacks ``count`` half means at
    the cost of one matrix product.

    Returns:
        ``(W_A, W_B)``, each ``(count, n)`` with rows summing to 1.
    """
    h = n // 2
    perm = np.argsort(rng.random((count, n)), axis=1)
    weights = []
    for half in (perm[:, :h], perm[:, h : 2 * h]):
        flat = (half + n * np.arange(count)[:, None]).ravel()
        weights.append(np.bincount(flat, minlength=count * n).reshape(count, n) / h)
    return weights[0], weights[1]


def half_directions(
    sets: list[FloatArray],
    pools: list[FloatArray],
    pool_of: list[int],
    rng: np.random.Generator,
    count: int,
) -> tuple[FloatArray, FloatArray]:
    """Diff-in-means directions from halves A and B -> two ``(count, k, d_model)`` arrays.

    A benign pool is partitioned once per draw and shared by all of its
    categories, so ``d_A_i`` and ``d_B_j`` never share a prompt.
    """
    pool_halves = [
        tuple(w @ pool for w in _half_weights(pool.shape[0], count, rng))
        for pool in pools
    ]
    d_a = np.empty((count, len(sets), sets[0].shape[1]))
    d_b = np.empty_like(d_a)
    for i, ref in enumerate(sets):
        w_a, w_b = _half_weights(ref.shape[0], count, rng)
        ben_a, ben_b = pool_halves[pool_of[i]]
        d_a[:, i] = w_a @ ref - ben_a
        d_b[:, i] = w_b @ ref - ben_b
    return d_a, d_b


def _rowwise_cosine(a: FloatArray, b: FloatArray) -> FloatArray:
    """Cosine between matching rows: ``(..., d) x (..., d) -> (...)``, without temporaries."""
    norms = np.sqrt(np.einsum("...i,...i->...", a, a) * np.einsum("...i,...i->...", b, b))
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError(
            "a half-sample direction is zero or not finite: the refuse and benign means "
            "coincide or the activations contain inf/NaN."
        )
    return np.clip(np.einsum("...i,...i->...", a, b) / norms, -1.0, 1.0)


def split_half_cosines(
    acts_refuse: ArrayLike, acts_benign: ArrayLike, rng: np.random.Generator, n_splits: int = 1000
) -> FloatArray:
    """Cosines between diff-in-means directions built from disjoint halves of the prompts.

    Each split draws a random partition of the refuse prompts into halves A and B and,
    independently, of the benign prompts (each half ``floor(n/2)`` prompts; one is left out
    when ``n`` is odd), and returns ``cos(d_A, d_B)`` with
    ``d_A = mean(refuse_A) - mean(benign_A)``. All splits are computed at once as
    ``W_A @ acts`` with ``(n_splits, n)`` averaging-weight matrices.

    Args:
        acts_refuse: ``(n1, d_model)``, ``n1 >= 2``.
        acts_benign: ``(n2, d_model)``, ``n2 >= 2``.
        rng: Source of the random partitions.
        n_splits: Number of random partitions.

    Returns:
        ``(n_splits,)`` split-half cosines.
    """
    sets, pools, pool_of = category_sets([acts_refuse], acts_benign, min_rows=2)
    d_a, d_b = half_directions(sets, pools, pool_of, rng, n_splits)
    return _rowwise_cosine(d_a[:, 0], d_b[:, 0])


def spearman_brown(r_half: ArrayLike) -> FloatArray | float:
    """Full-sample reliability from the split-half cosine: ``rho = 2r / (1 + r)``.

    Derivation: a direction estimate is ``d_hat = d + e``. Two independent half-sample
    estimates have cosine ``r ~ |d|^2 / (|d|^2 + s)`` in high dimension, where ``s`` is the
    squared norm of half-sample noise. The full sample has noise ``s / 2``, so its squared
    cosine with the true direction is ``|d|^2 / (|d|^2 + s/2) = 2r / (1 + r)`` (the
    Spearman-Brown prophecy formula). ``r`` is clipped to [0, 1] first: a negative
    split-half cosine means no measurable direction, i.e. reliability 0.

    Args:
        r_half: Split-half cosine(s), any shape.

    Returns:
        ``rho`` with the shape of ``r_half`` (a float for scalar input); 0 and 1 are
        fixed points and the map is increasing.
    """
    r = np.clip(np.asarray(r_half, dtype=np.float64), 0.0, 1.0)
    rho = 2.0 * r / (1.0 + r)
    return float(rho) if rho.ndim == 0 else rho


def disattenuate(cos: ArrayLike, rho: ArrayLike) -> FloatArray:
    """Correct cosines for sampling noise: ``cos_ij / sqrt(rho_i rho_j)``.

    Two noisy full-sample directions with reliabilities ``rho_i = cos^2(d_hat_i, d_i)``
    have expected cosine ``true_cos_ij * sqrt(rho_i rho_j)``; dividing undoes that.
    ``rho`` is floored at 1e-6 and the diagonal is set to 1. The result is NOT clipped:
    values slightly above 1 are informative (the two directions are as similar as their
    noise allows); use :func:`clip_unit` for display.

    Caveat: categories that share a benign pool share its noise, which inflates their
    observed cosine before any correction; :func:`disattenuated_cosines` and
    :func:`bootstrap_disattenuated` avoid that with cross-half products.

    Args:
        cos: ``(..., k, k)`` observed cosine matrix.
        rho: ``(..., k)`` full-sample reliabilities.

    Returns:
        ``(..., k, k)`` disattenuated cosines.
    """
    c = np.asarray(cos, dtype=np.float64)
    r = np.maximum(np.asarray(rho, dtype=np.float64), RHO_FLOOR)
    if c.ndim < 2 or c.shape[-1] != c.shape[-2] or r.shape[-1] != c.shape[-1]:
        raise ValueError(
            f"cos has shape {c.shape} and rho {r.shape}; expected (..., k, k) and (..., k)."
        )
    root = np.sqrt(r)
    out = c / (root[..., :, None] * root[..., None, :])
    idx = np.arange(c.shape[-1])
    out[..., idx, idx] = 1.0
    return out


def cross_half_cosines(d_a: ArrayLike, d_b: ArrayLike) -> FloatArray:
    """Cosines of ``d = (d_A + d_B) / 2`` with the dot product taken across halves.

    ``C_ij = (d_A_i . d_B_j + d_B_i . d_A_j) / (2 |d_i| |d_j|)`` for ``i != j``, 1 on the
    diagonal. Halves A and B share no prompt, so the numerator's noise has mean zero
    even when categories share a benign pool; the plain ``d_i . d_j`` carries
    ``+|e_benign|^2``, the squared noise of the shared benign mean, which pulls every
    between-category cosine towards 1. Attenuation is as for ``cos(d_i, d_j)``:
    ``E[C_ij] ~ true_cos_ij * sqrt(rho_i rho_j)`` with full-sample reliabilities ``rho``.

    Args:
        d_a: ``(..., k, d_model)`` directions from halves A.
        d_b: ``(..., k, d_model)`` directions from halves B (disjoint prompts).

    Returns:
        ``(..., k, k)`` symmetric matrix (not clipped).
    """
    a = np.asarray(d_a, dtype=np.float64)
    b = np.asarray(d_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"d_a {a.shape} and d_b {b.shape} must both be (..., k, d_model).")
    cross = a @ np.swapaxes(b, -1, -2)
    # |d|^2 = (|d_A|^2 + |d_B|^2 + 2 d_A . d_B) / 4, without building d.
    sq = np.einsum("...ki,...ki->...k", a, a) + np.einsum("...ki,...ki->...k", b, b)
    norm_sq = (sq + 2.0 * np.diagonal(cross, axis1=-2, axis2=-1)) / 4.0
    if not np.all(np.isfinite(norm_sq)) or np.any(norm_sq <= 0):
        raise ValueError("a direction (d_A + d_B) / 2 is zero or not finite; no cosine exists.")
    norm = np.sqrt(norm_sq)
    out = (cross + np.swapaxes(cross, -1, -2)) / (2.0 * norm[..., :, None] * norm[..., None, :])
    idx = np.arange(out.shape[-1])
    out[..., idx, idx] = 1.0
    return out


def reliabilities(
    refuse: Sequence[ArrayLike],
    benign: ArrayLike | Sequence[ArrayLike],
    rng: np.random.Generator,
    n_splits: int = 1000,
) -> tuple[FloatArray, FloatArray]:
    """Mean split-half cosine and Spearman-Brown reliability of each category.

    Args:
        refuse: ``k`` arrays ``(n_i, d_model)``.
        benign: Shared ``(m, d_model)`` array or ``k`` per-category arrays.
        rng: Source of the random partitions.
        n_splits: Partitions per category.

    Returns:
        ``(mean_split_half, rho)``, each ``(k,)``, with ``rho = spearman_brown(mean)``.
    """
    sets, pools, pool_of = category_sets(refuse, benign, min_rows=2)
    mean = np.array(
        [split_half_cosines(r, pools[j], rng, n_splits).mean() for r, j in zip(sets, pool_of)]
    )
    return mean, np.asarray(spearman_brown(mean))


def disattenuated_cosines(
    refuse: Sequence[ArrayLike],
    benign: ArrayLike | Sequence[ArrayLike],
    rng: np.random.Generator,
    n_splits: int = 200,
) -> FloatArray:
    """Point estimate of the noise-free cosine matrix of ``k`` category directions.

    Over ``n_splits`` random half-partitions (a shared benign pool partitioned once per
    split for all its categories), average the cross-half products
    ``G_ij = (d_A_i . d_B_j + d_B_i . d_A_j) / 2``; ``E[G_ij] = d_i . d_j`` for the true
    directions because halves A and B share no prompt, and ``G_ii`` estimates ``|d_i|^2``.
    The result is ``G_ij / sqrt(G_ii G_jj)``, computed as
    ``disattenuate(G_ij / (|d_hat_i| |d_hat_j|), rho_i = G_ii / |d_hat_i|^2)`` with the
    full-sample directions ``d_hat``; ``rho`` is then the full-sample reliability.

    Unlike ``disattenuate(cosine_matrix(category_directions(...)), rho)``, this is not
    inflated when categories share a benign pool (see :func:`cross_half_cosines`).

    Returns:
        ``(k, k)`` disattenuated cosines, diagonal 1, not clipped.
    """
    gram, norm = cross_half_gram(refuse, benign, rng, n_splits)
    return disattenuate(gram / np.outer(norm, norm), np.diag(gram) / norm**2)


def cross_half_gram(
    refuse: Sequence[ArrayLike],
    benign: ArrayLike | Sequence[ArrayLike],
    rng: np.random.Generator,
    n_splits: int = 200,
) -> tuple[FloatArray, FloatArray]:
    """``(G, |d_hat|)``: the cross-half products of :func:`disattenuated_cosines`
    (``(k, k)``, ``E[G_ij] = d_i . d_j``) and the full-sample directions' norms ``(k,)``."""
    sets, pools, pool_of = category_sets(refuse, benign, min_rows=2)
    d_a, d_b = half_directions(sets, pools, pool_of, rng, n_splits)
    cross = np.mean(d_a @ np.swapaxes(d_b, -1, -2), axis=0)
    norm = np.linalg.norm(category_directions(sets, [pools[j] for j in pool_of]), axis=-1)
    return (cross + cross.T) / 2.0, norm


def _resampled_means(
    acts: FloatArray, rng: np.random.Generator, n_boot: int
) -> tuple[FloatArray, FloatArray]:
    """Bootstrap means of one prompt set and their distinct-prompt self products.

    Each replicate draws multinomial counts ``c`` (``n`` prompts with replacement). Returns
    the means ``sum_k c_k x_k / n`` and ``U = sum_{k != l} c_k c_l x_k . x_l /
    sum_{k != l} c_k c_l``, the average product of two DIFFERENT prompts: what
    ``mean(x_A) . mean(x_B)`` over disjoint halves A, B averages to over all partitions
    (copies of one prompt count as the same prompt, so its noise never meets itself).

    Returns:
        ``(means, U)``: ``(n_boot, d_model)`` and ``(n_boot,)``; U is NaN when a replicate
        drew one prompt ``n`` times.
    """
    n = acts.shape[0]
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    sums = counts @ acts
    squares = counts**2
    pairs = float(n * n) - squares.sum(axis=1)
    own = squares @ np.einsum("ij,ij->i", acts, acts)
    with np.errstate(invalid="ignore", divide="ignore"):
        distinct = (np.einsum("bi,bi->b", sums, sums) - own) / pairs
    distinct[pairs == 0] = np.nan
    return sums / n, distinct


def bootstrap_disattenuated(
    refuse: Sequence[ArrayLike],
    benign: ArrayLike | Sequence[ArrayLike],
    rng: np.random.Generator,
    n_boot: int = 500,
) -> FloatArray:
    """Bootstrap replicates of the disattenuated cosine matrix of ``k`` categories.

    One replicate resamples every prompt set with replacement (a single benign array is a
    SHARED pool, resampled once per replicate and used for every category; in a list,
    identical arrays are treated as one shared pool, the others as per-category pools) and
    applies the estimator of :func:`disattenuated_cosines` to the resampled prompts:
    ``G_ij / sqrt(G_ii G_jj)`` with ``G_ij`` the cross-half product ``d_A_i . d_B_j``
    averaged over all half partitions. That average has a closed form: products of set
    means, except that a set met with itself (``G_ii``'s refuse and benign terms, a
    shared pool in ``G_ij``) contributes the distinct-prompt product of
    :func:`_resampled_means`, so no prompt's noise is ever squared. The result goes
    through :func:`disattenuate` (``rho_i = G_ii / |d_i|^2``, floored as there).

    Why this design: each replicate is the point estimator on resampled data, so the
    replicates spread like the estimate does. The earlier design (one random split per
    replicate, ``rho = spearman_brown(cos(d_A, d_B))`` of that split) was centred on the
    truth with isotropic noise, but with noise concentrated in a few directions, as in
    real residual streams (3 axes of std 5, d_model 64), single-split reliabilities came
    close to 0 and the interval of the mean cosine had a median width of 115: a planted
    cosine of 0.55 was SUPPORTED below 0.90 in 0 of 200 worlds (now 200 of 200, while no
    null rose above 1.5%; calibration/README.md). Cross-half products instead of
    ``cosine_matrix(d)`` matter because a shared benign pool puts the same noise into
    every direction: plain cosines covered the planted value in as few as 0% of
    simulations (d_model=64, 32+32 prompts, shared pool). Resampling prompts, not the 55
    pairs, keeps the dependence between pairs (PAPER.md, "Methodology notes").

    Args:
        refuse: ``k`` arrays ``(n_i, d_model)``, ``n_i >= 2``.
        benign: Shared ``(m, d_model)`` array or ``k`` arrays ``(m_i, d_model)``.
        rng: Source of the resamples.
        n_boot: Number of replicates.

    Returns:
        ``(n_boot, k, k)`` disattenuated cosine matrices (not clipped; NaN where a
        replicate has no distinct prompts to pair).
    """
    gram, norm_sq = bootstrap_gram(refuse, benign, rng, n_boot)
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.sqrt(norm_sq)
        cos = gram / (norm[:, :, None] * norm[:, None, :])
        return disattenuate(cos, np.diagonal(gram, axis1=-2, axis2=-1) / norm_sq)


def bootstrap_gram(
    refuse: Sequence[ArrayLike],
    benign: ArrayLike | Sequence[ArrayLike],
    rng: np.random.Generator,
    n_boot: int = 500,
) -> tuple[FloatArray, FloatArray]:
    """The replicates behind :func:`bootstrap_disattenuated`: ``(G, |d|^2)``, ``(n_boot, k,
    k)`` cross-half products (distinct prompts only) and ``(n_boot, k)`` squared norms of
    the resampled directions."""
    sets, pools, pool_of = category_sets(refuse, benign, min_rows=2)
    groups = sets + pools
    k = len(sets)
    means = np.empty((n_boot, len(groups), sets[0].shape[1]))
    distinct = np.empty((n_boot, len(groups)))
    for g, acts in enumerate(groups):
        means[:, g], distinct[:, g] = _resampled_means(acts, rng, n_boot)
    # Direction i is refuse set i minus pool pool_of[i]: d = contrast @ means.
    contrast = np.zeros((k, len(groups)))
    contrast[np.arange(k), np.arange(k)] = 1.0
    contrast[np.arange(k), k + np.asarray(pool_of)] = -1.0
    products = means @ np.swapaxes(means, -1, -2)
    plain = np.einsum("ig,bgh,jh->bij", contrast, products, contrast)  # d_i . d_j
    idx = np.arange(len(groups))
    products[:, idx, idx] = distinct
    gram = np.einsum("ig,bgh,jh->bij", contrast, products, contrast)
    return gram, np.diagonal(plain, axis1=-2, axis2=-1).copy()
