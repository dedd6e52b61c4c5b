"""The cost profile: phase bookkeeping, its maths, rendering, and what the model calls note."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.core import cost
from refusal_checks.measure.activations import replies
from refusal_checks.cache.keys import cache_key
from refusal_checks.cache.store import ArrayCache
from refusal_checks.core.cost import CostLedger, PhaseCost, note, phase, render, table_rows
from refusal_checks.measure.effects import kl, scores
from refusal_checks.models.interventions import Ablate
from refusal_checks.prompts.sets import PromptSet
from refusal_checks.cache.resume import part_key
from refusal_checks.models.synthetic import SyntheticBackend


class Clock:
    """A perf_counter that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(cost.time, "perf_counter", fake)
    return fake


def test_nested_phases_count_their_own_seconds_and_the_innermost_gets_the_counts(clock):
    ledger = CostLedger()
    with ledger.phase("outer"):
        clock.now += 1
        note(hits=2)
        with phase("inner"):  # opens on the ledger of the phase around it
            clock.now += 3
            note(computed=1, prompts=8)
        clock.now += 0.5
        with phase("inner"):
            clock.now += 1
            note(replies=4, batches_resumed=1)
    assert ledger.phases["outer"] == PhaseCost(seconds=1.5, hits=2)
    assert ledger.phases["inner"] == PhaseCost(seconds=4, computed=1, prompts=8, replies=4,
                                               batches_resumed=1)
    profile = ledger.profile()
    assert profile["total_seconds"] == 5.5  # the outer phase's wall time, counted once
    assert profile["phases"]["inner"]["share"] == pytest.approx(4 / 5.5, abs=1e-4)
    assert profile["totals"] == {"seconds": 5.5, "hits": 2, "computed": 1,
                                 "batches_resumed": 1, "prompts": 8, "replies": 4,
                                 "prefix_reuses": 0, "prompts_skipped": 0,
                                 "shared_head": 0, "replies_shared": 0}


def test_without_an_open_phase_nothing_is_recorded_and_nothing_fails():
    note(hits=3)
    with phase("alone"):
        note(computed=1)
    assert not cost._open


def test_a_phase_that_raises_is_still_timed_and_closed(clock):
    ledger = CostLedger()
    with pytest.raises(RuntimeError), ledger.phase("fails"):
        clock.now += 2
        note(computed=1)
        raise RuntimeError("model fell over")
    assert ledger.phases["fails"] == PhaseCost(seconds=2, computed=1)
    assert not cost._open


def test_an_unknown_count_is_a_programming_error():
    with CostLedger().phase("x"), pytest.raises(ValueError, match="unknown cost count"):
        note(misses=1)


phase_costs = st.builds(
    PhaseCost, seconds=st.floats(0, 1e4), hits=st.integers(0, 50), computed=st.integers(0, 50),
    batches_resumed=st.integers(0, 5), prompts=st.integers(0, 10_000),
    replies=st.integers(0, 1_000))
ledgers = st.dictionaries(st.text(min_size=1, max_size=12), phase_costs, max_size=12)


@settings(max_examples=200, deadline=None)
@given(ledgers)
def test_shares_sum_to_one_and_totals_are_the_sums(phases):
    profile = CostLedger(dict(phases)).profile()
    shares = [p["share"] for p in profile["phases"].values()]
    assert all(0 <= s <= 1 for s in shares)
    total = sum(c.seconds for c in phases.values())
    if total > 0:
        assert sum(shares) == pytest.approx(1.0, abs=1e-3 + 1e-4 * len(shares))
    else:
        assert sum(shares) == 0
    assert profile["total_seconds"] == pytest.approx(total, abs=1e-3)
    for key in cost.COUNTS:
        assert profile["totals"][key] == sum(getattr(c, key) for c in phases.values())


@settings(max_examples=100, deadline=None)
@given(st.lists(ledgers, min_size=1, max_size=4))
def test_merging_workers_ledgers_adds_them_up(workers):
    # What pytest-xdist workers send (to_dict, through JSON) merges into the controller's.
    merged = CostLedger()
    for phases in workers:
        merged.merge(CostLedger.from_dict(CostLedger(dict(phases)).to_dict()))
    for name in {n for phases in workers for n in phases}:
        parts = [phases[name] for phases in workers if name in phases]
        assert merged.phases[name].computed == sum(p.computed for p in parts)
        assert merged.phases[name].seconds == pytest.approx(sum(p.seconds for p in parts))


def test_rows_put_the_slowest_first_and_fold_small_phases_without_model_work():
    ledger = CostLedger({"activations": PhaseCost(seconds=60, computed=7, prompts=700),
                         "sweep scores": PhaseCost(seconds=30, hits=48),
                         "stats a": PhaseCost(seconds=0.2), "stats b": PhaseCost(seconds=0.1),
                         "tiny cached": PhaseCost(seconds=0.01, hits=1)})
    rows = table_rows(ledger.profile(), min_share=0.01)
    assert [r[0] for r in rows] == ["activations", "sweep scores", "tiny cached",
                                    "2 more under 1% each", "total"]
    assert rows[0][1:] == ["60.0", "66%", "0/7", "0", "700", "0"]
    assert rows[-1][2:4] == ["100%", "49/7"]
    assert len(table_rows(ledger.profile())) == 6  # the HTML report keeps every phase


def test_the_terminal_table_fits_80_columns():
    long_claim = "claim random-direction-does-not-bypass"
    ledger = CostLedger({long_claim: PhaseCost(seconds=1234.5, hits=120, computed=480,
                                               prompts=123456, replies=12345),
                         "activations": PhaseCost(seconds=2.0)})
    text = render({"qwen-coder-0.5b": ledger.profile()}, width=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert long_claim in text and "1234.5" in text and "120/480" in text
    table = text.split("\n\n\n")[0]
    assert "resumed" not in table.replace("resumed:", "")  # only when something resumed
    ledger.phases["activations"].batches_resumed = 3
    resumed = render({"qwen-coder-0.5b": ledger.profile()}, width=80)
    assert max(len(line) for line in resumed.splitlines()) <= 80
    total = next(line for line in resumed.splitlines() if line.strip().startswith("total"))
    assert " resumed " in resumed and total.split()[-3:] == ["3", "123456", "12345"]


# -- what the model calls note -------------------------------------------------------------

def _prompts(n: int) -> PromptSet:
    return PromptSet("alpha/refuse", "alpha", "refuse",
                     tuple(f"alpha request {i}" for i in range(n)), "test")


def test_scores_kl_and_replies_note_hits_computed_prompts_and_replies(tmp_path):
    backend = SyntheticBackend.from_spec("distinct", name="synthetic:distinct")
    backend.plant(["alpha"])
    prompts = _prompts(6)
    cache = ArrayCache(tmp_path, "scores")
    reply_cache = ArrayCache(tmp_path, "replies")
    edit = Ablate(np.ones(backend.d_model), "ones")
    ledger = CostLedger()
    for name in ("cold", "warm"):
        with ledger.phase(name):
            scores(backend, prompts, [0], None, cache)
            kl(backend, prompts, edit, cache)
            replies(backend, prompts, max_new_tokens=4, cache=reply_cache, batch_size=4)
    assert ledger.phases["cold"] == PhaseCost(seconds=ledger.phases["cold"].seconds,
                                              computed=3, prompts=6 + 2 * 6, replies=6)
    assert ledger.phases["warm"] == PhaseCost(seconds=ledger.phases["warm"].seconds, hits=3)


def test_replies_count_the_batches_an_interrupted_run_left(tmp_path):
    backend = SyntheticBackend.from_spec("distinct", name="synthetic:distinct")
    backend.plant(["alpha"])
    prompts = _prompts(10)
    cache = ArrayCache(tmp_path, "replies")
    whole = cache_key(kind="replies", model=backend.fingerprint, dtype=backend.dtype,
                      inputs=backend.input_digest(prompts), prompts=prompts.digest,
                      max_new_tokens=4)
    # A killed run finished the first of three batches (4 + 4 + 2 prompts).
    cache.store_json(part_key(whole, 0, 4), ["left by the killed run"] * 4)
    ledger = CostLedger()
    with ledger.phase("replies"):
        texts = replies(backend, prompts, max_new_tokens=4, cache=cache, batch_size=4)
    assert texts[:4] == ["left by the killed run"] * 4
    got = ledger.phases["replies"]
    assert (got.computed, got.batches_resumed, got.replies) == (1, 1, 6)
