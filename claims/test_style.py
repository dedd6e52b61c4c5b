"""Joad et al. 2026: the direction changes HOW a model refuses, not WHETHER (PAPER.md A.4).

The paper shows one generation per category. Here: every category direction steers the
replies to one shared probe at a strength that gives it the same judged refusal rate; a
cross-validated classifier then names the direction behind each refusal from its sentence
embedding and lexical markers, against a null that permutes directions within each
prompt. A negative control runs the same test, within each of four categories, on two
directions of that category built from random halves of its prompts. Method:
refusal_checks/verdicts/style.py and the style_*.py modules; thresholds and verdicts:
refusal_checks/verdicts/style_verdicts.py.
"""

import pytest

from refusal_checks.measure.style_steering import MIN_REFUSALS
from refusal_checks.verdicts.style_verdicts import (
    MIN_DIRECTIONS,
    STYLE_MARGIN,
    combine,
    families,
    negative_control,
    rate_matched,
    style_differs,
)
from refusal_checks.stats.verdict import Outcome, Verdict



def _nothing_to_classify(statistic: str, data, threshold: float, comparison: str) -> Verdict:
    directions = sorted(set(data["labels"]))
    return Verdict(statistic=statistic, estimate=float("nan"),
                   interval=(float("nan"), float("nan")), threshold=threshold,
                   comparison=comparison, n=len(data["labels"]),
                   outcome=Outcome.INCONCLUSIVE,
                   reason=f"fewer than 2 directions have >= {MIN_REFUSALS} refusals "
                          f"({directions or 'none'})")


def _style_verdict(data, refusal_behaviour):
    if data["result"] is None:
        return _nothing_to_classify("cross-validated accuracy naming the steering direction",
                                    data, STYLE_MARGIN, ">")
    return style_differs(data["result"], data["summary"], seed=data["seed"],
                         min_directions=MIN_DIRECTIONS,
                         requires=[refusal_behaviour.refuses()])


# What produced these verdicts, shown beside each one in the reports.
RATE_MATCHED = ("ours: steering strengths searched on held-out prompts, replies compared on "
                "others")


@pytest.mark.claim("style-differs-by-direction", protocol=RATE_MATCHED,
                   paper="PAPER.md A.4 (one example each)",
                   says="Steering along different refusal directions produces "
                        "distinguishable refusal styles.")
def test_refusal_style_depends_on_the_direction(style_data, refusal_behaviour, judge):
    judge(_style_verdict(style_data, refusal_behaviour))


@pytest.mark.claim("style-rate-matched", protocol=RATE_MATCHED,
                   paper="ours (PAPER.md A.4 'not whether')",
                   says="At calibrated strengths every direction reaches the same refusal "
                        "rate on the shared probe.")
def test_refusal_rate_is_matched_across_directions(steered_replies, refusal_behaviour,
                                                   pytestconfig, judge):
    judge(rate_matched(steered_replies, seed=pytestconfig.getoption("--refusal-seed"),
                       requires=[refusal_behaviour.refuses()]))


@pytest.mark.claim("style-not-rate", protocol=RATE_MATCHED,
                   paper="PAPER.md A.4",
                   says="The direction changes how the model refuses, not whether: styles "
                        "differ while refusal rates are matched.")
def test_direction_changes_how_not_whether(style_data, steered_replies, refusal_behaviour,
                                           pytestconfig, judge):
    rate = rate_matched(steered_replies, seed=pytestconfig.getoption("--refusal-seed"),
                        requires=[refusal_behaviour.refuses()])
    judge(combine(_style_verdict(style_data, refusal_behaviour), rate))


@pytest.mark.claim("style-families", protocol=RATE_MATCHED,
                   paper="PAPER.md A.4 (qualitative)",
                   says="Humanizing/unsupported/indeterminate directions refuse as an AI; "
                        "safety/crime/hate directions refuse on moral or legal grounds.")
def test_style_families_follow_the_paper(style_data, refusal_behaviour, judge):
    verdict = families(style_data["texts"], style_data["labels"], style_data["groups"],
                       seed=style_data["seed"])
    ok, reason = refusal_behaviour.refuses()
    if not ok and verdict.outcome is not Outcome.INCONCLUSIVE:
        from dataclasses import replace

        verdict = replace(verdict, outcome=Outcome.INCONCLUSIVE, reason=reason)
    judge(verdict)


@pytest.mark.claim("style-negative-control", protocol="two random-half directions per category, steered at its strength",
                   paper="ours (PAPER.md: 'style needs a null')",
                   says="Two directions of one category, each from a random half of its "
                        "prompts, give refusal styles the style test cannot tell apart "
                        "(checked within each of the four most-refusing categories).")
def test_random_half_directions_of_one_category_are_indistinguishable(style_control,
                                                                      refusal_behaviour, judge):
    if style_control is None:
        judge(Verdict(statistic="accuracy telling random-half directions apart",
                      estimate=float("nan"), interval=(float("nan"), float("nan")),
                      threshold=STYLE_MARGIN, comparison="<", n=0,
                      outcome=Outcome.INCONCLUSIVE,
                      reason=f"the random-half directions gave fewer than {MIN_REFUSALS} "
                             "refusals each"))
        return
    verdict = negative_control(style_control["result"], seed=style_control["seed"],
                               categories=style_control["categories"],
                               identical=style_control["identical"],
                               requires=[refusal_behaviour.refuses()])
    verdict.details.update(rates=style_control["rates"], strengths=style_control["strengths"])
    judge(verdict)
