"""Known-answer worlds, counted: outcome tallies, their rates and the roles table.

Every claim family's calibration (:mod:`refusal_checks.calibration.known_answers` for the geometry
claims, :mod:`refusal_checks.calibration.behaviour`, ``style_calibration``,
``oracle_calibration``, ``sae_calibration``, ``sae_steering_calibration``) judges seeded
worlds with :func:`tally_worlds` and prints :func:`roles_table_lines`. Goals (issue
"Known-answer worlds"): SUPPORTED under the null at most 5% of worlds, under the effect at
least 90%.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from refusal_checks.stats.intervals import wilson_interval
from refusal_checks.stats.verdict import Outcome

# Goals of the issue: false SUPPORTED under the null, SUPPORTED under the effect, and
# (issue #26) false REFUTED under the effect.
MAX_FALSE_SUPPORTED = 0.05
MIN_POWER = 0.90
MAX_FALSE_REFUTED = 0.05


@dataclass
class Tally:
    """Outcomes of one claim over the worlds of one scenario."""

    counts: Counter = field(default_factory=Counter)
    estimates: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def rate(self, outcome: Outcome) -> tuple[float, float, float]:
        """(rate, wilson lo, wilson hi) of ``outcome``."""
        k = self.counts[outcome.value]
        lo, hi = wilson_interval(k, self.n) if self.n else (math.nan, math.nan)
        return (k / self.n if self.n else math.nan), lo, hi


def pct(rate: tuple[float, float, float]) -> str:
    """``(p, lo, hi)`` as ``" 12.5% [ 3.1,  40.0]"``: a rate with its Wilson interval."""
    p, lo, hi = rate
    return f"{100 * p:5.1f}% [{100 * lo:4.1f}, {100 * hi:5.1f}]"


def goal_text(role: str, supported: tuple[float, float, float],
              refuted: tuple[float, float, float] | None = None) -> str:
    """The goal column: a null may be SUPPORTED at most 5% of the time, an effect at least
    90%; a claim planted true at its margin ("margin": no power goal, a true claim there
    cannot be told from a false one) may be REFUTED at most 5%; ``ok`` or ``MISSED``. With
    ``refuted`` (the REFUTED rate), an effect REFUTED in more than 5% of worlds is
    ``MISSED (false REFUTED)`` too."""
    if role == "margin":
        rate = refuted[0] if refuted is not None else 0.0
        return "REFUTED <= 5%" + (" ok" if rate <= MAX_FALSE_SUPPORTED else " MISSED")
    met = supported[0] <= MAX_FALSE_SUPPORTED if role == "null" else supported[0] >= MIN_POWER
    text = ("<= 5%" if role == "null" else ">= 90%") + (" ok" if met else " MISSED")
    if role == "effect" and refuted is not None and refuted[0] > MAX_FALSE_REFUTED:
        text += " MISSED (false REFUTED)"
    return text


def mean_estimate(tally: Tally) -> float:
    """Mean of a tally's finite estimates (NaN when there are none)."""
    finite = [e for e in tally.estimates if e == e]
    return sum(finite) / len(finite) if finite else math.nan


def tally_worlds(judge: Callable[[str, int], Mapping[str, tuple[str, float]]],
                 scenarios: Mapping[str, Any], names: Sequence[str], worlds: int, *,
                 claims: Callable[[str], Iterable[str]], kind: str, first_seed: int = 1,
                 jobs: int = 1, chunksize: int = 8,
                 serial: Callable[[str, int], Mapping[str, tuple[str, float]]] | None = None
                 ) -> dict[str, dict[str, Any]]:
    """Run ``judge(scenario, seed) -> claim -> (outcome, estimate)`` on ``worlds`` seeded
    worlds of each scenario (in ``jobs`` processes) and tally the outcomes per claim.

    ``serial`` replaces ``judge`` in a single process (e.g. with an encoder that cannot be
    sent to worker processes).
    """
    unknown = [n for n in names if n not in scenarios]
    if unknown:
        raise ValueError(f"unknown {kind} scenarios {unknown}. Known: {', '.join(scenarios)}.")
    tasks = [(name, first_seed + i) for name in names for i in range(worlds)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            results = list(pool.map(judge, *zip(*tasks), chunksize=chunksize))
    else:
        results = [(serial or judge)(name, seed) for name, seed in tasks]
    out = {name: {c: Tally() for c in claims(name)} for name in names}
    for (name, _), result in zip(tasks, results):
        for claim, (outcome, estimate) in result.items():
            out[name][claim].counts[outcome] += 1
            out[name][claim].estimates.append(estimate)
    return out


def roles_table_lines(results: Mapping[str, Mapping[str, Any]], claim_ids: Sequence[str],
                      scenarios: Mapping[str, Any], *,
                      widths: tuple[int, int] = (34, 21)) -> list[str]:
    """One row per (claim, scenario): role (null / effect / confound / margin / -: not
    planted either way), worlds, SUPPORTED / INCONCLUSIVE / REFUTED rates with 95% Wilson
    intervals, mean estimate, and whether the goal is met (null: SUPPORTED at most 5%;
    effect: at least 90%; a confound has none, and says why: its scenario's
    ``confound_note``). ``widths``: of the claim and scenario columns."""
    claim_w, name_w = widths
    header = (f"{'claim':{claim_w}} {'role':6} {'scenario':{name_w}} {'n':>4}  "
              f"{'SUPPORTED [95% Wilson]':24}  {'INCONCLUSIVE':24}  {'REFUTED':7} "
              f"{'mean est':>8}  goal")  # 'REFUTED ' spans a row's rate (6) and 2 spaces
    lines = [header, "-" * len(header)]
    for claim in claim_ids:
        for name, tallies in results.items():
            if claim not in tallies:
                continue
            scenario = scenarios[name]
            role = scenario.role(claim)
            tally = tallies[claim]
            supported = tally.rate(Outcome.SUPPORTED)
            if role == "confound":  # true for the statistic, false for the mechanism
                goal = f"none ({scenario.confound_note})"
            else:
                goal = "" if role is None else goal_text(role, supported,
                                                         tally.rate(Outcome.REFUTED))
            refuted = 100 * tally.rate(Outcome.REFUTED)[0]
            lines.append(f"{claim:{claim_w}} {role or '-':6} {name:{name_w}} {tally.n:4}  "
                         f"{pct(supported):24}  {pct(tally.rate(Outcome.INCONCLUSIVE)):24}  "
                         f"{refuted:5.1f}%  {mean_estimate(tally):8.3f}  {goal}")
    return lines
