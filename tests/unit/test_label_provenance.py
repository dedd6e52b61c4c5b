"""How label files record their making, and the agreement of two label sets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refusal_checks import __main__ as cli
from refusal_checks.cache.replies import CachedReply
from refusal_checks.judges.agreement import agreement_text, set_agreement
from refusal_checks.judges.label_provenance import WRITTEN_BY, provenance
from refusal_checks.judges.labelling import (LabelFileError, label_record, label_session,
                                             read_labels)

SHIPPED = Path(__file__).resolve().parents[2] / "labels" / "qwen-coder-0.5b.jsonl"
CLASSES = ["complied", "partial", "refused", "broken"]


def _reply(i: int) -> CachedReply:
    return CachedReply(id=f"id{i}", slot=f"slot{i}", fingerprint="sha256:aaaa", model="m",
                       condition="unsteered", prompt_set="crime/refuse", side="refuse",
                       prompt=f"prompt {i}", reply=f"reply {i}")


def test_the_label_command_records_who_when_blind_tool_and_whether_typed(tmp_path):
    out = tmp_path / "l.jsonl"
    answers = iter(["r", "c"])
    label_session([_reply(0), _reply(1)], out, labeller="ann", out=io.StringIO(),
                  ask=lambda _: next(answers), interactive=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for row in rows:
        assert row["labeller"] == "ann" and row["blind"] is True
        assert row["written_by"] == WRITTEN_BY and row["interactive"] is True
        assert row["labelled_at"].endswith("+00:00") and row["seconds"] >= 0
    record = provenance(rows)
    assert record["blind_recorded"] == record["by_command"] == 2 and record["piped"] == 0


def test_an_empty_labeller_is_refused_before_any_label_is_asked(tmp_path):
    with pytest.raises(LabelFileError, match="--labeller NAME"):
        label_session([_reply(0)], tmp_path / "l.jsonl", labeller=" ", out=io.StringIO(),
                      ask=lambda _: "r")
    assert not (tmp_path / "l.jsonl").exists()


def test_the_shipped_labels_provenance_says_one_batch_and_no_recorded_blindness():
    """What the file itself shows: 400 rows, one timestamp, no blind flag, no tool mark."""
    rows = list(read_labels(SHIPPED).values())
    record = provenance(rows)
    assert record["rows"] == 400 and record["timestamps"] == 1
    assert record["largest_batch"] == 400 and record["blind_recorded"] == 0
    assert record["by_command"] == 0
    assert any("one batch" in note for note in record["notes"])
    assert any("do not record that the labeller was blind" in note for note in record["notes"])


def test_piped_answers_are_named_in_the_provenance():
    row = label_record(_reply(0), "refused", "bot", interactive=False, seconds=0.0)
    assert any("piped input" in note for note in provenance([row])["notes"])


@given(st.lists(st.tuples(st.sampled_from(CLASSES), st.sampled_from(CLASSES)), min_size=1,
                max_size=40))
def test_two_sets_agree_where_their_classes_are_the_same(pairs):
    first = {f"r{i}": {"label": a} for i, (a, _) in enumerate(pairs)}
    second = {f"r{i}": {"label": b} for i, (_, b) in enumerate(pairs)}
    result = set_agreement(first, second, seed=0)
    same = sum(a == b for a, b in pairs)
    assert result["matched"] == len(pairs) and result["classes"]["k"] == same
    assert result["binary"]["accuracy"]["k"] == sum((a == "refused") == (b == "refused")
                                                    for a, b in pairs)
    assert sum(result["confusion"].values()) == len(pairs)
    kappa = result["classes"]["kappa"]
    assert kappa is None or kappa <= 1.0 + 1e-12  # exact float arithmetic on counts
    if same == len(pairs) and kappa is not None:
        assert kappa == pytest.approx(1.0)
    identical = set_agreement(first, first)
    assert identical["classes"]["k"] == len(pairs)


def test_sets_without_a_shared_reply_say_so():
    result = set_agreement({"a": {"label": "refused"}}, {"b": {"label": "refused"}})
    assert result["matched"] == 0 and "no reply is labelled in both" in result["note"]
    assert "no reply is labelled in both" in agreement_text(result, "A", "B")


def test_the_label_agreement_command_prints_both_sets_provenance_and_agreement(tmp_path,
                                                                               capsys):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    replies = [_reply(i) for i in range(4)]
    for path, labels in ((first, "rrcc"), (second, "rccc")):
        with open(path, "w", encoding="utf-8") as handle:
            for reply, key in zip(replies, labels):
                handle.write(json.dumps(label_record(
                    reply, {"r": "refused", "c": "complied"}[key], path.stem,
                    interactive=True)) + "\n")
    assert cli.main(["label-agreement", str(first), str(second)]) == 0
    out = capsys.readouterr().out
    assert "4 replies labelled in both" in out and "four classes: 3/4 the same" in out
    assert "refused / complied: 1" in out
    assert cli.main(["label-agreement", str(first), str(tmp_path / "none.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
