"""Staged probes in known-answer worlds: the fixed and the staged design side by side.

Each world of :data:`refusal_checks.calibration.behaviour.BEHAVIOUR_SCENARIOS` is
measured once (:class:`~refusal_checks.calibration.measurements.BehaviourMeasurements`, as
``fixtures/behaviour.py`` measures) and judged twice: by the fixed design (the claim's
verdict function on the fixed probe, ``BehaviourMeasurements.verdict``) and by the staged
design (:func:`~refusal_checks.calibration.measurements.staged_verdict`:
:mod:`refusal_checks.verdicts.staged_claims` on the same world's staged probes, as the claims in
``claims/`` call it). ``calibration/run.py --staged`` prints the comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from refusal_checks.calibration.behaviour import BEHAVIOUR_SCENARIOS
from refusal_checks.calibration.measurements import (STAGED_CLAIM_IDS, BehaviourMeasurements,
                                                   staged_verdict)
from refusal_checks.calibration.tally import pct
from refusal_checks.stats.verdict import Outcome


def judge_both(scenario: str, seed: int, claims: Sequence[str] | None = None
               ) -> dict[str, dict[str, Any]]:
    """One world: claim -> {"fixed": outcome, "staged": outcome, "stage": reached,
    "prompts": the staged probe's size at the last look, "fixed_prompts": stage 1's}."""
    from refusal_checks.calibration.worlds import PlantedBackend, collection

    chosen = BEHAVIOUR_SCENARIOS[scenario]
    design = chosen.design.with_seed(seed)
    measured = BehaviourMeasurements(PlantedBackend(design), collection(design))
    out = {}
    for claim in chosen.claims():
        if claim not in STAGED_CLAIM_IDS or (claims is not None and claim not in claims):
            continue
        info = staged_verdict(measured, claim)
        record = info.details.get("staged")
        if record is None:  # no selected direction: nothing was probed, in either design
            record = {"stage": 1, "stages": 1, "looks": [{"prompts": 0}]}
        looks = record["looks"]
        out[claim] = {"fixed": measured.verdict(claim).outcome.value,
                      "staged": info.outcome.value, "stage": record["stage"],
                      "stages": record["stages"],
                      "prompts": looks[-1]["prompts"], "fixed_prompts": looks[0]["prompts"]}
    return out


@dataclass
class Comparison:
    """Outcome counts of both designs over worlds, and the staged design's cost."""

    fixed: dict[str, int] = field(default_factory=dict)
    staged: dict[str, int] = field(default_factory=dict)
    stages: dict[int, int] = field(default_factory=dict)
    prompts: list[int] = field(default_factory=list)
    fixed_prompts: int = 0
    planned: int = 1

    def add(self, row: Mapping[str, Any]) -> None:
        for design in ("fixed", "staged"):
            counts = getattr(self, design)
            counts[row[design]] = counts.get(row[design], 0) + 1
        self.stages[row["stage"]] = self.stages.get(row["stage"], 0) + 1
        self.prompts.append(row["prompts"])
        self.fixed_prompts, self.planned = row["fixed_prompts"], row["stages"]

    @property
    def n(self) -> int:
        return sum(self.fixed.values())


def _task(args: tuple[str, int, tuple[str, ...] | None]) -> dict[str, dict[str, Any]]:
    return judge_both(*args)


def run_comparison(scenarios: Iterable[str], worlds: int, *, first_seed: int = 1,
                   jobs: int = 1, only: Sequence[str] | None = None
                   ) -> dict[str, dict[str, Comparison]]:
    """scenario -> claim -> :class:`Comparison` over ``worlds`` seeded worlds."""
    names = list(scenarios)
    unknown = [n for n in names if n not in BEHAVIOUR_SCENARIOS]
    if unknown:
        raise ValueError(f"unknown behaviour scenarios {unknown}. Known: "
                         f"{', '.join(BEHAVIOUR_SCENARIOS)}.")
    tasks = [(name, first_seed + i, tuple(only) if only else None)
             for name in names for i in range(worlds)]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(_task, tasks, chunksize=4))
    else:
        results = [_task(t) for t in tasks]
    out: dict[str, dict[str, Comparison]] = {name: {} for name in names}
    for (name, _, _), result in zip(tasks, results):
        for claim, row in result.items():
            out[name].setdefault(claim, Comparison()).add(row)
    return {name: claims for name, claims in out.items() if claims}


def comparison_lines(results: Mapping[str, Mapping[str, Comparison]]) -> list[str]:
    """One row per (claim, scenario): role, worlds, SUPPORTED and REFUTED of the fixed and
    the staged design (95% Wilson intervals for SUPPORTED), the looks reached and the mean
    probe size against the fixed one."""

    def rate(counts: Mapping[str, int], outcome: Outcome, n: int) -> tuple[float, float, float]:
        from refusal_checks.stats.intervals import wilson_interval

        k = counts.get(outcome.value, 0)
        lo, hi = wilson_interval(k, n)
        return k / n, lo, hi

    header = (f"{'claim':34} {'role':6} {'scenario':20} {'n':>4}  {'fixed SUP':24} "
              f"{'staged SUP':24} {'fixed REF':>9} {'staged REF':>10}  "
              f"{'stage 1/2/3 %':14} prompts")
    cells = [(claim, name, rows[claim]) for claim in STAGED_CLAIM_IDS
             for name, rows in results.items() if claim in rows]
    lines = [header, "-" * len(header)]
    for claim, name, c in cells:
        role = BEHAVIOUR_SCENARIOS[name].role(claim) or ""
        refuted = [100 * counts.get("refuted", 0) / c.n for counts in (c.fixed, c.staged)]
        stages = "/".join(f"{100 * c.stages.get(k, 0) / c.n:.0f}" for k in (1, 2, 3))
        lines.append(f"{claim:34} {role:6} {name:20} {c.n:4}  "
                     f"{pct(rate(c.fixed, Outcome.SUPPORTED, c.n)):24} "
                     f"{pct(rate(c.staged, Outcome.SUPPORTED, c.n)):24} "
                     f"{refuted[0]:8.1f}% {refuted[1]:9.1f}%  {stages:14} "
                     f"{sum(c.prompts) / len(c.prompts):.0f} vs {c.fixed_prompts}")
    return lines
