"""ablation-is-category-selective at its boundary, judged against each world's own truth.

The claim's statistic is the selectivity of the directions the claim estimates from 32
train prompts per category, so a world's truth moves with its estimated directions: in
``boundary-selective-genre`` (mean truth 0.256 over 20 worlds, the margin 0.25) single
worlds ranged 0.20-0.33 (sd 0.030). A mean-over-worlds boundary therefore counts a world
whose own truth is 0.33 as a false SUPPORTED, and the staged probe, which grows until such
a world is decided, makes that common. Here each world's truth is measured as the claim
measures it, on ``FRESH`` fresh should-refuse prompts per category (the same
:func:`~refusal_checks.measure.cross_ablation.measure_cross_ablation` and
:func:`~refusal_checks.measure.cross_ablation.selectivity`, the world's own train-half
directions), and a SUPPORTED counts as false only where that truth is at or below the
margin, a REFUTED only where it is above (``calibration/run.py --behaviour --against-truth``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from refusal_checks.calibration.behaviour import BEHAVIOUR_SCENARIOS, BOTH_SELECTIVE
from refusal_checks.calibration.measurements import BehaviourMeasurements, staged_verdict
from refusal_checks.calibration.tally import Tally, pct, tally_worlds
from refusal_checks.measure.cross_ablation import measure_cross_ablation, selectivity
from refusal_checks.prompts.sets import PromptSet
from refusal_checks.stats.verdict import Outcome
from refusal_checks.verdicts.category_steering import MIN_BASELINE_REFUSALS
from refusal_checks.verdicts.cross_ablation import SELECTIVE_MARGIN

# Fresh prompts per category behind a world's truth: the truth's own sampling error is
# then below 0.01, under a third of the spread of truths between worlds (sd 0.030).
FRESH = 500
BELOW, ABOVE = " | truth <= margin", " | truth > margin"


def world_truth(measured: BehaviourMeasurements, n: int = FRESH) -> dict[str, float]:
    """claim -> the selectivity of its directions on ``n`` fresh prompts per category:
    genre-matched directions for ablation-is-category-selective, the paper's for its
    paper's design (categories with genre-matched directions only, as the claim reads)."""
    names = list(measured.matched_directions)
    probes = {c: PromptSet(f"{c}/refuse", c, "refuse",
                           tuple(f"{c} refuse prompt fresh {i}" for i in range(n)), "fresh")
              for c in names}
    out = {}
    for claim, directions in zip(BOTH_SELECTIVE, (measured.matched_directions,
                                                  measured.train_directions)):
        matrix = measure_cross_ablation(measured.score, probes,
                                        {c: directions[c] for c in names}, 0, controls=0)
        drops, _ = matrix.drops()
        out[claim] = float(selectivity(drops, matrix.measured(MIN_BASELINE_REFUSALS)))
    return out


def judge_against_truth(scenario: str, seed: int) -> dict[str, tuple[str, float]]:
    """One world: each selective claim's staged verdict (outcome, estimate), and the same
    outcome under ``claim + BELOW`` or ``claim + ABOVE`` with the world's truth."""
    from refusal_checks.calibration.worlds import PlantedBackend, collection

    design = BEHAVIOUR_SCENARIOS[scenario].design.with_seed(seed)
    measured = BehaviourMeasurements(PlantedBackend(design), collection(design))
    truth = world_truth(measured)
    out: dict[str, tuple[str, float]] = {}
    for claim in BOTH_SELECTIVE:
        verdict = staged_verdict(measured, claim)
        out[claim] = (verdict.outcome.value, verdict.estimate)
        side = BELOW if truth[claim] <= SELECTIVE_MARGIN else ABOVE
        out[claim + side] = (verdict.outcome.value, truth[claim])
    return out


def run_against_truth(scenarios: Iterable[str], worlds: int, *, first_seed: int = 1,
                      jobs: int = 1) -> dict[str, dict[str, Tally]]:
    """:func:`judge_against_truth` on ``worlds`` seeded worlds of each scenario."""
    ids = tuple(c + part for c in BOTH_SELECTIVE for part in ("", BELOW, ABOVE))
    return tally_worlds(judge_against_truth, BEHAVIOUR_SCENARIOS, list(scenarios), worlds,
                        claims=lambda _: ids, kind="behaviour", first_seed=first_seed,
                        jobs=jobs, chunksize=4)


def truth_lines(results: Mapping[str, Mapping[str, Tally]]) -> list[str]:
    """Per claim and scenario: SUPPORTED over all worlds; the worlds whose own truth is at
    or below the margin and how many of them were SUPPORTED (false); those above it and
    how many were REFUTED (false); the mean truth."""
    header = (f"{'claim':44} {'scenario':26} {'n':>4}  {'SUPPORTED (all)':24}  "
              f"{'n<=':>4} {'false SUPPORTED':24}  {'n>':>4} {'false REFUTED':24}  "
              "mean truth")
    lines = [header, "-" * len(header)]
    for claim in BOTH_SELECTIVE:
        for name, tallies in results.items():
            every, below, above = (tallies[claim + part] for part in ("", BELOW, ABOVE))
            truths = below.estimates + above.estimates

            def rate(tally: Tally, outcome: Outcome) -> str:
                return pct(tally.rate(outcome)) if tally.n else f"{'-':>24}"

            lines.append(f"{claim:44} {name:26} {every.n:4}  "
                         f"{rate(every, Outcome.SUPPORTED):24}  {below.n:4} "
                         f"{rate(below, Outcome.SUPPORTED):24}  {above.n:4} "
                         f"{rate(above, Outcome.REFUTED):24}  "
                         f"{float(np.mean(truths)) if truths else float('nan'):.3f}")
    return lines


def truth_payload(results: Mapping[str, Mapping[str, Tally]]) -> dict[str, Any]:
    """The counts for ``--json``."""
    return {name: {claim: {"counts": dict(t.counts), "n": t.n,
                           "mean": float(np.mean(t.estimates)) if t.estimates else None}
                   for claim, t in tallies.items()} for name, tallies in results.items()}
