"""Cross-ablation (refusal_checks/measure/cross_ablation.py): the selectivity statistic on planted
matrices and planted worlds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.calibration.behaviour import judge_behaviour_world
from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.measure.cross_ablation import CrossAblation, selectivity
from refusal_checks.verdicts.cross_ablation import SELECTIVE_MARGIN, ablation_is_category_selective

AGREE = {"agreement": 1.0, "n": 64}
SELECTIVE = "ablation-is-category-selective"
PAPER = "ablation-is-category-selective-paper-design"
REFUSES = RefusalBehaviour("substring", refused=60, n=64, benign_refused=0, benign_n=32)

matrices = st.integers(2, 7).flatmap(lambda k: st.lists(
    st.lists(st.floats(-1, 1), min_size=k, max_size=k), min_size=k, max_size=k))


@settings(max_examples=80, deadline=None)
@given(matrices, st.floats(-1, 1))
def test_selectivity_ignores_a_drop_shared_by_every_cell(rows: list[list[float]],
                                                         shift: float) -> None:
    drops = np.array(rows)
    keep = np.ones(len(drops), bool)
    # Float sums of k <= 7 values of size <= 2: rounding stays far below 1e-9.
    assert selectivity(drops + shift, keep) == pytest.approx(selectivity(drops, keep),
                                                             abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(matrices, st.randoms())
def test_selectivity_follows_a_relabelling_of_the_categories(rows: list[list[float]],
                                                              random) -> None:
    drops = np.array(rows)
    order = list(range(len(drops)))
    random.shuffle(order)
    keep = np.ones(len(drops), bool)
    assert selectivity(drops[np.ix_(order, order)], keep) == pytest.approx(
        selectivity(drops, keep), abs=1e-9)


def test_a_diagonal_drop_is_selective_and_a_row_drop_is_not() -> None:
    keep = np.ones(4, bool)
    assert selectivity(np.eye(4) * 0.8, keep) == pytest.approx(0.8)
    assert selectivity(np.full((4, 4), 0.8), keep) == pytest.approx(0.0)
    # Left-out categories are neither rows nor columns.
    drops = np.eye(4) * 0.8
    drops[3, :] = 5.0
    drops[:, 3] = 5.0
    assert selectivity(drops, np.array([True, True, True, False])) == pytest.approx(0.8)


def _matrix(k: int, n: int, own: float, other: float, seed: int = 0) -> CrossAblation:
    """Baseline: every probe refused; ablating i keeps each of j's refusals with
    probability 1 - own (j == i) or 1 - other (j != i); one random control keeps them."""
    rng = np.random.default_rng(seed)
    refused = []
    for j in range(k):
        rows = [np.ones(n, bool)]
        rows += [rng.random(n) >= (own if i == j else other) for i in range(k)]
        rows.append(np.ones(n, bool))
        refused.append(np.array(rows))
    return CrossAblation([f"c{i}" for i in range(k)], refused, 1)


def test_verdicts_on_planted_matrices_and_the_reading() -> None:
    selective = ablation_is_category_selective(_matrix(6, 8, 1.0, 0.0), AGREE, REFUSES, 0)
    assert selective.outcome.value == "supported"
    assert selective.details["reading"].startswith("selective")
    assert np.array(selective.details["ablated_rates"]).shape == (6, 6)
    shared = ablation_is_category_selective(_matrix(6, 8, 1.0, 1.0), AGREE, REFUSES, 0)
    assert shared.outcome.value == "refuted"
    assert shared.details["reading"].startswith("shared")
    nothing = ablation_is_category_selective(_matrix(6, 8, 0.0, 0.0), AGREE, REFUSES, 0)
    assert nothing.outcome.value == "refuted"
    assert nothing.details["reading"].startswith("no specific effect")


def test_requirements_give_inconclusive_with_the_reason() -> None:
    weak = ablation_is_category_selective(_matrix(6, 8, 1.0, 0.0),
                                          {"agreement": 0.5, "n": 64}, REFUSES, 0)
    assert weak.outcome.value == "inconclusive" and "agrees with the judge" in weak.reason
    never = RefusalBehaviour("substring", refused=0, n=64, benign_refused=0, benign_n=32)
    assert ablation_is_category_selective(_matrix(6, 8, 1.0, 0.0), AGREE, never,
                                          0).outcome.value == "inconclusive"
    one = _matrix(3, 8, 1.0, 0.0)
    for j in (1, 2):  # only one category refuses at baseline
        one.refused[j][0] = False
    verdict = ablation_is_category_selective(one, AGREE, REFUSES, 0)
    assert verdict.outcome.value == "inconclusive" and "only 1 categories" in verdict.reason
    assert SELECTIVE_MARGIN == 0.25


@pytest.mark.parametrize(("scenario", "claim", "supported"), [
    ("one-direction", SELECTIVE, False), ("orthogonal-directions", SELECTIVE, True),
    ("distinct-directions", SELECTIVE, True), ("distinct-directions-genre", SELECTIVE, True),
    # The genre world: the paper's directions read selective, the claim does not.
    ("one-direction-genre", SELECTIVE, False), ("one-direction-genre", PAPER, True),
    ("twin-mismatch", SELECTIVE, False),
])
def test_quick_calibration_subset(scenario: str, claim: str, supported: bool) -> None:
    """Three worlds of each (calibration/README.md has 200 each)."""
    for seed in (1, 2, 3):
        outcome, estimate = judge_behaviour_world(scenario, seed, [claim])[claim]
        assert (outcome == "supported") == supported, (scenario, seed, outcome, estimate)


def test_a_worlds_truth_is_measured_as_the_claim_measures_it() -> None:
    """calibration/run.py --against-truth: each selective claim's staged verdict, and the same
    outcome filed under the side of the margin its world's own truth lies on."""
    from refusal_checks.calibration import selectivity as against_truth

    judged = against_truth.judge_against_truth("one-direction-genre", 1)
    assert set(judged) == {SELECTIVE, PAPER, SELECTIVE + against_truth.BELOW,
                           PAPER + against_truth.ABOVE}
    assert judged[SELECTIVE][0] == "refuted" and judged[PAPER][0] == "supported"
    # One direction: genre-matched directions remove every category's refusal alike (truth
    # ~0); the paper's carry genre and are selective in truth too (~0.55).
    assert abs(judged[SELECTIVE + against_truth.BELOW][1]) < 0.05
    assert judged[PAPER + against_truth.ABOVE][1] > 0.4
