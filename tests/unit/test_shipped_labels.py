"""The hand labels shipped for the embedded Qwen are a valid, stratified label file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from refusal_checks.judges.base import CLASSES
from refusal_checks.cache.replies import stratum_of
from refusal_checks.judges.labelling import read_labels

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


def test_the_shipped_labels_of_schema_1_keep_matching_the_replies_they_were_made_for():
    from refusal_checks.cache.replies import reply_id, reply_slot
    from refusal_checks.judges.labelling import SLOT_ID_SCHEMA

    raw = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    assert {row["schema"] for row in raw} == {SLOT_ID_SCHEMA}
    read = read_labels(LABELS)
    assert len(read) == len(raw)  # no two labels of one text in one slot
    for row in raw:
        fields = (row["fingerprint"], row["condition"], row["prompt_set"], row["prompt"])
        # Their ids are slots (the formula must not move), at one of the claims' budgets.
        budget = next(n for n in (16, 24, 32) if reply_slot(*fields, n) == row["id"])
        # Read, each is keyed by the id a cached reply of the same text gets.
        assert read[reply_id(*fields, budget, row["reply"])]["label"] == row["label"]


def test_the_shipped_labels_split_into_fixed_halves_by_prompt():
    """The split was fixed (rule and salt) before any accuracy was computed on a half; these
    counts pin it, so a changed rule or salt cannot slip in unnoticed."""
    from refusal_checks.judges.label_split import EVALUATION, TUNING, split

    rows = list(read_labels(LABELS).values())
    halves = split(rows)
    assert (len(halves[TUNING]), len(halves[EVALUATION])) == (220, 180)
    prompts = {half: {row["prompt"] for row in members} for half, members in halves.items()}
    assert not prompts[TUNING] & prompts[EVALUATION]  # no prompt in both halves
    assert (len(prompts[TUNING]), len(prompts[EVALUATION])) == (81, 70)
