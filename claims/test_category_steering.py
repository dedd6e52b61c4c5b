"""Joad et al. 2026: steering along any category direction is one shared knob, and
ablating a category's direction lowers that category's refusal (PAPER.md A.3, A.5).

Sweeps use the cheap refusal score (one forward pass per prompt), which stands in for
judged generations only where it agrees with them: the agreement is measured on the
unsteered probes and is a precondition of the verdict. Thresholds and verdicts live in
refusal_checks/behaviour_claims.py (shared with calibration/run.py).
"""

import pytest

from refusal_checks import behaviour_claims as claims
from refusal_checks import cross_ablation
from refusal_checks.interventions import Ablate


# What produced these verdicts, shown beside each one in the reports.
CATEGORY_DIRECTIONS = ("Joad et al.: category directions at the fixed mid layer, position -2; "
                       "cheap first-token score")


@pytest.mark.claim("shared-knob", protocol=CATEGORY_DIRECTIONS,
                   paper="PAPER.md A.3 (judged by eye in the paper)",
                   says="Steering along any category direction traces the same "
                        "refusal vs over-refusal trade-off.")
def test_every_category_direction_is_the_same_refusal_knob(
        knob_sweep, score_agreement, refusal_behaviour, pytestconfig, judge):
    judge(claims.shared_knob(knob_sweep, score_agreement, refusal_behaviour,
                             pytestconfig.getoption("--refusal-seed")))


@pytest.mark.claim("ablation-lowers-category-refusal", protocol=CATEGORY_DIRECTIONS,
                   paper="PAPER.md A.5",
                   says="Ablating a category's direction lowers refusal on that category "
                        "(partially: some categories keep refusing).")
def test_ablating_each_category_direction_lowers_its_refusal(
        measure, probe, train_directions, refusal_behaviour, score_agreement, pytestconfig,
        judge):
    per_category = {
        name: (measure.score(probe.harmful[name]) > 0,
               measure.score(probe.harmful[name], Ablate(direction, name)) > 0)
        for name, direction in train_directions.items()}
    judge(claims.ablation_lowers_category_refusal(per_category, score_agreement,
                                                  refusal_behaviour,
                                                  pytestconfig.getoption("--refusal-seed")))


@pytest.mark.claim("ablation-is-category-selective", protocol=CATEGORY_DIRECTIONS,
                   paper="ours; PAPER.md A.5 leaves it open",
                   says="Ablating a category's direction removes that category's refusal "
                        "more than the other categories' (k x k cross-ablation).")
def test_ablating_a_category_direction_is_selective(measure, probe, train_directions,
                                                    refusal_behaviour, score_agreement,
                                                    pytestconfig, judge):
    # The diagonal repeats ablation-lowers-category-refusal's scores (same cache entries);
    # margin 0.25 (SELECTIVE_MARGIN): about half of the paper's weakest own-direction drop
    # must be specific to the category. The opposite reading ("shared") is in the details.
    seed = pytestconfig.getoption("--refusal-seed")
    matrix = cross_ablation.measure_cross_ablation(measure.score, probe.harmful,
                                                   train_directions, seed)
    judge(cross_ablation.ablation_is_category_selective(
        matrix, score_agreement, refusal_behaviour, seed,
        margin=cross_ablation.SELECTIVE_MARGIN))
