"""Joad et al.'s fourth SAE sentence (PAPER.md A.6): steering with the mean decoder vector
of the top refusal latents reproduces the one-knob trade-off of the category directions
(A.3, ``shared-knob``).

Each category's SAE direction is the mean decoder vector of its ``TOP`` refusal latents,
chosen by the SAE claims' rule (:func:`refusal_checks.verdicts.sae.top_latents`: highest
firing-rate difference of its refused prompts over its genre-matched twins) on the train
halves of its refused prompts: the halves its category direction is fitted on, so that the
sweep judges both on held-out probes. Per category rather than one direction pooled over
categories: the paper's sentence is about the splits' latents, and a pooled mean is
dominated by the core latents that every category shares, so it would pass whenever the
core steers, however the rest of a category's latents act.

The SAE directions are swept as ``shared-knob`` sweeps the category directions (same
relative strengths times the reference norm, cheap score, same staged probes) and each
one's (ORR, RR) path is compared with the path the category directions trace together:
:meth:`~refusal_checks.stats.rates.KnobSweep.path_deviation` with the SAE directions tested
against the category directions, the largest mean gap, paired bootstrap over prompts,
below ``PATH_MARGIN``. One statistic and one threshold with ``shared-knob``; its
requirements (the cheap score agrees with the judge; every direction moves over-refusal)
and the SAE claims' (an SAE, one that explains the decision state) apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from refusal_checks.verdicts import staged_claims
from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.verdicts.category_steering import (KNOB_BOOTSTRAP, PATH_MARGIN, agreement_details,
                                                 knob_preconditions)
from refusal_checks.stats.rates import KnobSweep
from refusal_checks.verdicts.sae import (TOP, SaeInputs, SaeMissing, contrast_of, ones_of, requirements_of,
                                       sae_inputs, top_latents)
from refusal_checks.measure.staged import StagedProbe
from refusal_checks.stats.decisions import below
from refusal_checks.stats.verdict import Verdict

CLAIM = "sae-steering-same-knob"
PREFIX = "sae:"  # the SAE directions' names in the joined sweep: "sae:<category>"
STATISTIC = (f"largest mean gap between one category's top-{TOP}-latent mean decoder vector's "
             "RR-vs-ORR path and the category directions' path")
PAPER = "steering with the top latents' mean decoder vector gives the same one-knob trade-off"


@dataclass(frozen=True)
class SaeSteering:
    """The SAE directions to sweep and what chose them."""

    directions: dict[str, np.ndarray]  # "sae:<category>" -> mean decoder vector
    latents: dict[str, list[int]]  # category -> its refusal latents (SAE indices)
    inputs: SaeInputs  # codes of the train halves (requirements, details)


def train_rows(prompts: Any) -> np.ndarray:
    """Rows of ``prompts`` that are in its train half
    (refusal_checks.prompts.sets.PromptSet.split)."""
    train = set(prompts.split("train").texts)
    return np.array([i for i, t in enumerate(prompts.texts) if t in train], dtype=int)


def steering_inputs(view: Any, collection: Any, sae: Any, *, seed: int = 0,
                    n_boot: int = 500) -> SaeInputs:
    """:func:`~refusal_checks.verdicts.sae.sae_inputs` of the refused prompts' train halves
    (every twin: no probe reads them) from a ``LayerView`` of ``collection``."""
    refuse = {name: view.refuse[name][train_rows(c.refuse)]
              for name, c in collection.categories.items() if name in view.refuse}
    return sae_inputs(refuse, view.matched, view.benign, sae, seed=seed, n_boot=n_boot)


def sae_steering(inputs: SaeInputs | SaeMissing) -> SaeSteering | SaeMissing:
    """Each category's mean decoder vector of its ``TOP`` refusal latents; a category with
    no latent firing more on its refused prompts than on its twins has none."""
    if isinstance(inputs, SaeMissing):
        return inputs
    top = top_latents(*contrast_of(inputs, *ones_of(inputs)))[0] if inputs.k else []
    directions, latents = {}, {}
    for name, chosen in zip(inputs.categories, top):
        chosen = chosen[chosen >= 0]
        if len(chosen):
            directions[PREFIX + name] = inputs.W_dec[chosen].mean(axis=0)
            latents[name] = sorted(inputs.latent_ids[chosen].tolist())
    return SaeSteering(directions, latents, inputs)


def same_knob(sweep: KnobSweep, agreement: Mapping[str, Any], behaviour: RefusalBehaviour,
              seed: int, level: float = 0.95, *, steering: SaeSteering) -> Verdict:
    """Claim: "Steering with the top latents' mean decoder vector traces the category
    directions' refusal vs over-refusal trade-off" on ``sweep``: the category directions
    and then the ``sae:`` ones (:meth:`KnobSweep.joined`)."""
    tested = [i for i, d in enumerate(sweep.directions) if d.startswith(PREFIX)]
    reference = [i for i, d in enumerate(sweep.directions) if not d.startswith(PREFIX)]
    estimate, interval = sweep.bootstrap_deviation(np.random.default_rng(seed), KNOB_BOOTSTRAP,
                                                   level, tested=tested, reference=reference)
    if not tested:
        estimate, interval = float("nan"), (float("nan"), float("nan"))
    required, moved = knob_preconditions(sweep, agreement)
    rr, orr = sweep.rates()
    inputs = steering.inputs
    return below(STATISTIC, estimate, interval, PATH_MARGIN, n=len(tested), level=level,
                 paper=PAPER, details={
                     "directions": list(sweep.directions), "strengths": sweep.strengths,
                     "rr": np.round(rr, 3).tolist(), "orr": np.round(orr, 3).tolist(),
                     "alphas": sweep.alphas.tolist(), "n_harmful": int(sweep.harmful.shape[2]),
                     "n_benign": int(sweep.benign.shape[2]),
                     "orr_per_unit_strength": sweep.speeds(), "refusal_latents": steering.latents,
                     "sae": inputs.sae, "explained_variance_decision_state":
                         round(inputs.explained_variance, 4), "left_out": inputs.left_out,
                     **agreement_details(sweep, agreement)},
                 requires=[*requirements_of(inputs, behaviour, 1), *required, (
                     bool(tested), "no category has a latent that fires more on its refused "
                                   "prompts than on its twins")],
                 preconditions=moved)


def staged_same_knob(sweep: Callable[[list, list], KnobSweep] | SaeMissing,
                     steering: SaeSteering | SaeMissing, probe: StagedProbe,
                     harmful_categories: Sequence[str], agreement: Mapping[str, Any],
                     behaviour: RefusalBehaviour, seed: int, *,
                     budget: int | None = None) -> Verdict:
    """``sae-steering-same-knob`` on ``shared-knob``'s staged probes and looks;
    ``sweep(harmful sets, benign sets)`` is the joined sweep."""
    if isinstance(steering, SaeMissing):
        return below(STATISTIC, float("nan"), (float("nan"), float("nan")), PATH_MARGIN, n=0,
                     paper=PAPER, requires=requirements_of(steering, behaviour, 0))
    return staged_claims.shared_knob(sweep, probe, harmful_categories, agreement, behaviour,
                                     seed, budget=budget,
                                     verdict=partial(same_knob, steering=steering))


def joined_sweep(category_sweep: Callable[[list, list], KnobSweep],
                 sae_sweep: Callable[[Mapping[str, np.ndarray], list, list], KnobSweep],
                 steering: SaeSteering) -> Callable[[list, list], KnobSweep]:
    """``sweep(harmful, benign)``: the category directions' sweep, then the SAE ones'."""
    def sweep(harmful: list, benign: list) -> KnobSweep:
        return category_sweep(harmful, benign).joined(
            sae_sweep(steering.directions, harmful, benign))

    return sweep
