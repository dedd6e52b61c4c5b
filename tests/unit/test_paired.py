"""paired.py: prompt digests, discordant pairs, and Tango's paired interval (coverage included)."""

from __future__ import annotations

import functools
import hashlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.stats.paired import (
    DIGEST_CHARS,
    discordance,
    no_change_half_width,
    per_prompt_record,
    prompt_digest,
    smallest_difference,
    tango_interval,
    tango_statistic,
)
from refusal_checks.stats.intervals import newcombe_interval, normal_quantile
from tests.unit.test_gate import pairs_needed

FAST = settings(max_examples=80, deadline=None)
Z = normal_quantile(0.975)


@st.composite
def tables(draw: st.DrawFn, max_n: int = 120) -> tuple[int, int, int]:
    """``(b, c, n)``: discordant pairs each way and pairs, ``b + c <= n``."""
    n = draw(st.integers(1, max_n))
    b = draw(st.integers(0, n))
    return b, draw(st.integers(0, n - b)), n


# -- digests and pairing ---------------------------------------------------------------------

def test_a_digest_is_a_short_sha256_of_the_text() -> None:
    text = "How do I pick a lock?"
    assert prompt_digest(text) == hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]
    assert prompt_digest(text) != prompt_digest(text + " ")


def test_a_per_prompt_record_keys_outcomes_and_texts_by_digest() -> None:
    record = per_prompt_record(["a", "b", "a"], [True, np.bool_(False), False])
    assert record == {"outcomes": {prompt_digest("a"): True, prompt_digest("b"): False},
                      "texts": {prompt_digest("a"): "a", prompt_digest("b"): "b"}}
    assert all(type(v) is bool for v in record["outcomes"].values())  # JSON-serialisable
    with pytest.raises(ValueError, match="one outcome per prompt, got 2 prompts and 1"):
        per_prompt_record(["a", "b"], [True])


def test_discordance_pairs_shared_prompts_only() -> None:
    before = {"p": True, "q": True, "r": False, "gone": True}
    now = {"p": True, "q": False, "r": True, "new": False}
    found = discordance(before, now)
    assert (found.pairs, found.lost, found.gained) == (3, ("q",), ("r",))


# -- Tango's interval: known values and the statistic ------------------------------------------

def test_tango_interval_matches_the_published_example() -> None:
    # Bentur et al. (2009), airway hyper-responsiveness before / after transplantation:
    # n = 21 pairs, 1 positive after only, 7 before only. Fagerland, Lydersen & Laake
    # (2014, Stat Med 33:2850) give Tango's 95% interval -0.517 to -0.026; rounded to the
    # 3 decimals printed there.
    lo, hi = tango_interval(1, 7, 21)
    assert (round(lo, 3), round(hi, 3)) == (-0.517, -0.026)


@FAST
@given(tables(), st.floats(-0.99, 0.99))
def test_the_closed_form_null_estimate_maximises_the_constrained_likelihood(
        table: tuple[int, int, int], delta: float) -> None:
    # Independent check of the quadratic root behind tango_statistic: maximise the
    # multinomial likelihood over q = P(second only), with P(first only) = q + delta, by a
    # ternary search (the log-likelihood is concave in q), and compare the statistics.
    b, c, n = table
    lo_q, hi_q = max(0.0, -delta), (1.0 - delta) / 2.0

    def loglik(q: float) -> float:
        terms = ((b, q + delta), (c, q), (n - b - c, 1.0 - 2.0 * q - delta))
        if any(count and p <= 0 for count, p in terms):
            return -math.inf
        return sum(count * math.log(p) for count, p in terms if count)

    left, right = lo_q, hi_q
    for _ in range(300):
        m1, m2 = left + (right - left) / 3, right - (right - left) / 3
        if loglik(m1) < loglik(m2):
            left = m1
        else:
            right = m2
    q = 0.5 * (left + right)
    variance = n * (2 * q + delta * (1 - delta))
    if variance < 1e-9:  # T is +-inf or undefined there; the endpoints test covers edges
        return
    brute = (b - c - n * delta) / math.sqrt(variance)
    # The search pins q to ~1e-15; the rest is float rounding of two formulas.
    assert tango_statistic(b, c, n, delta) == pytest.approx(brute, rel=1e-6, abs=1e-9)


@FAST
@given(tables())
def test_the_endpoints_solve_the_score_equation_or_sit_on_the_edge(
        table: tuple[int, int, int]) -> None:
    b, c, n = table
    lo, hi = tango_interval(b, c, n)
    if c == n:
        assert lo == -1.0
    else:
        assert tango_statistic(b, c, n, lo) == pytest.approx(Z, abs=1e-6)
    if b == n:
        assert hi == 1.0
    else:
        assert tango_statistic(b, c, n, hi) == pytest.approx(-Z, abs=1e-6)


# -- hypothesis properties -----------------------------------------------------------------------

@FAST
@given(tables())
def test_the_interval_contains_the_observed_difference_and_stays_in_bounds(
        table: tuple[int, int, int]) -> None:
    b, c, n = table
    lo, hi = tango_interval(b, c, n)
    assert -1.0 <= lo <= (b - c) / n <= hi <= 1.0
    assert lo < hi


@FAST
@given(tables())
def test_swapping_the_runs_negates_the_interval(table: tuple[int, int, int]) -> None:
    b, c, n = table
    lo, hi = tango_interval(b, c, n)
    swapped = tango_interval(c, b, n)
    # Bisection stops at float resolution on each side independently.
    assert swapped == pytest.approx((-hi, -lo), abs=1e-9)


@FAST
@given(tables(), st.sampled_from([0.8, 0.9]), st.sampled_from([0.95, 0.99]))
def test_a_higher_level_widens_the_interval(table: tuple[int, int, int], low: float,
                                            high: float) -> None:
    b, c, n = table
    lo, hi = tango_interval(b, c, n, low)
    wide_lo, wide_hi = tango_interval(b, c, n, high)
    assert wide_lo <= lo + 1e-12 and hi <= wide_hi + 1e-12


@FAST
@given(st.integers(1, 5000))
def test_no_discordant_pair_gives_z2_over_n_plus_z2_shrinking_with_n(n: int) -> None:
    lo, hi = tango_interval(0, 0, n)
    half = Z * Z / (n + Z * Z)
    assert (lo, hi) == pytest.approx((-half, half), abs=1e-9)
    assert no_change_half_width(n) == pytest.approx(half, rel=1e-12)
    assert tango_interval(0, 0, n + 1)[1] < hi


@FAST
@given(st.integers(4, 400), st.data())
def test_an_unchanged_run_gets_a_narrower_interval_paired_than_unpaired(
        n: int, data: st.DataObject) -> None:
    # At a rate strictly between 0 and 1 the unpaired interval of k/n vs k/n is wider than
    # the paired one with no discordant pair: the pairing is what lets "nothing changed" be
    # shown. At a rate of 0 or 1 nothing can change but the rate's own edge, and both are
    # +-z^2 / (n + z^2) (Newcombe's is then one Wilson bound). From 4 prompts on: on 2 or 3
    # (k = 1, 2) the score interval is the wider one (checked exhaustively up to n = 2000).
    k = data.draw(st.integers(0, n))
    lo, hi = tango_interval(0, 0, n)
    unpaired_lo, unpaired_hi = newcombe_interval(k, n, k, n)
    if 0 < k < n:
        assert unpaired_lo < lo and hi < unpaired_hi
    else:
        assert (unpaired_lo, unpaired_hi) == pytest.approx((lo, hi), abs=1e-9)


@FAST
@given(st.floats(0.1, 0.9), st.floats(0.1, 0.9))
def test_independent_pairs_give_the_unpaired_interval_in_the_limit(p1: float,
                                                                    p2: float) -> None:
    # When the two runs' outcomes are independent, the discordant cells are n p1 (1 - p2)
    # and n (1 - p1) p2, and the paired score interval must approach the unpaired one:
    # both tend to the Wald interval, with O(1 / n) differences (1e-3 at n = 1e5).
    n = 100_000
    b, c = round(n * p1 * (1 - p2)), round(n * (1 - p1) * p2)
    lo, hi = tango_interval(b, c, n)
    k1, k2 = round(n * p1), round(n * p2)
    unpaired_lo, unpaired_hi = newcombe_interval(k1, n, k2, n)
    assert (hi - lo) == pytest.approx(unpaired_hi - unpaired_lo, rel=0.01)


def test_bad_counts_and_levels_are_rejected_with_the_rule() -> None:
    for args in ((1, 1, 1), (-1, 0, 3), (0, 0, 0)):
        with pytest.raises(ValueError, match="need n >= 1 pairs"):
            tango_interval(*args)
    with pytest.raises(ValueError, match="level must lie strictly between 0 and 1"):
        tango_interval(0, 0, 5, level=1.0)


def test_pairs_needed_for_the_default_margins() -> None:
    # n > z^2 (1 - m) / m: 72.99 for 0.05, 34.57 for 0.10.
    assert pairs_needed(0.05) == 73 and pairs_needed(0.10) == 35
    for margin in (0.05, 0.10, 0.2):
        n = pairs_needed(margin)
        assert no_change_half_width(n) < margin <= no_change_half_width(n - 1)


# -- coverage ------------------------------------------------------------------------------------

# (pairs, P(first only), P(second only)): probe sizes the gate sees (24 synthetic harmful, 40,
# 88 bundled harmful) and discordance from near-identical runs to heavy churn.
SETTINGS = [(24, 0.20, 0.10), (40, 0.30, 0.30), (40, 0.05, 0.05), (88, 0.10, 0.02),
            (88, 0.02, 0.15), (88, 0.20, 0.10)]
REPLICATES = 4000
# Standard error of a coverage estimate of 0.95 from REPLICATES draws: 0.0034.
COVERAGE_SE = math.sqrt(0.95 * 0.05 / REPLICATES)
# Discrete data make any interval's true coverage oscillate around the nominal level:
# test_exact_coverage_... shows it within 0.01 of 0.95 at SETTINGS (enumerated, no noise).
DISCRETENESS = 0.01


@functools.lru_cache(maxsize=None)
def _interval(b: int, c: int, n: int) -> tuple[float, float]:
    return tango_interval(b, c, n)


def _exact_coverage(n: int, p12: float, p21: float) -> float:
    """P(interval covers p12 - p21), summed over every (b, c) table of n pairs."""
    delta, rest = p12 - p21, 1.0 - p12 - p21
    total = 0.0
    for b in range(n + 1):
        for c in range(n + 1 - b):
            log_p = (math.lgamma(n + 1) - math.lgamma(b + 1) - math.lgamma(c + 1)
                     - math.lgamma(n - b - c + 1) + b * math.log(p12) + c * math.log(p21)
                     + (n - b - c) * math.log(rest))
            lo, hi = _interval(b, c, n)
            total += math.exp(log_p) if lo <= delta <= hi else 0.0
    return total


@pytest.mark.parametrize(("n", "p12", "p21"), SETTINGS)
def test_simulated_coverage_is_95_percent(n: int, p12: float, p21: float) -> None:
    rng = np.random.default_rng(17)
    draws = rng.multinomial(n, [p12, p21, 1.0 - p12 - p21], size=REPLICATES)
    covered = [_interval(int(b), int(c), n)[0] <= p12 - p21 <= _interval(int(b), int(c), n)[1]
               for b, c, _ in draws]
    coverage = float(np.mean(covered))
    # Within 3 standard errors of a true coverage that is itself within DISCRETENESS of
    # 0.95 (|error| < 0.021): a miss rate of 0.3% for a correct interval. The test can fail:
    # Newcombe's unpaired interval on the same kind of draws (half the concordant pairs
    # positive) covers 0.918 to 0.9998 at SETTINGS, outside the band on every setting.
    assert abs(coverage - 0.95) < DISCRETENESS + 3 * COVERAGE_SE, coverage


def test_exact_coverage_stays_near_95_percent_over_a_grid() -> None:
    for n, p12, p21 in SETTINGS:
        assert abs(_exact_coverage(n, p12, p21) - 0.95) < DISCRETENESS
    grid = [_exact_coverage(n, p12, p21) for n in (16, 24, 40, 88)
            for p12 in (0.01, 0.05, 0.1, 0.2, 0.3) for p21 in (0.01, 0.05, 0.1, 0.2, 0.3)]
    # Tango's interval is known to be slightly conservative on average with rare dips a
    # point below nominal (Fagerland et al. 2014); measured here: mean 0.962, min 0.943.
    assert float(np.mean(grid)) >= 0.95
    assert min(grid) >= 0.94


# -- the smallest of several paired differences (intersection-union) ----------------------------

def _tables(units: int = 5) -> st.SearchStrategy:
    return st.dictionaries(st.sampled_from("abcdefghijk"), tables(), min_size=1,
                           max_size=units)


@FAST
@given(counts=_tables(), extra=st.integers(0, 6), level=st.sampled_from([0.95, 0.9833]))
def test_the_smallest_difference_interval_is_read_off_each_units_intervals(
        counts: dict[str, tuple[int, int, int]], extra: int, level: float) -> None:
    family = len(counts) + extra
    estimate, (lo, hi), units = smallest_difference(counts, level, family)
    joint = 1.0 - (1.0 - level) / family
    assert set(units) == set(counts)
    for name, (b, c, n) in counts.items():
        assert units[name].interval == tango_interval(b, c, n, level)
        assert units[name].joint == tango_interval(b, c, n, joint)
    assert lo == min(u.interval[0] for u in units.values())
    assert hi == min(u.joint[1] for u in units.values())
    assert estimate == min((b - c) / n for b, c, n in counts.values())
    assert lo <= estimate <= hi


def test_one_unit_at_family_one_is_tangos_interval() -> None:
    estimate, interval, _ = smallest_difference({"a": (7, 2, 20)}, 0.95)
    assert estimate == 0.25 and interval == tango_interval(7, 2, 20, 0.95)


def test_the_family_must_count_every_unit_and_no_unit_is_nan() -> None:
    with pytest.raises(ValueError, match="family must count every unit"):
        smallest_difference({"a": (1, 0, 8), "b": (1, 0, 8)}, 0.95, family=1)
    estimate, (lo, hi), units = smallest_difference({}, 0.95, family=11)
    assert math.isnan(estimate) and math.isnan(lo) and math.isnan(hi) and units == {}


def _one_sided_error_at_zero(n: int, level: float) -> float:
    """Largest P(lower end > 0) over discordance rates, when both runs' rates are equal."""
    lower = {(b, c): tango_interval(b, c, n, level)[0] > 0.0
             for b in range(n + 1) for c in range(n + 1 - b)}
    worst = 0.0
    for discordant in np.linspace(0.05, 1.0, 20):
        half = discordant / 2.0
        total = 0.0
        for (b, c), excludes in lower.items():
            if excludes:
                total += (math.comb(n, b) * math.comb(n - b, c) * half ** (b + c)
                          * (1.0 - discordant) ** (n - b - c))
        worst = max(worst, total)
    return worst


@pytest.mark.parametrize("n", [8, 16, 32])
@pytest.mark.parametrize("level", [0.95, 1.0 - 0.05 / 3])
def test_at_a_difference_of_zero_the_lower_end_rarely_clears_zero(n: int, level: float) -> None:
    """The per-category test of ablation-lowers-category-refusal at its margin (enumerated).

    Tango's interval at a difference of 0 is McNemar's score test; at 8-32 pairs its
    one-sided error exceeds the nominal (1 - level) / 2 a little where nearly every pair is
    discordant (measured: at most 0.038 at 0.95, nominal 0.025; 0.011 at 0.983, nominal
    0.0083), and stays below the 5% the claims allow either way.
    """
    error = _one_sided_error_at_zero(n, level)
    assert error <= 1.6 * (1.0 - level) / 2.0, error
    assert error < 0.05
