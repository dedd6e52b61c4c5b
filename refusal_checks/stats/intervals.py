"""Intervals and multiplicity corrections: bootstrap percentiles, Wilson and Newcombe for
rates, simultaneous levels, permutation p-values.

numpy and the standard library only; no pytest, no scipy. A claim measures a statistic,
gets an interval for it here, and hands both to :func:`refusal_checks.stats.decisions.verdict`,
which turns interval + threshold into SUPPORTED / REFUTED / INCONCLUSIVE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

_ALTERNATIVES = ("greater", "less")


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level!r}")


def percentile_interval(samples: ArrayLike, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval ``(q_{(1-level)/2}, q_{(1+level)/2})`` of bootstrap samples.

    NaN samples are ignored; if all are NaN (or there are none) the result is
    ``(nan, nan)``, which :func:`decide` reads as INCONCLUSIVE.

    Args:
        samples: Replicates of a statistic, any shape (flattened).
        level: Coverage, e.g. 0.95.
    """
    _check_level(level)
    values = np.asarray(samples, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        return (math.nan, math.nan)
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return (float(lo), float(hi))


def recentred_interval(samples: ArrayLike, estimate: float,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval moved so that the replicates' median sits on the estimate.

    ``(estimate - (m - q_lo), estimate + (q_hi - m))`` with ``m`` the median and
    ``q_lo, q_hi`` the :func:`percentile_interval` of the replicates: the bootstrap gives
    the width and skew, the estimate gives the location. For a statistic that grows with
    noise (a participation ratio) replicates noisier than the estimate sit above it, and
    the plain percentile interval would sit above the truth. NaN samples are ignored; all
    NaN (or a NaN estimate) gives ``(nan, nan)``.
    """
    lo, hi = percentile_interval(samples, level)
    values = np.asarray(samples, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0 or math.isnan(estimate):
        return (math.nan, math.nan)
    median = float(np.median(values))
    return (float(estimate) - (median - lo), float(estimate) + (hi - median))


def simultaneous_level(level: float, k: int) -> float:
    """Bonferroni per-comparison level so ``k`` intervals hold jointly: ``1 - (1-level)/k``."""
    _check_level(level)
    if k < 1:
        raise ValueError(f"k must be a positive number of comparisons, got {k!r}")
    return 1.0 - (1.0 - level) / k


# Acklam's rational approximation to the inverse normal CDF (relative error < 1.15e-9),
# polished below with one Halley step against math.erfc.
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
      3.754408661907416e00)
_P_LOW = 0.02425


def _poly(coeffs: Sequence[float], x: float) -> float:
    out = 0.0
    for c in coeffs:
        out = out * x + c
    return out


def normal_quantile(p: float) -> float:
    """Inverse standard normal CDF ``Phi^-1(p)``.

    Acklam's rational approximation followed by one Halley refinement step
    ``x <- x - u / (1 + x u / 2)`` with ``u = (Phi(x) - p) sqrt(2 pi) exp(x^2 / 2)``,
    accurate to about 1e-15; the upper half uses ``Phi^-1(p) = -Phi^-1(1 - p)``.
    ``p = 0`` gives ``-inf``, ``p = 1`` gives ``+inf``.

    Raises:
        ValueError: If ``p`` is outside [0, 1] or NaN.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    if p == 0.0:
        return -math.inf
    if p == 1.0:
        return math.inf
    if p > 0.5:
        # Symmetry keeps the upper tail exact: 1 - p is computed without rounding here.
        return -normal_quantile(1.0 - p)
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        x = _poly(_C, q) / (_poly(_D, q) * q + 1.0)
    else:
        q = p - 0.5
        r = q * q
        x = _poly(_A, r) * q / (_poly(_B, r) * r + 1.0)
    cdf = 0.5 * math.erfc(-x / math.sqrt(2.0))
    u = (cdf - p) * math.sqrt(2.0 * math.pi) * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial rate ``k / n``.

    With ``p = k/n`` and ``z = Phi^-1((1 + level)/2)``:
    ``(p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``.
    Unlike the Wald interval it stays inside [0, 1] and is honest for ``k = 0`` or ``n``.

    Args:
        k: Successes (e.g. refused prompts), ``0 <= k <= n``.
        n: Trials; ``n = 0`` gives the uninformative ``(0, 1)``.
        level: Coverage.
    """
    _check_level(level)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k!r}, n={n!r}")
    if n == 0:
        return (0.0, 1.0)
    z = normal_quantile(0.5 + level / 2.0)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return (lo, hi)


def newcombe_interval(k1: int, n1: int, k2: int, n2: int,
                      level: float = 0.95) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``p1 - p2`` of two independent rates.

    With ``p_i = k_i / n_i`` and Wilson intervals ``(l_i, u_i)`` at ``level``
    (Newcombe 1998, method 10):
    ``lo = (p1 - p2) - sqrt((p1 - l1)^2 + (u2 - p2)^2)``,
    ``hi = (p1 - p2) + sqrt((u1 - p1)^2 + (p2 - l2)^2)``.
    It keeps the Wilson interval's honesty at rates of 0 or 1 (where the Wald interval of a
    difference collapses to a point) and stays inside [-1, 1]. Swapping the two rates
    mirrors the interval: ``(lo, hi) -> (-hi, -lo)``.

    Args:
        k1: Successes in the first sample (e.g. refusals in the current run).
        n1: Its size, ``n1 >= 1``.
        k2: Successes in the second sample (e.g. the baseline).
        n2: Its size, ``n2 >= 1``.
        level: Coverage.

    Raises:
        ValueError: If a sample is empty or a count lies outside ``[0, n]``.
    """
    _check_level(level)
    for k, n in ((k1, n1), (k2, n2)):
        if n < 1 or not 0 <= k <= n:
            raise ValueError(f"need 0 <= k <= n and n >= 1 for each rate, got k={k!r}, n={n!r}")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, level)
    l2, u2 = wilson_interval(k2, n2, level)
    difference = p1 - p2
    lo = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (max(-1.0, lo), min(1.0, hi))


def permutation_pvalue(
    observed: float, null_samples: ArrayLike, alternative: str = "greater"
) -> float:
    """Permutation p-value ``(1 + #{null >= observed}) / (1 + N)`` (``<=`` for "less").

    The ``+1`` counts the observed arrangement as one of the permutations, so the
    p-value is never 0: it lies in ``[1/(N+1), 1]``. NaN null samples are dropped; a NaN
    observation gives NaN.

    Args:
        observed: The statistic on the real labels.
        null_samples: ``(N,)`` the statistic under permuted labels.
        alternative: "greater" (large observed values are evidence) or "less".
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    if math.isnan(observed):
        return math.nan
    null = np.asarray(null_samples, dtype=np.float64).ravel()
    null = null[~np.isnan(null)]
    extreme = null >= observed if alternative == "greater" else null <= observed
    return float((1 + np.count_nonzero(extreme)) / (1 + null.size))


def newcombe_bounds(k1: ArrayLike, n1: ArrayLike, k2: ArrayLike, n2: ArrayLike,
                    z: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`newcombe_interval` for arrays of counts at a normal quantile ``z``.

    Elementwise (broadcast) ``(lo, hi)`` of ``k1/n1 - k2/n2`` from Wilson bounds at ``z``
    (Newcombe 1998, method 10): for many comparisons at once, e.g. every SAE latent's
    firing-rate difference, at a Bonferroni-widened ``z``. Every ``n`` must be >= 1.
    """
    k1, n1, k2, n2 = (np.asarray(x, np.float64) for x in (k1, n1, k2, n2))
    if np.any(n1 < 1) or np.any(n2 < 1) or np.any((k1 < 0) | (k1 > n1) | (k2 < 0) | (k2 > n2)):
        raise ValueError("need 0 <= k <= n and n >= 1 for every rate")
    if not z > 0:
        raise ValueError(f"z must be a positive normal quantile, got {z!r}")

    def wilson(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = k / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
        return p, np.where(k == 0, 0.0, np.maximum(0.0, centre - half)), \
            np.where(k == n, 1.0, np.minimum(1.0, centre + half))

    p1, l1, u1 = wilson(k1, n1)
    p2, l2, u2 = wilson(k2, n2)
    difference = p1 - p2
    lo = difference - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = difference + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return np.maximum(-1.0, lo), np.minimum(1.0, hi)
