"""The hand labels shipped for the embedded Qwen are a valid, stratified label file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from refusal_checks.judges import CLASSES
from refusal_checks.labelling import read_labels, stratum_of

LABELS = Path(__file__).resolve().parents[2] / "labels" / "qwen-coder-0.5b.jsonl"


def test_the_shipped_qwen_labels_hold_400_replies_of_one_model_in_every_class():
    rows = list(read_labels(LABELS).values())  # raises on any malformed line
    assert len(rows) >= 400
    assert {row["model"] for row in rows} == {"qwen-coder-0.5b"}
    assert len({row["fingerprint"] for row in rows}) == 1
    assert set(Counter(row["label"] for row in rows)) == set(CLASSES)


def test_the_shipped_labels_cover_unsteered_steered_and_ablated_replies_on_both_sides():
    rows = list(read_labels(LABELS).values())
    strata = Counter(stratum_of(row["condition"]).split(":")[0] for row in rows)
    assert set(strata) == {"unsteered", "steered", "ablated"}
    sides = Counter(row["side"] for row in rows)
    assert sides["refuse"] >= 150 and sides["benign"] >= 150  # should-refuse and benign
