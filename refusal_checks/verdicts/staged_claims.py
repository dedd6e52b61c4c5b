"""The behavioural claims on staged probes (:mod:`refusal_checks.measure.staged`).

Each function measures a claim on its probe's stage 1, 2, ... (one look each), through
the claim's own verdict function in :mod:`refusal_checks.verdicts.single_direction`,
:mod:`refusal_checks.verdicts.category_steering` or :mod:`refusal_checks.measure.cross_ablation` at the
per-look level, and returns the last look's verdict. ``claims/test_single_direction.py``
and ``claims/test_category_steering.py`` call them with the ``measure`` fixture;
:func:`refusal_checks.calibration.measurements.staged_verdict` with
:class:`~refusal_checks.calibration.measurements.BehaviourMeasurements`, so a claim and its
calibration measure alike.

``measure`` is a :class:`~refusal_checks.measure.judged.Measurements` (``refused``: judged replies, one
bool per prompt; ``score``: cheap refusal score per
prompt). Both are called once per stage increment, so cached increments are never
measured twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from refusal_checks.verdicts import category_steering as category_claims
from refusal_checks.verdicts import single_direction as direction_claims
from refusal_checks.measure import controls, cross_ablation
from refusal_checks.verdicts import cross_ablation as cross_ablation_verdict
from refusal_checks.measure import staged
from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.measure.judged import Measurements
from refusal_checks.stats.rates import KnobSweep
from refusal_checks.models.interventions import Ablate
from refusal_checks.prompts.sets import PromptSet
from refusal_checks.measure.staged import StagedProbe, concat
from refusal_checks.stats.verdict import Verdict


def _harmful(probe: StagedProbe, stage: int) -> list[PromptSet]:
    return [p for parts in probe.harmful_at(stage).values() for p in parts]


def _refused(measure: Measurements, parts: Sequence[PromptSet],
             intervention: Any = None) -> np.ndarray:
    return concat(lambda p: measure.refused(p, intervention), parts)


def _scored(measure: Measurements, parts: Sequence[PromptSet],
            intervention: Any = None) -> np.ndarray:
    return concat(lambda p: measure.score(p, intervention), parts) > 0


def _agrees(agreement: Mapping[str, Any]) -> bool:
    return agreement["agreement"] >= category_claims.MIN_SCORE_AGREEMENT


def _too_few_categories(verdict: Verdict) -> bool:
    """More probes give a category its baseline refusals (MIN_BASELINE_REFUSALS)."""
    return bool(verdict.details.get("too_few_baseline_refusals"))


def ablation_bypasses_refusal(measure: Measurements, probe: StagedProbe, direction: np.ndarray,
                              behaviour: RefusalBehaviour, judge: str = "", *,
                              budget: int | None = None) -> Verdict:
    """``ablation-bypasses-refusal`` on the harmful sets of ``probe``."""
    probe = probe.only(benign=False)

    def look(stage: int, level: float) -> Verdict:
        parts = _harmful(probe, stage)
        return direction_claims.ablation_bypasses_refusal(
            _refused(measure, parts), _refused(measure, parts, Ablate(direction, "refusal")),
            behaviour, judge, prompts=[t for p in parts for t in p.texts], level=level)

    return staged.run(look, probe, budget=budget, can_grow=behaviour.refuses()[0])


def steered_benign_edits(layer: int, direction: np.ndarray, reference_norm: float, seed: int,
                         *, addition: bool = True, random: bool = True) -> list[Any]:
    """The steering edits ``addition-induces-refusal`` (the raw refusal direction added) and
    ``random-direction-does-not-induce`` (random vectors of its norm added) judge replies
    under, on the benign sets: the run's judged steered replies, which the sweep claims'
    steered score agreement reads (fixture ``sweep_score_agreement``)."""
    edits = [controls.raw_addition(layer, direction, reference_norm, "refusal")] \
        if addition else []
    if random:
        edits += [controls.raw_addition(layer, r, reference_norm, f"random {i}")
                  for i, r in enumerate(controls.random_controls(direction, seed))]
    return edits


def addition_induces_refusal(measure: Measurements, probe: StagedProbe, layer: int,
                             direction: np.ndarray, reference_norm: float,
                             behaviour: RefusalBehaviour, judge: str = "", *,
                             budget: int | None = None) -> Verdict:
    """``addition-induces-refusal`` on the benign sets of ``probe``."""
    probe = probe.only([])
    edit, = steered_benign_edits(layer, direction, reference_norm, 0, random=False)

    def look(stage: int, level: float) -> Verdict:
        parts = probe.benign_at(stage)
        return direction_claims.addition_induces_refusal(_refused(measure, parts),
                                                         _refused(measure, parts, edit),
                                                         behaviour, judge, level=level)

    return staged.run(look, probe, budget=budget, can_grow=behaviour.refuses()[0])


def random_direction_does_not_bypass(measure: Measurements, probe: StagedProbe, direction: np.ndarray,
                                     behaviour: RefusalBehaviour, seed: int, *,
                                     budget: int | None = None) -> Verdict:
    """``random-direction-does-not-bypass``: random directions ablated, harmful sets."""
    probe = probe.only(benign=False)
    edits = [Ablate(r, f"random {i}")
             for i, r in enumerate(controls.random_controls(direction, seed))]

    def look(stage: int, level: float) -> Verdict:
        parts = _harmful(probe, stage)
        return direction_claims.random_direction_does_not_bypass(
            _refused(measure, parts), [_refused(measure, parts, e) for e in edits], behaviour,
            level)

    return staged.run(look, probe, base_level=direction_claims.CONTROL_LEVEL, budget=budget,
                      can_grow=behaviour.refuses()[0])


def random_direction_does_not_induce(measure: Measurements, probe: StagedProbe, layer: int,
                                     direction: np.ndarray, reference_norm: float,
                                     behaviour: RefusalBehaviour, seed: int, *,
                                     budget: int | None = None) -> Verdict:
    """``random-direction-does-not-induce``: random vectors added, benign sets."""
    probe = probe.only([])
    edits = steered_benign_edits(layer, direction, reference_norm, seed, addition=False)

    def look(stage: int, level: float) -> Verdict:
        parts = probe.benign_at(stage)
        return direction_claims.random_direction_does_not_induce(
            _refused(measure, parts), [_refused(measure, parts, e) for e in edits], behaviour,
            level)

    return staged.run(look, probe, base_level=direction_claims.CONTROL_LEVEL, budget=budget,
                      can_grow=behaviour.refuses()[0])


def knob_sweep(score: Callable[..., np.ndarray], directions: Mapping[str, np.ndarray],
               harmful: Sequence[PromptSet], benign: Sequence[PromptSet], *, layer: int,
               reference_norm: float, strengths: Sequence[float],
               advance: Callable[[], None] | None = None) -> KnobSweep:
    """Cheap-score refusal (score > 0) on the ``harmful`` and ``benign`` prompt sets while
    steering along each direction at each relative strength (the ``knob_sweep`` fixture)."""
    from refusal_checks.models.interventions import steer

    names = list(directions)
    shape = (len(names), len(strengths))
    rr = np.zeros(shape + (sum(len(p) for p in harmful),), bool)
    orr = np.zeros(shape + (sum(len(p) for p in benign),), bool)
    alphas = np.zeros(shape)
    for i, name in enumerate(names):
        for j, strength in enumerate(strengths):
            edit = steer(directions[name], strength, layer, reference_norm, name)
            alphas[i, j] = edit.alpha
            rr[i, j] = concat(lambda p: score(p, edit), harmful) > 0
            orr[i, j] = concat(lambda p: score(p, edit), benign) > 0
            if advance is not None:
                advance()
    return KnobSweep(names, list(strengths), alphas, rr, orr)


def shared_knob(sweep: Callable[[list[PromptSet], list[PromptSet]], KnobSweep],
                probe: StagedProbe, harmful_categories: Sequence[str],
                agreement: Mapping[str, Any], behaviour: RefusalBehaviour, seed: int, *,
                budget: int | None = None,
                verdict: Callable[..., Verdict] = category_claims.shared_knob) -> Verdict:
    """``shared-knob``: ``sweep(harmful sets, benign sets)`` measured at each stage.

    ``verdict(sweep, agreement, behaviour, seed, level)``: the claim judged on each look's
    sweep (``sae-steering-same-knob`` passes its own; the probe and stages are these).
    """
    probe = probe.only(harmful_categories)

    def look(stage: int, level: float) -> Verdict:
        return verdict(sweep(_harmful(probe, stage), probe.benign_at(stage)), agreement,
                       behaviour, seed, level)

    return staged.run(look, probe, budget=budget,
                      can_grow=behaviour.refuses()[0] and _agrees(agreement))


def ablation_lowers_category_refusal(measure: Measurements, probe: StagedProbe,
                                     directions: Mapping[str, np.ndarray],
                                     agreement: Mapping[str, Any],
                                     behaviour: RefusalBehaviour, *,
                                     budget: int | None = None) -> Verdict:
    """``ablation-lowers-category-refusal``: each category's own direction ablated; each
    look's intersection-union rule at the per-look level (its Bonferroni intervals at that
    level split over the categories)."""
    probe = probe.only([name for name in directions if name in probe.harmful], benign=False)

    def look(stage: int, level: float) -> Verdict:
        per_category = {name: (_scored(measure, parts),
                               _scored(measure, parts, Ablate(directions[name], name)))
                        for name, parts in probe.harmful_at(stage).items()}
        return category_claims.ablation_lowers_category_refusal(per_category, agreement,
                                                                behaviour, level)

    return staged.run(look, probe, budget=budget, fixable=_too_few_categories,
                      can_grow=behaviour.refuses()[0] and _agrees(agreement))


def selectivity(measure: Measurements, probe: StagedProbe, directions: Mapping[str, np.ndarray],
                agreement: Mapping[str, Any], behaviour: RefusalBehaviour, seed: int, *,
                budget: int | None = None,
                label: str = cross_ablation_verdict.PAPER_DIRECTIONS) -> Verdict:
    """The cross-ablation statistic of ``directions`` (k x k, at each stage of ``probe``)."""
    probe = probe.only([name for name in directions if name in probe.harmful], benign=False)

    def score(parts: Sequence[PromptSet], intervention: Any = None) -> np.ndarray:
        return concat(lambda p: measure.score(p, intervention), parts)

    def look(stage: int, level: float) -> Verdict:
        matrix = cross_ablation.measure_cross_ablation(score, probe.harmful_at(stage),
                                                       directions, seed)
        return cross_ablation_verdict.ablation_is_category_selective(
            matrix, agreement, behaviour, seed, margin=cross_ablation_verdict.SELECTIVE_MARGIN,
            level=level, directions=label)

    return staged.run(look, probe, base_level=cross_ablation_verdict.CROSS_LEVEL, budget=budget,
                      fixable=_too_few_categories,
                      can_grow=behaviour.refuses()[0] and _agrees(agreement))


def ablation_is_category_selective_paper_design(
        measure: Measurements, probe: StagedProbe, directions: Mapping[str, np.ndarray],
        agreement: Mapping[str, Any], behaviour: RefusalBehaviour, seed: int, *,
        budget: int | None = None) -> Verdict:
    """``ablation-is-category-selective-paper-design``: the paper's directions' selectivity,
    with the genre caveat."""
    return cross_ablation_verdict.paper_design(selectivity(
        measure, probe, directions, agreement, behaviour, seed, budget=budget))


def ablation_is_category_selective(measure: Measurements, probe: StagedProbe,
                                   directions: Mapping[str, np.ndarray],
                                   matched_directions: Mapping[str, np.ndarray],
                                   agreement: Mapping[str, Any], behaviour: RefusalBehaviour,
                                   seed: int, *, budget: int | None = None,
                                   paper: Verdict | None = None) -> Verdict:
    """``ablation-is-category-selective``: the genre-matched directions' selectivity (staged
    on its own), the paper's design agreeing for a SUPPORTED
    (:func:`refusal_checks.verdicts.cross_ablation.selective_from_designs`).

    ``paper``: the paper's design's verdict when already measured (the same cached scores);
    ``matched_directions``: category -> genre-matched direction (fewer than two: the claim
    cannot be decided).
    """
    if paper is None:
        paper = ablation_is_category_selective_paper_design(
            measure, probe, directions, agreement, behaviour, seed, budget=budget)
    usable = {n: d for n, d in matched_directions.items() if n in probe.harmful}
    matched: Verdict | str = cross_ablation_verdict.NO_MATCHED_ROWS if len(usable) < 2 else \
        selectivity(measure, probe, usable, agreement, behaviour, seed, budget=budget,
                    label=cross_ablation_verdict.MATCHED_DIRECTIONS)
    return cross_ablation_verdict.selective_from_designs(paper, matched, behaviour)
