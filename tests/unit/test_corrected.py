"""Misclassification-corrected refusal rates: the formula, errors, and interval coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.stats.corrected import CorrectionError, corrected_rate, coverage, rogan_gladen


@given(st.floats(0, 1), st.floats(0.55, 1), st.floats(0.55, 1))
def test_rogan_gladen_inverts_the_judges_apparent_rate(pi, se, sp):
    apparent = se * pi + (1 - sp) * (1 - pi)
    assert rogan_gladen(apparent, se, sp) == pytest.approx(pi, abs=1e-9)


def test_a_perfect_judge_needs_no_correction_and_a_chance_judge_has_none():
    assert rogan_gladen(0.3, 1.0, 1.0) == pytest.approx(0.3)
    assert math.isnan(rogan_gladen(0.3, 0.5, 0.5))
    assert rogan_gladen(0.01, 0.9, 0.9) == 0.0  # below the false-positive floor: clipped


def test_corrected_rate_moves_the_apparent_rate_towards_the_truth():
    # se 0.8, sp 0.9, true rate 0.5 -> apparent 0.45; a judge that misses refusals
    # under-reports, and the correction says so.
    result = corrected_rate(90, 200, (80, 100), (90, 100))
    assert result.apparent == 0.45 and result.estimate == pytest.approx(0.5)
    assert result.low < 0.5 < result.high and result.undefined_share == 0.0
    # The interval is wider than the judged rate's own: it carries se and sp uncertainty.
    narrow = corrected_rate(90, 200, (8000, 10000), (9000, 10000))
    assert (result.high - result.low) > (narrow.high - narrow.low) > 0


def test_a_judge_no_better_than_chance_is_refused_with_the_reason():
    with pytest.raises(CorrectionError, match="no better than chance"):
        corrected_rate(10, 20, (5, 10), (5, 10))
    with pytest.raises(CorrectionError, match="not a count"):
        corrected_rate(30, 20, (5, 10), (9, 10))


@pytest.mark.parametrize("true_rate, se, sp", [(0.5, 0.85, 0.95), (0.15, 0.75, 0.9),
                                               (0.8, 0.9, 0.8)])
def test_corrected_intervals_keep_their_coverage_in_simulated_worlds(true_rate, se, sp):
    # 300 worlds: the coverage estimate's binomial SE is ~0.013 at 0.95, so 0.91 is 3 SE
    # below nominal. Measured: 0.96, 0.96, 0.95; the naive interval (Wilson on the judged
    # rate mapped through the formula at the estimated se, sp) covers 0.92, 0.77, 0.84.
    covered = coverage(true_rate, se, sp, n=200, n_refusals=60, n_non_refusals=60,
                       worlds=300, seed=1)
    assert covered >= 0.91, covered


def test_the_calibration_study_shows_corrected_intervals_cover_where_naive_ones_do_not():
    from refusal_checks.calibration.corrected import cell, table_lines

    # A weak judge (se 0.70, sp 0.80) reading 88 replies of which 90% are refusals: the
    # judged rate sits near 0.65, so Wilson's interval on it almost never holds 0.9, while
    # the corrected interval should hold it ~95% of the time. Seeded numpy draws give the
    # same worlds on every machine; with 100 worlds a coverage of 0.95 falls below 0.85
    # with probability < 1e-4 (binomial), so the bound is not tuned to one run.
    result = cell("weak", 0.70, 0.80, (180, 220), 88, 0.9, worlds=100, seed=3)
    assert result.corrected >= 0.85
    assert result.naive <= 0.10
    assert result.skipped == 0
    assert "weak | 180/220 | 88 | 0.9" in table_lines([result])[2]
