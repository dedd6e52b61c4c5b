"""What Arditi et al.'s single-direction claims say about a selection: the selection kept in
a verdict's details, and the verdicts when no candidate passed the filters.

The search itself (which prompts build and select the direction, and the candidate scores) is
:mod:`refusal_checks.measure.arditi` and :mod:`refusal_checks.measure.selection`; this module
only reads its candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from refusal_checks.measure.arditi import ARDITI_CLAIMS
from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.measure.judged import Measurements
from refusal_checks.measure.selection import MAX_KL, MIN_INDUCE, NAMES, Selection
from refusal_checks.measure.staged import StagedProbe
from refusal_checks.models.interventions import Ablate
from refusal_checks.prompts.sets import PromptSet
from refusal_checks.stats.intervals import percentile_interval
from refusal_checks.stats.decisions import above, below, decide
from refusal_checks.stats.verdict import ABOVE, BELOW, Outcome, Verdict
from refusal_checks.verdicts import single_direction as behaviour_direction
from refusal_checks.verdicts import staged_claims

# Bootstrap replicates of the best candidate's validation statistic (no-candidate path).
BOOTSTRAP = 1000


def with_selection(verdict: Verdict, selection: Selection) -> Verdict:
    """The verdict with the selection (site, search, every candidate) in its details."""
    return replace(verdict, details={**verdict.details, "selection": selection.record()})


def filters_text(selection: Selection, k: int = 3) -> str:
    """Why no candidate passed, with the nearest candidates' numbers (KL counted where it
    was computed: the filter order computes it only near the induce filter)."""
    if selection.not_run:
        return selection.not_run
    total = len(selection.candidates)
    low = sum(not c.induce >= MIN_INDUCE for c in selection.candidates)
    known = [c for c in selection.candidates if "kl" not in c.skipped]
    high = sum(not c.kl <= MAX_KL for c in known)
    kl = (f"{high} KL > {MAX_KL}" if len(known) == total else
          f"KL > {MAX_KL} in {high} of the {len(known)} where it was computed")
    nearest = "; ".join(c.text() for c in selection.nearest(k))
    return (f"no candidate passed Arditi et al.'s filters ({low} of {total} induce < "
            f"{MIN_INDUCE:g}, {kl}); nearest: {nearest}")


def _share(scores: np.ndarray) -> np.ndarray:
    """1.0 where the cheap score says refused (> 0), 0.0 where not, NaN kept."""
    scores = np.asarray(scores, np.float64)
    return np.where(np.isnan(scores), np.nan, (scores > 0).astype(np.float64))


def _best(values: np.ndarray, reduce: Callable[..., np.ndarray], seed: int
          ) -> tuple[float, tuple[float, float]]:
    """``reduce`` over candidates of each candidate's mean over validation prompts, and its
    percentile interval with the prompts resampled (the same resample for every candidate)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values).all(axis=1)]
    if not values.size:
        return float("nan"), (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    n = values.shape[1]
    boot = np.array([reduce(values[:, rng.integers(0, n, n)].mean(axis=1))
                     for _ in range(BOOTSTRAP)])
    return float(reduce(values.mean(axis=1))), percentile_interval(boot)


# claim -> (candidate scores read, the pass behind them, best over candidates, verdict side,
# statistic, threshold, validation side, paper's figure) for :func:`no_direction`.
_READINGS: dict[str, tuple[str, str, Callable[..., Any], Callable[..., Verdict], str, float,
                           str, str]] = {
    "ablation-bypasses-refusal": (
        "bypass_scores", "bypass", np.min, below, "lowest share of validation harmful prompts "
        "still refused under any candidate's ablation", behaviour_direction.BYPASS_THRESHOLD,
        "val_harmful", "attack success 0.78-0.82 (refusal ~0.2)"),
    "addition-induces-refusal": (
        "induce_scores", "induce", np.max, above, "largest share of validation harmless "
        "prompts refused with any candidate added", behaviour_direction.INDUCE_THRESHOLD,
        "val_harmless", "0.88-1.00"),
    "ablation-keeps-harmless-behaviour": (
        "kl_values", "kl", np.min, below, "lowest mean next-token KL under any candidate's "
        "ablation (validation harmless prompts)", behaviour_direction.KL_THRESHOLD,
        "val_harmless", "loss barely moves; selection filter KL <= 0.1"),
}


def no_direction(claim: str, selection: Selection, behaviour: RefusalBehaviour,
                 seed: int) -> Verdict:
    """A single-direction claim's verdict when Arditi et al.'s search selected nothing.

    The claims' statistics are read off the candidates themselves, on the validation
    prompts (cheap score > 0 as "refused"), best candidate for the claim in each bootstrap
    replicate; a failed precondition (no candidate passed) keeps every such verdict from
    SUPPORTED, while a statistic shown on the violating side stands as REFUTED:

    * ablation-bypasses-refusal: lowest share of validation harmful prompts (all refused at
      baseline) still refused under any candidate's ablation; above 0.5 -> REFUTED (no
      candidate's ablation bypasses), else INCONCLUSIVE.
    * addition-induces-refusal: largest share of validation harmless prompts (all answered
      at baseline) refused with any candidate added; below 0.5 -> REFUTED.
    * ablation-keeps-harmless-behaviour: lowest mean KL of any candidate's ablation; above
      0.1 -> REFUTED.
    * the random-direction controls: INCONCLUSIVE, there is no direction whose norm and
      layer a control copies.

    "Any candidate" is every candidate whose pass was computed. Induce always is; the
    filter order (:func:`refusal_checks.measure.selection.select_direction`) computes bypass
    and KL only near the induce filter unless it needs them all. The statistic is then the
    best over the computed candidates, and says so: the best over all candidates is at
    least as good in every bootstrap replicate (the same prompt resample for each
    candidate), so its interval lies no higher (bypass, KL); whenever the computed ones do
    not refute, every candidate would not refute either, and the outcome is the full
    search's (INCONCLUSIVE). REFUTED claims that NO candidate does it, so it is never read
    off a part of them: the search computes the pass for every candidate when no computed
    one bypasses (keeps KL <= 0.1), and should the interval still be wholly on the wrong
    side, the verdict is INCONCLUSIVE and names what is missing.
    """
    why = filters_text(selection)
    unmet = [(False, why)] if selection.not_run else []
    pre = [(False, why)]
    kwargs = dict(requires=[behaviour.refuses(), *unmet], preconditions=pre,
                  details={"no_direction": why}, seed=seed)
    if claim in _READINGS:
        scores, which, reduce, decide_side, statistic, threshold, side, paper = _READINGS[claim]
        values = getattr(selection, scores)
        value, interval = _best(values if scores == "kl_values" else _share(values), reduce,
                                seed)
        total, computed = len(selection.candidates), selection.computed(which)
        if computed < total:
            statistic += (f"; computed for {computed} of {total} candidates (filter order: "
                          f"where induce passes and the {selection.nearest_k} nearest)")
            comparison = BELOW if decide_side is below else ABOVE
            if decide(interval, threshold, comparison) is Outcome.REFUTED:
                kwargs["requires"] = [*kwargs["requires"], (False, (
                    f"a REFUTED says no candidate does it, but {NAMES[which]} was computed "
                    f"for {computed} of {total} candidates only; rerun the search with "
                    "every candidate (--refusal-selection-order full)"))]
        return decide_side(statistic + " (no direction selected)", value, interval, threshold,
                           n=selection.sizes.get(side, 0), paper=paper, **kwargs)
    if claim in ARDITI_CLAIMS:
        return below("largest change of the refusal rate under random directions", float("nan"),
                     (float("nan"), float("nan")), behaviour_direction.CONTROL_MARGIN, n=0,
                     paper="negative control", requires=[(False, "no direction was selected, "
                                                          "so a control has no norm or layer "
                                                          f"to copy: {why}")],
                     details={"no_direction": why})
    raise ValueError(f"{claim!r} is not one of Arditi et al.'s claims: {', '.join(ARDITI_CLAIMS)}")


def single_direction_verdict(claim: str, measure: Measurements, probe: StagedProbe,
                             selection: Selection, behaviour: RefusalBehaviour, seed: int, *,
                             kl_prompts: PromptSet, budget: int | None = None) -> Verdict:
    """One of Arditi et al.'s claims, as ``claims/test_single_direction.py`` and the
    calibration (:func:`refusal_checks.calibration.measurements.staged_verdict`) both judge it.

    On the selected direction: the staged looks of :mod:`refusal_checks.verdicts.staged_claims`
    (``probe``: the held-out harmful and benign probe), except the KL claim, which reads every
    held-out harmless prompt (``kl_prompts``: per-prompt KL is heavy-tailed). Without a
    selected direction: :func:`no_direction`. Either way the selection is in the details.
    """
    s = selection
    if not s.found:
        verdict = no_direction(claim, s, behaviour, seed)
    elif claim == "ablation-bypasses-refusal":
        verdict = staged_claims.ablation_bypasses_refusal(
            measure, probe, s.direction, behaviour, measure.judge_name, budget=budget)
    elif claim == "addition-induces-refusal":
        verdict = staged_claims.addition_induces_refusal(
            measure, probe, s.layer, s.direction, s.reference_norm, behaviour,
            measure.judge_name, budget=budget)
    elif claim == "ablation-keeps-harmless-behaviour":
        values = measure.kl(kl_prompts, Ablate(s.direction, "refusal"))
        verdict = behaviour_direction.ablation_keeps_harmless_behaviour(values, behaviour, seed)
    elif claim == "random-direction-does-not-bypass":
        verdict = staged_claims.random_direction_does_not_bypass(
            measure, probe, s.direction, behaviour, seed, budget=budget)
    elif claim == "random-direction-does-not-induce":
        verdict = staged_claims.random_direction_does_not_induce(
            measure, probe, s.layer, s.direction, s.reference_norm, behaviour, seed,
            budget=budget)
    else:
        raise ValueError(f"{claim!r} is not one of Arditi et al.'s claims: "
                         f"{', '.join(ARDITI_CLAIMS)}")
    return with_selection(verdict, s)
