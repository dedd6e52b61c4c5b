"""Verdicts of the geometry claims (Joad et al. 2026, PAPER.md Paper A, claims 1-2).

Each function turns one :class:`~refusal_checks.measure.study.DirectionStudy` and the model's
:class:`~refusal_checks.measure.behaviour.RefusalBehaviour` into the claim's
:class:`~refusal_checks.stats.verdict.Verdict`. ``claims/test_geometry.py`` calls them inside
pytest; :mod:`refusal_checks.calibration.geometry` calls them on planted worlds, so a claim's
verdict and its calibration can never drift apart. ``distinct-directions`` is the one claim
read from several studies: its genre controls decide it, and the paper's general-pool design
is reported as ``distinct-directions-paper-design`` (:mod:`refusal_checks.verdicts.genre`).

Every claim about *refusal* directions first checks that the model refuses at all: the
directions of a model that never refuses are genre differences, so those claims come out
INCONCLUSIVE there, never SUPPORTED.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from numpy.typing import ArrayLike

from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.measure.behaviour_control import BehaviourDirections
from refusal_checks.stats.decisions import above, below
from refusal_checks.measure.study import DirectionStudy
from refusal_checks.stats.smallest import iut_details, smallest_bootstrap
from refusal_checks.stats.verdict import Verdict
from refusal_checks.verdicts.genre import from_genre_controls, paper_design_id, with_caveat

# "Directions from independent resamples agree", argued from the claim, not from a model:
# two 32/32 resamples of one category at cosine 0.90 are 26 degrees apart and share
# cos^2 = 0.81 of their variance, so sampling noise carries at most ~1/9 of a resample
# direction's squared norm (r = |d|^2 / (|d|^2 + noise)); by Spearman-Brown the direction
# from both halves then has cosine sqrt(2r / (1 + r)) = 0.97 with its population value.
# Below 0.90 a resample's noise is large enough to move between-category cosines by
# more than the 0.10 margin of DISTINCT_THRESHOLD. The paper's 0.956-0.990 clears it.
STABLE_THRESHOLD = 0.90

# Noise-corrected cosine 1 means "the same direction". Below 0.90 leaves 0.10 of margin
# for what the correction cannot remove (template tokens shared by all categories).
DISTINCT_THRESHOLD = 0.90

# Participation ratio 1 = one direction, k = k orthogonal ones. 1.5 is reached when a
# second dimension carries about a quarter of the first one's variance.
DIMENSIONS_THRESHOLD = 1.5

# Below this mean split-half cosine a category's direction is mostly noise, and noise
# correction divides by almost nothing: no conclusion about between-category geometry.
MIN_RELIABILITY = 0.30


def reliable(study: DirectionStudy) -> tuple[bool, str]:
    """(ok, reason): every category's mean split-half cosine is at least MIN_RELIABILITY."""
    worst = min(study.reliability().items(), key=lambda item: item[1])
    return worst[1] >= MIN_RELIABILITY, (
        f"category {worst[0]!r} has split-half cosine {worst[1]:.2f} < {MIN_RELIABILITY} "
        f"({study.control}): its direction is mostly sampling noise")


# "Every category" needs at least this share of the categories measured for a SUPPORTED
# (as ablation-lowers-category-refusal): fewer, and the claim speaks of a minority.
MIN_MEASURED_SHARE = 0.5


def every_category_above(statistic: str, values: ArrayLike, replicates: ArrayLike,
                         categories: Sequence[str], threshold: float, *, n: int, paper: str,
                         seed: int, details: dict[str, Any],
                         requires: Sequence[tuple[bool, str]], level: float = 0.95
                         ) -> Verdict:
    """The verdict of "every category's value exceeds ``threshold``": an intersection-union
    test (:func:`refusal_checks.stats.smallest.smallest_bootstrap`, issue #26).

    Each category's value gets its own prompt-bootstrap interval, re-centred on its
    estimate, at ``level`` and at the Bonferroni level over all ``len(categories)``:

    * SUPPORTED when every measured category's interval lies above ``threshold`` and at
      least MIN_MEASURED_SHARE of the categories are measured;
    * REFUTED when some category's Bonferroni interval lies wholly below it;
    * otherwise INCONCLUSIVE.

    The statistic is the smallest value; its interval runs from the smallest lower end to
    the smallest Bonferroni upper end, and covers the smallest true value. ``details.iut``
    carries every category's intervals and status.
    """
    family = len(categories)
    estimate, interval, units = smallest_bootstrap(values, replicates, list(categories),
                                                   level, max(family, 1))
    measured = len(units)
    return above(statistic, estimate, interval, threshold, n=n, paper=paper, seed=seed,
                 level=level,
                 details={**details, "iut": iut_details(units, threshold, level, family)},
                 requires=requires,
                 preconditions=[(measured >= MIN_MEASURED_SHARE * family,
                                 f"only {measured} of {family} categories have a finite "
                                 "value and interval (SUPPORTED needs at least half)")])


def stable_within_category(study: DirectionStudy, behaviour: RefusalBehaviour, *,
                           threshold: float = STABLE_THRESHOLD) -> Verdict:
    """Claim: "Directions from independent resamples of one category agree."

    Every category's mean split-half cosine (halves of 32/32 prompts with the bundled
    sets, as the paper's resamples) must lie above ``threshold``: an intersection-union
    test (:func:`every_category_above`) on each category's prompt-bootstrap replicates
    (:attr:`DirectionStudy.split_half_boot`). The statistic is the least stable
    category's value.
    """
    means = study.split_half.mean(axis=1)
    return every_category_above(
        "lowest per-category mean split-half cosine", means, study.split_half_boot,
        study.categories, threshold, n=min(study.n_refuse), paper="0.956-0.990",
        seed=study.seed, details={"least stable": study.categories[int(means.argmin())],
                                  **study.summary()},
        requires=[behaviour.refuses()])


# What the paper's design says about itself, in every verdict of distinct-directions-paper-design.
GENRE_CAVEAT = ("this result may reflect genre, not refusal: each direction is its category "
                "against one general benign pool, so a difference in the prompts' source or "
                "style counts as distinctness (one planted refusal direction behind "
                "per-category genres: SUPPORTED in 100% of worlds); the claim's verdict is "
                "distinct-directions, formed from the genre controls")
# The genre controls of distinct-directions, in the order whose numbers it shows.
MATCHED_CLAIM = "distinct-under-matched-control"
BEHAVIOUR_CLAIM = "distinct-under-behaviour-control"
NO_MATCHED_ROWS = ("fewer than two categories have genre-matched benign rows (side 'matched' "
                   "in the prompt files)")


def distinct_directions_paper_design(study: DirectionStudy, behaviour: RefusalBehaviour, *,
                                     threshold: float = DISTINCT_THRESHOLD) -> Verdict:
    """Claim: "The paper's design reproduces: against one general benign pool, the category
    directions are distinct."

    The mean noise-corrected between-category cosine of the general-pool study, with a
    bootstrap interval over prompts, must lie below ``threshold``. Genre differences count
    as distinctness here (GENRE_CAVEAT, always in the reason): this is what Joad et al.
    measured, never the verdict of :func:`distinct_directions`.
    """
    estimate, interval = study.mean_between()
    verdict = below("mean noise-corrected between-category cosine", estimate, interval,
                    threshold, n=study.n_pairs, paper="0.55 (uncorrected)", seed=study.seed,
                    details=study.summary(),
                    requires=[behaviour.refuses(), reliable(study)])
    return with_caveat(verdict, GENRE_CAVEAT)


def distinct_directions(general: DirectionStudy, matched: DirectionStudy | None,
                        control: BehaviourDirections | None, behaviour: RefusalBehaviour, *,
                        threshold: float = DISTINCT_THRESHOLD) -> Verdict:
    """Claim: "Refusal categories have geometrically distinct directions."

    Decided by the genre controls (:func:`refusal_checks.verdicts.genre.from_genre_controls`,
    whose docstring argues the rule): :func:`distinct_under_matched_control` on ``matched``
    (None: fewer than two categories have matched rows) and
    :func:`distinct_under_behaviour_control` on ``control`` (None: not built), each exactly
    the verdict of its own claim; :func:`distinct_directions_paper_design` on ``general``
    must agree for a SUPPORTED and never decides alone.
    """
    controls: dict[str, Verdict | str] = {
        MATCHED_CLAIM: NO_MATCHED_ROWS if matched is None else
        distinct_under_matched_control(matched, behaviour, threshold=threshold),
        BEHAVIOUR_CLAIM: "the behaviour control was not built" if control is None else
        distinct_under_behaviour_control(control, behaviour, threshold=threshold)}
    paper = distinct_directions_paper_design(general, behaviour, threshold=threshold)
    return from_genre_controls(paper, controls, paper_id=paper_design_id("distinct-directions"),
                               requires=[behaviour.refuses()])


def more_than_one_direction(study: DirectionStudy, behaviour: RefusalBehaviour, *,
                            threshold: float = DIMENSIONS_THRESHOLD) -> Verdict:
    """Claim: "Refusal is not one direction": more than one effective dimension beyond noise.

    The participation ratio of the noise-corrected cosine matrix, with a bootstrap interval,
    must lie above ``threshold``. Read it off the genre-matched study: against one general
    benign pool each direction also carries its category's genre offset, and in planted
    worlds with ONE refusal direction plus genre offsets the general-pool ratio was above
    1.5 in 100% of worlds (calibration/README.md). Against matched controls the genre
    cancels and the same worlds were never SUPPORTED.
    """
    estimate, interval = study.effective_dimensions()
    return above("effective dimensions (participation ratio, noise-corrected)", estimate,
                 interval, threshold, n=study.k,
                 paper="not reported (11 directions, mean cosine 0.55)", seed=study.seed,
                 details=study.summary(),
                 requires=[behaviour.refuses(), reliable(study)])


def distinct_under_matched_control(study: DirectionStudy, behaviour: RefusalBehaviour, *,
                                   threshold: float = DISTINCT_THRESHOLD) -> Verdict:
    """Claim: "Categories stay distinct against genre-matched benign prompts."

    As :func:`distinct_directions_paper_design`, on a study whose benign side is each category's
    genre-matched control, so a shared genre offset cancels in the difference of means.
    """
    estimate, interval = study.mean_between()
    return below("mean noise-corrected between-category cosine, matched control", estimate,
                 interval, threshold, n=study.n_pairs, paper="not measured in the paper",
                 seed=study.seed, details=study.summary(),
                 requires=[behaviour.refuses(), reliable(study)])


def distinct_under_behaviour_control(control: BehaviourDirections, behaviour: RefusalBehaviour,
                                     *, threshold: float = DISTINCT_THRESHOLD) -> Verdict:
    """Claim: "Categories stay distinct when each direction is refused minus answered prompts."

    As :func:`distinct_directions_paper_design`, on the study of
    :func:`~refusal_checks.measure.behaviour_control.behaviour_directions`: within a category the
    refused and the answered prompts share source and genre, so genre cancels. Categories
    with too few prompts on either side are left out (their counts stay in the details);
    with fewer than two usable categories the verdict is INCONCLUSIVE with those counts.
    """
    statistic = "mean noise-corrected between-category cosine, behaviour control"
    paper = "not measured in the paper"
    study = control.study
    if study is None:
        nan = float("nan")
        return below(statistic, nan, (nan, nan), threshold, n=0, paper=paper,
                     seed=control.seed, details=control.summary(),
                     requires=[behaviour.refuses(), control.buildable()])
    estimate, interval = study.mean_between()
    return below(statistic, estimate, interval, threshold, n=study.n_pairs, paper=paper,
                 seed=study.seed, details=control.summary(),
                 requires=[behaviour.refuses(), reliable(study)])
