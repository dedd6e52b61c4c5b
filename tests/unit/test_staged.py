"""Staged probes (refusal_checks.measure.staged): nested stages, error spending, when looks stop."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.verdicts import staged_claims

from refusal_checks.measure import staged
from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.prompts.sets import PromptSet
from refusal_checks.stats.decisions import STRADDLES, above
from refusal_checks.stats.verdict import Outcome, Verdict

REFUSES = RefusalBehaviour("substring", 80, 88, 1, 16)
NEVER = RefusalBehaviour("substring", 2, 88, 1, 16)


def _set(name: str, n: int, side: str = "refuse") -> PromptSet:
    return PromptSet(f"{name}/{side}", name, side, tuple(f"{name} prompt {i}" for i in range(n)),
                     "test", tuple(f"genre {i % 3}" for i in range(n)))


def _probe(per_category: int = 32, categories: int = 4, first: int = 8, benign: int = 0,
           first_benign: int = 32) -> staged.StagedProbe:
    return staged.StagedProbe.build(
        {f"c{i}": _set(f"c{i}", per_category) for i in range(categories)},
        _set("benign", benign, "benign") if benign else None, first, first_benign)


@given(first=st.integers(1, 64), available=st.integers(1, 200), stages=st.integers(1, 5))
def test_a_plan_grows_strictly_from_the_fixed_size_and_never_past_the_held_out_half(
        first, available, stages):
    sizes = staged.plan(first, available, stages=stages)
    assert sizes[0] == min(first, available)
    assert all(a < b for a, b in zip(sizes, sizes[1:]))
    assert sizes[-1] <= available and len(sizes) <= stages
    assert len(sizes) == stages or sizes[-1] == available  # stops only at a cap


@given(n=st.integers(1, 80), first=st.integers(1, 40))
def test_stages_are_nested_prefixes_of_the_stratified_order(n, first):
    prompts = _set("c", n)
    parts = staged.increments(prompts, staged.plan(first, n))
    seen: set[str] = set()
    for size, part in zip(staged.plan(first, n), parts):
        assert not seen & set(part.texts)  # an increment adds only new prompts
        seen |= set(part.texts)
        assert seen == set(prompts.head(size).texts)  # stage k is head(s_k)
    assert parts[0].digest == prompts.head(min(first, n)).digest  # stage 1 = fixed probe


@given(base=st.floats(0.5, 0.999), looks=st.integers(1, 10))
def test_the_per_look_errors_add_up_to_at_most_the_fixed_designs(base, looks):
    levels = staged.look_levels(base, looks)
    assert len(levels) == looks
    assert sum(1.0 - level for level in levels) <= (1.0 - base) + 1e-12
    assert all(base <= level < 1.0 for level in levels)
    if looks == 1:
        assert levels[0] == pytest.approx(base)


def _verdict(outcome: Outcome, reason: str = STRADDLES, n: int = 10) -> Verdict:
    return Verdict("rate", 0.5, (0.4, 0.6), 0.5, ">", n, outcome, reason)


@given(outcomes=st.lists(st.sampled_from(list(Outcome)), min_size=3, max_size=3),
       budget=st.one_of(st.none(), st.integers(1, 300)))
@settings(max_examples=60)
def test_looks_stop_at_the_first_decision_and_never_pass_the_budget(outcomes, budget):
    probe = _probe()
    seen: list[tuple[int, float]] = []

    def look(stage: int, level: float) -> Verdict:
        seen.append((stage, level))
        return _verdict(outcomes[stage - 1])

    result = staged.run(look, probe, budget=budget)
    allowed = staged.allowed_stages(probe, budget)
    info = result.details["staged"]
    assert [s for s, _ in seen] == list(range(1, len(seen) + 1))  # in order, none skipped
    assert len({level for _, level in seen}) == 1
    # The level is the plan's, whatever the budget: a smaller budget buys no wider level.
    assert seen[0][1] == pytest.approx(1 - 0.05 / probe.stages)
    first_decided = next((i + 1 for i, o in enumerate(outcomes) if o is not Outcome.INCONCLUSIVE),
                         None)
    assert len(seen) == min(first_decided or allowed, allowed)
    assert result.outcome is outcomes[len(seen) - 1]
    assert info["stage"] == len(seen) and info["stages"] == allowed
    assert f"stage {len(seen)} of {allowed}" in result.reason
    if budget is not None and len(seen) > 1:
        assert probe.sizes(len(seen))["prompts"] <= budget
    if info["stopped"] == "budget":
        assert "--refusal-budget" in result.reason and allowed < probe.stages


def test_a_larger_budget_never_allows_fewer_looks():
    probe = _probe()
    allowed = [staged.allowed_stages(probe, b) for b in range(1, 200)]
    assert allowed == sorted(allowed) and allowed[0] == 1 and allowed[-1] == 3
    assert staged.allowed_stages(probe, None) == 3


def test_only_reasons_more_prompts_can_settle_keep_a_probe_growing():
    assert staged.open_for_more(_verdict(Outcome.INCONCLUSIVE))
    assert staged.open_for_more(_verdict(Outcome.INCONCLUSIVE, "only n=5 observations, need >= 8"))
    missing = _verdict(Outcome.INCONCLUSIVE, "no measurable refusal: the model refused 2/88")
    assert not staged.open_for_more(missing)
    assert staged.open_for_more(missing, lambda v: True)  # what a claim names as fixable
    assert not staged.open_for_more(_verdict(Outcome.SUPPORTED))
    # Through stats.verdict: a failed requirement stops, a straddling interval grows.
    stopped = above("rate", 0.5, (0.3, 0.7), 0.5, n=20, requires=[(False, "never refuses")])
    assert not staged.open_for_more(stopped)
    assert staged.open_for_more(above("rate", 0.5, (0.3, 0.7), 0.5, n=20))


def test_a_requirement_off_the_probe_gets_one_look_at_the_fixed_level():
    seen = []

    def look(stage, level):
        seen.append(level)
        return _verdict(Outcome.INCONCLUSIVE)

    result = staged.run(look, _probe(), can_grow=False)
    assert seen == [0.95] and result.details["staged"]["stages"] == 1


def test_labels_name_the_stage_sizes():
    probe = _probe(benign=64)
    assert probe.label(2) == "n=16/cat, 64 benign"
    assert probe.only([]).label(1) == "n=32 benign"
    assert probe.sizes(3) == {"per_category": 32, "benign": 64, "prompts": 192}


class _Bernoulli:
    """A world where every baseline refusal survives ablation with probability ``kept``:
    refused? per prompt is a fixed coin of (world, prompt text, edit), so stages share it."""

    judge_name = "planted"

    def __init__(self, world: int, kept: float) -> None:
        self.world, self.kept = world, kept

    def refused(self, prompts: PromptSet, intervention=None) -> np.ndarray:
        if intervention is None:
            return np.ones(len(prompts), bool)
        draws = [int.from_bytes(hashlib.sha256(f"{self.world}|{t}".encode()).digest()[:8], "big")
                 / 2.0 ** 64 for t in prompts.texts]
        return np.array(draws) < self.kept


WORLDS = 2000


def test_staged_false_supported_stays_at_the_fixed_designs_level_in_a_boundary_world():
    # Kept refusal exactly 0.5 (the claim's threshold), 4 categories x 8 -> 16 -> 32 prompts:
    # three looks at 98.3% Wilson intervals. The union bound gives at most 0.025 false
    # SUPPORTED (one side of 0.05). Over 2000 worlds the binomial sd of the observed rate at
    # 0.025 is sqrt(0.025 * 0.975 / 2000) = 0.0035, so 0.025 + 3 sd = 0.0355 is exceeded
    # with chance ~0.1% if the rule holds, and stays well under the 5% goal.
    probe, direction = _probe(first=8), np.ones(4)
    outcomes, stages = [], []
    for world in range(WORLDS):
        verdict = staged_claims.ablation_bypasses_refusal(_Bernoulli(world, 0.5), probe,
                                                          direction, REFUSES)
        outcomes.append(verdict.outcome)
        stages.append(verdict.details["staged"]["stage"])
    tolerance = 3 * math.sqrt(0.025 * 0.975 / WORLDS)
    assert outcomes.count(Outcome.SUPPORTED) / WORLDS <= 0.025 + tolerance
    assert outcomes.count(Outcome.REFUTED) / WORLDS <= 0.025 + tolerance
    assert max(stages) == 3 and stages.count(3) > WORLDS / 2  # the boundary keeps growing


def test_a_clear_world_stops_at_stage_one_and_a_model_that_never_refuses_never_grows():
    probe = _probe(first=8)
    clear = staged_claims.ablation_bypasses_refusal(_Bernoulli(1, 0.02), probe, np.ones(4),
                                                    REFUSES)
    assert clear.outcome is Outcome.SUPPORTED and clear.details["staged"]["stage"] == 1
    never = staged_claims.ablation_bypasses_refusal(_Bernoulli(1, 0.5), probe, np.ones(4),
                                                    NEVER)
    assert never.outcome is Outcome.INCONCLUSIVE and never.details["staged"]["stages"] == 1


def test_a_smaller_budget_never_widens_the_level_of_a_look():
    probe = _probe()

    def level_with(budget):
        levels = []
        staged.run(lambda stage, level: levels.append(level) or _verdict(Outcome.INCONCLUSIVE),
                   probe, budget=budget)
        return set(levels)

    assert probe.stages > 1
    (small,), (unlimited,) = level_with(1), level_with(None)
    assert small == unlimited == pytest.approx(1 - 0.05 / probe.stages)
