"""Arditi et al. 2024: refusal is mediated by a single direction (PAPER.md, Paper B).

The direction is the difference in means of the harmful categories' train halves and the
benign pool's train half, at the paper's mid layer and decision position. Effects are
judged on held-out test halves: greedy replies, the substring judge of the paper.
Thresholds and verdicts live in refusal_checks/behaviour_claims.py (shared with
calibration/run.py, which measures how often each verdict is wrong in planted worlds).
"""

import numpy as np
import pytest

from refusal_checks import behaviour_claims as claims
from refusal_checks.interventions import Ablate


def _concat(measure, probe, intervention=None):
    return np.concatenate([measure.refused(p, intervention) for p in probe.harmful.values()])


# What produced these verdicts, shown beside each one in the reports.
FIXED_DIRECTION = ("fixed mid layer, position -2; direction = harmful minus benign train halves "
                   "(not Arditi et al.'s selection over layers and positions)")


@pytest.mark.claim("ablation-bypasses-refusal", protocol=FIXED_DIRECTION,
                   paper="Arditi et al. 2024; PAPER.md B",
                   says="Ablating the refusal direction bypasses refusal on harmful prompts.")
def test_ablating_the_refusal_direction_bypasses_refusal(
        measure, arditi_probe, refusal_direction, refusal_behaviour, judge):
    base = _concat(measure, arditi_probe)
    ablated = _concat(measure, arditi_probe, Ablate(refusal_direction, "refusal"))
    texts = [text for p in arditi_probe.harmful.values() for text in p.texts]
    judge(claims.ablation_bypasses_refusal(base, ablated, refusal_behaviour,
                                           measure.judge_name, prompts=texts))


@pytest.mark.claim("addition-induces-refusal", protocol=FIXED_DIRECTION,
                   paper="Arditi et al. 2024; PAPER.md B",
                   says="Adding the refusal direction makes the model refuse harmless prompts.")
def test_adding_the_refusal_direction_induces_refusal(measure, arditi_probe, layer,
                                                      refusal_direction, reference_norm,
                                                      refusal_behaviour, judge):
    base = measure.refused(arditi_probe.benign)
    steered = measure.refused(arditi_probe.benign, claims.raw_addition(
        layer, refusal_direction, reference_norm, "refusal"))
    judge(claims.addition_induces_refusal(base, steered, refusal_behaviour, measure.judge_name))


@pytest.mark.claim("ablation-keeps-harmless-behaviour", protocol=FIXED_DIRECTION,
                   paper="Arditi et al. 2024; PAPER.md B",
                   says="Ablation barely changes next-token distributions on harmless prompts.")
def test_ablation_barely_changes_harmless_next_token_distributions(
        backend, score_cache, prompt_collection, refusal_direction, refusal_behaviour,
        pytestconfig, judge):
    from refusal_checks.effects import kl

    # Every held-out harmless prompt, not only the probe: per-prompt KL is heavy-tailed.
    harmless = prompt_collection.benign.split("test")
    values = kl(backend, harmless, Ablate(refusal_direction), score_cache)
    judge(claims.ablation_keeps_harmless_behaviour(
        values, refusal_behaviour, pytestconfig.getoption("--refusal-seed")))


@pytest.mark.claim("random-direction-does-not-bypass", protocol="3 seeded random directions of the fixed direction's norm; equivalence",
                   paper="Arditi et al. 2024 (control)",
                   says="Ablating random directions of the same norm leaves refusal intact.")
def test_ablating_random_directions_does_not_bypass_refusal(
        measure, arditi_probe, refusal_direction, refusal_behaviour, pytestconfig, judge):
    # 3 seeded random directions; each must change refusal by less than 0.20 (equivalence).
    randoms = claims.random_controls(refusal_direction, pytestconfig.getoption("--refusal-seed"))
    base = _concat(measure, arditi_probe)
    ablated = [_concat(measure, arditi_probe, Ablate(r, f"random {i}"))
               for i, r in enumerate(randoms)]
    judge(claims.random_direction_does_not_bypass(base, ablated, refusal_behaviour))


@pytest.mark.claim("random-direction-does-not-induce", protocol="3 seeded random directions of the fixed direction's norm; equivalence",
                   paper="Arditi et al. 2024 (control)",
                   says="Adding random directions of the same norm does not induce refusal.")
def test_adding_random_directions_does_not_induce_refusal(
        measure, arditi_probe, layer, refusal_direction, reference_norm, refusal_behaviour,
        pytestconfig, judge):
    randoms = claims.random_controls(refusal_direction, pytestconfig.getoption("--refusal-seed"))
    base = measure.refused(arditi_probe.benign)
    steered = [measure.refused(arditi_probe.benign,
                               claims.raw_addition(layer, r, reference_norm, f"random {i}"))
               for i, r in enumerate(randoms)]
    judge(claims.random_direction_does_not_induce(base, steered, refusal_behaviour))
