"""The behavioural claims' verdict functions, fed numbers (refusal_checks.verdicts.single_direction,
refusal_checks.verdicts.category_steering)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.verdicts import category_steering as categories
from refusal_checks.measure import controls
from refusal_checks.verdicts import single_direction as direction
from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.stats.rates import KnobSweep
from refusal_checks.stats.verdict import Outcome

REFUSES = RefusalBehaviour("substring", 80, 88, 1, 16)
NEVER = RefusalBehaviour("substring", 2, 88, 1, 16)
AGREE = {"n": 64, "agreement": 1.0, "score_refused": 32, "judge_refused": 32}


def _flags(refused: int, n: int) -> np.ndarray:
    return np.arange(n) < refused


def test_bypass_is_supported_when_few_baseline_refusals_survive_ablation():
    base, ablated = _flags(30, 32), _flags(3, 32)
    verdict = direction.ablation_bypasses_refusal(base, ablated, REFUSES, "substring")
    assert verdict.outcome is Outcome.SUPPORTED
    assert verdict.n == 30 and verdict.estimate == pytest.approx(0.1)
    assert verdict.details["baseline"] == {"refused": 30, "n": 32}


def test_bypass_counts_only_prompts_refused_at_baseline():
    base = _flags(16, 32)
    ablated = ~base  # every baseline refusal is gone; every baseline answer now refused
    verdict = direction.ablation_bypasses_refusal(base, ablated, REFUSES)
    assert verdict.estimate == 0.0 and verdict.n == 16


def test_rates_on_too_few_prompts_are_inconclusive():
    verdict = direction.ablation_bypasses_refusal(_flags(5, 32), _flags(0, 32), REFUSES)
    assert verdict.outcome is Outcome.INCONCLUSIVE and verdict.n == 5


def test_induce_reads_baseline_answers_and_its_random_control_is_an_equivalence_test():
    base = _flags(2, 32)
    steered = np.ones(32, bool)
    assert direction.addition_induces_refusal(base, steered, REFUSES).outcome is Outcome.SUPPORTED
    # One of three random vectors induces refusal everywhere: shown, so REFUTED.
    assert direction.random_direction_does_not_induce(base, [base, steered, base],
                                                      REFUSES).outcome is Outcome.REFUTED
    # Nothing changes on 32 prompts: each change within +-z^2/(n+z^2) = 0.124 < 0.20 at
    # the Bonferroni level for 3 directions (z = 2.13), so equivalence is shown.
    unchanged = direction.random_direction_does_not_induce(base, [base] * 3, REFUSES)
    assert unchanged.outcome is Outcome.SUPPORTED, unchanged.line()
    # On 12 prompts the same "no change" cannot exclude 0.20 (0.27): INCONCLUSIVE.
    small = direction.random_direction_does_not_induce(base[:12], [base[:12]] * 3, REFUSES)
    assert small.outcome is Outcome.INCONCLUSIVE


@settings(max_examples=40, deadline=None)
@given(n=st.integers(8, 80), data=st.data())
def test_control_change_interval_brackets_the_largest_change_and_is_symmetric(n, data):
    flags = st.lists(st.booleans(), min_size=n, max_size=n).map(lambda x: np.array(x, bool))
    base = data.draw(flags)
    edited = [data.draw(flags) for _ in range(data.draw(st.integers(1, 4)))]
    estimate, (lo, hi), rows = direction.control_change(base, edited)
    assert 0.0 <= lo <= estimate <= hi <= 1.0
    assert estimate == max(abs(r["change"]) for r in rows)
    # Swapping the roles of the runs negates every change, so the |change| summary is equal.
    if len(edited) == 1:
        swapped = direction.control_change(edited[0], [base])
        assert swapped[0] == pytest.approx(estimate)
        assert swapped[1] == pytest.approx((lo, hi), abs=1e-9)


def test_random_controls_are_seeded_distinct_and_keep_the_norm():
    vector = np.arange(1.0, 9.0)
    first, again = controls.random_controls(vector, 5), controls.random_controls(vector, 5)
    assert len(first) == controls.RANDOM_DIRECTIONS
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert len({v.tobytes() for v in first}) == len(first)
    assert all(np.linalg.norm(v) == pytest.approx(np.linalg.norm(vector)) for v in first)


def test_kl_claim_bootstraps_the_mean_reproducibly():
    values = np.full(32, 0.01)
    values[0] = 0.2
    a = direction.ablation_keeps_harmless_behaviour(values, REFUSES, seed=0)
    b = direction.ablation_keeps_harmless_behaviour(values, REFUSES, seed=0)
    assert a.outcome is Outcome.SUPPORTED and a.interval == b.interval
    assert a.estimate == pytest.approx(values.mean())
    assert direction.ablation_keeps_harmless_behaviour(values + 0.5, REFUSES, 0).outcome \
        is Outcome.REFUTED


def _sweep(rr: np.ndarray, orr: np.ndarray, n: int = 40) -> KnobSweep:
    """A sweep whose rates are exactly ``rr`` / ``orr`` ((direction, strength))."""
    k, s = rr.shape
    harmful = np.arange(n)[None, None, :] < np.round(rr * n)[:, :, None]
    benign = np.arange(n)[None, None, :] < np.round(orr * n)[:, :, None]
    return KnobSweep([f"d{i}" for i in range(k)], [0.1, 0.2, 0.35, 0.5][:s], np.ones((k, s)),
                     harmful, benign)


def test_shared_knob_records_the_prompt_counts_behind_each_rate():
    rr = np.tile([0.5, 0.7, 0.9, 1.0], (3, 1))
    orr = np.tile([0.0, 0.2, 0.5, 0.8], (3, 1))
    verdict = categories.shared_knob(_sweep(rr, orr), AGREE, REFUSES, seed=0)
    assert verdict.outcome is Outcome.SUPPORTED
    assert verdict.details["n_harmful"] == 40 and verdict.details["n_benign"] == 40


def test_shared_knob_needs_every_direction_to_move_over_refusal_to_be_supported():
    # Every direction traces the same (flat) path: the curves agree only because nothing
    # moved, so no SUPPORTED.
    rr = np.tile([0.5, 0.5, 0.5, 0.5], (3, 1))
    orr = np.tile([0.05, 0.05, 0.05, 0.05], (3, 1))
    verdict = categories.shared_knob(_sweep(rr, orr), AGREE, REFUSES, seed=0)
    assert verdict.outcome is Outcome.INCONCLUSIVE and "moved over-refusal" in verdict.reason


def test_a_direction_that_does_not_move_cannot_hide_paths_shown_to_differ():
    # d2 never moves over-refusal, and its path is far from the others': a shown
    # violation, REFUTED, with the failed precondition named beside it.
    rr = np.tile([0.5, 0.7, 0.9, 1.0], (3, 1))
    orr = np.tile([0.0, 0.2, 0.5, 0.8], (3, 1))
    orr[2] = 0.05
    verdict = categories.shared_knob(_sweep(rr, orr), AGREE, REFUSES, seed=0)
    assert verdict.outcome is Outcome.REFUTED
    assert "'d2' moved over-refusal" in verdict.reason


@settings(max_examples=10, deadline=None, derandomize=True)
@given(gap=st.floats(0.3, 0.5), base=st.floats(0.0, 0.2))
def test_paths_planted_apart_by_more_than_the_margin_are_never_one_knob(gap, base):
    """Two directions with the same over-refusal but refusal rates ``gap`` apart."""
    orr = np.tile([0.0, 0.25, 0.5, 0.75], (4, 1))
    rr = np.tile(base + np.array([0.0, 0.1, 0.2, 0.3]), (4, 1))
    rr[:2] += gap
    verdict = categories.shared_knob(_sweep(np.clip(rr, 0, 1), orr), AGREE, REFUSES, seed=0)
    assert verdict.outcome is Outcome.REFUTED, verdict.line()


def test_ablation_lowers_lists_categories_that_keep_refusing_or_have_too_few_refusals():
    per_category = {
        "a": (_flags(8, 8), _flags(0, 8)),
        "b": (_flags(8, 8), _flags(4, 8)),
        "c": (_flags(1, 8), _flags(0, 8)),
        "d": (_flags(8, 8), _flags(1, 8)),
    }
    verdict = categories.ablation_lowers_category_refusal(per_category, AGREE, REFUSES)
    assert verdict.details["keeps_refusing"] == ["b"]
    assert verdict.details["too_few_baseline_refusals"] == ["c"]
    assert verdict.n == 3 and verdict.estimate == pytest.approx(0.5)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.data())
def test_a_model_that_does_not_refuse_never_supports_a_behavioural_claim(data):
    n = data.draw(st.integers(8, 40))
    flags = st.lists(st.booleans(), min_size=n, max_size=n).map(np.array)
    base, edited = data.draw(flags), data.draw(flags)
    kl = np.array(data.draw(st.lists(st.floats(0, 2), min_size=n, max_size=n)))
    verdicts = [
        direction.ablation_bypasses_refusal(base, edited, NEVER),
        direction.addition_induces_refusal(base, edited, NEVER),
        direction.ablation_keeps_harmless_behaviour(kl, NEVER, seed=0),
        direction.random_direction_does_not_bypass(base, [edited], NEVER),
        direction.random_direction_does_not_induce(base, [edited], NEVER),
        categories.ablation_lowers_category_refusal({"a": (base, edited), "b": (edited, base)},
                                                    AGREE, NEVER),
    ]
    assert all(v.outcome is Outcome.INCONCLUSIVE for v in verdicts)
    assert all("no measurable refusal" in v.reason or v.n < direction.MIN_PROMPTS
               for v in verdicts)


def test_random_like_keeps_the_norm_and_is_seeded():
    vector = np.arange(1.0, 9.0)
    a, b = controls.random_like(vector, 3), controls.random_like(vector, 3)
    assert np.array_equal(a, b) and np.linalg.norm(a) == pytest.approx(np.linalg.norm(vector))
    assert not np.array_equal(a, controls.random_like(vector, 4))


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.lists(st.floats(0.0, 5.0, allow_nan=False), min_size=2, max_size=40))
def test_the_studentized_interval_holds_the_mean(values):
    values = np.array(values)
    lo, hi = direction.studentized_mean_interval(values, np.random.default_rng(0), 200)
    mean = values.mean()
    if values.std() == 0:
        assert (lo, hi) == (mean, mean)
    else:
        assert lo <= mean + 1e-12 and mean - 1e-12 <= hi


@pytest.mark.parametrize("seed", range(4))
def test_the_studentized_interval_stretches_towards_a_heavy_tail(seed):
    """Right-skewed values (lognormal, like per-prompt KL): the upper bound lies further out
    than the percentile bootstrap's, and further from the mean than the lower bound."""
    values = np.random.default_rng(seed).lognormal(-3.0, 1.5, 32)
    rng = np.random.default_rng(0)
    percentile = np.percentile([values[rng.integers(0, 32, 32)].mean() for _ in range(2000)],
                               [2.5, 97.5])
    lo, hi = direction.studentized_mean_interval(values, np.random.default_rng(0), 2000)
    assert hi > percentile[1]
    assert hi - values.mean() > values.mean() - lo


def test_the_studentized_interval_needs_two_values_and_uses_the_sample_se_for_ties():
    rng = np.random.default_rng(0)
    assert all(np.isnan(direction.studentized_mean_interval(np.array([0.3]), rng, 10)))
    lo, hi = direction.studentized_mean_interval(np.r_[np.zeros(30), 1.0, 2.0], rng, 500)
    assert np.isfinite([lo, hi]).all() and lo < 3 / 32 < hi


# -- the cheap score's agreement under steering (knob_preconditions, steered_agreement) ----

ONE_KNOB = (np.tile([0.5, 0.7, 0.9, 1.0], (3, 1)), np.tile([0.0, 0.2, 0.5, 0.8], (3, 1)))


def _with_steered(**strata: tuple[int, int]) -> dict:
    """AGREE plus judged steered replies: stratum -> (n, agree)."""
    return {**AGREE, "steered": {s: {"n": n, "agree": a} for s, (n, a) in strata.items()}}


def test_without_steered_replies_the_unsteered_agreement_is_the_only_one_used():
    verdict = categories.shared_knob(_sweep(*ONE_KNOB), AGREE, REFUSES, seed=0)
    assert verdict.outcome is Outcome.SUPPORTED
    used = verdict.details["score_agreement_used"]
    assert used["steered"] == [] and used["basis"].startswith("unsteered only")
    assert verdict.details["score_agreement"] == AGREE


def test_a_directions_own_steered_disagreement_stops_a_supported():
    agreement = {**AGREE, "steered": {"steered:d0": {"n": 24, "agree": 12},
                                      "steered:d1": {"n": 24, "agree": 24},
                                      "steered:refusal": {"n": 64, "agree": 64}}}
    verdict = categories.shared_knob(_sweep(*ONE_KNOB), agreement, REFUSES, seed=0)
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert "under steered:d0 the cheap score agrees with the judge on only 0.50" in verdict.reason
    used = verdict.details["score_agreement_used"]["steered"]
    # d0 and d1 on their own replies; d2 (never judged steered) on the pooled other ones.
    assert [(g["conditions"], g["directions"], g["proxy"], g["holds"]) for g in used] == [
        (["steered:d0"], ["d0"], False, False), (["steered:d1"], ["d1"], False, True),
        (["steered:refusal"], ["d2"], True, True)]
    assert "steered" not in verdict.details["score_agreement"]


def test_a_steered_disagreement_never_hides_paths_shown_to_differ():
    rr, orr = ONE_KNOB
    rr = rr.copy()
    rr[2] = 0.0  # d2 never refuses harmful prompts, whatever over-refusal does
    agreement = _with_steered(**{"steered:refusal": (64, 20)})
    verdict = categories.shared_knob(_sweep(rr, orr), agreement, REFUSES, seed=0)
    assert verdict.outcome is Outcome.REFUTED
    assert "steered:refusal the cheap score agrees with the judge on only 0.31" in verdict.reason


def test_a_steered_stratum_with_too_few_replies_is_not_used():
    agreement = _with_steered(**{"steered:d0": (7, 0), "steered:refusal": (4, 0)})
    verdict = categories.shared_knob(_sweep(*ONE_KNOB), agreement, REFUSES, seed=0)
    assert verdict.outcome is Outcome.SUPPORTED
    assert verdict.details["score_agreement_used"]["basis"].startswith("unsteered only")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(8, 200), share=st.floats(0.0, 1.0))
def test_the_steered_precondition_fails_exactly_below_the_agreement_threshold(n, share):
    agree = int(round(share * n))
    pre, used = categories.steered_agreement(["d0", "d1"], _with_steered(
        **{"steered:refusal": (n, agree)}))
    assert len(pre) == 1 and pre[0][0] == (agree / n >= categories.MIN_SCORE_AGREEMENT)
    group, = used["steered"]
    assert group["directions"] == ["d0", "d1"] and group["proxy"]
    assert group["interval"][0] <= group["agreement"] <= group["interval"][1]


def test_the_other_sweep_claims_accept_the_agreement_with_steered_counts():
    per_category = {"a": (_flags(10, 12), _flags(2, 12)), "b": (_flags(9, 12), _flags(1, 12))}
    plain = categories.ablation_lowers_category_refusal(per_category, AGREE, REFUSES)
    steered = categories.ablation_lowers_category_refusal(
        per_category, _with_steered(**{"steered:refusal": (64, 1)}), REFUSES)
    assert plain.outcome is steered.outcome
