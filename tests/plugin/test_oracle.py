"""oracle-agreement and over-refusal-is-a-different-axis in a real pytest run.

One run (module-scoped) of claims/test_oracle.py on three planted worlds, with a user
prompt file holding two harmful categories and an ``over_refusal`` category with matched
(benign look-alike) rows, as XSTest's safe prompts load:

* benign look-alikes over-refused along an axis orthogonal to the refusal direction: a
  32/32 resample matches the oracle, and over-refusal is a different axis;
* over-refused along the refusal direction itself: agreement holds, the different-axis
  claim is REFUTED;
* a model that never refuses: both INCONCLUSIVE, with the counts in the reason.
"""

from __future__ import annotations

import pytest

from tests.plugin.test_behaviour_control import Run, run_suite
from tests.plugin.test_plugin import copy_suite, text_of

OTHER = "synthetic:shared,signal=8,over_spread=3,over_cos=0"
SAME = "synthetic:shared,signal=8,over_spread=3"
NEVER = "synthetic:null"
CATEGORIES = ("safety_core", "crime_assistance", "over_refusal")
PER_CATEGORY = 64
AGREEMENT, OVER = "oracle-agreement", "over-refusal-is-a-different-axis"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    directory = tmp_path_factory.mktemp("oracle")
    copy_suite(directory, PER_CATEGORY, ("test_oracle.py",), CATEGORIES)
    return run_suite(directory, OTHER, SAME, NEVER)


def test_a_resample_matches_the_oracle_and_over_refusal_on_another_axis_is_found(run) -> None:
    agreement = run.verdict(AGREEMENT, OTHER)
    assert agreement["outcome"] == "supported", agreement["line"]
    assert agreement["statistic"] == ("mean cosine of 32/32 resample directions with the "
                                      "oracle, corrected for the held-out oracle's noise")
    assert agreement["estimate"] > 0.9 and agreement["details"]["resamples"] == 200
    # The correction lifts the held-out agreement; the paper's overlapping one is higher.
    details = agreement["details"]
    assert details["held_out_agreement"] < agreement["estimate"] < \
        details["paper_overlapping_agreement"]
    assert agreement["details"]["harmful_counts"]["safety_core"]["refused"] >= 60
    assert agreement["protocol"].startswith("32/32 resamples")
    over = run.verdict(OVER, OTHER)
    assert over["outcome"] == "supported", over["line"]
    assert over["details"]["over_refusal_set"] == "over_refusal/matched"
    assert over["details"]["over_refusal_counts"]["refused"] >= 8


def test_over_refusal_along_the_refusal_direction_is_not_a_different_axis(run) -> None:
    assert run.verdict(AGREEMENT, SAME)["outcome"] == "supported"
    over = run.verdict(OVER, SAME)
    assert over["outcome"] == "refuted", over["line"]
    assert over["estimate"] > 0.8


def test_a_model_that_never_refuses_leaves_both_inconclusive_with_counts(run) -> None:
    for claim in (AGREEMENT, OVER):
        verdict = run.verdict(claim, NEVER)
        assert verdict["outcome"] == "inconclusive"
        assert "no measurable refusal" in verdict["reason"]
    assert "harmful refused/answered: safety_core " in \
        run.verdict(AGREEMENT, NEVER)["details"]["counts_note"]


def test_terminal_and_html_show_the_numbers(run) -> None:
    text = "\n".join(run.result.outlines)
    assert f"{AGREEMENT}: mean cosine of 32/32 resample directions" in text
    assert f"{OVER} [{OTHER}]: harmful refused/answered: safety_core " in text
    assert f'id="claim-{AGREEMENT}"' in run.page and f'id="claim-{OVER}"' in run.page
    assert "over-refusal set refused/answered: over_refusal/matched" in run.page
    assert "Traceback" not in text_of(run.result)
