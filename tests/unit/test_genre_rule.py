"""How a claim's verdict is formed from its genre controls (refusal_checks/verdicts/genre.py).

Planted verdicts of every combination of control and paper's-design outcomes: the genre
controls decide, the paper's design can hold a SUPPORTED back and never decides alone.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.stats.decisions import below
from refusal_checks.stats.verdict import Outcome, Verdict
from refusal_checks.verdicts import cross_ablation, genre

THRESHOLD = 0.90
# Intervals that give each outcome of "below 0.90".
INTERVALS = {Outcome.SUPPORTED: (0.40, 0.60), Outcome.REFUTED: (0.95, 1.05),
             Outcome.INCONCLUSIVE: (0.70, 1.10)}
PAPER_ID = "distinct-directions-paper-design"
M, B = "distinct-under-matched-control", "distinct-under-behaviour-control"


def planted(outcome: Outcome, name: str = "cosine") -> Verdict:
    lo, hi = INTERVALS[outcome]
    verdict = below(f"{name} statistic", (lo + hi) / 2, (lo, hi), THRESHOLD, n=55, seed=0,
                    details={"control": name})
    assert verdict.outcome is outcome
    return verdict


def decide(paper: Outcome, **controls: Outcome | str) -> Verdict:
    named = {M if k == "m" else B: (planted(v, k) if isinstance(v, Outcome) else v)
             for k, v in controls.items()}
    return genre.from_genre_controls(planted(paper, "paper"), named, paper_id=PAPER_ID)


S, R, I = Outcome.SUPPORTED, Outcome.REFUTED, Outcome.INCONCLUSIVE


def test_a_supported_control_with_the_paper_agreeing_is_supported_with_its_numbers():
    verdict = decide(S, m=S, b=I)
    assert verdict.outcome is S
    assert (verdict.statistic, verdict.interval) == ("m statistic", INTERVALS[S])
    assert verdict.details["decided_by"] == M
    assert verdict.reason.startswith(f"with genre cancelled, {M} reads SUPPORTED")
    assert f"the paper's design ({PAPER_ID}) reads SUPPORTED" in verdict.reason
    assert set(verdict.details["designs"]) == {M, B, PAPER_ID}
    assert verdict.details["designs"][B]["outcome"] == "inconclusive"


@pytest.mark.parametrize("paper", [R, I])
def test_a_supported_control_against_a_paper_that_disagrees_is_inconclusive(paper):
    verdict = decide(paper, m=S)
    assert verdict.outcome is I
    assert "the designs disagree" in verdict.reason
    assert f"reads {paper.value.upper()}" in verdict.reason
    assert verdict.details["decided_by"] is None
    assert verdict.interval == INTERVALS[S]  # the control's numbers, not the paper's


@pytest.mark.parametrize("paper", [S, R, I])
def test_a_refuted_control_refutes_whatever_the_paper_reads(paper):
    # Paper SUPPORTED, control REFUTED: the genre confound caught (one refusal direction
    # behind per-category genres), not a disagreement.
    verdict = decide(paper, m=I, b=R)
    assert verdict.outcome is R
    assert verdict.details["decided_by"] == B
    assert verdict.interval == INTERVALS[R]


def test_controls_that_contradict_each_other_decide_nothing():
    verdict = decide(S, m=S, b=R)
    assert verdict.outcome is I
    assert verdict.reason.startswith(f"the genre controls disagree: {M} SUPPORTED, {B} REFUTED")


@pytest.mark.parametrize("paper", [S, R, I])
def test_without_a_deciding_control_the_paper_alone_decides_nothing(paper):
    verdict = decide(paper, m="fewer than two categories have matched rows", b=I)
    assert verdict.outcome is I
    assert verdict.reason.startswith("no genre control decides")
    assert f"{M}: not measured: fewer than two categories" in verdict.reason
    assert f"{B}: the interval straddles the threshold" in verdict.reason
    assert "cannot decide alone" in verdict.reason
    assert verdict.interval == INTERVALS[I]  # the first measured control's numbers
    assert verdict.details["designs"][M] == {
        "outcome": "not measured", "reason": "fewer than two categories have matched rows"}


def test_a_behaviour_control_alone_can_decide():
    verdict = decide(S, m="no matched rows", b=S)
    assert verdict.outcome is S and verdict.details["decided_by"] == B


def test_no_control_measured_gives_no_numbers():
    verdict = decide(S, m="no matched rows", b="not built")
    assert verdict.outcome is I and verdict.n == 0
    assert math.isnan(verdict.estimate) and all(math.isnan(x) for x in verdict.interval)
    assert verdict.statistic.endswith("(no genre control measured)")
    assert "nan" in verdict.line()
    with pytest.raises(ValueError, match="at least one genre control"):
        genre.from_genre_controls(planted(S), {}, paper_id=PAPER_ID)


OUTCOMES = st.sampled_from([S, R, I, "not measured"])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(paper=st.sampled_from([S, R, I]), m=OUTCOMES, b=OUTCOMES)
def test_the_rule(paper, m, b):
    verdict = decide(paper, m=m, b=b)
    controls = [c for c in (m, b) if c != "not measured"]
    if verdict.outcome is S:
        assert paper is S and S in controls and R not in controls
    elif verdict.outcome is R:
        assert R in controls and S not in controls
    else:
        assert not (R in controls and S not in controls)
        assert not (S in controls and R not in controls and paper is S)
    assert verdict.to_dict()["details"]["rule"] == genre.RULE


def test_the_paper_design_id_and_caveat():
    assert genre.paper_design_id("distinct-directions") == PAPER_ID
    verdict = genre.with_caveat(planted(S), "may reflect genre")
    assert verdict.reason.endswith("; may reflect genre")
    assert verdict.details["caveat"] == "may reflect genre"
    assert verdict.outcome is S


# --- ablation-is-category-selective: the genre-matched design and the paper's ------------

def selectivity(outcome: Outcome, staged: bool = False) -> Verdict:
    lo, hi = {S: (0.40, 0.60), R: (-0.05, 0.10), I: (0.15, 0.35)}[outcome]
    details = {"ablated_rates": [[0.0]], "categories": ["a"], "baseline_rates": {"a": 1.0},
               "reading": "planted"}
    if staged:
        details["staged"] = {"stage": 2, "stages": 3}
    return Verdict("selectivity", (lo + hi) / 2, (lo, hi), cross_ablation.SELECTIVE_MARGIN,
                   ">", 4, outcome, "planted", 0.99, 0, "", details)


def test_selectivity_is_decided_by_the_genre_matched_directions():
    paper = cross_ablation.paper_design(selectivity(S))
    assert paper.details["caveat"] == cross_ablation.GENRE_CAVEAT
    assert "needs the same selectivity with genre-matched directions" in paper.reason
    # One refusal direction behind per-category genres: paper selective, matched shared.
    refuted = cross_ablation.selective_from_designs(paper, selectivity(R, staged=True))
    assert refuted.outcome is R
    assert refuted.details["decided_by"] == cross_ablation.MATCHED_DESIGN
    assert refuted.details["genre_matched"]["ablated_rates"] == [[0.0]]
    assert refuted.details["staged"] == {"stage": 2, "stages": 3}
    assert "staged" not in refuted.details["genre_matched"]
    assert cross_ablation.selective_from_designs(paper, selectivity(S)).outcome is S
    held = cross_ablation.selective_from_designs(
        cross_ablation.paper_design(selectivity(I)), selectivity(S))
    assert held.outcome is I and "the designs disagree" in held.reason


def test_without_matched_rows_selectivity_is_inconclusive_with_the_genre_reason():
    paper = cross_ablation.paper_design(selectivity(S))
    verdict = cross_ablation.selective_from_designs(paper, cross_ablation.NO_MATCHED_ROWS)
    assert verdict.outcome is I
    assert "no genre-matched direction exists" in verdict.reason
    assert "counts genre as refusal" in verdict.reason
    assert "genre_matched" not in verdict.details
    assert verdict.details["designs"][
        "ablation-is-category-selective-paper-design"]["outcome"] == "supported"


def test_a_failed_requirement_comes_first_and_decides_nothing():
    verdict = genre.from_genre_controls(
        planted(S), {M: planted(S, "m")}, paper_id=PAPER_ID,
        requires=[(False, "no measurable refusal: the model refused 0/88")])
    assert verdict.outcome is I and verdict.details["decided_by"] is None
    assert verdict.reason.startswith("no measurable refusal: the model refused 0/88 (with "
                                      "genre cancelled")
