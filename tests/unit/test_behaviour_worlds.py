"""Known-answer worlds for the behavioural claims: what a claim may never conclude there.

Worlds are drawn by hypothesis (refusal signal, seed, and the planted behaviour: how far an
ablation or an added vector reaches the refusal readout, two steering knobs, ...), measured
as fixtures/behaviour.py measures (refusal_checks.calibration.measurements.BehaviourMeasurements) and
judged by the claims' own verdict functions. Few examples keep the file fast; the rates
over 200 worlds per scenario come from ``calibration/run.py --behaviour``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refusal_checks.calibration.behaviour import (BUNDLED_NAMES, COCONOT_LIKE, behaviour_design,
                                                  ablation_drop_offset, exact_half_offsets)
from refusal_checks.calibration.measurements import BEHAVIOUR_CLAIM_IDS, behaviour_verdicts
from refusal_checks.models.interventions import Ablate, Steer
from refusal_checks.models.synthetic import SyntheticBackend, World
from refusal_checks.stats.verdict import Outcome
from refusal_checks.calibration.worlds import Design, PlantedBackend, collection

def behaviour_designs(*, names: Sequence[str], signal: Any = None, cos: Any = 1.0,
                      **fixed: Any) -> Any:
    """Hypothesis strategy over behaviour-world :class:`Design` s (hypothesis imported here).

    Worlds have the given category ``names`` (64 refused prompts each, 128 benign, so the
    behaviour probes have their real sizes), no genre offsets and a random seed. ``signal``
    and ``cos`` are strategies or numbers (default: signal in [2, 6], one planted direction,
    cos 1); every other keyword is a :class:`Design` field
    (``ablation_reach``, ``knob_cos``, ...) given as a strategy or a fixed value.
    """
    from hypothesis import strategies as st

    def strategy(value: Any) -> Any:
        return value if hasattr(value, "example") else st.just(value)

    @st.composite
    def build(draw: Any) -> Design:
        world = World(cos=draw(strategy(cos)), genre=0.0,
                      signal=draw(strategy(st.floats(2.0, 6.0) if signal is None else signal)),
                      seed=draw(st.integers(0, 2**31 - 1)))
        extras = {key: draw(strategy(value)) for key, value in fixed.items()}
        return Design(world, categories=len(names), names=tuple(names), n_matched=0,
                      **extras)

    return build()


FEW = settings(max_examples=4, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])
NAMES = BUNDLED_NAMES


def _verdicts(design: Design, claims):
    return behaviour_verdicts(PlantedBackend(design), collection(design), claims)


@FEW
@given(behaviour_designs(names=NAMES, signal=0.0, cos=st.sampled_from([0.0, 1.0])))
def test_a_world_that_never_refuses_supports_no_behavioural_claim(design):
    verdicts = _verdicts(design, BEHAVIOUR_CLAIM_IDS)
    assert all(v.outcome is Outcome.INCONCLUSIVE for v in verdicts.values()), \
        [v.line() for v in verdicts.values()]


@FEW
@given(behaviour_designs(names=NAMES, signal=st.floats(1.5, 2.0),
                         knob_cos=st.floats(0.3, 0.45), knob_b=COCONOT_LIKE,
                         benign_readout="over_refusal"))
def test_knobs_planted_to_differ_by_more_than_the_margin_are_never_one_knob(design):
    """Planted paths differ by 0.17-0.40 (> PATH_MARGIN 0.15) at these settings."""
    verdict = _verdicts(design, ["shared-knob"])["shared-knob"]
    assert verdict.outcome is not Outcome.SUPPORTED, verdict.line()


@FEW
@given(behaviour_designs(names=NAMES, signal=st.floats(3.0, 6.0), ablation_reach=0.0))
def test_an_ablation_that_reaches_nothing_never_bypasses_refusal(design):
    verdicts = _verdicts(design, ["ablation-bypasses-refusal",
                                  "ablation-lowers-category-refusal"])
    assert verdicts["ablation-bypasses-refusal"].outcome is Outcome.REFUTED
    assert verdicts["ablation-lowers-category-refusal"].outcome is not Outcome.SUPPORTED


@FEW
@given(behaviour_designs(names=NAMES, signal=st.floats(3.5, 6.0)))
def test_one_planted_direction_is_found_by_every_arditi_claim(design):
    claims = ["ablation-bypasses-refusal", "addition-induces-refusal",
              "random-direction-does-not-bypass", "random-direction-does-not-induce"]
    verdicts = _verdicts(design, claims)
    assert all(v.outcome is Outcome.SUPPORTED for v in verdicts.values()), \
        [v.line() for v in verdicts.values()]


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), cos=st.floats(0.0, 1.0), strength=st.floats(-3, 3))
def test_planted_backend_at_default_extras_decides_as_the_synthetic_backend(seed, cos,
                                                                             strength):
    design = Design(World(cos=cos, seed=seed), names=NAMES, n_refuse=8, n_matched=0,
                    n_benign=8)
    planted, plain = PlantedBackend(design), SyntheticBackend(design.world)
    prompts = collection(design)
    for name in NAMES:  # the same slots, in collection order
        plain.slot(name)
    vector = np.random.default_rng(seed).standard_normal(design.world.d)
    for intervention in (None, Ablate(vector), Steer(2, strength * vector)):
        for p in (prompts.categories[NAMES[3]].refuse, prompts.benign):
            np.testing.assert_allclose(planted.decision_scores(p, intervention),
                                       plain.decision_scores(p, intervention), atol=1e-9)


def test_exact_half_offsets_put_the_kept_and_induced_rates_at_one_half():
    ablate, steer = exact_half_offsets(signal=4.0)
    z = np.random.default_rng(0).standard_normal(2_000_000)
    t = SyntheticBackend.REFUSAL_THRESHOLD
    refused = 4.0 + z > t
    assert abs((4.0 + z + ablate > t)[refused].mean() - 0.5) < 0.002
    answered = z <= t
    assert abs((z + steer > t)[answered].mean() - 0.5) < 0.002
    assert math.isclose(ablate, -steer)  # symmetric at signal 2 T: a check on the algebra


def test_an_unablatable_category_keeps_its_refusal_rate_but_not_its_prompts():
    design = behaviour_design(unablatable=1).with_seed(5)
    backend = PlantedBackend(design)
    prompts = collection(design).categories[NAMES[-1]].refuse
    before = backend.decision_scores(prompts)
    after = backend.decision_scores(prompts, Ablate(backend.directions[0]))
    assert not np.allclose(before, after)
    assert abs(before.mean() - after.mean()) < 0.5  # same distribution: signal 4, noise 1


@pytest.mark.parametrize("drop", [0.2, -0.2])
def test_an_unablatable_offset_plants_the_categorys_drop(drop):
    """ablation-lowers' margin worlds (drops-just-above, one-drop-just-below) rest on it."""
    from dataclasses import replace

    offset = ablation_drop_offset(drop, 2.0)
    design = replace(behaviour_design(signal=2.0, unablatable=1, unablatable_offset=offset),
                     n_refuse=4000).with_seed(3)
    backend = PlantedBackend(design)
    prompts = collection(design).categories[NAMES[-1]].refuse
    t = SyntheticBackend.REFUSAL_THRESHOLD
    before = backend.decision_scores(prompts) > t
    after = backend.decision_scores(prompts, Ablate(backend.directions[0])) > t
    # 4,000 prompts, independent redraws at a rate of 0.5: sd of the drop ~0.011.
    assert abs(before.mean() - 0.5) < 0.04
    assert abs((before.mean() - after.mean()) - drop) < 0.04
