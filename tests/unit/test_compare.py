"""Comparing two saved reports claim by claim (refusal_checks.reports.compare, ``compare`` command)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.__main__ import main
from refusal_checks.reports.compare import SHIFT_SHARE, Row, pair, render
from refusal_checks.reports.schema import SCHEMA


def record(claim: str, outcome: str, estimate: float, lo: float, hi: float,
           model: str = "m") -> dict:
    return {"claim": claim, "model": model, "test": f"claims/t.py::test_{claim}[{model}]",
            "outcome": outcome, "estimate": estimate, "interval": [lo, hi],
            "statistic": "s", "threshold": 0.5, "comparison": ">", "n": 10, "line": "x"}


def report(*records: dict) -> dict:
    return {"schema": SCHEMA, "models": {}, "verdicts": list(records)}


finite = st.floats(-10, 10, allow_nan=False)


@settings(deadline=None)
@given(finite, st.floats(0.01, 5), finite)
def test_shift_is_the_estimate_gap_over_the_first_interval_width(a, width, b):
    row = Row(("c", "m", "c"), record("c", "supported", a, a - width / 2, a + width / 2),
              record("c", "supported", b, b - 1, b + 1))
    assert row.shift() == pytest.approx(abs(a - b) / width)
    assert row.agrees() == (row.shift() <= SHIFT_SHARE)


@settings(deadline=None)
@given(finite, st.floats(0.01, 5))
def test_a_report_agrees_with_itself_and_an_outcome_change_never_agrees(a, width):
    same = record("c", "refuted", a, a - width, a + width)
    assert Row(("c", "m", "c"), same, same).agrees()
    flipped = dict(same, outcome="inconclusive")
    assert not Row(("c", "m", "c"), same, flipped).agrees()


def test_a_claim_in_one_report_only_is_listed_as_a_disagreement():
    rows = pair(report(record("a", "supported", 1, 0, 2)),
                report(record("a", "supported", 1, 0, 2), record("b", "refuted", 0, 0, 1)))
    assert [(r.key[0], r.agrees()) for r in rows] == [("a", True), ("b", False)]
    text = render(rows, "f32.json", "bf16.json")
    assert "1 of 2 claims agree" in text and "NO" in text


def test_models_are_matched_separately():
    rows = pair(report(record("a", "supported", 1, 0, 2, model="x")),
                report(record("a", "supported", 1, 0, 2, model="y")))
    assert len(rows) == 2 and not any(r.agrees() for r in rows)


def test_cli_exit_status_follows_agreement(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps(report(record("k", "supported", 0.80, 0.70, 0.90))))
    b.write_text(json.dumps(report(record("k", "supported", 0.82, 0.71, 0.91))))
    c.write_text(json.dumps(report(record("k", "supported", 0.86, 0.76, 0.96))))
    assert main(["compare", str(a), str(b)]) == 0
    assert "1 of 1 claims agree" in capsys.readouterr().out
    assert main(["compare", str(a), str(c)]) == 1  # moved by 0.3 of the width
    assert "0 of 1 claims agree" in capsys.readouterr().out


def test_cli_names_a_bad_file_without_a_traceback(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]):
    good = tmp_path / "a.json"
    good.write_text(json.dumps(report(record("k", "supported", 1, 0, 2))))
    assert main(["compare", str(good), str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert "missing.json: no such file" in err and "Traceback" not in err
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(report()))
    assert main(["compare", str(empty), str(empty)]) == 2
    assert "holds a verdict" in capsys.readouterr().err
