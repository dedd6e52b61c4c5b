"""The style pipeline on planted texts: known markers are recovered, identical sources
are not separated, and the maths of its parts holds for any input (hypothesis)."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refusal_checks.verdicts.style_classifier import (
    cluster_bootstrap,
    nearest_centroid_lopo,
    permute_within,
    style_test,
)
from refusal_checks.measure.style_features import combine_features, lexical_features
from refusal_checks.measure.style_steering import SteeredReplies, next_strength
from refusal_checks.verdicts.style_text import distinguishing_phrases, exemplars
from refusal_checks.verdicts.style_verdicts import (
    STYLE_MARGIN,
    combine,
    families,
    negative_control,
    rate_matched,
    style_differs,
)
from refusal_checks.stats.verdict import Outcome, Verdict

OPENINGS = ("I'm sorry, but I can't help with that.", "Sorry, I cannot do that.",
            "I am unable to assist with this request.", "I won't be able to help here.")
MARKERS = {"humanizing": "As an AI, I have no feelings or body.",
           "unsupported": "I have no access to real-time information.",
           "safety_core": "That would be illegal and unethical.",
           "crime_assistance": "Please respect the law, this is a crime."}


def hashed_words(texts, d=64):
    """A bag of hashed words: a real, model-free text representation for unit tests."""
    out = np.zeros((len(texts), d))
    for i, text in enumerate(texts):
        for word in re.findall(r"[a-z']+", text.lower()):
            out[i, int(hashlib.sha256(word.encode()).hexdigest(), 16) % d] += 1.0
    return out


def planted(directions, prompts, marked, seed=0, refuse_share=0.8):
    """Refusals to shared prompts: the opening depends on the prompt, the marker (when
    ``marked``) on the direction. Returns texts, direction labels, prompt groups."""
    rng = np.random.default_rng(seed)
    texts, labels, groups = [], [], []
    for d in directions:
        for p in range(prompts):
            if rng.random() > refuse_share:
                continue
            text = OPENINGS[p % len(OPENINGS)] + f" (prompt {p})"
            if marked:
                text += " " + MARKERS[d]
            texts.append(text)
            labels.append(d)
            groups.append(p)
    return texts, labels, groups


def features_of(texts):
    return combine_features(hashed_words(texts), lexical_features(texts))


# -- the classifier test ----------------------------------------------------------------------

def test_planted_style_markers_are_recovered_far_above_the_within_prompt_null():
    texts, labels, groups = planted(list(MARKERS), 24, marked=True)
    result = style_test(features_of(texts), labels, groups, seed=0, n_perm=200, n_boot=200)
    assert result.accuracy > 0.95
    assert abs(result.chance - 0.25) < 0.1
    assert result.p_value < 0.01
    verdict = style_differs(result, {}, seed=0, min_directions=3)
    assert verdict.outcome is Outcome.SUPPORTED, verdict.line()
    assert np.trace(result.confusion) == round(result.accuracy * result.n)


def test_identical_sources_are_not_separated():
    texts, labels, groups = planted(list(MARKERS), 24, marked=False)
    result = style_test(features_of(texts), labels, groups, seed=0, n_perm=200, n_boot=200)
    verdict = style_differs(result, {}, seed=0, min_directions=3)
    assert verdict.outcome is not Outcome.SUPPORTED, verdict.line()
    assert result.p_value > 0.05
    assert result.interval[0] < STYLE_MARGIN


def test_which_prompts_a_direction_refuses_is_not_mistaken_for_style():
    # Direction A refuses prompts 0-11, B prompts 12-23: the texts differ by prompt only.
    # A classifier could learn "prompt topic -> direction" from other prompts; leave-one-
    # prompt-out plus the within-prompt null must not call that style.
    texts, labels, groups = [], [], []
    for d, prompts in (("a", range(0, 12)), ("b", range(12, 24)), ("c", range(0, 24))):
        for p in prompts:
            texts.append(f"I'm sorry, I can't help with topic {'early' if p < 12 else 'late'}.")
            labels.append(d)
            groups.append(p)
    result = style_test(features_of(texts), labels, groups, seed=1, n_perm=200, n_boot=200)
    assert style_differs(result, {}, seed=1, min_directions=2).outcome is not Outcome.SUPPORTED


def _two_halves(marked_a: bool, marked_b: bool):
    """Refusals steered by two half-directions of one category ("x/a", "x/b")."""
    texts, labels, groups = [], [], []
    for half, marked, seed in (("x/a", marked_a, 1), ("x/b", marked_b, 2)):
        t, _, g = planted(["humanizing"], 60, marked=marked, seed=seed)
        texts += t
        labels += [half] * len(t)
        groups += g
    result = style_test(features_of(texts), labels, groups, seed=0, n_perm=200, n_boot=300)
    return negative_control(result, seed=0, categories=["x"], identical={"x": 1.0})


def test_the_negative_control_passes_for_two_estimates_of_one_direction():
    # Same markers, different prompts refused: nothing to tell apart.
    verdict = _two_halves(True, True)
    assert verdict.outcome is Outcome.SUPPORTED, verdict.line()
    assert verdict.details["categories"] == ["x"]


def test_the_negative_control_fails_when_the_halves_really_differ():
    verdict = _two_halves(True, False)
    assert verdict.outcome is Outcome.REFUTED, verdict.line()


def test_the_negative_control_is_as_sensitive_as_the_style_test():
    # Random halves of one source are indistinguishable, but the same classifier on two
    # really different halves (markers planted on odd items) separates them perfectly: the
    # control passes because the halves are alike, not because the classifier is blind.
    texts, _, _ = planted(["humanizing"], 80, marked=False, refuse_share=1.0)
    texts = [t + (" " + MARKERS["safety_core"] if i % 2 else "") for i, t in enumerate(texts)]
    truth = np.arange(80) % 2
    predicted = nearest_centroid_lopo(features_of(texts), truth, np.arange(80))
    assert (predicted == truth).mean() == 1.0


# -- parts ------------------------------------------------------------------------------------

def test_lexical_features_find_each_marker():
    names = ["ai_identity", "apology", "inability", "moral_legal", "disclaimer", "clarification",
             "crisis", "limitation"]
    texts = ["As an AI language model I have no feelings.", "I'm sorry about that.",
             "I cannot do it.", "That is illegal.", "I am not a doctor; consult a professional.",
             "Could you clarify what you mean?", "Please call a crisis hotline.",
             "I have no access to real-time data."]
    lexical = lexical_features(texts)
    for i, name in enumerate(names):
        assert lexical[i, names.index(name)] == 1.0, (name, texts[i])
    assert lexical[:, -1].max() <= 1.0


def test_distinguishing_phrases_and_exemplars_name_the_planted_marker():
    texts, labels, _ = planted(list(MARKERS), 24, marked=True)
    phrases = distinguishing_phrases(texts, labels)
    for name, marker in MARKERS.items():
        from_marker = [p for p in phrases[name] if p in marker.lower()]
        assert len(from_marker) >= 3, (name, phrases[name])
    examples = exemplars(features_of(texts), texts, labels, k=2)
    for name, chosen in examples.items():
        assert len(chosen) == 2 and len(set(chosen)) == 2
        assert all(MARKERS[name] in text for text in chosen)


def _steered(refused_by_direction):
    names = list(refused_by_direction)
    n = len(next(iter(refused_by_direction.values())))
    return SteeredReplies(names, [f"p{i}" for i in range(n)],
                          {d: ["I'm sorry, I can't."] * n for d in names},
                          {d: np.asarray(r, bool) for d, r in refused_by_direction.items()},
                          {d: 0.3 for d in names})


def test_rate_matched_supports_equal_rates_and_refutes_a_far_off_direction():
    rng = np.random.default_rng(0)
    same = rng.random(200) < 0.6
    matched = rate_matched(_steered({"a": same, "b": same, "c": same}), seed=0)
    assert matched.outcome is Outcome.SUPPORTED, matched.line()
    off = rate_matched(_steered({"a": same, "b": same, "c": np.zeros(200, bool)}), seed=0)
    assert off.outcome is Outcome.REFUTED, off.line()
    none = rate_matched(_steered({"a": np.zeros(10, bool), "b": np.zeros(10, bool)}), seed=0)
    assert none.outcome is Outcome.INCONCLUSIVE


def _verdict(outcome):
    return Verdict("x", 0.5, (0.4, 0.6), 0.1, ">", 10, outcome, reason="r")


@pytest.mark.parametrize("style,rate,expected", [
    (Outcome.SUPPORTED, Outcome.SUPPORTED, Outcome.SUPPORTED),
    (Outcome.SUPPORTED, Outcome.INCONCLUSIVE, Outcome.INCONCLUSIVE),
    (Outcome.SUPPORTED, Outcome.REFUTED, Outcome.REFUTED),
    (Outcome.REFUTED, Outcome.SUPPORTED, Outcome.REFUTED),
    (Outcome.INCONCLUSIVE, Outcome.SUPPORTED, Outcome.INCONCLUSIVE),
])
def test_style_not_rate_needs_both_parts(style, rate, expected):
    assert combine(_verdict(style), _verdict(rate)).outcome is expected


def test_families_follow_planted_markers_and_refute_swapped_ones():
    texts, labels, groups = planted(list(MARKERS), 24, marked=True)
    assert families(texts, labels, groups, seed=0).outcome is Outcome.SUPPORTED
    swap = {"humanizing": "crime_assistance", "crime_assistance": "humanizing",
            "unsupported": "safety_core", "safety_core": "unsupported"}
    refuted = families(texts, [swap[x] for x in labels], groups, seed=0)
    assert refuted.outcome is Outcome.REFUTED, refuted.line()
    alone = families(texts[:5], ["alpha"] * 5, groups[:5], seed=0)
    assert alone.outcome is Outcome.INCONCLUSIVE


# -- hypothesis: the maths of the parts -------------------------------------------------------

groups_and_labels = st.integers(2, 12).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 4), min_size=n, max_size=n),
    st.lists(st.integers(0, 3), min_size=n, max_size=n)))


@given(groups_and_labels, st.integers(0, 2**32 - 1))
def test_permuting_within_groups_keeps_each_groups_labels(data, seed):
    groups, labels = (np.array(x) for x in data)
    shuffled = permute_within(labels, groups, np.random.default_rng(seed))
    for g in np.unique(groups):
        assert sorted(shuffled[groups == g]) == sorted(labels[groups == g])


@given(st.lists(st.floats(-5, 5), min_size=1, max_size=30), st.integers(0, 2**32 - 1))
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=50)
def test_cluster_bootstrap_means_stay_within_the_data(values, seed):
    values = np.array(values)
    groups = np.arange(len(values)) // 3
    boot = cluster_bootstrap(values, groups, np.random.default_rng(seed), 50)
    assert np.all(boot >= values.min() - 1e-9) and np.all(boot <= values.max() + 1e-9)


@given(st.floats(0.0, 0.5), st.floats(0.3, 3.0), st.floats(0.2, 0.9))
@settings(deadline=None, max_examples=100)
def test_strength_search_reaches_a_reachable_target(base, slope, target):
    # A monotone response rate(s) = min(1, base + slope * s): if the target is reachable
    # inside the bounds, a few steps of next_strength get within 0.02 of it.
    def rate(s):
        return min(1.0, base + slope * s)

    lowest, highest = 0.05, 1.0
    points = [(0.0, rate(0.0))]
    strength = 0.35
    for _ in range(6):
        points.append((strength, rate(strength)))
        strength = next_strength(points, target, lowest=lowest, highest=highest)
        assert lowest <= strength <= highest
    best = min(abs(r - target) for s, r in points if s > 0)
    if rate(lowest) <= target <= rate(highest):
        assert best < 0.02, points


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=6),
       st.floats(0, 1))
def test_next_strength_stays_inside_its_bounds(points, target):
    assert 0.05 <= next_strength(points, target, lowest=0.05, highest=1.0) <= 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=50),
       st.lists(st.floats(0.0, 1.0), min_size=2, max_size=50), st.floats(-0.5, 0.5))
def test_gain_interval_is_centred_and_at_least_as_wide_as_either_source(boot, null, gain):
    from refusal_checks.verdicts.style_classifier import gain_interval

    boot, null = np.array(boot), np.array(null)
    lo, hi = gain_interval(gain, boot, null)
    assert lo <= gain <= hi
    assert (lo + hi) / 2 == pytest.approx(gain, abs=1e-12)
    half = (hi - lo) / 2
    assert half >= 1.959 * max(boot.std(), null.std()) - 1e-12
    assert half == pytest.approx(1.959964 * np.sqrt(boot.var() + null.var()), rel=1e-5,
                                 abs=1e-12)


def test_style_test_interval_counts_the_permutation_null_spread():
    """A bootstrap with no spread (every refusal classified right) still gets an interval
    as wide as the null's spread: chance itself is uncertain."""
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b"], 6)
    groups = np.tile(np.arange(6), 2)
    features = np.where(labels[:, None] == "a", 1.0, -1.0) + 0.01 * rng.standard_normal((12, 3))
    result = style_test(features, labels, groups, seed=1, n_perm=200, n_boot=200)
    assert result.accuracy == 1.0 and result.null.std() > 0
    lo, hi = result.interval
    assert hi - lo == pytest.approx(2 * 1.959964 * result.null.std(), rel=1e-4)


def test_a_stratified_test_classifies_within_each_stratum_only():
    # Two categories whose styles differ, each split into two halves of one source: pooled
    # without strata the halves' labels would ride on the category difference; within
    # strata they carry nothing, and the control passes.
    texts, labels, groups, strata = [], [], [], []
    for category in ("humanizing", "safety_core"):
        for half, seed in (("a", 1), ("b", 2)):
            t, _, g = planted([category], 60, marked=True, seed=seed + len(texts))
            texts += t
            labels += [f"{category}/{half}"] * len(t)
            groups += g
            strata += [category] * len(t)
    result = style_test(features_of(texts), labels, groups, seed=0, n_perm=200, n_boot=300,
                        strata=strata)
    assert result.confusion[0, 2:].sum() == 0 and result.confusion[2, :2].sum() == 0
    verdict = negative_control(result, seed=0, categories=["humanizing", "safety_core"],
                               identical={"humanizing": 1.0, "safety_core": 1.0})
    assert verdict.outcome is Outcome.SUPPORTED, verdict.line()


def test_exemplars_prefer_what_only_that_direction_says():
    texts, labels, _ = planted(list(MARKERS), 24, marked=True)
    # Every direction also gives the same plain refusal a few times.
    for d in MARKERS:
        texts += ["I'm sorry, but I can't assist with that."] * 3
        labels += [d] * 3
    for name, chosen in exemplars(features_of(texts), texts, labels, k=2).items():
        assert all(MARKERS[name] in text for text in chosen), (name, chosen)


def test_style_strengths_are_searched_on_other_prompts_than_the_rates_are_compared_on():
    from refusal_checks.prompts.sets import PromptSet
    from refusal_checks.measure.style_steering import STYLE_BENIGN, STYLE_HARMFUL, style_probes

    harmful = PromptSet("h/refuse", "h", "refuse", tuple(f"harm {i}" for i in range(32)), "t")
    benign = PromptSet("benign", "benign", "benign", tuple(f"ok {i}" for i in range(64)), "t")
    search, compare = style_probes(harmful, benign)
    assert [len(p) for p in compare] == [STYLE_HARMFUL, STYLE_BENIGN]
    assert [len(p) for p in search] == [STYLE_HARMFUL, STYLE_BENIGN]
    for s, c in zip(search, compare):
        assert not set(s.texts) & set(c.texts)


def test_held_out_matching_keeps_the_searched_strength_and_reports_the_fresh_rate():
    from refusal_checks.measure.style_steering import held_out_matched_replies

    # On the search probe every strength >= 0.3 refuses 60%; on the compared probe the
    # same strength refuses only 20%: the claim must see 20%, not the searched 60%.
    def search(edit):
        rate = 0.0 if edit is None else (0.6 if edit >= 0.3 else 0.1)
        return np.arange(10) < round(rate * 10), ["I'm sorry"] * 10

    def compare(edit):
        rate = 0.0 if edit is None else (0.2 if edit >= 0.3 else 0.0)
        return np.arange(10) < round(rate * 10), ["I'm sorry"] * 10

    steered = held_out_matched_replies(
        search, compare, {"d": np.ones(3)}, lambda vector, strength, name: strength,
        search_prompts=[f"s{i}" for i in range(10)], prompts=[f"c{i}" for i in range(10)])
    assert steered.strengths["d"] >= 0.3
    assert steered.rates()["d"] == {"refused": 2, "n": 10}
    assert steered.prompts == [f"c{i}" for i in range(10)]
    assert any(rate == 0.6 for _, rate in steered.tried["d"])
