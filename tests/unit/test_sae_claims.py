"""The SAE claims on planted sparse worlds (a fast subset of calibration/run.py --sae)."""

from __future__ import annotations

from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.calibration.sae import (CORE, REBUILD, SAE_SCENARIOS, TAIL,
                                            sae_verdicts)
from refusal_checks.verdicts.sae import SaeMissing, sae_shared_core


def outcomes(name: str, seed: int = 1) -> dict[str, str]:
    world = SAE_SCENARIOS[name].design.with_seed(seed)
    return {c: v.outcome.value for c, v in sae_verdicts(world, n_boot=100).items()}


def test_core_and_tail_world_supports_every_claim():
    assert outcomes("core-and-tail") == {CORE: "supported", TAIL: "supported",
                                         REBUILD: "supported"}


def test_without_a_core_the_core_is_refuted_and_without_own_features_no_tail():
    assert outcomes("no-core")[CORE] == "refuted"
    assert outcomes("core-only")[TAIL] != "supported"
    assert outcomes("dense-direction")[REBUILD] == "refuted"


def test_a_model_that_never_refuses_supports_nothing():
    assert set(outcomes("never-refuses").values()) == {"inconclusive"}


def test_without_an_sae_the_claim_is_inconclusive_and_names_the_command():
    missing = SaeMissing("no SAE: train one with `python -m refusal_checks train-sae`")
    verdict = sae_shared_core(missing, RefusalBehaviour("substring", 80, 88, 1, 16))
    assert verdict.outcome.value == "inconclusive"
    assert "python -m refusal_checks train-sae" in verdict.reason
