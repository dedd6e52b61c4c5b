"""The example claim of docs/writing-claims.md runs as written and reaches a verdict.

The page is the only place a user learns to write a claim, so its code block is taken from
the page itself, put in a copy of the claims suite and run on planted worlds: it must
collect, measure with the fixtures it names and end in a verdict of its own claim id.
"""

from __future__ import annotations

import json
import re

import pytest

from .test_plugin import REPO, copy_suite, suite_args

PAGE = REPO / "docs" / "writing-claims.md"


def example_claim() -> str:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/writing-claims.md should hold exactly one python example"
    return blocks[0]


def test_the_documented_example_claim_runs_and_judges(pytester: pytest.Pytester) -> None:
    copy_suite(pytester.path, claim_files=(), categories=("safety_core", "beta", "gamma"))
    (pytester.path / "claims" / "test_my_claim.py").write_text(example_claim())
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        *suite_args(pytester.path / "cache", "synthetic:distinct", "synthetic:shared"),
        "--refusal-json", str(report), "claims/test_my_claim.py")

    verdicts = json.loads(report.read_text())["verdicts"]
    assert {v["claim"] for v in verdicts} == {"safety-core-is-central"}, result.outlines
    assert {v["model"] for v in verdicts} == {"synthetic:distinct", "synthetic:shared"}
    assert all(v["outcome"] in ("supported", "refuted", "inconclusive") for v in verdicts)
    assert all("iut" in v["details"] for v in verdicts)  # the intersection-union test
