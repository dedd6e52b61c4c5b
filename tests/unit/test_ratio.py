"""Fieller's interval of a ratio (refusal_checks/stats/ratio.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.stats.ratio import GRID, abs_ratio_interval, fieller_set

FEW = settings(max_examples=60, deadline=None, derandomize=True)


def replicates(a: float, b: float, sd_a: float, sd_b: float, seed: int, n: int = 2000):
    rng = np.random.default_rng(seed)
    return a + sd_a * rng.standard_normal(n), b + sd_b * rng.standard_normal(n)


@FEW
@given(a=st.floats(-1.0, 1.0), b=st.floats(0.5, 2.0), sd=st.floats(0.001, 0.05),
       seed=st.integers(0, 2**31 - 1))
def test_a_precise_denominator_gives_the_delta_method_interval(a, b, sd, seed):
    """With sd(b) small against b the set is a bounded interval around a / b whose
    half-width is z sd(a - theta b) / b; tolerance: 10% of it plus a grid step, as the
    bootstrap variance of 2,000 normal draws is within ~3% of the truth (sd of a sample
    variance: sqrt(2 / n))."""
    a_boot, b_boot = replicates(a, b, sd, sd / 10, seed)
    lo, hi, bounded = fieller_set(a, b, a_boot, b_boot)
    assert bounded and lo <= a / b <= hi
    theta = a / b
    half = 1.959964 * math.sqrt(sd ** 2 + theta ** 2 * (sd / 10) ** 2) / b
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)


@FEW
@given(a=st.floats(0.0, 0.3), sd_b=st.floats(0.2, 2.0), seed=st.integers(0, 2**31 - 1))
def test_a_denominator_not_distinguishable_from_zero_gives_an_unbounded_set(a, sd_b, seed):
    b = 0.1
    a_boot, b_boot = replicates(a, b, 0.05, sd_b, seed)
    assert not fieller_set(a, b, a_boot, b_boot)[2]
    lo, hi = abs_ratio_interval(a, b, a_boot, b_boot)
    # |cosine| read in [0, 1]: bounded by construction, and the data bound nothing above.
    assert 0.0 <= lo <= hi == 1.0


@FEW
@given(a=st.floats(-1.0, 1.0), b=st.floats(0.05, 2.0), sd_a=st.floats(0.001, 0.5),
       sd_b=st.floats(0.001, 0.5), seed=st.integers(0, 2**31 - 1))
def test_the_absolute_interval_stays_in_the_unit_interval_and_holds_the_estimate(
        a, b, sd_a, sd_b, seed):
    a_boot, b_boot = replicates(a, b, sd_a, sd_b, seed)
    lo, hi = abs_ratio_interval(a, b, a_boot, b_boot)
    estimate = abs(a / b)
    if estimate <= 1.0:
        assert 0.0 <= lo <= hi <= 1.0
        step = 2.0 / (GRID - 1)
        assert lo - step <= estimate <= hi + step


def test_a_set_that_crosses_zero_reads_from_zero_and_signs_do_not_matter():
    a_boot, b_boot = replicates(0.05, 1.0, 0.1, 0.01, 1)
    lo, hi = abs_ratio_interval(0.05, 1.0, a_boot, b_boot)
    assert lo == 0.0 and 0.2 < hi < 0.3
    flipped = abs_ratio_interval(-0.05, 1.0, -a_boot, b_boot)
    assert flipped == pytest.approx((lo, hi), abs=2.0 / (GRID - 1))


def test_a_set_wholly_beyond_one_is_reported_as_measured_and_nan_stays_nan():
    a_boot, b_boot = replicates(1.5, 1.0, 0.01, 0.01, 2)
    lo, hi = abs_ratio_interval(1.5, 1.0, a_boot, b_boot)
    assert 1.4 < lo < 1.5 < hi < 1.6
    assert all(math.isnan(x) for x in abs_ratio_interval(float("nan"), 1.0, a_boot, b_boot))
    assert all(math.isnan(x) for x in abs_ratio_interval(0.5, 1.0, [0.5], [1.0]))
