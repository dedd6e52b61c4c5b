"""Geometry of refusal directions: Joad et al. 2026 (PAPER.md, Paper A, claims 1-2).

Directions are difference-in-means of resid_pre at the paper's mid layer and decision
position (-2), one per category, against the general benign pool (the paper's design),
against each category's genre-matched benign prompts (our control for its genre confound,
when the prompt files have matched rows), or as the category's prompts the model refused
minus those it answered (a genre control that every prompt file supports).
distinct-directions is decided by the two genre controls; the paper's general-pool statistic
is reported beside it as distinct-directions-paper-design ("the paper's design reproduces").
Every claim about *refusal* directions first checks that the model refuses at all: the
directions of a model that never refuses are genre differences, so those claims come out
INCONCLUSIVE there, never SUPPORTED.

The statistics live in refusal_checks/verdicts/geometry.py, next to the reasons for each
threshold, so that calibration/run.py judges planted worlds with exactly these verdicts.
"""

import pytest

from refusal_checks.verdicts.geometry import (
    DIMENSIONS_THRESHOLD,  # 1.5 effective dimensions: a second direction carries ~1/4
    DISTINCT_THRESHOLD,  # noise-corrected cosine 0.90: 0.10 margin under "the same"
    STABLE_THRESHOLD,  # split-half cosine 0.90: resamples share cos^2 = 0.81 of the variance
    distinct_directions,
    distinct_directions_paper_design,
    distinct_under_behaviour_control,
    distinct_under_matched_control,
    more_than_one_direction,
    stable_within_category,
)


@pytest.mark.claim("stable-within-category", protocol="split halves (32/32 with the bundled sets) against the general benign pool",
                   paper="PAPER.md A.2: resample cosine 0.956-0.990",
                   says="Directions from independent resamples of one category agree.")
def test_directions_are_stable_within_a_category(category_directions, refusal_behaviour,
                                                robustness, judge):
    verdict = stable_within_category(category_directions, refusal_behaviour,
                                     threshold=STABLE_THRESHOLD)
    judge(verdict, robustness(stable_within_category, verdict, "general",
                              threshold=STABLE_THRESHOLD))


@pytest.mark.claim("distinct-directions", protocol="decided by the genre controls (matched twins, "
                            "behaviour-matched); the paper's general-pool design must agree for SUPPORTED",
                   paper="PAPER.md A.1: mean cosine 0.55, -0.06..0.92",
                   says="Refusal categories have geometrically distinct directions.")
def test_refusal_categories_have_distinct_directions(category_directions, genre_matched_study,
                                                     behaviour_directions, refusal_behaviour,
                                                     judge):
    # A genre control SUPPORTED (none REFUTED) and the paper's design agreeing -> SUPPORTED;
    # a genre control REFUTED -> REFUTED; else INCONCLUSIVE (the rule and its argument:
    # refusal_checks/verdicts/genre.py). Against one general pool genre passes for
    # distinctness, so that design never decides alone.
    judge(distinct_directions(category_directions, genre_matched_study, behaviour_directions,
                              refusal_behaviour, threshold=DISTINCT_THRESHOLD))


@pytest.mark.claim("distinct-directions-paper-design",
                   protocol="paper's design (one general benign pool); genre-confounded: the "
                            "claim's verdict is distinct-directions",
                   paper="PAPER.md A.1: mean cosine 0.55, -0.06..0.92",
                   says="The paper's design reproduces: against one general benign pool, "
                        "category directions are distinct.")
def test_paper_design_finds_distinct_directions(category_directions, refusal_behaviour,
                                                robustness, judge):
    verdict = distinct_directions_paper_design(category_directions, refusal_behaviour,
                                               threshold=DISTINCT_THRESHOLD)
    judge(verdict, robustness(distinct_directions_paper_design, verdict, "general",
                              threshold=DISTINCT_THRESHOLD))


@pytest.mark.claim("more-than-one-direction", protocol="each category against its genre-matched benign twins",
                   paper="PAPER.md A.7 vs Arditi et al. 2024",
                   says="Refusal is not one direction: category directions span more than "
                        "one effective dimension beyond sampling noise.")
def test_refusal_directions_span_more_than_one_dimension(matched_directions,
                                                         refusal_behaviour, robustness, judge):
    # Matched controls: against the general pool, genre offsets alone pass as extra
    # dimensions (one planted direction + genre: SUPPORTED in 100% of worlds, calibration/).
    verdict = more_than_one_direction(matched_directions, refusal_behaviour,
                                      threshold=DIMENSIONS_THRESHOLD)
    judge(verdict, robustness(more_than_one_direction, verdict, "matched",
                              threshold=DIMENSIONS_THRESHOLD))


@pytest.mark.claim("distinct-under-matched-control", protocol="each category against its genre-matched benign twins (ours)",
                   paper="ours; PAPER.md A 'Known weakness'",
                   says="Categories stay distinct when each is contrasted with genre-matched "
                        "benign prompts instead of one general pool.")
def test_distinct_directions_survive_genre_matched_control(matched_directions,
                                                           refusal_behaviour, robustness,
                                                           judge):
    verdict = distinct_under_matched_control(matched_directions, refusal_behaviour,
                                             threshold=DISTINCT_THRESHOLD)
    judge(verdict, robustness(distinct_under_matched_control, verdict, "matched",
                              threshold=DISTINCT_THRESHOLD))


@pytest.mark.claim("distinct-under-behaviour-control", protocol="refused minus answered prompts within each category (ours)",
                   paper="ours; PAPER.md A 'Known weakness'",
                   says="Categories stay distinct when each direction is built from the "
                        "prompts of that category the model refused vs those it answered.")
def test_distinct_directions_survive_behaviour_matched_control(behaviour_directions,
                                                               refusal_behaviour, judge):
    # Refused and answered prompts of one category share its source and genre, so genre
    # cancels; categories with < MIN_PER_SIDE prompts on a side are listed and left out.
    # No --refusal-robustness re-check: subsamples would need the split by replies redone.
    judge(distinct_under_behaviour_control(behaviour_directions, refusal_behaviour,
                                           threshold=DISTINCT_THRESHOLD))
