"""Known-answer worlds of the SAE claims (``claims/test_sae.py``): planted sparse features.

A world draws every prompt's activation from a known dictionary ``D`` (``features`` unit
vectors in ``d`` dimensions): each feature fires with its own probability, with a
magnitude uniform in [3, 5], plus Gaussian noise. Feature roles:

* ``core`` refusal features fire with ``p_on`` on every category's refused prompts and
  ``p_off`` on the twins;
* ``specific`` features per category, the same but for one category only (rate
  ``p_specific``, default ``p_on``);
* ``genre`` features per category fire with ``p_on`` on its refused prompts and its twins
  alike (a genre the twins share: cancels in every contrast);
* the rest are background features at random rates (mean ``background``).

``dense`` adds a refusal shift of that norm along a random unit direction of each category
that is no feature (the direction is then partly outside any few latents).

The SAE is the ideal one for the world: ``W_dec = D``, ``W_enc = D^T``, ``b_enc = -2``
(ReLU), so a latent fires when its feature is present, or by interference and noise
(~5% of the time). Its activations go through :func:`refusal_checks.verdicts.sae.sae_inputs`
and the claims' own verdict functions, at the claims' sample sizes (11 categories, 64
refused + 64 twins each, 128 benign, 500 bootstrap replicates). The refusal counts are
planted (80/88 vs 1/16, or 2/88 for a model that never refuses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, ClassVar

import numpy as np

from refusal_checks.verdicts import sae as sae_claims
from refusal_checks.verdicts.sae_core import sae_shared_core
from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.calibration.behaviour import BehaviourScenario
from refusal_checks.calibration.tally import roles_table_lines, tally_worlds
from refusal_checks.measure.sae import SAE, SaeConfig
from refusal_checks.stats.verdict import Verdict

CORE, TAIL, REBUILD = "sae-shared-core", "sae-category-tail", "sae-reconstructs-direction"
SAE_CLAIM_IDS = (CORE, TAIL, REBUILD)
JUDGES = {CORE: sae_shared_core, TAIL: sae_claims.sae_category_tail,
          REBUILD: sae_claims.sae_reconstructs_direction}


@dataclass(frozen=True)
class SparseWorld:
    """A planted sparse-feature world (module docstring)."""

    categories: int = 11
    n_refuse: int = 64
    n_matched: int = 64
    n_benign: int = 128
    d: int = 512
    features: int = 1024
    core: int = 8
    specific: int = 4
    genre: int = 2
    p_on: float = 0.8
    p_off: float = 0.05
    p_specific: float | None = None
    background: float = 0.015
    noise: float = 0.3
    dense: float = 0.0
    refuses: bool = True
    silent: int = 0  # categories (the first ones) whose refused prompts plant no feature
    seed: int = 0

    def with_seed(self, seed: int) -> SparseWorld:
        return replace(self, seed=seed)


def world_sae(dictionary: np.ndarray, threshold: float = 2.0) -> SAE:
    """The ideal ReLU SAE of a dictionary ``(features, d)``."""
    f, d = dictionary.shape
    config = SaeConfig(d, f, "relu", None, "blocks.3.hook_resid_pre", 3, "none", None, True)
    return SAE(config, dictionary.T.astype(np.float32).copy(), dictionary.astype(np.float32),
               np.full(f, -threshold, np.float32), np.zeros(d, np.float32),
               source="planted dictionary")


def draw(world: SparseWorld) -> tuple[dict, dict, np.ndarray, SAE]:
    """(refuse, matched, benign, sae) of one world: category -> (n, d) activations."""
    rng = np.random.default_rng([world.seed, 5])
    k, f = world.categories, world.features
    dictionary = rng.standard_normal((f, world.d))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    base = rng.uniform(0, 2 * world.background, f)
    core = np.arange(world.core)
    specific = world.core + np.arange(k * world.specific).reshape(k, world.specific)
    genre = specific.size + world.core + np.arange(k * world.genre).reshape(k, world.genre)
    base[: genre.size + specific.size + world.core] = 0.0
    p_spec = world.p_on if world.p_specific is None else world.p_specific
    dense = rng.standard_normal((k, world.d))
    dense *= world.dense / np.linalg.norm(dense, axis=1, keepdims=True)

    def sample(n: int, rates: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
        fire = rng.random((n, f)) < rates
        x = (fire * rng.uniform(3.0, 5.0, (n, f))) @ dictionary
        x += world.noise * rng.standard_normal((n, world.d))
        return x + (0.0 if shift is None else shift)

    refuse, matched = {}, {}
    for c in range(k):
        twin = base.copy()
        twin[core] = twin[specific[c]] = world.p_off
        twin[genre[c]] = world.p_on
        rates = twin.copy()
        if world.refuses and c >= world.silent:
            rates[core], rates[specific[c]] = world.p_on, p_spec
        name = f"category_{c:02d}"
        refuse[name] = sample(world.n_refuse, rates, dense[c])
        matched[name] = sample(world.n_matched, twin)
    return refuse, matched, sample(world.n_benign, base), world_sae(dictionary)


def behaviour(world: SparseWorld) -> RefusalBehaviour:
    return RefusalBehaviour("planted", 80 if world.refuses else 2, 88, 1, 16)


def sae_verdicts(world: SparseWorld, claims: Iterable[str] = SAE_CLAIM_IDS, *,
                 seed: int = 0, n_boot: int = 500) -> dict[str, Verdict]:
    """The SAE claims' verdicts on one world, measured as ``fixtures/sae.py`` does."""
    refuse, matched, benign, sae = draw(world)
    inputs = sae_claims.sae_inputs(refuse, matched, benign, sae, seed=seed, n_boot=n_boot)
    return {c: JUDGES[c](inputs, behaviour(world)) for c in claims}


@dataclass(frozen=True)
class SaeScenario(BehaviourScenario):
    """A family of planted sparse worlds (``design`` is a :class:`SparseWorld`)."""

    CLAIM_IDS: ClassVar[tuple[str, ...]] = SAE_CLAIM_IDS


# Planted values at which a statistic sits on its threshold (mean estimate over worlds,
# calibration/README.md): a core of 10 latents in a dictionary of 1,000 (1%, the share
# threshold); core features firing 0.10 more on refused prompts than on twins (the
# active-rate gap itself: no latent is active, the truth is 0); own features firing on
# 0.22 of refused prompts (the tail's held-out specificity ~0.10); a dense shift of norm
# 7 beside core 8 + specific 4 (rebuilt cosine ~0.80).
BOUNDARY_CORE = 10
CORE_FEATURES = 1000
BOUNDARY_P_SPECIFIC = 0.22
BOUNDARY_DENSE = 7.0
W = SparseWorld
SAE_SCENARIOS: dict[str, SaeScenario] = {s.name: s for s in [
    SaeScenario("core-and-tail", "8 core (0.8% of 1,024, under the 1% core share) + 4 own "
                "features per category, p 0.8 vs 0.05", W(), null_for=(CORE,),
                effect_for=(TAIL, REBUILD)),
    SaeScenario("wide-core", "20 core of 1,000 latents (2%) + 4 own per category",
                W(features=CORE_FEATURES, core=20), effect_for=(CORE, TAIL)),
    SaeScenario("no-core", "12 own features per category, no core", W(core=0, specific=12),
                null_for=(CORE,), effect_for=(TAIL, REBUILD)),
    SaeScenario("core-only", "20 core of 1,000 latents, none of a category's own",
                W(features=CORE_FEATURES, core=20, specific=0), null_for=(TAIL,),
                effect_for=(CORE,)),
    SaeScenario("boundary-core", f"{BOUNDARY_CORE} core of {CORE_FEATURES:,} latents (1%, "
                "the threshold) + 8 own", W(features=CORE_FEATURES, core=BOUNDARY_CORE,
                                           specific=8), null_for=(CORE,)),
    SaeScenario("margin-core", "20 core of 1,000 firing on 0.15 of refused prompts vs 0.05 of "
                "twins: the active-rate gap exactly, so no latent is active (truth 0)",
                W(features=CORE_FEATURES, core=20, p_on=0.15, p_specific=0.8),
                null_for=(CORE,)),
    SaeScenario("noise-category", "wide-core, but one category plants no feature: its "
                "direction is noise (the embedded Qwen's safety_core, split-half 0.18)",
                W(features=CORE_FEATURES, core=20, silent=1), null_for=SAE_CLAIM_IDS),
    SaeScenario("boundary-tail", f"8 core + 4 own features at p {BOUNDARY_P_SPECIFIC}: tail "
                "specificity ~0.10, the threshold", W(p_specific=BOUNDARY_P_SPECIFIC),
                null_for=(TAIL,)),
    SaeScenario("dense-direction", "8 core + 4 own plus a dense refusal shift of norm 16 "
                "outside the dictionary", W(dense=16.0), null_for=(REBUILD,)),
    SaeScenario("boundary-rebuild", f"dense shift of norm {BOUNDARY_DENSE}: rebuilt cosine "
                "~0.80, the threshold", W(dense=BOUNDARY_DENSE), null_for=(REBUILD,)),
    SaeScenario("never-refuses", "no refusal features differ; 2/88 refused",
                W(refuses=False), null_for=SAE_CLAIM_IDS),
]}


def judge_sae_world(scenario: str, seed: int, only: tuple[str, ...] = ()
                    ) -> dict[str, tuple[str, float]]:
    """One replicate: claim id -> (outcome, estimate), for the scenario's claims (those in
    ``only`` when given). Top-level so processes can run it."""
    chosen = SAE_SCENARIOS[scenario]
    claims = [c for c in chosen.claims() if not only or c in only]
    verdicts = sae_verdicts(chosen.design.with_seed(seed), claims)
    return {claim: (v.outcome.value, v.estimate) for claim, v in verdicts.items()}


def run_sae(scenarios: Iterable[str], worlds: int, *, first_seed: int = 1,
            jobs: int = 1, only: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Judge ``worlds`` seeded replicates of each scenario -> scenario -> claim -> Tally
    (only the claims in ``only`` when given)."""
    only = tuple(only)
    return tally_worlds(partial(judge_sae_world, only=only), SAE_SCENARIOS, list(scenarios),
                        worlds, claims=lambda name: [c for c in SAE_SCENARIOS[name].claims()
                                                     if not only or c in only],
                        kind="sae", first_seed=first_seed, jobs=jobs, chunksize=2)


def sae_table_lines(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """:func:`~refusal_checks.calibration.tally.roles_table_lines` of the SAE claims."""
    return roles_table_lines(results, SAE_CLAIM_IDS, SAE_SCENARIOS, widths=(26, 17))
