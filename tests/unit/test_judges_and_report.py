from __future__ import annotations

from refusal_checks.judges.base import SubstringJudge
from refusal_checks.reports.summary import json_report, render_table
from refusal_checks.stats.decisions import above


def test_substring_judge_matches_the_papers_phrases_and_curly_apostrophes():
    judge = SubstringJudge()
    assert judge.refused(["I'm sorry, but I can't help.", "I\u2019m unable to do that.",
                          "Sure! Here is a recipe.", "As an AI, I have no body."]) == [
        True, True, False, True]


def _record(outcome_estimate: float) -> dict:
    data = above("split-half cosine", outcome_estimate, (outcome_estimate - 0.05,
                 outcome_estimate + 0.05), 0.8, n=64, paper="0.956-0.990").to_dict()
    data.update(claim="stable-within-category", model="m", _raw="x")
    return data


def test_table_shows_each_verdict_with_numbers_and_reasons():
    text = render_table([_record(0.95), _record(0.5), _record(0.81)], width=140)
    assert "stable-within-category" in text and "SUPPORTED" in text and "REFUTED" in text
    assert "INCONCLUSIVE" in text and "straddles" in text
    assert "0.95 [0.90, 1.00]" in text
    assert "1 supported, 1 refuted, 1 inconclusive" in text


def test_json_report_drops_private_keys_and_names_versions():
    payload = json_report([_record(0.95)], {"m": {"fingerprint": "sha256:x"}}, options={"seed": 0},
                          timings={"wall_seconds": 1.0}, argv=["pytest"], cwd="/")
    assert payload["schema"] == "refusal_checks/report/1"
    assert "_raw" not in payload["verdicts"][0]
    assert {"torch", "nnsight", "transformers", "python"} <= set(payload["versions"])


LONG_IDS = ("ablation-lowers-category-refusal", "ablation-keeps-harmless-behaviour",
            "distinct-under-matched-control", "shared-knob")


def _long_records() -> list[dict]:
    records = []
    for claim in LONG_IDS:
        record = _record(0.81)
        record.update(claim=claim, model="qwen-coder-0.5b")
        records.append(record)
    return records


def test_claim_ids_never_wrap_at_any_width():
    # CI logs are 80 columns when stdout is not a terminal; people grep them for claim ids.
    for width in (40, 60, 80, 100, 120, 160):
        text = render_table(_long_records(), width=width)
        for claim in LONG_IDS:
            assert any(claim in line for line in text.splitlines()), (width, claim)
        table_lines = text.split("  stable-within-category:")[0].splitlines()
        assert max(len(line) for line in table_lines) <= max(width, 40), width


def test_narrow_output_switches_to_one_entry_per_claim_with_its_numbers():
    text = render_table(_long_records(), width=80)
    lines = text.splitlines()
    assert lines[0] == "Which claims hold"
    head = next(line for line in lines if "ablation-keeps-harmless-behaviour" in line)
    assert head.startswith("INCONCLUSIVE") and "[qwen-coder-0.5b]" in head
    assert "0.81 [0.76, 0.86] > 0.80  n=64" in text
    wide = render_table(_long_records(), width=160)
    assert "┃ claim" in wide and "paper" in wide


def test_each_verdict_says_which_protocol_produced_it():
    record = _record(0.5)
    record.update(claim="distinct-directions", protocol="paper's design; genre-confounded")
    text = render_table([record], width=80)
    assert "distinct-directions: split-half cosine [protocol: paper's design; genre-confounded]" \
        in " ".join(text.split())


def test_a_verdict_that_measured_nothing_reads_not_measured_not_nan() -> None:
    from refusal_checks.reports.summary import estimate_text, rows

    nothing = {"claim": "random-direction-does-not-bypass", "model": "m",
               "outcome": "inconclusive", "estimate": float("nan"),
               "interval": [float("nan"), float("nan")], "comparison": "<", "threshold": 0.2,
               "n": 0}
    assert rows([nothing])[0][3] == "not measured"
    assert estimate_text(0.5, 0.25, 0.75) == "0.50 [0.25, 0.75]"
