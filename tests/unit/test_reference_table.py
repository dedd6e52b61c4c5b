"""The documentation's verdict table comes from a report, never from typing
(refusal_checks/reports/table.py; ``python -m refusal_checks table``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from refusal_checks.reports.table import tally, verdict_table

REPO = Path(__file__).resolve().parents[2]


def _record(claim: str, outcome: str, estimate: float, interval, reason: str = "",
            model: str = "m") -> dict:
    return {"claim": claim, "model": model, "outcome": outcome, "estimate": estimate,
            "interval": list(interval), "comparison": "<", "threshold": 0.9, "n": 55,
            "reason": reason}


REPORT = {"verdicts": [
    _record("distinct-directions", "supported", 0.29, (0.22, 0.36)),
    _record("random-direction-does-not-bypass", "inconclusive", float("nan"),
            (float("nan"), float("nan")), "no direction | was selected"),
    _record("distinct-directions", "refuted", 0.95, (0.92, 0.97), model="other"),
]}


def test_one_row_per_claim_of_the_model_with_its_numbers_and_reason() -> None:
    assert verdict_table(REPORT, "m").splitlines() == [
        "| claim | verdict | value [95% CI] | needs | n | why |",
        "|---|---|---|---|---|---|",
        "| distinct-directions | SUPPORTED | 0.29 [0.22, 0.36] | < 0.90 | 55 |  |",
        "| random-direction-does-not-bypass | INCONCLUSIVE | not measured | < 0.90 | 55 | "
        "no direction \\| was selected |"]
    assert tally(REPORT, "m") == "1 SUPPORTED, 0 REFUTED and 1 INCONCLUSIVE"


def test_a_model_the_report_lacks_is_named_with_the_ones_it_has() -> None:
    with pytest.raises(ValueError, match="no verdict of 'x'; its models: m, other"):
        verdict_table(REPORT, "x")


def test_the_command_prints_the_tally_and_the_table(tmp_path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema": "refusal_checks/report/1", **REPORT}))
    done = subprocess.run([sys.executable, "-m", "refusal_checks", "table", str(path),
                           "--model", "other"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("other: 0 SUPPORTED, 1 REFUTED and 0 INCONCLUSIVE\n\n| claim")
    missing = subprocess.run([sys.executable, "-m", "refusal_checks", "table",
                              str(tmp_path / "none.json")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file" in missing.stderr


REFERENCE = "docs/reference/qwen-coder-0.5b.json"


def _block(page: str) -> str:
    """The table between the page's verdicts markers (the generated table's place)."""
    start = page.index(f"<!-- verdicts: {REFERENCE} -->\n") + len(f"<!-- verdicts: {REFERENCE} -->\n")
    return page[start:page.index("<!-- /verdicts -->", start)]


@pytest.mark.parametrize(("page", "why", "command"), [
    ("docs/claims.md", True, f"python -m refusal_checks table {REFERENCE}"),
    ("README.md", False, f"python -m refusal_checks table {REFERENCE} --no-why"),
])
def test_the_pages_verdict_tables_are_the_shipped_reference_reports(
        page: str, why: bool, command: str) -> None:
    from refusal_checks.reports.schema import load_report

    report = load_report(REPO / REFERENCE)
    text = (REPO / page).read_text()
    assert _block(text) == verdict_table(report, "qwen-coder-0.5b", why=why), (
        f"{page}'s verdict table differs from the reference report: paste the output of "
        f"`{command}` between its verdicts markers")
    counts = tally(report, "qwen-coder-0.5b")
    assert counts in text, f"{page} should give the tally {counts!r}"


def test_the_compact_table_leaves_out_the_reasons_only() -> None:
    full = verdict_table(REPORT, "m").splitlines()
    short = verdict_table(REPORT, "m", why=False).splitlines()
    assert short[0] == "| claim | verdict | value [95% CI] | needs | n |"
    assert [row.rsplit(" |", 2)[0] + " |" for row in full[2:]] == short[2:]
