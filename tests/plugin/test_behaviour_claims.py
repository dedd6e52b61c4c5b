"""The behavioural claims on planted worlds: verdicts the plant dictates.

Runs claims/test_single_direction.py and claims/test_category_steering.py through pytest
(subprocess) on synthetic worlds, and reads the verdicts from the JSON report.
"""

from __future__ import annotations

import json

import pytest

from tests.plugin.test_plugin import copy_suite

BEHAVIOUR_FILES = ("test_single_direction.py", "test_category_steering.py")


def _verdicts(pytester: pytest.Pytester, model: str) -> dict[str, dict]:
    copy_suite(pytester.path, per_category=48, claim_files=BEHAVIOUR_FILES)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "claims", "-p", "no:hypothesispytest", "-p", "no:cacheprovider", "--model", model,
        "--refusal-prompts", "prompts.jsonl", "--refusal-cache-dir",
        str(pytester.path / "cache"), "--refusal-json", str(report), "--refusal-bootstrap",
        "100")
    assert "Traceback" not in result.stdout.str()
    return {v["claim"]: v for v in json.loads(report.read_text())["verdicts"]}


def test_a_model_that_never_refuses_gets_no_supported_behavioural_verdict(pytester):
    verdicts = _verdicts(pytester, "synthetic:null")
    assert len(verdicts) == 7
    for claim, verdict in verdicts.items():
        assert verdict["outcome"] == "inconclusive", (claim, verdict["line"])
        assert "no measurable refusal" in verdict["reason"] or verdict["n"] < 8, verdict["line"]


def test_a_shared_direction_world_is_one_knob_and_random_directions_do_nothing(pytester):
    verdicts = _verdicts(pytester, "synthetic:shared")
    assert verdicts["shared-knob"]["outcome"] == "supported", verdicts["shared-knob"]["line"]
    assert verdicts["random-direction-does-not-induce"]["outcome"] == "supported"
    assert verdicts["random-direction-does-not-bypass"]["outcome"] == "supported"
    # Every behavioural verdict records the judge it used or the cheap score's agreement.
    details = verdicts["shared-knob"]["details"]
    assert "score_agreement" in details and len(details["rr"]) == 3
