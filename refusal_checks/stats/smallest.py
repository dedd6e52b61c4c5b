"""The smallest of several per-unit statistics: an intersection-union test (issue #26).

A claim over "every category" holds when the smallest category value clears its margin.
A bootstrap of the minimum does not decide that honestly: the minimum of noisy estimates
sits below the smallest truth when several categories are near it, and its resamples
lower still, so with every category exactly at the threshold the re-centred bootstrap of
the minimum put its upper end below the threshold in 79% of idealised worlds
(calibration/README.md). Here each unit (category) keeps its own interval:

* at ``level`` (what SUPPORTED reads: Berger 1982, the intersection-union test of "every
  unit > m" at level alpha tests each unit at level alpha, no multiplicity correction);
* at the Bonferroni level ``1 - (1 - level) / family`` (what REFUTED reads: "some unit is
  below m" needs a simultaneous statement).

:func:`smallest_of` combines them into one interval ``(min_u lo_u, min_u joint_hi_u)`` for
the smallest true value: its lower end exceeds the truth only if the unit holding the
minimum misses it (``<= (1 - level) / 2``), its upper end falls below only if some unit's
Bonferroni interval misses (``<= (1 - level) / 2`` over all of them). ``decide(interval,
m, ">")`` then IS the rule "SUPPORTED when every unit's interval lies above ``m``, REFUTED
when some unit's Bonferroni interval lies below ``m``".

:func:`smallest_bootstrap` builds the unit intervals from bootstrap replicates
(re-centred on each unit's estimate, as :func:`~refusal_checks.stats.intervals.recentred_interval`);
:func:`refusal_checks.stats.paired.smallest_difference` from Tango's paired interval.
numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from refusal_checks.stats.intervals import normal_quantile, recentred_interval

# A tail quantile read off bootstrap replicates needs replicates beyond it: at 10 the
# 0.23% Bonferroni tail of 11 categories (95% level) needs 4,400 replicates. With fewer,
# the Bonferroni half-width is the level's half-width scaled by the normal ratio
# z_joint / z_level (1.45 for 11 categories): it keeps the replicates' skew where 500 of
# them measure it (12 beyond the 2.5% point) and needs no extra model-free resampling.
# For a statistic bounded on that side (a cosine near 1) the true tail is shorter than
# the normal's, so the extrapolation errs wide: toward INCONCLUSIVE, never a false REFUTED.
MIN_TAIL_REPLICATES = 10


class UnitLike(Protocol):
    """What :func:`smallest_of` reads of a unit."""

    @property
    def estimate(self) -> float: ...
    @property
    def interval(self) -> tuple[float, float]: ...
    @property
    def joint(self) -> tuple[float, float]: ...


@dataclass(frozen=True)
class UnitInterval:
    """One unit's estimate, its interval at the level and at the Bonferroni level."""

    estimate: float
    interval: tuple[float, float]
    joint: tuple[float, float]

    def status(self, margin: float) -> str:
        """"above" (its interval clears ``margin``), "below" (its Bonferroni interval lies
        wholly under it) or "straddles"."""
        return ("above" if self.interval[0] > margin else
                "below" if self.joint[1] < margin else "straddles")


def bonferroni_level(level: float, family: int) -> float:
    """``1 - (1 - level) / family``: each of ``family`` units' level for a joint statement.

    Raises:
        ValueError: For a level outside (0, 1) or ``family < 1``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level!r}")
    if family < 1:
        raise ValueError(f"family must be at least 1, got {family!r}")
    return 1.0 - (1.0 - level) / family


def smallest_of(units: Mapping[str, UnitLike]) -> tuple[float, tuple[float, float]]:
    """``(min estimate, (min lower end at the level, min upper end at Bonferroni))``.

    No units: ``(nan, (nan, nan))`` (INCONCLUSIVE)."""
    if not units:
        return math.nan, (math.nan, math.nan)
    values = list(units.values())
    return (min(u.estimate for u in values),
            (min(u.interval[0] for u in values), min(u.joint[1] for u in values)))


def ends_from(units: Mapping[str, UnitLike]) -> dict[str, str]:
    """Which unit holds the lower end and which the upper end of :func:`smallest_of`."""
    if not units:
        return {}
    return {"lower_end_from": min(units, key=lambda n: units[n].interval[0]),
            "upper_end_from": min(units, key=lambda n: units[n].joint[1])}


def bootstrap_unit(estimate: float, replicates: ArrayLike, level: float,
                   joint_level: float) -> UnitInterval:
    """One unit's re-centred bootstrap interval at ``level`` and at ``joint_level``.

    The joint interval is read off the replicates when its tail holds at least
    MIN_TAIL_REPLICATES of them, otherwise the level's half-widths are scaled by
    ``z(joint) / z(level)`` on each side (MIN_TAIL_REPLICATES says why). NaN replicates
    are ignored; none finite (or a NaN estimate) gives NaN intervals.
    """
    values = np.asarray(replicates, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    interval = recentred_interval(values, estimate, level)
    if any(math.isnan(v) for v in interval):
        return UnitInterval(float(estimate), interval, interval)
    if values.size * (1.0 - joint_level) / 2.0 >= MIN_TAIL_REPLICATES:
        joint = recentred_interval(values, estimate, joint_level)
    else:
        scale = normal_quantile(0.5 + joint_level / 2.0) / normal_quantile(0.5 + level / 2.0)
        joint = (estimate - scale * (estimate - interval[0]),
                 estimate + scale * (interval[1] - estimate))
    return UnitInterval(float(estimate), interval, (float(joint[0]), float(joint[1])))


def smallest_bootstrap(values: ArrayLike, replicates: ArrayLike, names: Sequence[str],
                       level: float = 0.95, family: int | None = None
                       ) -> tuple[float, tuple[float, float], dict[str, UnitInterval]]:
    """The intersection-union interval of the smallest of ``k`` bootstrapped statistics.

    Args:
        values: ``(k,)`` point estimates, one per unit (NaN: not measured).
        replicates: ``(n_boot, k)`` bootstrap replicates of ``values`` (NaN ignored).
        names: The units' names.
        level: Coverage of the combined interval.
        family: Units the claim could have measured, fixed before measuring (default
            ``k``); the Bonferroni level splits over all of them.

    Returns:
        ``(smallest estimate, interval, name -> UnitInterval)``, measured units only (a
        finite estimate and interval); none measured: ``(nan, (nan, nan), {})``.

    Raises:
        ValueError: For mismatched shapes, a bad level or a family smaller than ``k``.
    """
    est = np.asarray(values, dtype=np.float64).ravel()
    reps = np.asarray(replicates, dtype=np.float64)
    if reps.ndim != 2 or reps.shape[1] != est.size or len(names) != est.size:
        raise ValueError(f"need (k,) values, (n_boot, k) replicates and k names, got "
                         f"{est.shape}, {reps.shape} and {len(names)} names")
    family = est.size if family is None else family
    if family < max(est.size, 1):
        raise ValueError(f"family must count every unit, got family={family!r} for "
                         f"{est.size} units")
    joint_level = bonferroni_level(level, family)
    units = {}
    for i, name in enumerate(names):
        if math.isnan(est[i]):
            continue
        unit = bootstrap_unit(float(est[i]), reps[:, i], level, joint_level)
        if not any(math.isnan(v) for v in unit.interval + unit.joint):
            units[name] = unit
    estimate, interval = smallest_of(units)
    return estimate, interval, units


def iut_details(units: Mapping[str, UnitInterval], margin: float, level: float,
                family: int, digits: int = 4) -> dict[str, object]:
    """The report's record of the test: each unit's estimate, both intervals and status,
    which units are above / below / straddle, and which hold the interval's ends."""
    status = {n: u.status(margin) for n, u in units.items()}
    return {"rule": "SUPPORTED: every measured category's interval above the threshold "
                    "(and at least half measured); REFUTED: some category's Bonferroni "
                    "interval below it",
            "level": level, "bonferroni_level": bonferroni_level(level, max(family, 1)),
            "family": family, "measured": len(units),
            "per_category": {n: {"estimate": round(u.estimate, digits),
                                 "interval": [round(v, digits) for v in u.interval],
                                 "bonferroni_interval": [round(v, digits) for v in u.joint],
                                 "status": status[n]} for n, u in units.items()},
            **{s: [n for n, v in status.items() if v == s]
               for s in ("above", "below", "straddles")},
            **ends_from(units)}
