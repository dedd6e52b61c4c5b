"""Known-answer worlds of ``sae-steering-same-knob`` (refusal_checks/verdicts/sae_steering.py).

A world is a behaviour world of :mod:`refusal_checks.calibration.behaviour` (the bundled
categories
and sizes, one planted refusal direction: every category direction is the same knob,
so ``shared-knob`` holds) with genre-matched twins, and a planted SAE of its residual stream:

* ``2 d`` basis latents, plus and minus an orthonormal basis whose first axis is the knob
  (ReLU, no bias: together they reconstruct every activation exactly);
* ``TOP`` refusal latents that READ the knob (encoder along it, with jitter, firing when
  the projection exceeds half the planted signal: on ~98% of refused prompts, ~2% of
  twins) and WRITE along ``axis``: the knob itself, or an unrelated axis orthogonal to
  every planted direction and readout. Their codes are scaled by ``CODE_SCALE``, so they
  barely change the reconstruction, and their decoder rows carry 5% jitter.

The refusal latents are then every category's top latents, and their mean decoder vector
is the SAE direction the claim steers with. The world goes through the claim's own code:
:class:`~refusal_checks.calibration.measurements.BehaviourMeasurements` (the fixtures'
probes, train halves, reference norm, cheap score, agreement), :func:`~refusal_checks.verdicts.sae_steering.
steering_inputs`, the staged sweep and :func:`~refusal_checks.verdicts.sae_steering.same_knob`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from refusal_checks.verdicts import sae_steering
from refusal_checks.calibration.behaviour import BehaviourScenario, behaviour_design
from refusal_checks.calibration.measurements import BehaviourMeasurements
from refusal_checks.measure.protocol import SWEEP_STRENGTHS
from refusal_checks.calibration.geometry import DEFAULT_SEED
from refusal_checks.calibration.tally import roles_table_lines, tally_worlds
from refusal_checks.measure.sae import SAE, SaeConfig
from refusal_checks.verdicts.sae import TOP
from refusal_checks.verdicts.staged_claims import knob_sweep
from refusal_checks.stats.verdict import Verdict

CLAIM_IDS = (sae_steering.CLAIM,)
CODE_SCALE = 1e-3
JITTER = 0.05


def planted_sae(backend: Any, axis: str) -> SAE:
    """The world's SAE (module docstring); ``axis`` is ``"knob"`` or ``"unrelated"``."""
    d = backend.d_model
    rng = np.random.default_rng([backend.world.seed, 7])
    knob = backend.benign_readout / np.linalg.norm(backend.benign_readout)
    basis, _ = np.linalg.qr(np.column_stack([knob, rng.standard_normal((d, d - 1))]))
    if axis == "knob":
        write = knob
    elif axis == "unrelated":
        span, _ = np.linalg.qr(np.column_stack([*backend.directions, backend.common_axis]))
        write = rng.standard_normal(d)
        write -= span @ (span.T @ write)
        write /= np.linalg.norm(write)
    else:
        raise ValueError(f"axis must be 'knob' or 'unrelated', not {axis!r}")
    reads = knob + JITTER * rng.standard_normal((TOP, d))
    writes = write + JITTER * rng.standard_normal((TOP, d))
    writes /= np.linalg.norm(writes, axis=1, keepdims=True)
    W_enc = np.concatenate([basis.T, -basis.T, CODE_SCALE * reads]).T
    W_dec = np.concatenate([basis.T, -basis.T, writes])
    b_enc = np.concatenate([np.zeros(2 * d), np.full(TOP, -CODE_SCALE * backend.world.signal
                                                     / 2)])
    f = W_dec.shape[0]
    config = SaeConfig(d, f, "relu", None, "blocks.3.hook_resid_pre", 3, "none", None, True)
    return SAE(config, W_enc.astype(np.float32), W_dec.astype(np.float32),
               b_enc.astype(np.float32), np.zeros(d, np.float32),
               source=f"planted: refusal latents write along the {axis}")


@dataclass(frozen=True)
class SaeSteeringScenario(BehaviourScenario):
    """A behaviour world with twins and a planted SAE writing along ``axis``."""

    axis: str = "knob"
    CLAIM_IDS: ClassVar[tuple[str, ...]] = CLAIM_IDS


def verdict(design: Any, axis: str, *, seed: int = DEFAULT_SEED,
            n_boot: int = 500) -> Verdict:
    """The claim's verdict on one world, measured as the claim's fixtures measure."""
    from refusal_checks.calibration.measurements import staged_probes
    from refusal_checks.calibration.worlds import PlantedBackend, collection

    backend = PlantedBackend(design)
    m = BehaviourMeasurements(backend, collection(design), seed=seed)
    steering = sae_steering.sae_steering(sae_steering.steering_inputs(
        m.acts, m.collection, planted_sae(backend, axis), seed=seed, n_boot=n_boot))

    def sweep(directions: Mapping[str, np.ndarray], harmful: Sequence[Any],
              benign: Sequence[Any]) -> Any:
        return knob_sweep(m.score, directions, harmful, benign, layer=m.layer,
                          reference_norm=m.reference_norm, strengths=SWEEP_STRENGTHS)

    def categories(harmful: list, benign: list) -> Any:
        return sweep(m.train_directions, harmful, benign)

    probe, _ = staged_probes(m)
    return sae_steering.staged_same_knob(
        sae_steering.joined_sweep(categories, sweep, steering), steering, probe,
        m.harmful_categories, m.agreement(), m.behaviour, seed)


def _design(**extras: Any) -> Any:
    return replace(behaviour_design(**extras), n_matched=64)


SAE_STEERING_SCENARIOS: dict[str, SaeSteeringScenario] = {s.name: s for s in [
    SaeSteeringScenario("latents-on-knob", "one refusal direction, signal 4; the refusal "
                        "latents write along it", _design(), effect_for=CLAIM_IDS),
    SaeSteeringScenario("latents-on-knob-weak", "as latents-on-knob at signal 2 (refuses "
                        "~50%)", _design(signal=2.0), effect_for=CLAIM_IDS),
    SaeSteeringScenario("latents-off-knob", "one refusal direction, signal 4; the refusal "
                        "latents read it but write along an unrelated axis",
                        _design(), null_for=CLAIM_IDS, axis="unrelated"),
]}


def judge_world(scenario: str, seed: int) -> dict[str, tuple[str, float]]:
    """One replicate: claim id -> (outcome, estimate). Top-level so processes can run it."""
    chosen = SAE_STEERING_SCENARIOS[scenario]
    v = verdict(chosen.design.with_seed(seed), chosen.axis)
    return {sae_steering.CLAIM: (v.outcome.value, v.estimate)}


def run_sae_steering(scenarios: Iterable[str], worlds: int, *, first_seed: int = 1,
                     jobs: int = 1) -> dict[str, dict[str, Any]]:
    """Judge ``worlds`` seeded replicates of each scenario -> scenario -> claim -> Tally."""
    return tally_worlds(judge_world, SAE_STEERING_SCENARIOS, list(scenarios), worlds,
                            claims=lambda name: SAE_STEERING_SCENARIOS[name].claims(),
                            kind="SAE steering", first_seed=first_seed, jobs=jobs,
                            chunksize=2)


def table_lines(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """:func:`~refusal_checks.calibration.tally.roles_table_lines` of the claim."""
    return roles_table_lines(results, CLAIM_IDS, SAE_STEERING_SCENARIOS, widths=(26, 22))
