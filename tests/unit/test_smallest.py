"""The smallest of several bootstrapped statistics as an intersection-union test (issue #26).

refusal_checks/stats/smallest.py: each unit keeps its own re-centred bootstrap interval at
the level (SUPPORTED reads it) and at the Bonferroni level (REFUTED reads it). The seeded
simulations at the end are the idealised worlds of calibration/README.md ("Other minima and
maxima over categories"), where the re-centred bootstrap of the minimum put its upper end
below a threshold that every category sat exactly on in 79% of worlds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.stats.decisions import decide
from refusal_checks.stats.intervals import normal_quantile, recentred_interval
from refusal_checks.stats.smallest import (MIN_TAIL_REPLICATES, UnitInterval, bonferroni_level,
                                           bootstrap_unit, iut_details, smallest_bootstrap,
                                           smallest_of)
from refusal_checks.stats.verdict import Outcome

LEVEL = 0.95


def _units(draw_values, seed: int = 0, n_boot: int = 500, sd: float = 1.0):
    rng = np.random.default_rng(seed)
    values = np.asarray(draw_values, float)
    return values, values + sd * rng.standard_normal((n_boot, values.size))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=1, max_size=11), st.integers(0, 2**16),
       st.floats(-2, 2), st.sampled_from([0.9, 0.95, 0.99]))
def test_the_interval_is_the_rule_every_unit_above_or_one_bonferroni_below(
        truths, seed, margin, level):
    values, reps = _units(truths, seed, n_boot=200)
    names = [f"c{i}" for i in range(len(truths))]
    estimate, (lo, hi), units = smallest_bootstrap(values, reps, names, level)
    assert estimate == pytest.approx(values.min())
    assert lo <= estimate <= hi
    outcome = decide((lo, hi), margin, ">")
    every_above = all(u.interval[0] > margin for u in units.values())
    one_below = any(u.joint[1] < margin for u in units.values())
    assert (outcome is Outcome.SUPPORTED) == every_above
    assert (outcome is Outcome.REFUTED) == one_below
    for unit in units.values():  # the Bonferroni interval holds the level's interval
        assert unit.joint[0] <= unit.interval[0] <= unit.estimate <= unit.interval[1] \
            <= unit.joint[1]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 20), st.floats(0.5, 0.99))
def test_bonferroni_level_splits_the_error_over_the_family(family, level):
    assert 1 - bonferroni_level(level, family) == pytest.approx((1 - level) / family)


def test_few_replicates_scale_the_half_widths_by_the_normal_ratio():
    rng = np.random.default_rng(3)
    reps = 0.9 + 0.02 * rng.standard_normal(500) - 0.03 * rng.exponential(size=500)
    joint = bonferroni_level(LEVEL, 11)
    unit = bootstrap_unit(0.92, reps, LEVEL, joint)
    assert unit.interval == pytest.approx(recentred_interval(reps, 0.92, LEVEL))
    ratio = normal_quantile(0.5 + joint / 2) / normal_quantile(0.975)
    assert ratio == pytest.approx(1.45, abs=0.01)  # z(0.99773) / z(0.975) for 11 units
    assert 0.92 - unit.joint[0] == pytest.approx(ratio * (0.92 - unit.interval[0]))
    assert unit.joint[1] - 0.92 == pytest.approx(ratio * (unit.interval[1] - 0.92))
    # The skew survives: the left tail (exponential) is the longer one at both levels.
    assert 0.92 - unit.joint[0] > unit.joint[1] - 0.92


def test_enough_replicates_read_the_bonferroni_tail_off_the_replicates():
    joint = bonferroni_level(LEVEL, 11)
    n = math.ceil(2 * MIN_TAIL_REPLICATES / (1 - joint))  # 4,400: 10 beyond each end
    reps = np.random.default_rng(4).standard_normal(n)
    unit = bootstrap_unit(0.0, reps, LEVEL, joint)
    assert unit.joint == pytest.approx(recentred_interval(reps, 0.0, joint))
    few = bootstrap_unit(0.0, reps[: n - 200], LEVEL, joint)
    assert few.joint != pytest.approx(recentred_interval(reps[: n - 200], 0.0, joint))


def test_unmeasured_units_are_left_out_and_none_measured_gives_nan():
    values = np.array([0.5, np.nan, 0.7])
    reps = np.column_stack([np.full(50, 0.5), np.full(50, 0.1), np.full(50, np.nan)])
    reps[:, 0] += np.linspace(-0.1, 0.1, 50)
    estimate, interval, units = smallest_bootstrap(values, reps, ["a", "b", "c"])
    assert list(units) == ["a"] and estimate == 0.5  # b: no estimate; c: no replicates
    estimate, interval, units = smallest_bootstrap([np.nan], np.zeros((5, 1)), ["a"])
    assert math.isnan(estimate) and all(math.isnan(v) for v in interval) and units == {}
    assert smallest_of({})[0] != smallest_of({})[0]


def test_bad_shapes_and_families_say_what_is_wrong():
    with pytest.raises(ValueError, match=r"\(n_boot, k\) replicates"):
        smallest_bootstrap([0.1, 0.2], np.zeros((5, 3)), ["a", "b"])
    with pytest.raises(ValueError, match="family must count every unit"):
        smallest_bootstrap([0.1, 0.2], np.zeros((5, 2)), ["a", "b"], family=1)
    with pytest.raises(ValueError, match="level must lie strictly between"):
        bonferroni_level(1.0, 3)
    with pytest.raises(ValueError, match="family must be at least 1"):
        bonferroni_level(0.95, 0)


def test_details_name_each_units_status_and_the_ends():
    units = {"a": UnitInterval(0.95, (0.92, 0.97), (0.91, 0.98)),
             "b": UnitInterval(0.85, (0.80, 0.88), (0.78, 0.89)),
             "c": UnitInterval(0.90, (0.86, 0.93), (0.85, 0.94))}
    details = iut_details(units, 0.90, LEVEL, 11)
    assert (details["above"], details["below"], details["straddles"]) == (["a"], ["b"], ["c"])
    assert details["lower_end_from"] == "b" and details["upper_end_from"] == "b"
    assert details["measured"] == 3 and details["family"] == 11
    assert details["per_category"]["c"]["bonferroni_interval"] == [0.85, 0.94]


# The idealised worlds: 11 categories, each estimate ~ N(truth, 1) and its 500 bootstrap
# replicates ~ N(estimate, 1) (a normal statistic, as the README's simulation). By
# construction a verdict errs with probability 2.5% (one side of the level, or the
# Bonferroni split of it) when the replicates' quantiles are exact; 500 replicates
# estimate them with noise (the 2.5% point has sd ~0.12 against 1.96), which these worlds
# put at 3.8% false REFUTED and 3.7% false SUPPORTED over 1,500 worlds each (an sd-based
# interval: 2.8% and 3.5%). The tests hold the goal, 5%: at 3.8% the chance that
# 1,500 worlds exceed it is ~1%, and each is seeded.
WORLDS, K = 1500, 11
LIMIT = 0.05


def _rate(truths, outcome: Outcome, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(WORLDS):
        values = np.asarray(truths, float) + rng.standard_normal(K)
        reps = values + rng.standard_normal((500, K))
        _, interval, _ = smallest_bootstrap(values, reps, [str(i) for i in range(K)], LEVEL)
        hits += decide(interval, 0.0, ">") is outcome
    return hits / WORLDS


def test_every_category_at_the_threshold_is_rarely_refuted():
    # The bootstrap of the minimum said REFUTED here in 79% of worlds.
    assert _rate(np.zeros(K), Outcome.REFUTED, 1) <= LIMIT


def test_one_category_at_the_threshold_beside_clear_ones_is_rarely_supported():
    truths = np.r_[0.0, np.full(K - 1, 6.0)]
    assert _rate(truths, Outcome.SUPPORTED, 2) <= LIMIT


def test_every_category_clearly_above_is_supported():
    assert _rate(np.full(K, 5.0), Outcome.SUPPORTED, 3) >= 0.9
