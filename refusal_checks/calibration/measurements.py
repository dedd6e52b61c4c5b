"""The behavioural claims' verdicts outside pytest: a backend in, Verdicts out.

The behavioural claims (``claims/test_single_direction.py``,
``claims/test_category_steering.py``) work on a backend, not on activations:
:class:`BehaviourMeasurements` measures what ``fixtures/behaviour.py`` measures (probes,
train-half directions, judged replies, cheap scores, KL, the steering sweep) with the same
protocol (:mod:`refusal_checks.measure.protocol`), and :func:`behaviour_verdicts` hands
it to :mod:`refusal_checks.verdicts.single_direction` and
:mod:`refusal_checks.verdicts.category_steering`. Their known-answer worlds are
:mod:`refusal_checks.calibration.behaviour` (``calibration/run.py --behaviour``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from refusal_checks.verdicts import category_steering as category_claims
from refusal_checks.verdicts import single_direction as direction_claims
from refusal_checks.verdicts import staged_claims
from refusal_checks.core.defaults import POSITION as DEFAULT_POSITION
from refusal_checks.measure import controls
from refusal_checks.measure.judged import JudgedMeasure
from refusal_checks.measure.arditi import ARDITI_CLAIMS
from refusal_checks.measure.protocol import (
    SWEEP_STRENGTHS,
    arditi_probe,
    category_probe,
    harmful_categories,
    probe_agreement,
    staged_arditi_probe,
    staged_category_probe,
    matched_train_directions,
    train_directions,
)
from refusal_checks.calibration.geometry import DEFAULT_SEED
from refusal_checks.measure.staged import StagedProbe
from refusal_checks.stats.verdict import Verdict

# ablation-is-category-selective and its paper's design (refusal_checks/verdicts/genre.py).
SELECTIVE = ("ablation-is-category-selective", "ablation-is-category-selective-paper-design")
BEHAVIOUR_CLAIM_IDS = (
    "ablation-bypasses-refusal", "addition-induces-refusal",
    "ablation-keeps-harmless-behaviour", "random-direction-does-not-bypass",
    "random-direction-does-not-induce", "shared-knob", "ablation-lowers-category-refusal",
    *SELECTIVE,
)
# The behavioural claims whose probes are staged (ablation-keeps-harmless-behaviour reads
# every held-out harmless prompt already).
STAGED_CLAIM_IDS = tuple(c for c in BEHAVIOUR_CLAIM_IDS
                         if c != "ablation-keeps-harmless-behaviour")


class BehaviourMeasurements:
    """What the fixtures of ``fixtures/behaviour.py`` hold, for one backend, without caches.

    Probes, train-half directions, reply length and sweep grid are
    :mod:`refusal_checks.measure.protocol`'s (the KL claim reads the benign pool's whole
    test half), at the paper's layer and position; replies are judged by the substring
    judge; sweeps use the cheap score (> 0).
    Everything is computed on first use, so a claim pays only for what it reads.
    """

    def __init__(self, backend: Any, collection: Any, *, seed: int = DEFAULT_SEED,
                 position: int = DEFAULT_POSITION, selection_order: str = "filter") -> None:
        from refusal_checks.measure.activations import collect, paper_layer
        from refusal_checks.measure.behaviour import observe_refusals
        from refusal_checks.measure.effects import mean_norm
        from refusal_checks.judges.base import SubstringJudge

        self.backend, self.seed, self.selection_order = backend, seed, selection_order
        self.judge = SubstringJudge()
        self.layer = paper_layer(backend.n_layers)
        acts = collect(backend, collection, position=position, cache=None).at_layer(self.layer)
        self.acts, self.collection = acts, collection  # the style claims read them too
        self.harmful_categories = harmful_categories(collection)
        self.probe_harmful, self.probe_benign = category_probe(collection)
        arditi, self.arditi_benign = arditi_probe(collection, self.harmful_categories)
        self.arditi_harmful = list(arditi.values())
        self.kl_prompts = collection.benign.split("test")  # the KL claim reads all of them
        self.train_directions = train_directions(acts.refuse, acts.benign, collection)
        self.matched_directions = matched_train_directions(acts.refuse, acts.matched, collection)
        self.reference_norm = mean_norm(acts.benign)
        self.behaviour = observe_refusals(backend, collection, seed=seed, cache=None)
        # The claims' own measurement object, without caches or observations.
        self.measure = JudgedMeasure(backend, self.judge)
        self.judge_name = self.judge.name
        self._memo: dict[Any, Any] = {}

    def refused(self, prompts: Any, intervention: Any = None) -> np.ndarray:
        return self.measure.refused(prompts, intervention)

    def score(self, prompts: Any, intervention: Any = None) -> np.ndarray:
        return self.measure.score(prompts, intervention)

    def _once(self, key: str, compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def harmful_refused(self, intervention: Any = None) -> np.ndarray:
        """The single-direction claims' harmful probe (``arditi_probe``)."""
        return np.concatenate([self.refused(p, intervention) for p in self.arditi_harmful])

    def base_harmful(self) -> np.ndarray:
        return self._once("base harmful", self.harmful_refused)

    def base_benign(self) -> np.ndarray:
        return self._once("base benign", lambda: self.refused(self.arditi_benign))

    def agreement(self) -> dict[str, Any]:
        """The ``score_agreement`` fixture."""
        sets = [self.probe_harmful[c] for c in self.harmful_categories] + [self.probe_benign]
        return self._once("agreement",
                          lambda: probe_agreement(self.score, self.refused, sets))

    def knob_sweep(self) -> Any:
        """The ``knob_sweep`` fixture on the fixed probe."""
        return staged_claims.knob_sweep(self.score, self.train_directions,
                          [self.probe_harmful[c] for c in self.harmful_categories],
                          [self.probe_benign], layer=self.layer,
                          reference_norm=self.reference_norm, strengths=SWEEP_STRENGTHS)

    def selection(self) -> Any:
        """The ``arditi_selection`` fixture: :func:`refusal_checks.measure.arditi.run_selection` on
        16-token replies to the harmful categories and the behaviour probe's benign ones."""
        from refusal_checks.measure.arditi import run_selection
        from refusal_checks.measure.behaviour_control import REPLY_TOKENS as CONTROL_TOKENS
        from refusal_checks.measure.effects import judged

        def compute() -> Any:
            refused = {c: judged(self.backend, self.collection.categories[c].refuse,
                                 self.judge, None, None, max_new_tokens=CONTROL_TOKENS)[0]
                       for c in self.harmful_categories}
            return run_selection(self.backend, self.collection, self.harmful_categories,
                                 refused, self.behaviour.benign_prompts,
                                 order=self.selection_order)

        return self._once("selection", compute)

    def _arditi(self, claim: str, s: Any) -> Verdict:
        """A single-direction claim on the selected direction (claims/test_single_direction.py)."""
        from refusal_checks.measure.effects import kl
        from refusal_checks.models.interventions import Ablate

        b, seed = self.behaviour, self.seed
        if claim == "ablation-bypasses-refusal":
            ablated = self.harmful_refused(Ablate(s.direction, "refusal"))
            return direction_claims.ablation_bypasses_refusal(self.base_harmful(), ablated, b,
                                                              self.judge.name)
        if claim == "addition-induces-refusal":
            edit = controls.raw_addition(s.layer, s.direction, s.reference_norm,
                                                 "refusal")
            return direction_claims.addition_induces_refusal(
                self.base_benign(), self.refused(self.arditi_benign, edit), b, self.judge.name)
        if claim == "ablation-keeps-harmless-behaviour":
            values = kl(self.backend, self.kl_prompts, Ablate(s.direction), None)
            return direction_claims.ablation_keeps_harmless_behaviour(values, b, seed)
        randoms = controls.random_controls(s.direction, seed)
        if claim == "random-direction-does-not-bypass":
            ablated = [self.harmful_refused(Ablate(r, f"random {i}"))
                       for i, r in enumerate(randoms)]
            return direction_claims.random_direction_does_not_bypass(self.base_harmful(),
                                                                     ablated, b)
        steered = [self.refused(self.arditi_benign, controls.raw_addition(
            s.layer, r, s.reference_norm, f"random {i}")) for i, r in enumerate(randoms)]
        return direction_claims.random_direction_does_not_induce(self.base_benign(), steered, b)

    def _selectivity(self, directions: dict[str, np.ndarray], label: str | None = None
                     ) -> Verdict:
        """The cross-ablation statistic of ``directions`` on the fixed probe."""
        from refusal_checks.measure.cross_ablation import measure_cross_ablation
        from refusal_checks.verdicts import cross_ablation

        matrix = measure_cross_ablation(self.score, self.probe_harmful, directions, self.seed)
        return cross_ablation.ablation_is_category_selective(
            matrix, self.agreement(), self.behaviour, self.seed,
            directions=label or cross_ablation.PAPER_DIRECTIONS)

    def verdict(self, claim: str) -> Verdict:
        """The verdict of one behavioural claim, as its test in ``claims/`` computes it."""
        from refusal_checks.models.interventions import Ablate

        b, seed = self.behaviour, self.seed
        if claim in ARDITI_CLAIMS:
            from refusal_checks.verdicts.arditi import no_direction, with_selection

            selection = self.selection()
            verdict = (self._arditi(claim, selection) if selection.found
                       else no_direction(claim, selection, b, seed))
            return with_selection(verdict, selection)
        if claim == "shared-knob":
            return category_claims.shared_knob(self.knob_sweep(), self.agreement(), b, seed)
        if claim == "ablation-lowers-category-refusal":
            per_category = {
                name: (self.score(self.probe_harmful[name]) > 0,
                       self.score(self.probe_harmful[name], Ablate(direction, name)) > 0)
                for name, direction in self.train_directions.items()}
            return category_claims.ablation_lowers_category_refusal(
                per_category, self.agreement(), b)
        if claim in SELECTIVE:
            from refusal_checks.verdicts import cross_ablation

            paper = cross_ablation.paper_design(self._selectivity(self.train_directions))
            if claim != cross_ablation.CLAIM:
                return paper
            usable = {n: d for n, d in self.matched_directions.items()
                      if n in self.probe_harmful}
            matched = cross_ablation.NO_MATCHED_ROWS if len(usable) < 2 else \
                self._selectivity(usable, cross_ablation.MATCHED_DIRECTIONS)
            return cross_ablation.selective_from_designs(paper, matched, self.behaviour)
        raise ValueError(f"unknown behavioural claim id {claim!r}. Known: "
                         f"{', '.join(BEHAVIOUR_CLAIM_IDS)}.")


def behaviour_verdicts(backend: Any, collection: Any,
                       claims: Iterable[str] = BEHAVIOUR_CLAIM_IDS, *,
                       seed: int = DEFAULT_SEED, staged: bool = True,
                       selection_order: str = "filter") -> dict[str, Verdict]:
    """Verdicts of behavioural claims on ``backend`` (any Backend with ``generate``,
    ``last_logprobs``, ``residual_stream``) over ``collection``, measured as the fixtures do:
    on staged probes (:func:`staged_verdict`) as the claims run, or on
    the fixed probes (``staged=False``, the design before staging). ``selection_order``:
    Arditi's search order (``--refusal-selection-order``).
    """
    wanted = list(claims)
    unknown = [c for c in wanted if c not in BEHAVIOUR_CLAIM_IDS]
    if unknown:
        raise ValueError(f"unknown behavioural claim ids {unknown}. Known: "
                         f"{', '.join(BEHAVIOUR_CLAIM_IDS)}.")
    measured = BehaviourMeasurements(backend, collection, seed=seed,
                                     selection_order=selection_order)
    if not staged:
        return {claim: measured.verdict(claim) for claim in wanted}
    return {claim: staged_verdict(measured, claim) if claim in STAGED_CLAIM_IDS + ARDITI_CLAIMS
            else measured.verdict(claim) for claim in wanted}


def staged_probes(measured: BehaviourMeasurements) -> tuple[StagedProbe, StagedProbe]:
    """(category claims' probe, single-direction claims' probe), as the fixtures build them."""
    return (staged_category_probe(measured.collection),
            staged_arditi_probe(measured.collection, measured.harmful_categories))


def staged_verdict(measured: BehaviourMeasurements, claim: str,
                   budget: int | None = None) -> Verdict:
    """The staged verdict of one claim, as its test in ``claims/`` computes it."""
    from refusal_checks.verdicts.arditi import single_direction_verdict

    probe, arditi = staged_probes(measured)
    m, b, seed = measured, measured.behaviour, measured.seed
    if claim in ARDITI_CLAIMS:
        return single_direction_verdict(claim, m.measure, arditi, m.selection(), b, seed,
                                        kl_prompts=m.kl_prompts, budget=budget)
    if claim == "shared-knob":
        def sweep(harmful: Sequence[Any], benign: Sequence[Any]) -> Any:
            return staged_claims.knob_sweep(m.score, m.train_directions, harmful, benign,
                                            layer=m.layer, reference_norm=m.reference_norm,
                                            strengths=SWEEP_STRENGTHS)

        return staged_claims.shared_knob(sweep, probe, m.harmful_categories, m.agreement(), b,
                                         seed, budget=budget)
    if claim == "ablation-lowers-category-refusal":
        return staged_claims.ablation_lowers_category_refusal(
            m.measure, probe, m.train_directions, m.agreement(), b, budget=budget)
    if claim in SELECTIVE:  # the paper's design is measured once for both
        paper = m._once(f"selective paper design {budget}", lambda: (
            staged_claims.ablation_is_category_selective_paper_design(
                m.measure, probe, m.train_directions, m.agreement(), b, seed, budget=budget)))
        if claim != SELECTIVE[0]:
            return paper
        return staged_claims.ablation_is_category_selective(
            m.measure, probe, m.train_directions, m.matched_directions, m.agreement(), b, seed,
            budget=budget, paper=paper)
    raise ValueError(f"no staged probe for claim {claim!r}. Staged: "
                     f"{', '.join(STAGED_CLAIM_IDS)}.")
