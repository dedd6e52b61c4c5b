"""A shared refusal core plus category-specific parts (Joad et al. 2026, PAPER.md A.7).

The paper's conclusion reads the distinct category directions as "different linear mixes
of a shared refusal core". Two measurable statements follow, each a claim in
``claims/test_geometry.py`` and a verdict function here (calibration/run.py judges planted
worlds with the same functions):

* **shared-refusal-core**: one common component carries a substantial share of EVERY
  category direction. Read off the noise-corrected cosine matrix ``C`` of the study
  (:class:`~refusal_checks.measure.study.DirectionStudy`) with a one-factor model
  ``C_ij = a_i a_j`` (i != j): ``a_i`` is the cosine of category i's noise-free direction
  with the common component, ``a_i^2`` the share of its squared norm that the component
  carries. The statistic is ``min_i a_i``; with no core every ``a_i`` is 0.
* **category-specific-parts-stable**: what is left of each direction after the common
  component is removed (``d_i - (d_i . p_hat) p_hat``, ``p`` the pooled direction: the
  mean of the category directions, i.e. all categories' refuse prompts against their
  benign side) is a stable direction of its own, not sampling noise: its split-half
  cosine is high. The statistic is the least stable category's mean split-half cosine
  of remainders.

Both read the genre-matched study: against one general benign pool, the pool's own genre
offset enters every direction alike and would pass for a shared core, and each
category's genre offset would pass for a stable specific part.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.verdicts.geometry import every_category_above, reliable
from refusal_checks.stats.geometry import category_sets, clip_unit
from refusal_checks.stats.reliability import half_directions
from refusal_checks.stats.stability import apply_weights, cluster_half_weights, resample
from refusal_checks.measure.study import DirectionStudy
from refusal_checks.stats.verdict import Verdict

FloatArray = NDArray[np.float64]

# "One common component carries every direction": the weakest category's loading on it
# must exceed 0.5. A loading a means the core holds a^2 of the direction's squared norm:
# at 0.5 a quarter, the category-specific part three quarters, so below 0.5 the direction
# is mostly its own and "a mix of the core" stops describing it. The paper's mean cosine
# 0.55 between categories corresponds to loadings around sqrt(0.55) = 0.74 under this
# model; k unrelated directions have loadings 0.
CORE_THRESHOLD = 0.5

# "The specific parts are stable, not noise": a remainder's mean split-half cosine must
# exceed 0.5. For half-sample remainders s + n_A and s + n_B with independent noise of
# equal size, the split-half cosine estimates |s|^2 / (|s|^2 + E|n|^2), so above 0.5 the
# specific signal is larger than the sampling noise of a half sample (32 prompts a side
# with the bundled sets), and by Spearman-Brown the full-sample remainder has reliability
# above 2/3. Pure noise gives 0.
SPECIFIC_THRESHOLD = 0.5

# Principal-axis iterations of the one-factor fit, per matrix until no communality moves
# by more than FACTOR_TOLERANCE: 11 categories with loadings >= 0.3 settle in ~20, weak
# loadings on 3 categories in a few hundred, one strong loading beside two weak ones
# ([0.98, 0.3, 0.3]) in ~1,000 (at 300 it was still 1e-3 off). Without a common factor (no core) the fit has
# no unique answer and may not settle; it stops at the cap with small loadings of
# arbitrary sign, far below CORE_THRESHOLD either way.
FACTOR_ITERATIONS = 2000
FACTOR_TOLERANCE = 1e-10
# Random half partitions behind the remainders' point estimate, and per bootstrap
# replicate (the replicates are averaged over prompts' resamples as well).
REMAINDER_SPLITS = 200
REMAINDER_BOOT_SPLITS = 8
# Replicates per chunk of the remainder bootstrap: bounds memory at width 896
# (25 x 8 x 11 x 896 float64 = 16 MB per half).
_CHUNK = 25


def core_loadings(cosines: ArrayLike) -> FloatArray:
    """Loadings of a one-factor model fitted to the off-diagonal of cosine matrices.

    Principal-axis factoring: the diagonal of ``C`` (clipped to [-1, 1]) is replaced by
    the communalities ``a_i^2`` and ``a = sqrt(lambda_1) v_1`` is refitted until it
    settles, so ``C_ij ~ a_i a_j`` for ``i != j`` (the diagonal, 1 by construction,
    carries no information about the common part). Signs are fixed so that
    ``sum(a) >= 0``.

    Args:
        cosines: ``(..., k, k)`` symmetric matrices, ``k >= 3``; a matrix with a NaN gives
            NaN loadings.

    Returns:
        ``(..., k)`` loadings.
    """
    c = clip_unit(np.asarray(cosines, dtype=np.float64))
    if c.ndim < 2 or c.shape[-1] != c.shape[-2] or c.shape[-1] < 3:
        raise ValueError(f"need (..., k, k) matrices with k >= 3, got shape {c.shape}")
    shape, k = c.shape[:-2], c.shape[-1]
    flat = c.reshape(-1, k, k)
    bad = np.isnan(flat).any(axis=(1, 2))
    flat = np.where(bad[:, None, None], np.eye(k), flat)
    idx = np.arange(k)
    # Start from each row's largest |off-diagonal| (>= the truth for a clean matrix).
    communality = (np.abs(flat) * (1.0 - np.eye(k))).max(axis=-1)
    loading = np.zeros((len(flat), k))
    active = np.arange(len(flat))
    for _ in range(FACTOR_ITERATIONS):  # only matrices that have not settled yet
        m = flat[active].copy()
        m[:, idx, idx] = communality[active]
        values, vectors = np.linalg.eigh(m)
        loading[active] = np.sqrt(np.maximum(values[:, -1], 0.0))[:, None] * vectors[:, :, -1]
        new = np.minimum(loading[active] ** 2, 1.0)
        moving = np.max(np.abs(new - communality[active]), axis=1) >= FACTOR_TOLERANCE
        communality[active] = new
        active = active[moving]
        if not len(active):
            break
    loading *= np.where(loading.sum(axis=1, keepdims=True) < 0, -1.0, 1.0)
    loading[bad] = np.nan
    return loading.reshape(*shape, k)


def core_share(cosines: ArrayLike) -> float:
    """Share of the cosine matrix's trace in its first principal component, ``l_1 / k``."""
    c = clip_unit(np.asarray(cosines, dtype=np.float64))
    return float(np.linalg.eigvalsh(c)[-1] / c.shape[-1])


def _remainder_cosines(d_a: FloatArray, d_b: FloatArray) -> FloatArray:
    """``cos(rem(d_A_i), rem(d_B_i))`` for ``(..., k, d)`` half directions -> ``(..., k)``.

    ``rem(d_i) = d_i - (d_i . p_hat) p_hat`` with ``p`` the mean of the half's directions;
    NaN where a remainder is zero or not finite.
    """
    def remainders(d: FloatArray) -> FloatArray:
        pooled = d.mean(axis=-2, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            u = pooled / np.linalg.norm(pooled, axis=-1, keepdims=True)
        return d - np.einsum("...kd,...jd->...kj", d, u) * u

    r_a, r_b = remainders(d_a), remainders(d_b)
    norms = np.linalg.norm(r_a, axis=-1) * np.linalg.norm(r_b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("...d,...d->...", r_a, r_b) / norms
    cos[~np.isfinite(cos)] = np.nan
    return np.clip(cos, -1.0, 1.0)


def remainder_split_half(refuse: Sequence[ArrayLike], benign: ArrayLike | Sequence[ArrayLike],
                         rng: np.random.Generator, n_splits: int = REMAINDER_SPLITS
                         ) -> FloatArray:
    """Mean split-half cosine of each category's remainder after the pooled direction.

    Each split partitions every prompt set into halves (a shared benign pool once, for all
    its categories, as :func:`refusal_checks.stats.reliability.split_half_cosines`); in
    each half the pooled direction is the mean of that half's category directions, so the
    two halves' remainders share no prompt.

    Args:
        refuse: ``k >= 2`` arrays ``(n_i, d_model)``.
        benign: One shared ``(m, d_model)`` pool or ``k`` per-category arrays.
        rng: Source of the partitions.
        n_splits: Partitions.

    Returns:
        ``(k,)`` mean cosines.
    """
    sets, pools, pool_of = category_sets(refuse, benign, min_rows=2)
    if len(sets) < 2:
        raise ValueError("remainders need at least two categories (a pooled direction of one "
                         "category is the category itself).")
    d_a, d_b = half_directions(sets, pools, pool_of, rng, n_splits)
    return np.nanmean(_remainder_cosines(d_a, d_b), axis=0)


def bootstrap_remainder_split_half(refuse: Sequence[ArrayLike],
                                   benign: ArrayLike | Sequence[ArrayLike],
                                   rng: np.random.Generator, n_boot: int = 500,
                                   n_splits: int = REMAINDER_BOOT_SPLITS) -> FloatArray:
    """Bootstrap replicates of :func:`remainder_split_half`: ``(n_boot, k)``.

    Each replicate resamples every prompt set (a shared pool once) and splits by original
    prompt (:func:`refusal_checks.stats.stability.cluster_half_weights`), as
    :func:`refusal_checks.stats.stability.bootstrap_split_half` does for whole directions; read
    them with :func:`refusal_checks.stats.intervals.recentred_interval` (a resample's halves are
    noisier than the data's).
    """
    sets, pools, pool_of = category_sets(refuse, benign, min_rows=4)
    out = np.full((n_boot, len(sets)), np.nan)
    for start in range(0, n_boot, _CHUNK):
        b = min(_CHUNK, n_boot - start)

        def halves(acts: FloatArray) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
            w_a, w_b = cluster_half_weights(resample(acts.shape[0], rng, b), rng, n_splits)
            return apply_weights(w_a, acts), apply_weights(w_b, acts), (w_a.sum(-1) > 0) & (w_b.sum(-1) > 0)

        pool_halves = [halves(pool) for pool in pools]
        d_a = np.empty((b, n_splits, len(sets), sets[0].shape[1]))
        d_b = np.empty_like(d_a)
        ok = np.ones((b, n_splits), bool)
        for i, acts in enumerate(sets):
            ref_a, ref_b, fine = halves(acts)
            ben_a, ben_b, pool_fine = pool_halves[pool_of[i]]
            d_a[:, :, i], d_b[:, :, i] = ref_a - ben_a, ref_b - ben_b
            ok &= fine & pool_fine
        cos = _remainder_cosines(d_a, d_b)
        cos[~ok] = np.nan
        with warnings.catch_warnings():  # a replicate with no usable split stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            out[start:start + b] = np.nanmean(cos, axis=1)
    return out


def shared_refusal_core(study: DirectionStudy, behaviour: RefusalBehaviour, *,
                        threshold: float = CORE_THRESHOLD) -> Verdict:
    """Claim: "Category directions share one refusal core."

    The weakest category's loading on the one common factor of the noise-corrected cosine
    matrix (:func:`core_loadings`) must exceed ``threshold`` in every category: an
    intersection-union test on each category's loading in the study's prompt-bootstrap
    replicates (:func:`refusal_checks.verdicts.geometry.every_category_above`). Details:
    every loading, the core's share of the matrix (:func:`core_share`), and the study's
    summary.
    """
    loadings = core_loadings(study.disattenuated)
    replicates = core_loadings(study.boot)
    return every_category_above(
        "lowest loading of a category direction on the shared core (one-factor, "
        "noise-corrected)", loadings, replicates, study.categories, threshold, n=study.k,
        paper="'different linear mixes of a shared refusal core' (no statistic)",
        seed=study.seed,
        details={"core_loadings": dict(zip(study.categories, np.round(loadings, 4).tolist())),
                 "weakest": _weakest(loadings, study.categories),
                 "core_share_of_variance": round(core_share(study.disattenuated), 4),
                 **study.summary()},
        requires=[behaviour.refuses(), reliable(study),
                  (study.k >= 3, f"a one-factor model needs >= 3 categories, got {study.k}")])


def _weakest(values: FloatArray, categories: list[str]) -> str:
    """The category with the smallest finite value (``""`` when none is finite)."""
    return "" if np.all(np.isnan(values)) else categories[int(np.nanargmin(values))]


def specific_parts_stable(study: DirectionStudy, behaviour: RefusalBehaviour, *,
                          threshold: float = SPECIFIC_THRESHOLD) -> Verdict:
    """Claim: "What each category direction adds to the shared core is stable, not noise."

    The least stable category's mean split-half cosine of remainders
    (:func:`remainder_split_half`) must exceed ``threshold`` in every category: an
    intersection-union test on each category's replicates
    (:func:`bootstrap_remainder_split_half`;
    :func:`refusal_checks.verdicts.geometry.every_category_above`).
    Computed from the study's activations (``study.inputs``) with the study's seed.
    """
    sets, pools = study.inputs
    means = remainder_split_half(sets, pools, np.random.default_rng([study.seed, 2]))
    replicates = bootstrap_remainder_split_half(sets, pools,
                                                np.random.default_rng([study.seed, 3]),
                                                len(study.boot))
    return every_category_above(
        "lowest mean split-half cosine of a category's remainder after the pooled direction",
        means, replicates, study.categories, threshold, n=study.k,
        paper="'category-specific parts' (no statistic)", seed=study.seed,
        details={"remainder_split_half": dict(zip(study.categories,
                                                  np.round(means, 4).tolist())),
                 "least_stable": _weakest(means, study.categories), **study.summary()},
        # A category whose whole direction is noise has no part to call stable
        # or not: INCONCLUSIVE, as for the core (geometry_claims.MIN_RELIABILITY).
        requires=[behaviour.refuses(), reliable(study),
                  (study.k >= 2, f"remainders need >= 2 categories, got {study.k}")])
