"""Intervals for ratios whose denominator may be poorly determined (Fieller's method).

A noise-corrected cosine ``G_12 / sqrt(G_11 G_22)`` is a ratio ``a / b``: where one
direction is barely reliable, ``b`` comes near 0 in some bootstrap replicates and their
ratios run off to hundreds, so a percentile interval of the ratio is unbounded in
practice (468 on a real model). Fieller's interval inverts a test of the LINEAR statistic
``a - theta b`` instead, which stays roughly normal however small ``b`` is:
``theta`` is in the set when ``(a - theta b)^2 <= z^2 Var(a - theta b)``, with the
variances and covariance of ``(a, b)`` from bootstrap replicates. The set is a bounded
interval exactly when ``b`` is significantly non-zero (``b^2 > z^2 Var(b)``); otherwise it
is unbounded, and honestly so.

For the absolute value of a cosine the set is mapped through ``|theta|`` and intersected
with ``[0, 1]``, the only values a noise-free |cosine| can take: bounded by construction.

numpy and the standard library only.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from refusal_checks.stats.intervals import normal_quantile

# Grid over [-1, 1] on which the Fieller set is read (the set is a union of at most two
# intervals, so the hull of the grid points in it is exact to within a grid step).
GRID = 4001


def fieller_coefficients(a: float, b: float, a_boot: ArrayLike, b_boot: ArrayLike,
                         level: float = 0.95) -> tuple[float, float, float]:
    """``(A, B, C)`` with the Fieller set ``{theta: A theta^2 + B theta + C <= 0}``.

    ``A = b^2 - z^2 V_bb``, ``B = -2 (a b - z^2 V_ab)``, ``C = a^2 - z^2 V_aa``, the
    (co)variances from the finite pairs of replicates, ``z`` the two-sided normal
    quantile of ``level``.
    """
    pairs = np.column_stack([np.asarray(a_boot, np.float64).ravel(),
                             np.asarray(b_boot, np.float64).ravel()])
    pairs = pairs[np.isfinite(pairs).all(axis=1)]
    if len(pairs) < 3 or not (math.isfinite(a) and math.isfinite(b)):
        return (math.nan, math.nan, math.nan)
    cov = np.cov(pairs, rowvar=False)
    z2 = normal_quantile(0.5 + level / 2.0) ** 2
    return (b * b - z2 * cov[1, 1], -2.0 * (a * b - z2 * cov[0, 1]), a * a - z2 * cov[0, 0])


def fieller_set(a: float, b: float, a_boot: ArrayLike, b_boot: ArrayLike,
                level: float = 0.95) -> tuple[float, float, bool]:
    """Fieller's set for ``theta = a / b``: ``(lo, hi, bounded)``.

    ``bounded``: ``[lo, hi]`` is the set. Not bounded: the set is everything outside
    ``(lo, hi)`` (``lo < hi``), or the whole line (``lo = hi = nan``). NaN input -> all NaN.
    """
    qa, qb, qc = fieller_coefficients(a, b, a_boot, b_boot, level)
    if math.isnan(qa):
        return (math.nan, math.nan, False)
    disc = qb * qb - 4.0 * qa * qc
    if disc < 0:  # with qa > 0 the estimate a/b itself is always in the set, so qa <= 0
        return (math.nan, math.nan, False)
    root = math.sqrt(disc)
    if qa == 0:
        return (math.nan, math.nan, False)
    r1, r2 = sorted(((-qb - root) / (2 * qa), (-qb + root) / (2 * qa)))
    return (r1, r2, qa > 0)


def abs_ratio_interval(a: float, b: float, a_boot: ArrayLike, b_boot: ArrayLike,
                       level: float = 0.95) -> tuple[float, float]:
    """Interval of ``|a / b|`` for a ratio that lies in ``[-1, 1]`` (a cosine).

    Fieller's set of ``a / b`` (:func:`fieller_set`), read on a grid over ``[-1, 1]``,
    mapped through ``|.|``: ``(min, max)`` of ``|theta|`` over the set's points, so a set
    that crosses 0 gives ``(0, max)``. Where the whole set lies beyond ``[-1, 1]`` (the
    corrected cosine is significantly larger than 1 in size), the bounded set's own
    ``|.|`` hull is returned: it stays finite and is reported as measured. NaN input (or
    fewer than three finite replicates) gives ``(nan, nan)``.
    """
    qa, qb, qc = fieller_coefficients(a, b, a_boot, b_boot, level)
    if math.isnan(qa):
        return (math.nan, math.nan)
    theta = np.linspace(-1.0, 1.0, GRID)
    inside = qa * theta * theta + qb * theta + qc <= 0
    if inside.any():
        values = np.abs(theta[inside])
        return (float(values.min()), float(values.max()))
    lo, hi, bounded = fieller_set(a, b, a_boot, b_boot, level)
    if not bounded:
        return (math.nan, math.nan)
    ends = sorted((abs(lo), abs(hi)))
    return (ends[0], ends[1])
