"""The decision rules: the one ``decide()`` from interval and threshold to an outcome, the
:func:`verdict` that wraps it with a claim's requirements and preconditions, and the
equivalence rule of the negative controls.

numpy and the standard library only. Intervals come from :mod:`refusal_checks.stats.intervals`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from refusal_checks.stats.verdict import ABOVE, BELOW, Outcome, Verdict

# Reasons of the INCONCLUSIVE verdicts that more observations can settle (refusal_checks.measure.staged
# grows a probe only on these): the interval straddles the threshold, or too few observations.
STRADDLES = "the interval straddles the threshold"
TOO_FEW = "only n="


def _check_comparison(comparison: str) -> None:
    if comparison not in (ABOVE, BELOW):
        raise ValueError(
            f"comparison must be {ABOVE!r} (claim holds above the threshold) or {BELOW!r} "
            f"(holds below), got {comparison!r}"
        )


def decide(interval: tuple[float, float], threshold: float, comparison: str) -> Outcome:
    """The one rule from interval to outcome.

    For ``">"``: ``lo > threshold`` -> SUPPORTED, ``hi < threshold`` -> REFUTED,
    otherwise INCONCLUSIVE (the interval straddles or touches the threshold). ``"<"`` is
    the mirror image. Any NaN -> INCONCLUSIVE.
    """
    _check_comparison(comparison)
    lo, hi = float(interval[0]), float(interval[1])
    if math.isnan(lo) or math.isnan(hi) or math.isnan(threshold):
        return Outcome.INCONCLUSIVE
    if lo > hi:
        raise ValueError(f"interval must be (lo, hi) with lo <= hi, got ({lo}, {hi})")
    above, below = lo > threshold, hi < threshold
    if comparison == ABOVE:
        return Outcome.SUPPORTED if above else Outcome.REFUTED if below else Outcome.INCONCLUSIVE
    return Outcome.SUPPORTED if below else Outcome.REFUTED if above else Outcome.INCONCLUSIVE


def verdict(
    statistic: str,
    estimate: float,
    interval: tuple[float, float],
    threshold: float,
    comparison: str,
    n: int,
    *,
    level: float = 0.95,
    seed: int | None = None,
    paper: str = "",
    details: dict[str, Any] | None = None,
    min_n: int = 1,
    requires: Sequence[tuple[bool, str]] = (),
    preconditions: Sequence[tuple[bool, str]] = (),
) -> Verdict:
    """Build a :class:`Verdict` whose outcome comes from :func:`decide`.

    Checked in order, the first that applies wins: a failed requirement ``(ok, message)``
    -> INCONCLUSIVE with its message and what the statistic alone would have said;
    ``n < min_n`` -> INCONCLUSIVE; NaN estimate -> INCONCLUSIVE; then :func:`decide` on the
    interval, where a failed precondition turns SUPPORTED into INCONCLUSIVE but leaves a
    REFUTED standing (a precondition may stop a SUPPORTED, never hide a shown violation).

    Requirements are for what the claim's meaning needs before its statistic says anything
    at all (a model that never refuses has no refusal direction to test); preconditions
    are for what a SUPPORTED needs beyond the statistic (curves that agree only because
    nothing moved).

    Args:
        statistic: Noun phrase, e.g. "median between-category cosine".
        estimate: Point estimate.
        interval: ``(lo, hi)`` at ``level``.
        threshold: The value the claim compares against.
        comparison: ``">"`` or ``"<"``.
        n: Observations behind the statistic.
        level: Confidence level of ``interval``.
        seed: Seed of the generator behind the interval.
        paper: The paper's figure, for the report.
        details: Extra numbers to keep.
        min_n: Fewest observations that can support any conclusion.
        requires: ``(ok, message)`` pairs the claim's meaning needs, e.g.
            ``(rate > 0, "the model never refuses")``: any failure -> INCONCLUSIVE.
        preconditions: ``(ok, message)`` pairs a SUPPORTED needs: a failure blocks SUPPORTED
            only.
    """
    _check_comparison(comparison)
    side = "above" if comparison == ABOVE else "below"
    wrong = "below" if comparison == ABOVE else "above"
    unmet = [message for ok, message in requires if not ok]
    failed = [message for ok, message in preconditions if not ok]
    lo, hi = float(interval[0]), float(interval[1])
    if n < min_n:
        outcome, reason = Outcome.INCONCLUSIVE, f"{TOO_FEW}{n} observations, need >= {min_n}"
    elif math.isnan(estimate):
        outcome, reason = Outcome.INCONCLUSIVE, "the estimate is NaN"
    else:
        outcome = decide((lo, hi), threshold, comparison)
        if outcome is Outcome.SUPPORTED:
            reason = f"the whole interval lies {side} the threshold"
        elif outcome is Outcome.REFUTED:
            reason = f"the whole interval lies on the wrong side ({wrong}) of the threshold"
        elif math.isnan(lo) or math.isnan(hi) or math.isnan(threshold):
            reason = "the interval or threshold is NaN"
        else:
            reason = STRADDLES
    if unmet:
        alone = "" if outcome is Outcome.INCONCLUSIVE else (
            f" (the statistic alone would read {outcome.value.upper()}: {reason})")
        outcome, reason = Outcome.INCONCLUSIVE, "; ".join(unmet) + alone
    elif failed and outcome is Outcome.SUPPORTED:
        outcome, reason = Outcome.INCONCLUSIVE, "; ".join(failed)
    elif failed:
        reason += "; also: " + "; ".join(failed)
    return Verdict(
        statistic=statistic,
        estimate=float(estimate),
        interval=(lo, hi),
        threshold=float(threshold),
        comparison=comparison,
        n=int(n),
        outcome=outcome,
        reason=reason,
        level=level,
        seed=seed,
        paper=paper,
        details=dict(details or {}),
    )


def above(
    statistic: str, estimate: float, interval: tuple[float, float], threshold: float, n: int,
    **kwargs: Any,
) -> Verdict:
    """:func:`verdict` for a claim that holds when the statistic exceeds ``threshold``."""
    return verdict(statistic, estimate, interval, threshold, ABOVE, n, **kwargs)


def below(
    statistic: str, estimate: float, interval: tuple[float, float], threshold: float, n: int,
    **kwargs: Any,
) -> Verdict:
    """:func:`verdict` for a claim that holds when the statistic is under ``threshold``."""
    return verdict(statistic, estimate, interval, threshold, BELOW, n, **kwargs)


def equivalence(diff_interval: tuple[float, float], margin: float) -> Outcome:
    """Equivalence (TOST) read off an interval of a difference.

    SUPPORTED (equivalent) when ``-margin < lo`` and ``hi < margin``; REFUTED when the
    interval lies entirely outside ``[-margin, margin]`` (``hi < -margin`` or
    ``lo > margin``); otherwise INCONCLUSIVE (PAPER.md: "the same" needs an equivalence
    test, not a non-significant difference). A TOST at level ``alpha`` uses a
    ``1 - 2 alpha`` interval (e.g. 90% for alpha = 0.05). NaN -> INCONCLUSIVE.
    """
    if not margin > 0:
        raise ValueError(f"margin must be a positive number, got {margin!r}")
    lo, hi = float(diff_interval[0]), float(diff_interval[1])
    if math.isnan(lo) or math.isnan(hi):
        return Outcome.INCONCLUSIVE
    if lo > hi:
        raise ValueError(f"interval must be (lo, hi) with lo <= hi, got ({lo}, {hi})")
    if -margin < lo and hi < margin:
        return Outcome.SUPPORTED
    if hi < -margin or lo > margin:
        return Outcome.REFUTED
    return Outcome.INCONCLUSIVE
