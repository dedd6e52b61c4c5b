"""Geometry of refusal directions: Joad et al. 2026 (PAPER.md, Paper A, claims 1-2).

Directions are difference-in-means of resid_pre at the paper's mid layer and decision
position (-2), one per category, against the general benign pool (the paper's design) or
against each category's genre-matched benign prompts (our control for its confound).
Every claim about *refusal* directions first checks that the model refuses at all: the
directions of a model that never refuses are genre differences, so those claims come out
INCONCLUSIVE there, never SUPPORTED.
"""

import pytest

from refusal_checks.stats import above, below

# Paper: 0.956-0.990 between independent 32/32 resamples on 9B models. 0.80 keeps the
# claim's meaning (two resamples share most of their direction: cos^2 = 0.64 of the
# variance) while allowing for the larger noise of a 0.5B model.
STABLE_THRESHOLD = 0.80

# Noise-corrected cosine 1 means "the same direction". Below 0.90 leaves 0.10 of margin
# for what the correction cannot remove (template tokens shared by all categories).
DISTINCT_THRESHOLD = 0.90

# Participation ratio 1 = one direction, k = k orthogonal ones. 1.5 is reached when a
# second dimension carries about a quarter of the first one's variance.
DIMENSIONS_THRESHOLD = 1.5

# Below this mean split-half cosine a category's direction is mostly noise, and noise
# correction divides by almost nothing: no conclusion about between-category geometry.
MIN_RELIABILITY = 0.30


def _reliable(study) -> tuple[bool, str]:
    worst = min(study.reliability().items(), key=lambda item: item[1])
    return worst[1] >= MIN_RELIABILITY, (
        f"category {worst[0]!r} has split-half cosine {worst[1]:.2f} < {MIN_RELIABILITY} "
        f"({study.control}): its direction is mostly sampling noise")


@pytest.mark.claim("stable-within-category", paper="PAPER.md A.2: resample cosine 0.956-0.990",
                   says="Directions from independent resamples of one category agree.")
def test_directions_are_stable_within_a_category(category_directions, refusal_behaviour, judge):
    estimate, interval, worst = category_directions.worst_split_half()
    judge(above("lowest per-category split-half cosine", estimate, interval, STABLE_THRESHOLD,
                n=min(category_directions.n_refuse), paper="0.956-0.990",
                seed=category_directions.seed,
                details={"least stable": worst, **category_directions.summary()},
                preconditions=[refusal_behaviour.refuses()]))


@pytest.mark.claim("distinct-directions", paper="PAPER.md A.1: mean cosine 0.55, -0.06..0.92",
                   says="Refusal categories have geometrically distinct directions.")
def test_refusal_categories_have_distinct_directions(category_directions, refusal_behaviour,
                                                     judge):
    estimate, interval = category_directions.mean_between()
    judge(below("mean noise-corrected between-category cosine", estimate, interval,
                DISTINCT_THRESHOLD, n=category_directions.n_pairs, paper="0.55 (uncorrected)",
                seed=category_directions.seed, details=category_directions.summary(),
                preconditions=[refusal_behaviour.refuses(), _reliable(category_directions)]))


@pytest.mark.claim("more-than-one-direction", paper="PAPER.md A.7 vs Arditi et al. 2024",
                   says="Refusal is not one direction: category directions span more than "
                        "one effective dimension beyond sampling noise.")
def test_refusal_directions_span_more_than_one_dimension(category_directions,
                                                         refusal_behaviour, judge):
    estimate, interval = category_directions.effective_dimensions()
    judge(above("effective dimensions (participation ratio, noise-corrected)", estimate,
                interval, DIMENSIONS_THRESHOLD, n=category_directions.k,
                paper="not reported (11 directions, mean cosine 0.55)",
                seed=category_directions.seed, details=category_directions.summary(),
                preconditions=[refusal_behaviour.refuses(), _reliable(category_directions)]))


@pytest.mark.claim("distinct-under-matched-control", paper="ours; PAPER.md A 'Known weakness'",
                   says="Categories stay distinct when each is contrasted with genre-matched "
                        "benign prompts instead of one general pool.")
def test_distinct_directions_survive_genre_matched_control(matched_directions,
                                                           refusal_behaviour, judge):
    estimate, interval = matched_directions.mean_between()
    judge(below("mean noise-corrected between-category cosine, matched control", estimate,
                interval, DISTINCT_THRESHOLD, n=matched_directions.n_pairs,
                paper="not measured in the paper", seed=matched_directions.seed,
                details=matched_directions.summary(),
                preconditions=[refusal_behaviour.refuses(), _reliable(matched_directions)]))
