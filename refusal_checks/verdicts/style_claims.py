"""The five style claims' verdicts from what the style fixtures measured: one function that
``claims/test_style.py`` and the calibration (:mod:`refusal_checks.calibration.style`) both
call, so a claim and its calibration cannot drift apart.

``data``: :func:`refusal_checks.verdicts.style.style_data` of the rate-matched replies;
``steered``: those replies (:class:`~refusal_checks.measure.style_steering.SteeredReplies`);
``control``: :func:`refusal_checks.verdicts.style.style_control` of the random-half
directions, or None when they gave too few refusals; ``refuses``: the unsteered model's
``RefusalBehaviour.refuses()``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from refusal_checks.measure.style_steering import MIN_REFUSALS
from refusal_checks.stats.verdict import Outcome, Verdict
from refusal_checks.verdicts.style_verdicts import (
    MIN_DIRECTIONS,
    STYLE_MARGIN,
    combine,
    families,
    negative_control,
    rate_matched,
    style_differs,
)

STYLE_CLAIM_IDS = ("style-differs-by-direction", "style-rate-matched", "style-not-rate",
                   "style-families", "style-negative-control")


def _not_measured(statistic: str, comparison: str, n: int, reason: str) -> Verdict:
    return Verdict(statistic=statistic, estimate=float("nan"),
                   interval=(float("nan"), float("nan")), threshold=STYLE_MARGIN,
                   comparison=comparison, n=n, outcome=Outcome.INCONCLUSIVE, reason=reason)


def _differs(data: dict[str, Any], refuses: tuple[bool, str]) -> Verdict:
    if data["result"] is None:
        return _not_measured("cross-validated accuracy naming the steering direction", ">",
                             len(data["labels"]),
                             f"fewer than 2 directions have >= {MIN_REFUSALS} refusals "
                             f"({sorted(set(data['labels'])) or 'none'})")
    return style_differs(data["result"], data["summary"], seed=data["seed"],
                         min_directions=MIN_DIRECTIONS, requires=[refuses])


def style_claim(claim: str, *, data: dict[str, Any], steered: Any,
                control: dict[str, Any] | None, refuses: tuple[bool, str],
                seed: int) -> Verdict:
    """The verdict of one style claim (``claim``: one of :data:`STYLE_CLAIM_IDS`).

    Raises:
        ValueError: ``claim`` is not a style claim (the message lists them).
    """
    if claim == "style-differs-by-direction":
        return _differs(data, refuses)
    if claim == "style-rate-matched":
        return rate_matched(steered, seed=seed, requires=[refuses])
    if claim == "style-not-rate":
        return combine(_differs(data, refuses), rate_matched(steered, seed=seed,
                                                             requires=[refuses]))
    if claim == "style-families":
        verdict = families(data["texts"], data["labels"], data["groups"], seed=data["seed"])
        if not refuses[0] and verdict.outcome is not Outcome.INCONCLUSIVE:
            verdict = replace(verdict, outcome=Outcome.INCONCLUSIVE, reason=refuses[1])
        return verdict
    if claim == "style-negative-control":
        if control is None:
            return _not_measured("accuracy telling random-half directions apart", "<", 0,
                                 f"the random-half directions gave fewer than {MIN_REFUSALS} "
                                 "refusals each")
        verdict = negative_control(control["result"], seed=control["seed"],
                                   categories=control["categories"],
                                   identical=control["identical"], requires=[refuses])
        kept = {key: control[key] for key in ("rates", "strengths") if key in control}
        return replace(verdict, details={**verdict.details, **kept})
    raise ValueError(f"unknown style claim id {claim!r}. Known: {', '.join(STYLE_CLAIM_IDS)}.")
