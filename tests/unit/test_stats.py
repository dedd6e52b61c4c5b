"""stats.py: known values, hand-computed corrections, and the decide/verdict truth tables."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.stats.intervals import newcombe_interval, normal_quantile, percentile_interval, recentred_interval, permutation_pvalue, simultaneous_level, wilson_interval
from refusal_checks.stats.decisions import above, below, decide, equivalence, verdict
from refusal_checks.stats.verdict import ABOVE, BELOW, Outcome, Verdict

FAST = settings(max_examples=60, deadline=None)
NAN = math.nan
S, R, I = Outcome.SUPPORTED, Outcome.REFUTED, Outcome.INCONCLUSIVE


# --- normal quantile --------------------------------------------------------------------


def test_normal_quantile_known_values() -> None:
    assert normal_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert normal_quantile(0.5) == 0.0
    assert normal_quantile(0.95) == pytest.approx(1.644854, abs=1e-6)
    assert normal_quantile(0.005) == pytest.approx(-2.575829, abs=1e-6)
    assert normal_quantile(0.0) == -math.inf
    assert normal_quantile(1.0) == math.inf


@FAST
@given(st.floats(1e-12, 1 - 1e-12))
def test_normal_quantile_matches_the_stdlib(p: float) -> None:
    assert normal_quantile(p) == pytest.approx(NormalDist().inv_cdf(p), abs=1e-9)


@FAST
@given(st.floats(1e-4, 1 - 1e-4))
def test_normal_quantile_is_antisymmetric(p: float) -> None:
    # Away from the tails, so that rounding in 1 - p stays far below the tolerance.
    assert normal_quantile(p) == pytest.approx(-normal_quantile(1 - p), abs=1e-9)


@pytest.mark.parametrize("p", [-0.1, 1.5, NAN])
def test_normal_quantile_rejects_non_probabilities(p: float) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        normal_quantile(p)


# --- Wilson -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [
        (0, 10, 0.0, 0.2775),  # textbook: 0/10 -> [0, 0.278]
        (1, 10, 0.0179, 0.4042),
        (5, 10, 0.2366, 0.7634),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),  # Newcombe (1998), Stat Med 17:857, example
    ],
)
def test_wilson_interval_known_values(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson_interval(k, n)
    assert got[0] == pytest.approx(lo, abs=1e-4)
    assert got[1] == pytest.approx(hi, abs=1e-4)


def test_wilson_interval_edge_cases_and_level() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    narrow, wide = wilson_interval(5, 20, level=0.8), wilson_interval(5, 20, level=0.99)
    assert wide[0] < narrow[0] < narrow[1] < wide[1]
    # PAPER.md: a rate from 20 prompts cannot support a 0.05 margin.
    lo, hi = wilson_interval(19, 20)
    assert hi - lo > 0.1
    for k, n in [(3, 2), (-1, 5)]:
        with pytest.raises(ValueError, match="0 <= k <= n"):
            wilson_interval(k, n)


@FAST
@given(st.integers(0, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_the_rate_and_stays_in_unit_interval(kn: tuple[int, int]) -> None:
    k, n = kn
    lo, hi = wilson_interval(k, n)
    assert 0.0 <= lo <= hi <= 1.0
    if n:
        assert lo <= k / n <= hi


# --- Newcombe (difference of two rates) ---------------------------------------------------


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2", "lo", "hi"),
    [
        # Newcombe (1998), Stat Med 17:873, Table II, method 10.
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
    ],
)
def test_newcombe_interval_known_values(k1: int, n1: int, k2: int, n2: int, lo: float,
                                        hi: float) -> None:
    got = newcombe_interval(k1, n1, k2, n2)
    assert got[0] == pytest.approx(lo, abs=1e-4)
    assert got[1] == pytest.approx(hi, abs=1e-4)


def test_newcombe_interval_rejects_empty_samples_and_bad_counts() -> None:
    for args in [(0, 0, 1, 2), (1, 2, 0, 0), (3, 2, 1, 2), (1, 2, -1, 2)]:
        with pytest.raises(ValueError, match="0 <= k <= n and n >= 1"):
            newcombe_interval(*args)
    with pytest.raises(ValueError, match="level"):
        newcombe_interval(1, 2, 1, 2, level=1.0)


_RATE = st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


@FAST
@given(_RATE, _RATE)
def test_newcombe_interval_contains_the_difference_and_stays_in_bounds(
        first: tuple[int, int], second: tuple[int, int]) -> None:
    (k1, n1), (k2, n2) = first, second
    lo, hi = newcombe_interval(k1, n1, k2, n2)
    assert -1.0 <= lo <= k1 / n1 - k2 / n2 <= hi <= 1.0


@FAST
@given(_RATE, _RATE)
def test_newcombe_interval_mirrors_when_the_rates_swap(first: tuple[int, int],
                                                       second: tuple[int, int]) -> None:
    lo, hi = newcombe_interval(*first, *second)
    swapped = newcombe_interval(*second, *first)
    assert swapped == pytest.approx((-hi, -lo), abs=1e-12)


@FAST
@given(_RATE, _RATE, st.integers(2, 10))
def test_newcombe_interval_narrows_with_more_observations(
        first: tuple[int, int], second: tuple[int, int], factor: int) -> None:
    (k1, n1), (k2, n2) = first, second
    lo, hi = newcombe_interval(k1, n1, k2, n2)
    more_lo, more_hi = newcombe_interval(k1 * factor, n1 * factor, k2 * factor, n2 * factor)
    # Same rates, `factor` times the prompts: the interval can only shrink.
    assert more_hi - more_lo <= hi - lo + 1e-12


@FAST
@given(_RATE, _RATE)
def test_newcombe_interval_widens_with_the_level(first: tuple[int, int],
                                                 second: tuple[int, int]) -> None:
    lo80, hi80 = newcombe_interval(*first, *second, level=0.8)
    lo99, hi99 = newcombe_interval(*first, *second, level=0.99)
    assert lo99 <= lo80 and hi80 <= hi99


# --- intervals and levels ---------------------------------------------------------------


def test_percentile_interval_ignores_nan_and_reports_all_nan() -> None:
    samples = np.arange(101.0)
    assert percentile_interval(samples) == pytest.approx((2.5, 97.5))
    assert percentile_interval(np.append(samples, [NAN, NAN])) == pytest.approx((2.5, 97.5))
    assert percentile_interval(samples, level=0.5) == pytest.approx((25.0, 75.0))
    lo, hi = percentile_interval([NAN, NAN])
    assert math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError, match="level"):
        percentile_interval(samples, level=95)


def test_recentred_interval_moves_the_replicates_median_onto_the_estimate() -> None:
    samples = np.arange(101, dtype=float)  # median 50, 95% percentiles 2.5 and 97.5
    assert recentred_interval(samples, 50.0) == pytest.approx((2.5, 97.5))
    assert recentred_interval(samples, 10.0) == pytest.approx((-37.5, 57.5))
    skewed = np.array([0.0, 1.0, 1.0, 2.0, 10.0])
    lo, hi = recentred_interval(skewed, 1.0, level=0.5)
    assert (lo, hi) == pytest.approx(percentile_interval(skewed, level=0.5))
    assert np.isnan(recentred_interval([NAN], 1.0)).all()
    assert np.isnan(recentred_interval(samples, NAN)).all()


def test_simultaneous_level_is_bonferroni() -> None:
    assert simultaneous_level(0.95, 1) == pytest.approx(0.95)
    assert simultaneous_level(0.95, 5) == pytest.approx(0.99)
    assert simultaneous_level(0.9, 11) == pytest.approx(1 - 0.1 / 11)
    with pytest.raises(ValueError):
        simultaneous_level(0.95, 0)


# --- Holm -------------------------------------------------------------------------------


# --- permutation p-value ----------------------------------------------------------------


def test_permutation_pvalue_counts_ties_and_adds_one() -> None:
    null = [0.1, 0.2, 0.3, 0.4, 0.5, 0.5, 0.6, 0.7, 0.8]
    assert permutation_pvalue(0.5, null) == pytest.approx((1 + 5) / 10)
    assert permutation_pvalue(0.5, null, alternative="less") == pytest.approx((1 + 6) / 10)
    assert permutation_pvalue(9.0, null) == pytest.approx(1 / 10)
    assert permutation_pvalue(9.0, null + [NAN]) == pytest.approx(1 / 10)  # NaN dropped
    assert math.isnan(permutation_pvalue(NAN, null))
    with pytest.raises(ValueError, match="greater"):
        permutation_pvalue(0.5, null, alternative="two-sided")


@FAST
@given(
    st.floats(-5, 5), st.lists(st.floats(-5, 5), max_size=50), st.sampled_from(["greater", "less"])
)
def test_permutation_pvalue_lies_between_one_over_n_plus_one_and_one(
    observed: float, null: list[float], alternative: str
) -> None:
    p = permutation_pvalue(observed, null, alternative)
    assert 1 / (len(null) + 1) <= p <= 1.0


# --- decide / verdict / equivalence -----------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "threshold", "comparison", "outcome"),
    [
        ((0.6, 0.8), 0.5, ABOVE, S),
        ((0.2, 0.4), 0.5, ABOVE, R),
        ((0.4, 0.6), 0.5, ABOVE, I),
        ((0.5, 0.6), 0.5, ABOVE, I),  # touching is not clearing
        ((0.2, 0.4), 0.5, BELOW, S),
        ((0.6, 0.8), 0.5, BELOW, R),
        ((0.4, 0.6), 0.5, BELOW, I),
        ((0.4, 0.5), 0.5, BELOW, I),
        ((NAN, 0.8), 0.5, ABOVE, I),
        ((0.6, NAN), 0.5, BELOW, I),
        ((0.6, 0.8), NAN, ABOVE, I),
    ],
)
def test_decide_truth_table(
    interval: tuple[float, float], threshold: float, comparison: str, outcome: Outcome
) -> None:
    assert decide(interval, threshold, comparison) is outcome


def test_decide_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="'>'"):
        decide((0.1, 0.2), 0.5, ">=")
    with pytest.raises(ValueError, match="lo <= hi"):
        decide((0.8, 0.2), 0.5, ABOVE)


@pytest.mark.parametrize(
    ("interval", "comparison", "outcome", "reason"),
    [
        ((0.6, 0.8), ABOVE, S, "the whole interval lies above the threshold"),
        ((0.2, 0.4), BELOW, S, "the whole interval lies below the threshold"),
        ((0.2, 0.4), ABOVE, R, "wrong side (below)"),
        ((0.6, 0.8), BELOW, R, "wrong side (above)"),
        ((0.4, 0.6), ABOVE, I, "the interval straddles the threshold"),
        ((NAN, NAN), ABOVE, I, "NaN"),
    ],
)
def test_verdict_outcome_and_reason(
    interval: tuple[float, float], comparison: str, outcome: Outcome, reason: str
) -> None:
    v = verdict("median cosine", 0.5, interval, 0.5, comparison, 55, seed=3, paper="0.55")
    assert isinstance(v, Verdict)
    assert v.outcome is outcome
    assert reason in v.reason
    assert (v.n, v.seed, v.paper, v.details) == (55, 3, "0.55", {})
    assert v.line().startswith("median cosine 0.500 [")
    assert Verdict.from_dict(v.to_dict()).outcome is outcome


@pytest.mark.parametrize("interval", [(0.6, 0.8), (0.2, 0.4), (0.4, 0.6)])
def test_a_failed_requirement_is_always_inconclusive_and_says_what_the_statistic_read(
        interval: tuple[float, float]) -> None:
    v = verdict(
        "refusal rate", 0.5, interval, 0.5, ABOVE, 100,
        requires=[(True, "fine"), (False, "the model never refuses")],
    )
    assert v.outcome is I
    assert v.reason.startswith("the model never refuses")
    alone = decide(interval, 0.5, ABOVE)
    assert (f"alone would read {alone.value.upper()}" in v.reason) == (alone is not I)
    ok = verdict("refusal rate", 0.7, interval, 0.5, ABOVE, 100, requires=[(True, "fine")])
    assert ok.outcome is decide(interval, 0.5, ABOVE)


@given(lo=st.floats(-2, 2), width=st.floats(0, 2), threshold=st.floats(-2, 2),
       comparison=st.sampled_from([ABOVE, BELOW]))
def test_a_failed_precondition_stops_supported_but_never_hides_a_refutation(
        lo: float, width: float, threshold: float, comparison: str) -> None:
    interval = (lo, lo + width)
    plain = decide(interval, threshold, comparison)
    v = verdict("statistic", lo + width / 2, interval, threshold, comparison, 10,
                preconditions=[(False, "nothing moved")])
    expected = {S: I, R: R, I: I}[plain]
    assert v.outcome is expected
    assert "nothing moved" in v.reason


def test_too_few_observations_or_nan_estimate_is_inconclusive() -> None:
    v = verdict("refusal rate", 0.9, (0.8, 0.95), 0.5, ABOVE, 20, min_n=30)
    assert v.outcome is I and v.reason == "only n=20 observations, need >= 30"
    v = verdict("refusal rate", NAN, (0.8, 0.95), 0.5, ABOVE, 100)
    assert v.outcome is I and "NaN" in v.reason


def test_above_and_below_fix_the_comparison() -> None:
    up = above("cosine", 0.7, (0.6, 0.8), 0.5, 55, level=0.9, details={"k": 11})
    down = below("cosine", 0.7, (0.6, 0.8), 0.5, 55)
    assert (up.comparison, up.outcome, up.level, up.details) == (ABOVE, S, 0.9, {"k": 11})
    assert (down.comparison, down.outcome) == (BELOW, R)


@pytest.mark.parametrize(
    ("interval", "outcome"),
    [
        ((-0.03, 0.04), S),  # inside [-0.05, 0.05]: equivalent
        ((0.06, 0.2), R),  # entirely above the margin
        ((-0.3, -0.08), R),  # entirely below
        ((-0.02, 0.08), I),  # crosses the margin
        ((-0.1, 0.1), I),  # wider than the margin band
        ((-0.05, 0.0), I),  # touching the margin is not inside it
        ((NAN, 0.0), I),
    ],
)
def test_equivalence_truth_table(interval: tuple[float, float], outcome: Outcome) -> None:
    assert equivalence(interval, 0.05) is outcome


def test_equivalence_needs_a_positive_margin() -> None:
    with pytest.raises(ValueError, match="margin"):
        equivalence((0.0, 0.1), 0.0)
