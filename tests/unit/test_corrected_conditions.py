"""models.<name>.corrected_rates: each judged condition's rates corrected for the judge's
error measured on that condition's labels."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.stats.corrected import corrected_rate
from refusal_checks.verdicts.corrected_conditions import corrected_by_condition, summary_line
from refusal_checks.measure.observations import Observations

JUDGE = "substring"


def _observations(cells: dict[tuple[str, str], tuple[int, int]]) -> Observations:
    """(condition, prompt side) -> (judged refused, judged)."""
    records = Observations()
    for (condition, side), (k, n) in cells.items():
        prompts = [f"{condition} {side} {i}" for i in range(n)]
        records.add_judged(fingerprint="fp", condition=condition, prompt_set=f"x/{side}",
                           side=side, prompts=prompts, max_new_tokens=8,
                           judge=[i < k for i in range(n)], score=[False] * n,
                           broken=[None] * n, replies=[f"reply {i}" for i in range(n)])
    return records


def _validation(cells: dict[str, tuple[tuple[int, int], tuple[int, int]]]) -> dict:
    by_condition = {stratum: {"sensitivity": {"k": se[0], "n": se[1]},
                              "specificity": {"k": sp[0], "n": sp[1]}}
                    for stratum, (se, sp) in cells.items()}
    return {"judges": {JUDGE: {"by_condition": by_condition}}}


def test_each_condition_is_corrected_with_its_own_error_rates() -> None:
    records = _observations({("unsteered", "refuse"): (30, 60), ("unsteered", "benign"): (3, 40),
                             ("steered:humanizing@0.35", "refuse"): (10, 24),
                             ("ablated:refusal", "refuse"): (5, 20)})
    validation = _validation({"unsteered": ((18, 20), (19, 20)),
                              "steered:humanizing": ((10, 20), (20, 20))})
    section = corrected_by_condition(records, validation, JUDGE, seed=3)
    rows = section["by_condition"]
    assert set(rows) == {"unsteered", "steered:humanizing", "ablated:refusal"}
    expected = corrected_rate(10, 24, (10, 20), (20, 20), seed=3)
    humanizing = rows["steered:humanizing"]["rates"]["should_not_comply"]
    assert (humanizing["estimate"], humanizing["low"], humanizing["high"]) == \
        (expected.estimate, expected.low, expected.high)
    # a judge that finds half of the refusals: the corrected rate is about twice the judged
    assert humanizing["estimate"] == pytest.approx(2 * 10 / 24)
    assert rows["unsteered"]["rates"]["benign"]["judged"] == [3, 40]
    assert "rates" not in rows["ablated:refusal"] and "no labelled reply" in \
        rows["ablated:refusal"]["note"]
    line = summary_line("m", section)
    assert line is not None and "2 of 3 conditions" in line and "unsteered" in line


def test_a_judge_no_better_than_chance_leaves_the_rates_judged() -> None:
    records = _observations({("unsteered", "refuse"): (5, 10)})
    section = corrected_by_condition(records, _validation({"unsteered": ((5, 10), (4, 10))}),
                                     JUDGE)
    row = section["by_condition"]["unsteered"]
    assert "rates" not in row and "no better than chance" in row["note"]
    assert row["judged"] == {"should_not_comply": [5, 10]}


def test_labels_without_a_refusal_cannot_measure_the_judge() -> None:
    records = _observations({("unsteered", "refuse"): (5, 10)})
    section = corrected_by_condition(records, _validation({"unsteered": ((0, 0), (9, 10))}),
                                     JUDGE)
    assert "both are needed" in section["by_condition"]["unsteered"]["note"]


def test_another_judges_labels_correct_nothing() -> None:
    section = corrected_by_condition(_observations({("unsteered", "refuse"): (1, 2)}),
                                     _validation({"unsteered": ((9, 10), (9, 10))}), "embedding")
    assert section["by_condition"] == {} and "did not measure" in section["note"]


@settings(max_examples=40)
@given(k=st.integers(0, 50), extra=st.integers(0, 50), se=st.integers(11, 20),
       sp=st.integers(11, 20))
def test_a_perfect_or_better_than_chance_judge_keeps_the_estimate_in_the_interval(
        k: int, extra: int, se: int, sp: int) -> None:
    n = k + extra or 1
    records = _observations({("unsteered", "refuse"): (min(k, n), n)})
    section = corrected_by_condition(records, _validation({"unsteered": ((se, 20), (sp, 20))}),
                                     JUDGE)
    rate = section["by_condition"]["unsteered"]["rates"]["should_not_comply"]
    assert 0.0 <= rate["low"] <= rate["estimate"] <= rate["high"] <= 1.0
