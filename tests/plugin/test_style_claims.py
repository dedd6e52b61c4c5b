"""The style claims on planted worlds: verdicts the plant dictates.

Runs claims/test_style.py through pytest (subprocess) on three synthetic worlds in one
session: refusal style planted per direction (``style=1``, with the paper's family
markers for the bundled category names), no style difference (``style=0``), and a model
that never refuses. The sentence encoder is the real all-MiniLM-L6-v2.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.plugin.test_plugin import copy_suite

CATEGORIES = ("humanizing", "unsupported", "safety_core", "crime_assistance")
STYLED = "synthetic:distinct,style=1"
PLAIN = "synthetic:distinct"
NEVER = "synthetic:null"


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory) -> dict[tuple[str, str], dict]:
    pytester_dir = tmp_path_factory.mktemp("style")
    copy_suite(pytester_dir, per_category=48, claim_files=("test_style.py",),
               categories=CATEGORIES)
    report = pytester_dir / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "claims", "-p", "no:hypothesispytest", "-p",
         "no:cacheprovider", "--model", STYLED, "--model", PLAIN, "--model", NEVER,
         "--refusal-prompts", "prompts.jsonl", "--refusal-cache-dir",
         str(pytester_dir / "cache"), "--refusal-json", str(report), "--refusal-bootstrap",
         "200"], cwd=pytester_dir, capture_output=True, text=True, timeout=900)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout[-3000:]
    assert report.is_file(), result.stdout[-3000:] + result.stderr[-3000:]
    found = {(v["claim"], v["model"]): v for v in json.loads(report.read_text())["verdicts"]}
    assert len(found) == 15, sorted(found)
    return found


def test_planted_styles_are_found_and_the_paper_families_recovered(verdicts):
    style = verdicts[("style-differs-by-direction", STYLED)]
    assert style["outcome"] == "supported", style["line"]
    summary = style["details"]["style"]
    assert summary["directions"] == list(CATEGORIES)
    assert summary["accuracy"] > 0.9 and summary["permutation_p"] < 0.05
    for name in CATEGORIES:
        assert len(summary["exemplars"][name]) == 2
    families = verdicts[("style-families", STYLED)]
    assert families["outcome"] == "supported", families["line"]


def test_no_planted_style_is_never_called_a_style_difference(verdicts):
    style = verdicts[("style-differs-by-direction", PLAIN)]
    assert style["outcome"] != "supported", style["line"]
    assert verdicts[("style-not-rate", PLAIN)]["outcome"] != "supported"


def test_the_negative_control_holds_in_both_worlds(verdicts):
    for model in (STYLED, PLAIN):
        control = verdicts[("style-negative-control", model)]
        assert control["outcome"] == "supported", control["line"]
        assert set(control["details"]["categories"]) <= set(CATEGORIES)
        assert len(control["details"]["categories"]) == 4


def test_rates_are_reported_with_the_strengths_that_reached_them(verdicts):
    rate = verdicts[("style-rate-matched", STYLED)]
    assert set(rate["details"]["rates"]) == set(CATEGORIES)
    assert all(0.05 <= s <= 1.0 for s in rate["details"]["strengths"].values())
    assert rate["outcome"] in ("supported", "refuted", "inconclusive")
    combined = verdicts[("style-not-rate", STYLED)]
    assert (combined["outcome"] == "supported") == (rate["outcome"] == "supported")


def test_a_model_that_never_refuses_gets_no_supported_style_verdict(verdicts):
    for claim in ("style-differs-by-direction", "style-rate-matched", "style-not-rate",
                  "style-families", "style-negative-control"):
        verdict = verdicts[(claim, NEVER)]
        assert verdict["outcome"] != "supported", verdict["line"]
