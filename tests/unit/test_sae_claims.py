"""The SAE claims on planted sparse worlds (a fast subset of calibration/run.py --sae)."""

from __future__ import annotations

import json

from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.calibration.sae import (CORE, REBUILD, SAE_SCENARIOS, TAIL,
                                            sae_verdicts)
from refusal_checks.verdicts.sae import SaeMissing
from refusal_checks.verdicts.sae_core import sae_shared_core
from tests.unit.test_calibration import _run


def outcomes(name: str, seed: int = 1) -> dict[str, str]:
    world = SAE_SCENARIOS[name].design.with_seed(seed)
    return {c: v.outcome.value for c, v in sae_verdicts(world, n_boot=100).items()}


def test_core_and_tail_world_supports_tail_and_rebuild_but_its_small_core_is_not_shown():
    # 8 core features of 1,024 latents: 0.8% of the dictionary, under the 1% threshold.
    assert outcomes("core-and-tail") == {CORE: "inconclusive", TAIL: "supported",
                                         REBUILD: "supported"}


def test_a_wide_core_is_supported_and_without_a_core_nothing_is_refuted_on_64_prompts():
    assert outcomes("wide-core")[CORE] == "supported"
    # No latent can be shown inactive at 64 prompts a side (sae_core's docstring).
    assert outcomes("no-core")[CORE] == "inconclusive"
    assert outcomes("core-only")[TAIL] != "supported"
    assert outcomes("dense-direction")[REBUILD] == "refuted"


def test_a_category_whose_direction_is_noise_makes_every_sae_claim_inconclusive():
    world = SAE_SCENARIOS["noise-category"].design.with_seed(1)
    verdicts = sae_verdicts(world, n_boot=50)
    for claim, verdict in verdicts.items():
        assert verdict.outcome.value == "inconclusive", (claim, verdict.line())
        assert "category_00" in verdict.reason and "mostly sampling noise" in verdict.reason
    assert verdicts[CORE].details["split_half"]["category_00"] < 0.30


def test_a_model_that_never_refuses_supports_nothing():
    assert set(outcomes("never-refuses").values()) == {"inconclusive"}


def test_without_an_sae_the_claim_is_inconclusive_and_names_the_command():
    missing = SaeMissing("no SAE: train one with `python -m refusal_checks train-sae`")
    verdict = sae_shared_core(missing, RefusalBehaviour("substring", 80, 88, 1, 16))
    assert verdict.outcome.value == "inconclusive"
    assert "python -m refusal_checks train-sae" in verdict.reason


def test_the_calibration_command_judges_only_the_claims_asked_for(tmp_path):
    out = tmp_path / "sae.json"
    done = _run(["calibration/run.py", "--sae", "--sae-claims", CORE, "--sae-scenarios",
                 "wide-core", "--worlds", "1", "--json", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())["results"]["wide-core"]
    assert list(results) == [CORE] and results[CORE]["counts"] == {"supported": 1}
    bad = _run(["calibration/run.py", "--sae", "--sae-claims", "sae-shared", "--worlds", "1"])
    assert bad.returncode == 2 and "unknown SAE claims" in bad.stderr
