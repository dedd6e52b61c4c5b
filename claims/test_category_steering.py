"""Joad et al. 2026: steering along any category direction is one shared knob, and
ablating a category's direction lowers that category's refusal (PAPER.md A.3, A.5).

Sweeps use the cheap refusal score (one forward pass per prompt), which stands in for
judged generations only where it agrees with them: the agreement on the unsteered probes is
required, and shared-knob also checks it on the steered replies the run judged (each
direction's own where judged, the other steered conditions pooled for the rest). The
held-out probes are staged (refusal_checks/measure/staged.py): 8 prompts per category and 32
benign first, growing only while a verdict's interval straddles its threshold, up to
--refusal-budget prompts.
Thresholds and verdicts live in refusal_checks/verdicts/category_steering.py (shared with
calibration/run.py); the staged looks in refusal_checks/verdicts/staged_claims.py.
ablation-is-category-selective is decided with genre-matched directions; the paper's
general-pool directions' selectivity is reported as ablation-is-category-selective-paper-design.
"""

import pytest

from refusal_checks.verdicts import staged_claims as staged
from refusal_checks.measure.staged import PROTOCOL as STAGED

# What produced these verdicts, shown beside each one in the reports.
CATEGORY_DIRECTIONS = ("Joad et al.: category directions at the fixed mid layer, position -2; "
                       f"cheap first-token score; {STAGED}")


@pytest.mark.claim("shared-knob", protocol=CATEGORY_DIRECTIONS,
                   paper="PAPER.md A.3 (judged by eye in the paper)",
                   says="Steering along any category direction traces the same "
                        "refusal vs over-refusal trade-off.")
def test_every_category_direction_is_the_same_refusal_knob(
        knob_sweep, staged_probe, harmful_categories, sweep_score_agreement, refusal_behaviour,
        refusal_budget, pytestconfig, judge):
    # The score's agreement with the judge: unsteered (required) and under steering where
    # the run judged steered replies (a precondition; details.score_agreement_used).
    judge(staged.shared_knob(knob_sweep, staged_probe, harmful_categories,
                             sweep_score_agreement, refusal_behaviour,
                             pytestconfig.getoption("--refusal-seed"), budget=refusal_budget))


@pytest.mark.claim("ablation-lowers-category-refusal", protocol=CATEGORY_DIRECTIONS,
                   paper="PAPER.md A.5",
                   says="Ablating a category's direction lowers refusal on that category "
                        "(partially: some categories keep refusing).")
def test_ablating_each_category_direction_lowers_its_refusal(
        measure, staged_probe, train_directions, refusal_behaviour, score_agreement,
        refusal_budget, judge):
    # Every category's drop must exceed 0 (DROP_MARGIN: "partially" counts any drop): an
    # intersection-union test over Tango's paired intervals, one per category; SUPPORTED
    # also needs half of the categories refused often enough at baseline to be tested.
    judge(staged.ablation_lowers_category_refusal(
        measure, staged_probe, train_directions, score_agreement, refusal_behaviour,
        budget=refusal_budget))


@pytest.mark.claim("ablation-is-category-selective",
                   protocol=f"{CATEGORY_DIRECTIONS}; decided with genre-matched directions "
                            "(category minus its own look-alikes), the paper's directions "
                            "agreeing for SUPPORTED",
                   paper="ours; PAPER.md A.5 leaves it open",
                   says="Ablating a category's refusal direction removes that category's "
                        "refusal more than the other categories' (k x k cross-ablation, genre "
                        "cancelled).")
def test_ablating_a_category_direction_is_selective(measure, staged_probe, train_directions,
                                                    matched_train_directions,
                                                    refusal_behaviour, score_agreement,
                                                    refusal_budget, pytestconfig, judge):
    # The paper's directions carry each category's genre, which passes for selectivity (one
    # planted direction + genre: SUPPORTED in 100% of worlds), so they never decide alone:
    # genre-matched SUPPORTED with the paper's agreeing -> SUPPORTED, genre-matched REFUTED
    # -> REFUTED, else INCONCLUSIVE (refusal_checks/verdicts/genre.py argues the rule).
    judge(staged.ablation_is_category_selective(
        measure, staged_probe, train_directions, matched_train_directions, score_agreement,
        refusal_behaviour, pytestconfig.getoption("--refusal-seed"), budget=refusal_budget))


@pytest.mark.claim("ablation-is-category-selective-paper-design", protocol=CATEGORY_DIRECTIONS,
                   paper="ours; PAPER.md A.5 leaves it open",
                   says="The paper's design reproduces: ablating a category's general-pool "
                        "direction removes that category's refusal more than the others'.")
def test_paper_directions_ablate_selectively(measure, staged_probe, train_directions,
                                             refusal_behaviour, score_agreement,
                                             refusal_budget, pytestconfig, judge):
    # The diagonal repeats ablation-lowers-category-refusal's scores (same cache entries);
    # margin 0.25 (SELECTIVE_MARGIN): about half of the paper's weakest own-direction drop
    # must be specific to the category. The opposite reading ("shared") is in the details.
    judge(staged.ablation_is_category_selective_paper_design(
        measure, staged_probe, train_directions, score_agreement, refusal_behaviour,
        pytestconfig.getoption("--refusal-seed"), budget=refusal_budget))
