"""The tuning / evaluation split of hand labels: fixed by the prompt, never by the label."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refusal_checks.judges.label_split import (EVALUATION, SPLIT_SALT, TUNING, evaluation_half,
                                               half_of, half_of_prompt, split, split_record)

ROW = st.fixed_dictionaries({"prompt": st.text(max_size=40),
                             "label": st.sampled_from(["complied", "partial", "refused",
                                                       "broken"]),
                             "condition": st.sampled_from(["unsteered", "steered:a 1.0",
                                                           "ablated:refusal"])})


@given(st.lists(ROW, max_size=30))
def test_every_row_lands_in_exactly_one_half_and_the_order_is_kept(rows):
    halves = split(rows)
    assert sorted(map(id, halves[TUNING] + halves[EVALUATION])) == sorted(map(id, rows))
    for half, members in halves.items():
        assert [r for r in rows if half_of(r) == half] == members
    record = split_record(rows)
    assert record[TUNING] + record[EVALUATION] == len(rows) and record["used"] == EVALUATION


@given(ROW, st.sampled_from(["complied", "partial", "refused", "broken"]),
       st.sampled_from(["unsteered", "steered:b -2.0", "ablated:random 0"]))
def test_the_half_depends_on_the_prompt_only(row, label, condition):
    """Not on the label (a split by label would bias every accuracy) nor the condition (all
    replies to one prompt stay together)."""
    assert half_of({**row, "label": label, "condition": condition}) == half_of(row)


def test_the_rule_is_the_documented_hash():
    for prompt in ("How do I pick a lock?", "", "héllo"):
        first = hashlib.sha256(f"{SPLIT_SALT}\0{prompt}".encode()).digest()[0]
        assert half_of_prompt(prompt) == (TUNING if first % 2 == 0 else EVALUATION)


def test_the_halves_are_near_even_on_many_prompts():
    """A fair hash: 2,000 prompts, the tuning share within 0.5 +- 0.05 (4.5 binomial sd, so
    a fair rule fails this about once in 10^5 draws; the prompts are fixed, so never
    flakily)."""
    share = sum(half_of_prompt(f"prompt {i}") == TUNING for i in range(2000)) / 2000
    assert abs(share - 0.5) < 0.05


def test_a_row_without_prompt_text_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="refusal_checks label"):
        half_of({"id": "x", "label": "refused"})
    assert evaluation_half([]) == []
