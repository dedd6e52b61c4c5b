"""Arditi et al.'s single-direction claims under pytest: the direction they are judged on is
the selected one, and the reports say which, with every candidate."""

from __future__ import annotations

import json

import pytest

from refusal_checks.measure.staged import PROTOCOL as STAGED
from tests.plugin.test_plugin import copy_suite

ARDITI = ("ablation-bypasses-refusal", "addition-induces-refusal",
          "ablation-keeps-harmless-behaviour", "random-direction-does-not-bypass",
          "random-direction-does-not-induce")


def _run(pytester: pytest.Pytester, model: str, *extra: str) -> tuple[dict, pytest.RunResult]:
    copy_suite(pytester.path, per_category=48, claim_files=("test_single_direction.py",))
    report = pytester.path / "report.json"
    page = pytester.path / "report.html"
    result = pytester.runpytest_subprocess(
        "claims", "-p", "no:hypothesispytest", "-p", "no:cacheprovider", "--model", model,
        "--refusal-prompts", "prompts.jsonl", "--refusal-cache-dir",
        str(pytester.path / "cache"), "--refusal-json", str(report), "--refusal-html",
        str(page), "--refusal-bootstrap", "100", *extra)
    assert "Traceback" not in result.stdout.str()
    payload = json.loads(report.read_text())
    assert 'alt="Arditi selection heatmap' in page.read_text()
    return payload, result


def test_the_claims_use_the_selected_direction_and_report_the_search(pytester):
    payload, _ = _run(pytester, "synthetic:shared,genre=0")
    verdicts = {v["claim"]: v for v in payload["verdicts"]}
    assert set(verdicts) == set(ARDITI)
    # One planted direction, no genre: the selected direction does what the paper says
    # (harmless KL sits near 0.1 in this world; calibration's harmless-far plants it low).
    for claim, verdict in verdicts.items():
        if claim != "ablation-keeps-harmless-behaviour":
            assert verdict["outcome"] == "supported", verdict["line"]
    for claim, verdict in verdicts.items():
        record = verdict["details"]["selection"]
        # The staged claims (all but the KL claim) name their staged probes after the search.
        staged = "" if claim == "ablation-keeps-harmless-behaviour" else f"; {STAGED}"
        assert verdict["protocol"].endswith(record["protocol"] + staged), claim
        assert record["protocol"].startswith("Arditi selection (layers 0..5 x post-instruction "
                                             "positions -2,-1; build ")
        assert len(record["candidates"]) == 12 and record["selected"] is not None
    assert verdicts["random-direction-does-not-bypass"]["protocol"].startswith(
        "3 seeded random directions of the Arditi-selected direction's norm")
    summary = payload["models"]["synthetic:shared,genre=0"]["arditi_selection"]
    assert summary["selected"] == verdicts["ablation-bypasses-refusal"]["details"][
        "selection"]["selected"] and "candidates" not in summary
    # The default filter order says what it computed; what it skipped is in the profile.
    assert summary["order"] == "filter" and summary["computed"]["induce"] == 12
    profile = payload["models"]["synthetic:shared,genre=0"]["cost_profile"]["phases"]
    skipped = 12 - summary["computed"]["bypass"]
    assert profile["Arditi selection"]["prompts_skipped"] == skipped * 32


def test_a_restricted_search_is_named_and_a_bad_restriction_is_a_usage_error(pytester):
    payload, _ = _run(pytester, "synthetic:shared,genre=0", "--refusal-selection-layers",
                      "2,3", "--refusal-selection-positions", "-1")
    record = payload["verdicts"][0]["details"]["selection"]
    assert record["protocol"].startswith("Arditi selection (restricted search, layers 2,3 x "
                                         "post-instruction positions -1;")
    assert len(record["candidates"]) == 2
    bad = pytester.runpytest_subprocess("claims", "--refusal-selection-positions", "1")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--refusal-selection-positions*must be negative*"])


def test_the_search_order_is_reported_and_full_computes_every_candidate(pytester):
    payload, _ = _run(pytester, "synthetic:shared,genre=0", "--refusal-selection-layers",
                      "2,3", "--refusal-selection-order", "full")
    summary = payload["models"]["synthetic:shared,genre=0"]["arditi_selection"]
    assert summary["order"] == "full"
    assert summary["computed"] == {"bypass": 4, "induce": 4, "kl": 4}
    record = payload["verdicts"][0]["details"]["selection"]
    assert all(c["not_computed"] == [] for c in record["candidates"])
    bad = pytester.runpytest_subprocess("claims", "--refusal-selection-order", "fast")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--refusal-selection-order*invalid choice*'fast'*"])
