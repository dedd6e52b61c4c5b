"""One generation at the longest budget serves every shorter one, on the tiny Llama.

A ``b``-token reply cut from a ``B``-token generation (``reply_tokens`` of ``generate``,
then ``reply_text(rows, b)``) must be the text ``generate(prompts, b)`` returns for the same
batch, unedited and under an edit, also when a reply ends early (an end token made
frequent on purpose). Exact equality holds on any machine: both sides run the same
batch through the same arithmetic and greedy steps ``< b`` never see ``max_new_tokens``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from refusal_checks.cache.store import ArrayCache
from refusal_checks.measure.activations import replies
from refusal_checks.measure.shared_replies import ReplyPlan, SharedStats, shared_replies, token_key
from refusal_checks.models.interventions import Steer
from refusal_checks.prompts.sets import PromptSet

from .tiny import D_MODEL, PROMPTS

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

LONG = 9


def prompt_set() -> PromptSet:
    return PromptSet("tiny/refuse", "tiny", "refuse", tuple(PROMPTS), "test")


def edit(which: str) -> Any:
    if which == "unsteered":
        return None
    return Steer(2, 4.0 * np.random.default_rng(3).normal(size=D_MODEL), strength=4.0,
                 label="s")


def long_rows(backend: Any, prompts: PromptSet, intervention: Any, batch_size: int) -> list:
    got: dict = {}  # by text: generate batches prompts of like length together
    extra = {} if intervention is None else {"intervention": intervention}
    backend.generate(prompts, LONG, batch_size=batch_size,
                     reply_tokens=lambda texts, new: got.update(zip(texts, new)), **extra)
    return [got[text] for text in prompts.texts if text in got]


@pytest.fixture(params=["unsteered", "steered"])
def early_end(request: Any, tiny_backend: Any) -> Any:
    """(backend, edit) with the tiny model's end token replaced by a token it writes
    mid-reply under that edit, so replies end early (the plain path stops there and pads;
    the edited path runs on and is cut)."""
    config = tiny_backend.model.generation_config
    before = config.eos_token_id
    intervention = edit(request.param)
    rows = long_rows(tiny_backend, prompt_set(), intervention, 4)
    # A token some row writes after its first step and before its last.
    middle = [t for row in rows for t in row[1:-1]]
    config.eos_token_id = int(max(set(middle), key=middle.count))
    yield tiny_backend, intervention
    config.eos_token_id = before


def check_prefixes(backend: Any, intervention: Any, batch_size: int) -> int:
    prompts = prompt_set()
    extra = {} if intervention is None else {"intervention": intervention}
    rows = long_rows(backend, prompts, intervention, batch_size)
    assert len(rows) == len(prompts)
    for budget in range(1, LONG + 1):
        alone = backend.generate(prompts, budget, batch_size=batch_size, **extra)
        assert backend.reply_text(rows, budget) == alone, budget
    return sum(any(t in backend.stop_tokens() for t in row) for row in rows)


@pytest.mark.parametrize("which", ["unsteered", "steered"])
@pytest.mark.parametrize("batch_size", [2, 4])
def test_a_shorter_reply_is_the_prefix_of_the_longer_one(tiny_backend: Any, which: str,
                                                         batch_size: int) -> None:
    check_prefixes(tiny_backend, edit(which), batch_size)


def test_the_prefix_holds_when_replies_end_early(early_end: Any) -> None:
    ended = check_prefixes(*early_end, 4)
    assert ended >= 1  # the case under test happened


def test_shared_replies_serve_a_shorter_reader_from_the_cache(tiny_backend: Any,
                                                              tmp_path: Any) -> None:
    cache = ArrayCache(tmp_path, "replies")
    prompts = prompt_set()
    first = SharedStats()
    long = shared_replies(tiny_backend, prompts, max_new_tokens=LONG, cache=cache,
                          batch_size=4, stats=first)
    assert (first.generated, first.served) == (4, 0)
    assert long == tiny_backend.generate(prompts, LONG, batch_size=4)
    again = SharedStats()
    short = shared_replies(tiny_backend, prompts, max_new_tokens=3, cache=cache,
                           batch_size=4, stats=again)
    assert (again.generated, again.served) == (0, 4)
    assert short == tiny_backend.generate(prompts, 3, batch_size=4)
    # A longer reader than any stored reply generates again and keeps the longer entry.
    longer = SharedStats()
    shared_replies(tiny_backend, prompts, max_new_tokens=LONG + 2, cache=cache,
                   batch_size=4, stats=longer)
    assert longer.generated == 4
    entry = cache.load_json(token_key(tiny_backend, PROMPTS[0], None))
    assert entry["budget"] == LONG + 2
    # A shorter generation never replaces it.
    plan_free = SharedStats()
    shared_replies(tiny_backend, prompts, max_new_tokens=2, cache=cache, batch_size=4,
                   stats=plan_free)
    assert plan_free.served == 4
    assert cache.load_json(token_key(tiny_backend, PROMPTS[0], None))["budget"] == LONG + 2


def test_an_edit_never_serves_another_edit_or_the_unedited_model(tiny_backend: Any,
                                                                 tmp_path: Any) -> None:
    cache = ArrayCache(tmp_path, "replies")
    prompts = prompt_set()
    shared_replies(tiny_backend, prompts, max_new_tokens=LONG, cache=cache, batch_size=4)
    stats = SharedStats()
    steered = shared_replies(tiny_backend, prompts, max_new_tokens=3, cache=cache,
                             intervention=edit("steered"), batch_size=4, stats=stats)
    assert stats.generated == 4 and stats.served == 0
    assert steered == tiny_backend.generate(prompts, 3, intervention=edit("steered"),
                                            batch_size=4)


def test_a_plan_generates_once_at_the_longest_budget(tiny_backend: Any, tmp_path: Any) -> None:
    cache = ArrayCache(tmp_path, "replies")
    prompts = prompt_set()
    plan = ReplyPlan()
    plan.add(PROMPTS[:2], LONG)
    short = replies(tiny_backend, prompts, max_new_tokens=3, cache=cache, batch_size=4,
                    plan=plan)
    # The planned prompts were generated at LONG in their own batch, the others at 3.
    assert cache.load_json(token_key(tiny_backend, PROMPTS[0], None))["budget"] == LONG
    assert cache.load_json(token_key(tiny_backend, PROMPTS[3], None))["budget"] == 3
    head = PromptSet("tiny/head", "tiny", "refuse", tuple(PROMPTS[:2]), "test")
    tail = PromptSet("tiny/tail", "tiny", "refuse", tuple(PROMPTS[2:]), "test")
    assert short == (tiny_backend.generate(head, 3, batch_size=4)
                     + tiny_backend.generate(tail, 3, batch_size=4))
    stats = SharedStats()
    long = shared_replies(tiny_backend, head, max_new_tokens=LONG, cache=cache,
                          batch_size=4, stats=stats)
    assert stats.served == 2 and stats.generated == 0
    assert long == tiny_backend.generate(head, LONG, batch_size=4)


def test_first_step_rows_of_served_prompts_are_forwarded_alone(tiny_backend: Any) -> None:
    from refusal_checks.measure.effects import FirstStep

    prompts = prompt_set()
    first = FirstStep()
    tiny_backend.generate(PromptSet("tiny/head", "tiny", "refuse", tuple(PROMPTS[:2]), "t"),
                          3, batch_size=4, first_logprobs=first)
    kept = {t: first.rows[t].copy() for t in PROMPTS[:2]}
    assert first.of(prompts) is None
    rows = first.completed(tiny_backend, prompts, None, batch_size=4)
    assert rows is not None and rows.shape[0] == len(PROMPTS)
    for i, text in enumerate(PROMPTS[:2]):  # the generation's rows, untouched
        assert np.array_equal(rows[i], kept[text])
    rest = PromptSet("tiny/rest", "tiny", "refuse", tuple(PROMPTS[2:]), "t")
    assert np.array_equal(rows[2:], tiny_backend.last_logprobs(rest, batch_size=4))
    # Nothing generated here: nothing to complete (the score comes from its own cache).
    assert FirstStep().completed(tiny_backend, prompts, None) is None


class Killed(BaseException):
    """The run ends here, like a KeyboardInterrupt."""


class DiesAfter:
    """The tiny backend, killed after ``batches`` generated batches; counts prompts."""

    def __init__(self, inner: Any, batches: int | None) -> None:
        self.inner, self.left, self.prompts = inner, batches, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def generate(self, prompts: PromptSet, max_new_tokens: int, **kw: Any) -> list[str]:
        if self.left is not None and self.left <= 0:
            raise Killed("killed")
        if self.left is not None:
            self.left -= 1
        self.prompts += len(prompts)
        return self.inner.generate(prompts, max_new_tokens, **kw)


def test_an_interrupted_run_keeps_the_batches_it_finished(tiny_backend: Any,
                                                          tmp_path: Any) -> None:
    cache = ArrayCache(tmp_path, "replies")
    prompts = prompt_set()
    first = DiesAfter(tiny_backend, 1)
    with pytest.raises(Killed):
        replies(first, prompts, max_new_tokens=4, cache=cache, batch_size=2)
    second = DiesAfter(tiny_backend, None)
    texts = replies(second, prompts, max_new_tokens=4, cache=cache, batch_size=2)
    assert (first.prompts, second.prompts) == (2, 2)
    assert texts == tiny_backend.generate(prompts, 4, batch_size=2)
    third = DiesAfter(tiny_backend, 0)  # the whole entry now: no generation at all
    assert replies(third, prompts, max_new_tokens=4, cache=cache, batch_size=2) == texts
