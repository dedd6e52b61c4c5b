"""ablation-lowers-category-refusal as an intersection-union test (issue #26), fed numbers.

Each category's drop gets Tango's paired interval; SUPPORTED needs every measured
category's interval above 0 (and half of the categories measured), REFUTED one category's
Bonferroni interval below 0. The seeded simulations at the end check the rule's error at its
margin, where the percentile bootstrap of the minimum it replaces said REFUTED in 188 of 200
worlds whose every drop was exactly 0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.stats.paired import tango_interval
from refusal_checks.stats.verdict import Outcome
from refusal_checks.verdicts import category_steering as categories

REFUSES = RefusalBehaviour("substring", 80, 88, 1, 16)
AGREE = {"n": 64, "agreement": 1.0}
LEVEL = 0.95


def _pair(before: int, lost: int, gained: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``before`` of ``n`` prompts refused; ablation loses ``lost`` of them and adds
    ``gained`` refusals among the others."""
    base = np.arange(n) < before
    ablated = base.copy()
    ablated[:lost] = False
    ablated[before:before + gained] = True
    return base, ablated


def _judge(per_category):
    return categories.ablation_lowers_category_refusal(per_category, AGREE, REFUSES, LEVEL)


def test_every_category_clearing_zero_is_supported_and_details_carry_each_interval():
    per = {f"c{i}": _pair(16, 12 + (i % 3), 0, 16) for i in range(11)}
    verdict = _judge(per)
    assert verdict.outcome is Outcome.SUPPORTED, verdict.line()
    for name, cell in verdict.details["per_category"].items():
        b = cell["refused_before_not_after"]
        assert cell["drop"] == pytest.approx(b / 16, abs=1e-4)
        assert cell["interval"] == pytest.approx(list(tango_interval(b, 0, 16, LEVEL)), abs=1e-4)
        assert cell["bonferroni_interval"] == pytest.approx(
            list(tango_interval(b, 0, 16, 1 - 0.05 / 11)), abs=1e-4)
        assert cell["status"] == "above"
    # The printed interval: smallest lower end (level), smallest Bonferroni upper end.
    assert verdict.estimate == pytest.approx(12 / 16)
    assert verdict.interval[0] == pytest.approx(tango_interval(12, 0, 16, LEVEL)[0])
    assert verdict.details["iut"]["lower_end_from"] in {"c0", "c3", "c6", "c9"}


def test_one_category_whose_ablation_raises_refusal_refutes_and_is_named():
    per = {f"c{i}": _pair(16, 12, 0, 16) for i in range(10)}
    per["raised"] = _pair(4, 0, 12, 16)  # 4 -> 16 of 16 refused: a drop of -0.75
    verdict = _judge(per)
    assert verdict.outcome is Outcome.REFUTED, verdict.line()
    assert "ablating raised's own direction raises its refusal (-0.75" in verdict.reason
    assert verdict.details["iut"]["below"] == ["raised"]


def test_a_straddling_category_keeps_it_open_and_the_reason_names_it():
    per = {f"c{i}": _pair(16, 12, 0, 16) for i in range(10)}
    per["unsure"] = _pair(8, 2, 1, 16)
    verdict = _judge(per)
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert verdict.reason.startswith("the interval straddles the threshold: 1 of 11 "
                                     "categories straddle 0 (drop [lower, Bonferroni "
                                     "upper]: unsure +0.06 ["), verdict.reason
    assert verdict.details["iut"]["straddles"] == ["unsure"]


@pytest.mark.parametrize(("measured", "outcome"), [(5, Outcome.INCONCLUSIVE),
                                                    (6, Outcome.SUPPORTED)])
def test_supported_needs_half_of_the_categories_measured(measured, outcome):
    per = {f"c{i}": _pair(16 if i < measured else 2, 14 if i < measured else 2, 0, 16)
           for i in range(11)}
    verdict = _judge(per)
    assert verdict.outcome is outcome, verdict.line()
    assert verdict.n == measured
    if outcome is Outcome.INCONCLUSIVE:
        assert f"only {measured} of 11 categories have >= 3 baseline refusals" in verdict.reason


def test_a_refutation_stands_with_few_categories_measured():
    per = {f"c{i}": _pair(2, 0, 0, 16) for i in range(10)}
    per["raised"] = _pair(4, 0, 12, 16)
    assert _judge(per).outcome is Outcome.REFUTED


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(3, 16), st.integers(0, 16), st.integers(0, 16)),
                min_size=1, max_size=11))
def test_the_outcome_is_the_intersection_union_rule(cells):
    per = {}
    for i, (before, lost, gained) in enumerate(cells):
        per[f"c{i}"] = _pair(before, min(lost, before), min(gained, 16 - before), 16)
    verdict = _judge(per)
    rows = verdict.details["per_category"].values()
    every_above = all(r["interval"][0] > 0 for r in rows)
    some_below = any(r["bonferroni_interval"][1] < 0 for r in rows)
    half = len(rows) * 2 >= len(per)
    expected = (Outcome.REFUTED if some_below else
                Outcome.SUPPORTED if every_above and half else Outcome.INCONCLUSIVE)
    assert verdict.outcome is expected, verdict.line()
    assert verdict.interval[0] <= verdict.estimate <= verdict.interval[1]


# -- error at the margin: seeded worlds, numpy only ------------------------------------------

CATEGORIES, PROMPTS, WORLDS = 11, 32, 500
# The union bound allows (1 - LEVEL) / 2 = 2.5% per side; Tango's one-sided error at a
# difference of 0 runs up to 1.5x nominal where nearly all pairs are discordant
# (test_paired.py), so each rate must stay within 2.5% + 3 binomial sd of 500 worlds (~4.6%),
# below the 5% goal.
BOUND = 0.025 + 3 * math.sqrt(0.025 * 0.975 / WORLDS)


def _world(rng: np.random.Generator, drops: list[float | None]):
    """Refused at a rate of 0.5 unedited; under ablation redrawn independently at
    ``0.5 - drop`` (the most discordant pairs a rate of 0.5 allows), or ``None``: ablation
    keeps a tenth of the refusals (a clear drop of ~0.45)."""
    per = {}
    for i, drop in enumerate(drops):
        base = rng.random(PROMPTS) < 0.5
        ablated = (base & (rng.random(PROMPTS) < 0.1) if drop is None
                   else rng.random(PROMPTS) < 0.5 - drop)
        per[f"c{i}"] = (base, ablated)
    return per


def _rates(drops: list[float | None], seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    outcomes = [_judge(_world(rng, drops)).outcome for _ in range(WORLDS)]
    return {o.value: outcomes.count(o) / WORLDS for o in Outcome}


def test_every_drop_exactly_zero_is_rarely_refuted():
    """Issue #26's world (11 x 32, every drop 0): the bootstrap of the minimum said
    REFUTED in 94% of such worlds; each category's Bonferroni interval keeps it near 2%."""
    rates = _rates([0.0] * CATEGORIES, seed=26)
    assert rates["refuted"] <= BOUND and rates["supported"] <= BOUND, rates


def test_every_drop_just_above_zero_is_rarely_refuted():
    rates = _rates([0.02] * CATEGORIES, seed=27)
    assert rates["refuted"] <= BOUND, rates


def test_one_drop_just_below_zero_is_rarely_supported():
    rates = _rates([-0.02] + [None] * (CATEGORIES - 1), seed=28)
    assert rates["supported"] <= BOUND, rates


def test_clear_drops_everywhere_are_supported():
    rates = _rates([None] * CATEGORIES, seed=29)
    assert rates["supported"] >= 0.95, rates
