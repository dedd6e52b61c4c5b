"""sae-steering-same-knob: shared-knob's statistic and threshold on SAE directions, and its
planted worlds (a fast subset of calibration/run.py --sae-steering)."""

from __future__ import annotations

import numpy as np
import pytest

from refusal_checks.verdicts import category_steering as behaviour_categories

from refusal_checks.verdicts import sae_steering
from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.stats.rates import KnobSweep
from refusal_checks.verdicts.sae import SaeMissing, sae_inputs
from refusal_checks.calibration.sae_steering import (SAE_STEERING_SCENARIOS, planted_sae,
                                                     verdict)
from refusal_checks.stats.verdict import Outcome

REFUSES = RefusalBehaviour("substring", 80, 88, 1, 16)
AGREE = {"n": 64, "agreement": 1.0, "score_refused": 32, "judge_refused": 32}


def _sweep(names: list[str], rr: np.ndarray, orr: np.ndarray, n: int = 40) -> KnobSweep:
    idx = np.arange(n)
    return KnobSweep(names, [0.1, 0.2, 0.35, 0.5], np.ones(rr.shape),
                     idx < np.round(rr[..., None] * n), idx < np.round(orr[..., None] * n))


def _steering(names: list[str]) -> sae_steering.SaeSteering:
    rng = np.random.default_rng(0)
    acts = {n: rng.standard_normal((8, 4)) for n in names}
    inputs = sae_inputs(acts, acts, rng.standard_normal((8, 4)),
                        planted_identity_sae())
    return sae_steering.SaeSteering({}, {}, inputs)


def planted_identity_sae():
    from refusal_checks.measure.sae import SAE, SaeConfig

    eye = np.concatenate([np.eye(4), -np.eye(4)]).astype(np.float32)
    return SAE(SaeConfig(4, 8, "relu", None, "blocks.3.hook_resid_pre", 3, "none", None, True),
               eye.T.copy(), eye, np.zeros(8, np.float32), np.zeros(4, np.float32))


@pytest.mark.parametrize("sae_path, outcome", [(0.5, Outcome.SUPPORTED),
                                               (0.1, Outcome.REFUTED)])
def test_the_sae_directions_are_judged_by_shared_knobs_statistic_and_margin(sae_path, outcome):
    orr = np.tile([0.1, 0.3, 0.5, 0.7], (3, 1))
    rr = np.stack([0.5 + 0.5 * orr[0], 0.5 + 0.5 * orr[1], sae_path + 0.5 * orr[2]])
    sweep = _sweep(["a", "b", "sae:a"], rr, orr)
    v = sae_steering.same_knob(sweep, AGREE, REFUSES, 0, steering=_steering(["a"]))
    assert v.outcome is outcome
    # The same statistic as shared-knob, restricted to the SAE rows against the others.
    assert v.estimate == sweep.path_deviation(tested=[2], reference=[0, 1])
    assert v.threshold == behaviour_categories.PATH_MARGIN


def test_an_sae_direction_that_moves_nothing_is_not_supported():
    orr = np.stack([[0.1, 0.3, 0.5, 0.7]] * 2 + [[0.1] * 4])
    rr = 0.5 + 0.5 * orr
    v = sae_steering.same_knob(_sweep(["a", "b", "sae:a"], rr, orr), AGREE, REFUSES, 0,
                               steering=_steering(["a"]))
    assert v.outcome is Outcome.INCONCLUSIVE and "'sae:a' moved over-refusal" in v.reason


def test_without_an_sae_the_claim_is_inconclusive_and_names_the_command():
    missing = SaeMissing("no SAE: train one with `python -m refusal_checks train-sae`")
    v = sae_steering.staged_same_knob(missing, missing, None, [], AGREE, REFUSES, 0)
    assert v.outcome is Outcome.INCONCLUSIVE and "train-sae" in v.reason


@pytest.mark.parametrize("scenario, outcome", [("latents-on-knob", "supported"),
                                               ("latents-off-knob", "inconclusive")])
def test_planted_worlds(scenario, outcome):
    s = SAE_STEERING_SCENARIOS[scenario]
    v = verdict(s.design.with_seed(2), s.axis, n_boot=50)
    assert v.outcome.value == outcome, v.reason


def test_the_planted_latents_are_every_categorys_top_latents_and_write_along_the_axis():
    from refusal_checks.calibration.worlds import PlantedBackend

    backend = PlantedBackend(SAE_STEERING_SCENARIOS["latents-on-knob"].design)
    sae = planted_sae(backend, "knob")
    d = backend.d_model
    mean = sae.W_dec[2 * d:].mean(axis=0)
    knob = backend.benign_readout / np.linalg.norm(backend.benign_readout)
    assert mean @ knob / np.linalg.norm(mean) > 0.99
    off = planted_sae(backend, "unrelated").W_dec[2 * d:].mean(axis=0)
    assert abs(off @ knob) / np.linalg.norm(off) < 0.05
