"""Cutting a generated reply to a shorter budget, in tokens (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from refusal_checks.measure.shared_replies import ReplyPlan
from refusal_checks.models.reply_tokens import cut, serves, stopped, trim

STOP = frozenset({0, 1})
rows = st.lists(st.integers(0, 9), max_size=24)


def generate(tokens: list[int], budget: int) -> list[int]:
    """What a greedy ``budget``-token generation shows when the model's token stream is
    ``tokens``: stop at the first end token or at the budget."""
    shown = []
    for token in tokens[:budget]:
        if token in STOP:
            break
        shown.append(token)
    return shown


@given(rows, st.integers(1, 30), st.integers(1, 30))
def test_a_served_cut_is_the_shorter_generation(stream: list[int], longer: int,
                                                budget: int) -> None:
    row = trim(stream[:longer], STOP)  # what the longer generation stored
    if serves(row, longer, budget, STOP):
        assert cut(row, budget, STOP) == generate(stream, budget)
    else:  # not served: the longer generation ran out before the budget, unfinished
        assert budget > longer and not stopped(row, STOP)


@given(rows)
def test_trim_keeps_the_end_token_and_nothing_after(stream: list[int]) -> None:
    row = trim(stream, STOP)
    assert stream[:len(row)] == row
    assert sum(t in STOP for t in row) == (1 if stopped(stream, STOP) else 0)
    if row and stopped(stream, STOP):
        assert row[-1] in STOP


def test_a_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        serves([], 4, 0, STOP)
    with pytest.raises(ValueError, match="positive"):
        ReplyPlan().add(["x"], 0)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 64)), max_size=12),
       st.integers(1, 64))
def test_a_plan_holds_the_longest_budget_asked(adds: list[tuple[str, int]], asked: int) -> None:
    plan = ReplyPlan()
    for text, budget in adds:
        plan.add([text], budget)
    for text in "abc":
        wanted = [b for t, b in adds if t == text]
        assert plan.budget(text, None, asked) == max([asked, *wanted])


def test_the_plan_reads_the_fixtures_of_the_tests_selected_on_that_model() -> None:
    from types import SimpleNamespace

    from fixtures.behaviour import _selected_fixtures

    def item(model: str, *names: str) -> SimpleNamespace:
        return SimpleNamespace(callspec=SimpleNamespace(params={"model_name": model}),
                               fixturenames=list(names))

    session = SimpleNamespace(items=[item("a", "refusal_behaviour", "measure"),
                                     item("b", "score_agreement"),
                                     SimpleNamespace(fixturenames=["oracle_inputs"])])
    assert _selected_fixtures(session, "a") == {"refusal_behaviour", "measure"}
    assert _selected_fixtures(session, "b") == {"score_agreement"}
    assert _selected_fixtures(session, "c") == set()


def test_a_plan_keys_edits_by_their_content_and_answers_an_unplanned_edit() -> None:
    """A steered or ablated reader asks the plan too (the style strength search, the sweep's
    judged replies); an intervention's key is a dict, so the plan keys it by its JSON."""
    import numpy as np

    from refusal_checks.models.interventions import Ablate, Steer

    steer = Steer(3, np.ones(4))
    plan = ReplyPlan()
    plan.add(["a"], 32, steer)
    assert plan.budget("a", Steer(3, np.ones(4)), 16) == 32  # the same edit, rebuilt
    assert plan.budget("a", Steer(3, 2 * np.ones(4)), 16) == 16  # another strength
    assert plan.budget("a", Ablate(np.ones(4)), 24) == 24
    assert plan.budget("a", None, 8) == 8
