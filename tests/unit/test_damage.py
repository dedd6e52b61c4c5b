"""What a run observed under each intervention: the score_validation and damage sections
(refusal_checks.measure.observations, score_validation, damage), without pytest runs or torch."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.measure import damage

from refusal_checks.measure import score_validation
from refusal_checks.cache.store import ArrayCache
from refusal_checks.measure.effects import kl, scores
from refusal_checks.models.interventions import Ablate, Steer
from refusal_checks.judges.agreement import cohen_kappa
from refusal_checks.cache.replies import reply_id
from refusal_checks.measure.observations import Observations
from refusal_checks.prompts.load import PromptSet
from refusal_checks.models.synthetic import SyntheticBackend

FINGERPRINT = "model-fp"
FEW = settings(max_examples=30, deadline=None, derandomize=True)


def _judged(obs: Observations, condition: str, judge, score, *, side: str = "refuse",
            broken=None, prompt_set: str = "set", start: int = 0) -> list[str]:
    prompts = [f"prompt {start + i}" for i in range(len(judge))]
    texts = [f"reply to {p}" for p in prompts]
    obs.add_judged(fingerprint=FINGERPRINT, condition=condition, prompt_set=prompt_set,
                   side=side, prompts=prompts, max_new_tokens=32, judge=judge, score=score,
                   broken=broken if broken is not None else [None] * len(judge), replies=texts)
    return [reply_id(FINGERPRINT, condition, prompt_set, p, 32, t)
            for p, t in zip(prompts, texts)]


pairs = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40)


@FEW
@given(pairs)
def test_agreement_per_condition_counts_the_pairs_where_score_and_judge_agree(rows):
    obs = Observations()
    judge, score = [j for j, _ in rows], [s for _, s in rows]
    _judged(obs, "steered:alpha@0.2", judge, score)
    _judged(obs, "steered:alpha@0.5", judge, score, start=100)  # same stratum, new replies
    result = score_validation.summarise(obs, bootstrap=50)
    cell = result["by_condition"]["steered:alpha"]
    agree = sum(j == s for j, s in rows)
    assert cell["n"] == 2 * len(rows) and cell["accuracy"]["k"] == 2 * agree
    assert cell["accuracy"]["low"] <= cell["accuracy"]["estimate"] <= cell["accuracy"]["high"]
    expected = cohen_kappa(score * 2, judge * 2)
    if math.isnan(expected):
        assert cell["kappa"]["estimate"] is None
    else:
        assert cell["kappa"]["estimate"] == pytest.approx(expected)
    assert obs.agreement_counts("steered:") == {"steered:alpha": {"n": 2 * len(rows),
                                                                 "agree": 2 * agree}}


def test_a_reply_judged_twice_under_one_condition_counts_once():
    obs = Observations()
    _judged(obs, "unsteered", [True, False], [True, True])
    _judged(obs, "unsteered", [True, False], [True, True])  # the same probe read again
    _judged(obs, "ablated:refusal", [True], [False])
    counts = obs.agreement_counts()
    assert counts == {"ablated:refusal": {"n": 1, "agree": 0},
                      "unsteered": {"n": 2, "agree": 1}}


def test_the_score_is_compared_with_the_human_labels_of_this_runs_replies():
    obs = Observations()
    ids = _judged(obs, "unsteered", [True, True, False, False], [True, False, False, True])
    steered = _judged(obs, "steered:a@0.3", [True, False], [True, True], start=10)
    labels = {ids[0]: {"label": "refused"}, ids[1]: {"label": "refused"},
              ids[2]: {"label": "partial"}, steered[1]: {"label": "complied"},
              "not-of-this-run": {"label": "refused"}}
    result = score_validation.summarise(obs, bootstrap=20, labels=labels,
                                        labels_source="labels.jsonl")["labels"]
    assert result["n"] == 4 and result["source"] == "labels.jsonl"
    # unsteered: score says T, F, F against human T, T, F (partial is not refused)
    assert result["by_condition"]["unsteered"]["accuracy"]["k"] == 2
    assert result["by_condition"]["unsteered"]["sensitivity"]["k"] == 1
    assert result["by_condition"]["steered:a"]["accuracy"]["k"] == 0
    empty = score_validation.summarise(obs, bootstrap=20, labels={})["labels"]
    assert empty["n"] == 0 and "note" in empty


def test_a_label_given_to_another_text_of_the_same_prompt_and_condition_is_stale():
    # A condition names the edit by its label ("ablated:refusal"), not its vector: after the
    # direction changes, a label of the old direction's reply must not count for the new.
    from refusal_checks.cache.replies import reply_slot

    obs = Observations()
    prompts = ["p0", "p1"]
    obs.add_judged(fingerprint=FINGERPRINT, condition="ablated:refusal", prompt_set="set",
                   side="refuse", prompts=prompts, max_new_tokens=32, judge=[True, False],
                   score=[True, False], broken=[None, None],
                   replies=["I can't help with that.", "Sure, here is how."])
    slots = [reply_slot(FINGERPRINT, "ablated:refusal", "set", p, 32) for p in prompts]
    labelled = [("p0", "I can't help with that."), ("p1", "I won't do that.")]  # another text
    labels = {reply_id(FINGERPRINT, "ablated:refusal", "set", p, 32, text):
              {"label": "refused", "reply": text, "slot": slot}
              for (p, text), slot in zip(labelled, slots)}
    result = score_validation.against_labels(obs, labels, bootstrap=20)
    assert result["n"] == 1 and result["stale"] == 1
    assert result["all"]["accuracy"]["k"] == 1


def test_observations_survive_the_trip_through_json_and_merge():
    a, b = Observations(), Observations()
    _judged(a, "unsteered", [True], [True])
    _judged(b, "unsteered", [False], [True], start=1)
    b.add_kl(condition="ablated:r", prompt_set="benign", prompts=["x"], values=[0.5])
    a.merge(Observations.from_dict(json.loads(json.dumps(b.to_dict()))))
    assert len(a.judged) == 2 and a.kl == b.kl and bool(a)
    assert not Observations()


@FEW
@given(st.lists(st.sampled_from([None, "repetition", "empty"]), min_size=1, max_size=30),
       st.lists(st.floats(0.0, 20.0), min_size=1, max_size=30))
def test_broken_share_and_mean_kl_are_what_was_observed(reasons, values):
    obs = Observations()
    n = len(reasons)
    _judged(obs, "steered:d@0.5", [False] * n, [False] * n, side="benign", broken=reasons)
    obs.add_kl(condition="steered:d@0.5", prompt_set="benign",
               prompts=[f"p{i}" for i in range(len(values))], values=values)
    record = damage.summarise(obs)["conditions"]["steered:d@0.5"]
    k = sum(r is not None for r in reasons)
    assert record["broken"]["k"] == k and record["broken"]["n"] == n
    assert 0.0 <= record["broken"]["low"] <= k / n <= record["broken"]["high"] <= 1.0
    assert record["replies"]["benign"]["reasons"] == {
        r: reasons.count(r) for r in set(reasons) if r is not None}
    assert record["kl_benign"]["n"] == len(values)
    assert record["kl_benign"]["mean"] == pytest.approx(float(np.mean(values)))
    assert record["kl_benign"]["max"] == pytest.approx(max(values))
    assert (record["kind"], record["direction"], record["strength"]) == ("steered", "d", 0.5)


def test_conditions_are_parsed_and_curves_follow_strength_with_their_source():
    obs = Observations()
    for strength in (0.5, 0.1):  # recorded out of order
        obs.add_scored(condition=f"steered:sae:a@{strength:g}", prompt_set="h", side="refuse",
                       prompts=["h1", "h2"], score=[True, strength > 0.3])
        obs.add_scored(condition=f"steered:sae:a@{strength:g}", prompt_set="b", side="benign",
                       prompts=["b1"], score=[strength > 0.3])
        obs.add_kl(condition=f"steered:sae:a@{strength:g}", prompt_set="b", prompts=["b1"],
                   values=[strength])
    _judged(obs, "steered:sae:a@0.5", [False, False], [True, False], broken=["empty", None])
    _judged(obs, "ablated:refusal", [True], [True])
    summary = damage.summarise(obs)
    assert summary["steering"] == {"sae:a": ["steered:sae:a@0.1", "steered:sae:a@0.5"]}
    assert summary["ablation"] == ["ablated:refusal"]
    curve = damage.curves(summary)["sae:a"]
    assert curve["strengths"] == [0.1, 0.5]
    # 0.5 has judged should-refuse replies (0/2 refused); 0.1 only the score (1/2).
    assert curve["refusal"] == [0.5, 0.0]
    assert curve["refusal_source"] == ["score", "judge"]
    assert curve["over_refusal"] == [0.0, 1.0]
    assert math.isnan(curve["broken"][0]) and curve["broken"][1] == 0.5
    assert curve["kl"] == [0.1, 0.5]
    assert damage.parse_condition("unsteered")["kind"] == "unsteered"
    assert damage.parse_condition("ablated:x")["direction"] == "x"
    line = damage.summary_line("m", summary)
    assert "broken replies up to 1/2 (steered:sae:a@0.5)" in line and "KL up to 0.5" in line


def _benign(n: int = 6) -> PromptSet:
    return PromptSet("benign", "benign", "benign", [f"benign question {i}" for i in range(n)],
                     "test")


def test_scores_and_kl_match_the_separate_measurements_and_are_cached(tmp_path):
    backend = SyntheticBackend.from_spec("shared")
    backend.plant(["alpha", "beta"])
    prompts = _benign()
    edit = Steer(2, np.full(backend.d_model, 0.3), strength=0.3, label="alpha")
    tokens = backend.refusal_token_ids()
    cache = ArrayCache(tmp_path, "scores")
    base = damage.BaseLogprobs()
    value, divergence = damage.scores_and_kl(backend, prompts, tokens, edit, cache, 4, base)
    np.testing.assert_allclose(value, scores(backend, prompts, tokens, edit, None))
    np.testing.assert_allclose(divergence, kl(backend, prompts, edit, None))
    assert (divergence >= 0).all()
    # The separate functions are served the fused entries (same keys)...
    calls = []
    original = backend.last_logprobs
    backend.last_logprobs = lambda *a, **k: calls.append(1) or original(*a, **k)
    np.testing.assert_allclose(kl(backend, prompts, edit, cache), divergence)
    np.testing.assert_allclose(scores(backend, prompts, tokens, edit, cache), value)
    again = damage.scores_and_kl(backend, prompts, tokens, edit, cache, 4, base)
    assert calls == [] and np.array_equal(again[1], divergence)
    # ... and should-refuse or unedited prompts get the plain score and no KL.
    refuse = PromptSet("alpha/refuse", "alpha", "refuse", ["alpha request"], "test")
    assert damage.scores_and_kl(backend, refuse, tokens, edit, cache, 4, base)[1] is None
    assert damage.scores_and_kl(backend, prompts, tokens, None, cache, 4, base)[1] is None


def test_a_score_cached_before_the_kl_costs_one_edited_pass_and_one_unedited_per_set(tmp_path):
    backend = SyntheticBackend.from_spec("shared")
    backend.plant(["alpha", "beta"])
    prompts, tokens = _benign(), backend.refusal_token_ids()
    cache = ArrayCache(tmp_path, "scores")
    edits = [Ablate(np.eye(backend.d_model)[i], f"d{i}") for i in range(3)]
    for edit in edits:
        scores(backend, prompts, tokens, edit, cache)  # an older run: scores, no KL
    calls = []
    original = backend.last_logprobs
    backend.last_logprobs = lambda *a, **k: calls.append(k.get("intervention")) or original(
        *a, **k)
    base = damage.BaseLogprobs()
    for edit in edits:
        damage.scores_and_kl(backend, prompts, tokens, edit, cache, 4, base)
    # the first edit's pass, then the unedited pass (once for the set), then the others'
    assert [None if c is None else c.label for c in calls] == ["d0", None, "d1", "d2"]


def test_the_unedited_memory_keeps_only_the_last_sets():
    backend = SyntheticBackend.from_spec("shared")
    memo = damage.BaseLogprobs(limit=2)
    sets = [PromptSet("benign", "benign", "benign", [f"q{i}"], "t") for i in range(3)]
    assert [memo.get(backend, p, 4)[1] for p in sets] == [True, True, True]
    assert memo.get(backend, sets[2], 4)[1] is False
    assert memo.get(backend, sets[0], 4)[1] is True  # evicted


def test_summary_line_of_the_score_names_each_condition():
    obs = Observations()
    _judged(obs, "unsteered", [True, False], [True, False])
    _judged(obs, "steered:a@0.1", [True, True], [True, False], start=5)
    _judged(obs, "steered:b@0.1", [True], [True], start=9)
    line = score_validation.summary_line("m", score_validation.summarise(obs, bootstrap=10))
    assert line == ("cheap score vs judge [m]: unsteered 1.00 (n=2), "
                    "steered 0.67 (n=3; lowest steered:a 0.50, n=2)")
    assert score_validation.summary_line("m", {"by_condition": {}}) is None
