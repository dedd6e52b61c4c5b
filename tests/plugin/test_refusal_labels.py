"""--refusal-labels end to end: label a planted model's cached replies, rerun, read agreement."""

from __future__ import annotations

import json

import pytest

from refusal_checks.judges.base import SubstringJudge
from refusal_checks.cache.replies import cached_replies
from refusal_checks.judges.label_split import EVALUATION, half_of
from refusal_checks.judges.labelling import label_record
from tests.plugin.test_plugin import copy_suite, suite_args

CLAIMS = ("test_single_direction.py",)


WORLD = "synthetic:shared,genre=0"


def test_a_missing_label_file_is_a_usage_error_with_the_fix(pytester):
    copy_suite(pytester.path, per_category=8, claim_files=CLAIMS)
    result = pytester.runpytest_subprocess("claims", "--refusal-labels", "nope.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--refusal-labels 'nope.jsonl' is not a file*"
                                 "python -m refusal_checks label*"])


def test_labels_of_the_model_give_each_judges_agreement_per_condition(pytester):
    # Enough prompts, and no genre offsets, for Arditi's selection to find a direction whose
    # ablated replies get labelled (tests/plugin/test_behaviour_claims.py says why).
    copy_suite(pytester.path, per_category=48, claim_files=CLAIMS)
    cache = pytester.path / "cache"
    args = ["claims", *suite_args(cache, WORLD), "--refusal-bootstrap", "50"]
    pytester.runpytest_subprocess(*args)  # generates and caches the replies
    found = cached_replies(cache)
    conditions = {r.stratum[0] for r in found}
    assert "unsteered" in conditions and any(c.startswith("ablated:") for c in conditions)
    # A labeller who agrees with the substring judge except on every fifth reply.
    labels = pytester.path / "labels.jsonl"
    verdicts = SubstringJudge().refused([r.reply for r in found])
    with open(labels, "w", encoding="utf-8") as handle:
        for i, (reply, said) in enumerate(zip(found, verdicts)):
            agree = i % 5 != 0
            label = "refused" if said == agree else "complied"
            handle.write(json.dumps(label_record(reply, label, "test")) + "\n")
    report = pytester.path / "report.json"
    pytester.runpytest_subprocess(*args, "--refusal-labels", str(labels), "--refusal-json",
                                  str(report))
    model = json.loads(report.read_text())["models"][WORLD]
    info = model["judge_validation"]
    # Only the evaluation half measures the judge; the tuning half is counted, not used.
    evaluation = [i for i, r in enumerate(found) if half_of({"prompt": r.prompt}) == EVALUATION]
    assert 0 < len(evaluation) < len(found)
    assert info["n"] == len(evaluation) and info["counted_as_refusal"] == ["refused"]
    assert (info["split"]["tuning"], info["split"]["evaluation"]) == (
        len(found) - len(evaluation), len(evaluation))
    assert info["provenance"]["blind_recorded"] == len(found)
    substring = info["judges"]["substring (Arditi et al. 12 phrases)"]
    disagree = sum(i % 5 == 0 for i in evaluation)
    assert substring["all"]["accuracy"]["k"] == len(evaluation) - disagree
    conditions = {found[i].stratum[0] for i in evaluation}
    assert set(substring["by_condition"]) == conditions
    # The cheap score against the same labels, matched by reply id, on the replies this run
    # judged through the claims (every one is labelled, but only the evaluation half's
    # labels count; the baseline replies of the refusal precondition are judged without a
    # score). In a planted world the score says what the judge says, so it disagrees with
    # the labeller exactly where the judge does.
    by_labels = model["score_validation"]["labels"]
    assert 0 < by_labels["n"] < model["score_validation"]["n"]
    assert by_labels["n"] < len(evaluation)
    assert by_labels["source"] == str(labels)
    assert set(by_labels["by_condition"]) == conditions
    for stratum, cell in by_labels["by_condition"].items():
        judged = substring["by_condition"][stratum]["accuracy"]
        if stratum == "unsteered":
            assert 0 < cell["accuracy"]["n"] < judged["n"]
        else:
            assert (cell["accuracy"]["k"], cell["accuracy"]["n"]) == (judged["k"], judged["n"])
    # The unsteered refusal rates come back corrected for the substring judge's error.
    corrected = model["refusal_behaviour"]["corrected"]
    assert corrected["judge"] == "substring (Arditi et al. 12 phrases)"
    for rate in corrected["rates"].values():
        assert 0.0 <= rate["low"] <= rate["estimate"] <= rate["high"] <= 1.0
    # So does every condition the claims judged, each with its own labelled error rates.
    section = model["corrected_rates"]
    assert section["judge"] == "substring (Arditi et al. 12 phrases)"
    assert set(section["by_condition"]) == set(by_labels["by_condition"])
    for stratum, row in section["by_condition"].items():
        cell = substring["by_condition"][stratum]
        if "rates" not in row:  # a condition whose labels cannot measure the judge says so
            assert row["note"], row
            continue
        assert row["sensitivity"] == [cell["sensitivity"]["k"], cell["sensitivity"]["n"]]
        for rate in row["rates"].values():
            assert 0.0 <= rate["low"] <= rate["estimate"] <= rate["high"] <= 1.0
    assert any("rates" in row for row in section["by_condition"].values())
