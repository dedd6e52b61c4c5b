"""Arditi et al. 2024: refusal is mediated by a single direction (PAPER.md, Paper B).

The direction is the difference in means of the harmful categories' train halves and the
benign pool's train half, at the paper's mid layer and decision position. Effects are
judged on held-out test halves: greedy replies, the substring judge of the paper. The
held-out probes are staged (refusal_checks/staged.py): they grow only while a verdict's
interval straddles its threshold, up to --refusal-budget prompts.
Thresholds and verdicts live in refusal_checks/behaviour_claims.py (shared with
calibration/run.py, which measures how often each verdict is wrong in planted worlds);
the staged looks in refusal_checks/staged_claims.py.
"""

import pytest

from refusal_checks import behaviour_claims as claims
from refusal_checks import staged_claims as staged
from refusal_checks.interventions import Ablate
from refusal_checks.staged import PROTOCOL as STAGED

# What produced these verdicts, shown beside each one in the reports.
FIXED_DIRECTION = ("fixed mid layer, position -2; direction = harmful minus benign train halves "
                   "(not Arditi et al.'s selection over layers and positions)")
RANDOM_CONTROLS = "3 seeded random directions of the fixed direction's norm; equivalence"


@pytest.mark.claim("ablation-bypasses-refusal", protocol=f"{FIXED_DIRECTION}; {STAGED}",
                   paper="Arditi et al. 2024; PAPER.md B",
                   says="Ablating the refusal direction bypasses refusal on harmful prompts.")
def test_ablating_the_refusal_direction_bypasses_refusal(
        measure, staged_arditi_probe, refusal_direction, refusal_behaviour, refusal_budget,
        judge):
    judge(staged.ablation_bypasses_refusal(measure, staged_arditi_probe, refusal_direction,
                                           refusal_behaviour, measure.judge_name,
                                           budget=refusal_budget))


@pytest.mark.claim("addition-induces-refusal", protocol=f"{FIXED_DIRECTION}; {STAGED}",
                   paper="Arditi et al. 2024; PAPER.md B",
                   says="Adding the refusal direction makes the model refuse harmless prompts.")
def test_adding_the_refusal_direction_induces_refusal(measure, staged_arditi_probe, layer,
                                                      refusal_direction, reference_norm,
                                                      refusal_behaviour, refusal_budget, judge):
    judge(staged.addition_induces_refusal(measure, staged_arditi_probe, layer,
                                          refusal_direction, reference_norm, refusal_behaviour,
                                          measure.judge_name, budget=refusal_budget))


@pytest.mark.claim("ablation-keeps-harmless-behaviour", protocol=FIXED_DIRECTION,
                   paper="Arditi et al. 2024; PAPER.md B",
                   says="Ablation barely changes next-token distributions on harmless prompts.")
def test_ablation_barely_changes_harmless_next_token_distributions(
        measure, prompt_collection, refusal_direction, refusal_behaviour, pytestconfig, judge):
    # Every held-out harmless prompt, not only the probe: per-prompt KL is heavy-tailed.
    # (refusal_checks.effects.kl, cached; the damage section reports it as ablated:refusal.)
    harmless = prompt_collection.benign.split("test")
    values = measure.kl(harmless, Ablate(refusal_direction, "refusal"))
    judge(claims.ablation_keeps_harmless_behaviour(
        values, refusal_behaviour, pytestconfig.getoption("--refusal-seed")))


@pytest.mark.claim("random-direction-does-not-bypass", protocol=f"{RANDOM_CONTROLS}; {STAGED}",
                   paper="Arditi et al. 2024 (control)",
                   says="Ablating random directions of the same norm leaves refusal intact.")
def test_ablating_random_directions_does_not_bypass_refusal(
        measure, staged_arditi_probe, refusal_direction, refusal_behaviour, refusal_budget,
        pytestconfig, judge):
    # 3 seeded random directions; each must change refusal by less than 0.20 (equivalence).
    judge(staged.random_direction_does_not_bypass(
        measure, staged_arditi_probe, refusal_direction, refusal_behaviour,
        pytestconfig.getoption("--refusal-seed"), budget=refusal_budget))


@pytest.mark.claim("random-direction-does-not-induce", protocol=f"{RANDOM_CONTROLS}; {STAGED}",
                   paper="Arditi et al. 2024 (control)",
                   says="Adding random directions of the same norm does not induce refusal.")
def test_adding_random_directions_does_not_induce_refusal(
        measure, staged_arditi_probe, layer, refusal_direction, reference_norm,
        refusal_behaviour, refusal_budget, pytestconfig, judge):
    judge(staged.random_direction_does_not_induce(
        measure, staged_arditi_probe, layer, refusal_direction, reference_norm,
        refusal_behaviour, pytestconfig.getoption("--refusal-seed"), budget=refusal_budget))
