"""Joad et al. 2026: the direction changes HOW a model refuses, not WHETHER (PAPER.md A.4).

The paper shows one generation per category. Here: every category direction steers the
replies to one shared probe at a strength that gives it the same judged refusal rate; a
cross-validated classifier then names the direction behind each refusal from its sentence
embedding and lexical markers, against a null that permutes directions within each
prompt. A negative control runs the same test, within each of four categories, on two
directions of that category built from random halves of its prompts. Method:
refusal_checks/verdicts/style.py and the style_*.py modules; thresholds and verdicts:
refusal_checks/verdicts/style_verdicts.py; each claim's decision from what the fixtures measured:
refusal_checks/verdicts/style_claims.py (the calibration calls the same function).
"""

import pytest

from refusal_checks.verdicts.style_claims import style_claim

# What produced these verdicts, shown beside each one in the reports.
RATE_MATCHED = ("ours: steering strengths searched on held-out prompts, replies compared on "
                "others")


def _verdict(claim, refusal_behaviour, pytestconfig, *, data=None, steered=None,
             control=None):
    return style_claim(claim, data=data, steered=steered, control=control,
                       refuses=refusal_behaviour.refuses(),
                       seed=pytestconfig.getoption("--refusal-seed"))


@pytest.mark.claim("style-differs-by-direction", protocol=RATE_MATCHED,
                   paper="PAPER.md A.4 (one example each)",
                   says="Steering along different refusal directions produces "
                        "distinguishable refusal styles.")
def test_refusal_style_depends_on_the_direction(style_data, refusal_behaviour, pytestconfig,
                                                judge):
    judge(_verdict("style-differs-by-direction", refusal_behaviour, pytestconfig,
                   data=style_data))


@pytest.mark.claim("style-rate-matched", protocol=RATE_MATCHED,
                   paper="ours (PAPER.md A.4 'not whether')",
                   says="At calibrated strengths every direction reaches the same refusal "
                        "rate on the shared probe.")
def test_refusal_rate_is_matched_across_directions(steered_replies, refusal_behaviour,
                                                   pytestconfig, judge):
    judge(_verdict("style-rate-matched", refusal_behaviour, pytestconfig,
                   steered=steered_replies))


@pytest.mark.claim("style-not-rate", protocol=RATE_MATCHED,
                   paper="PAPER.md A.4",
                   says="The direction changes how the model refuses, not whether: styles "
                        "differ while refusal rates are matched.")
def test_direction_changes_how_not_whether(style_data, steered_replies, refusal_behaviour,
                                           pytestconfig, judge):
    judge(_verdict("style-not-rate", refusal_behaviour, pytestconfig, data=style_data,
                   steered=steered_replies))


@pytest.mark.claim("style-families", protocol=RATE_MATCHED,
                   paper="PAPER.md A.4 (qualitative)",
                   says="Humanizing/unsupported/indeterminate directions refuse as an AI; "
                        "safety/crime/hate directions refuse on moral or legal grounds.")
def test_style_families_follow_the_paper(style_data, refusal_behaviour, pytestconfig, judge):
    judge(_verdict("style-families", refusal_behaviour, pytestconfig, data=style_data))


@pytest.mark.claim("style-negative-control",
                   protocol="two random-half directions per category, steered at its strength",
                   paper="ours (PAPER.md: 'style needs a null')",
                   says="Two directions of one category, each from a random half of its "
                        "prompts, give refusal styles the style test cannot tell apart "
                        "(checked within each of the four most-refusing categories).")
def test_random_half_directions_of_one_category_are_indistinguishable(
        style_control, refusal_behaviour, pytestconfig, judge):
    judge(_verdict("style-negative-control", refusal_behaviour, pytestconfig,
                   control=style_control))
