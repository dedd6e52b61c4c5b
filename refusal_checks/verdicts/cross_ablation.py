"""The verdict of cross-ablation: is a category's direction selective for its own category?

The measurement (every category's probes scored under every category's ablation, plus
random controls) is :mod:`refusal_checks.measure.cross_ablation`; this module reads its
matrix. ``claims/test_category_steering.py`` (through the staged looks) and the calibration
call the same functions.

The statistic is read twice: on the paper's directions (each category against one general
benign pool: ``ablation-is-category-selective-paper-design``, always with GENRE_CAVEAT) and
on genre-matched directions (each category against its own benign look-alikes, so its
genre cancels). ``ablation-is-category-selective`` is decided by the genre-matched design,
with the paper's design agreeing for a SUPPORTED
(:func:`refusal_checks.verdicts.genre.from_genre_controls`, where the rule is argued).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.measure.cross_ablation import CrossAblation, selectivity
from refusal_checks.stats.intervals import percentile_interval
from refusal_checks.stats.decisions import above
from refusal_checks.stats.verdict import Verdict
from refusal_checks.verdicts.category_steering import MIN_BASELINE_REFUSALS, MIN_SCORE_AGREEMENT
from refusal_checks.verdicts.genre import from_genre_controls, paper_design_id, with_caveat

# "Category-selective": the own-direction drop in refusal rate exceeds the mean drop it
# causes in the other categories by more than 0.25. The paper's weakest own-direction
# ablations leave 0.34-0.45 of refusals (CoCoNot, Gemma), drops of about 0.55; a margin
# of 0.25 asks that at least about half of such a drop be specific to the category, and
# it is two prompts of the 8-prompt probes. One shared pathway gives 0; directions with
# cosine 0 give the whole baseline refusal rate.
SELECTIVE_MARGIN = 0.25
# The paper's directions (each category against one general benign pool) carry each
# category's genre offset as well as its refusal: a category's own prompts project more
# strongly onto its own direction, so ablating it removes more of their refusal even where
# one direction carries all refusal. In planted worlds with ONE refusal direction and genre
# offsets as large as the signal that design was SUPPORTED in 100% of worlds
# (calibration/README.md, one-direction-genre); without genre offsets, never. Genre-matched
# directions (each category against its own look-alikes) cancel the genre, and in those
# worlds read "shared".
CLAIM = "ablation-is-category-selective"
PAPER_DIRECTIONS = "paper's (category minus the general benign pool)"
MATCHED_DIRECTIONS = "genre-matched (category minus its own benign look-alikes)"
MATCHED_DESIGN = "genre-matched directions"
GENRE_CAVEAT = ("directions are the paper's (each category against one general benign "
                "pool) and carry each category's genre: selectivity here may come from "
                "genre, not from separate refusal mechanisms (one planted refusal direction "
                "behind per-category genres: SUPPORTED in 100% of worlds); the claim's "
                f"verdict is {CLAIM}, which needs the same selectivity with genre-matched "
                "directions")
NO_MATCHED_ROWS = ("fewer than two categories have genre-matched benign rows (side "
                   "'matched' in the prompt files), so no genre-matched direction exists")
# Paired bootstrap replicates (each category's probe prompts resampled, the same draw for
# the baseline and every ablation).
CROSS_BOOTSTRAP = 1000
# Level of the percentile interval. Rates from 8 binary outcomes often sit at 0 or 1,
# where a resample sees no spread, so the bootstrap's standard error is too small: on 20
# planted worlds at the boundary (calibration/README.md) the estimate's actual error
# against 300 fresh prompts per category had sd 0.034, the bootstrap's se 0.027, 95%
# intervals covered the world's truth in 18 of 20, and 7% of 100 worlds were SUPPORTED.
# A 99% percentile interval is as wide as a 95% interval with the measured error.
CROSS_LEVEL = 0.99



def _reading(interval: tuple[float, float], own: float, other: float, random: float,
             margin: float) -> str:
    if own - random < margin:
        return (f"no specific effect: ablating a category's own direction lowers its refusal "
                f"by {own:.2f} on average, random directions by {random:.2f}")
    if interval[0] > margin:
        return (f"selective: a category's own direction lowers its refusal by {own:.2f} on "
                f"average, the other categories' by {other:.2f}")
    if interval[1] < margin:
        return (f"shared: ablating one category's direction lowers the other categories' "
                f"refusal nearly as much as its own ({other:.2f} vs {own:.2f}): one pathway, "
                f"or directions that overlap")
    return "undetermined: the interval straddles the margin"


def ablation_is_category_selective(matrix: CrossAblation, agreement: Mapping[str, Any],
                                   behaviour: RefusalBehaviour, seed: int, *,
                                   margin: float = SELECTIVE_MARGIN,
                                   min_agreement: float = MIN_SCORE_AGREEMENT,
                                   min_refusals: int = MIN_BASELINE_REFUSALS,
                                   level: float = CROSS_LEVEL,
                                   directions: str = PAPER_DIRECTIONS) -> Verdict:
    """Claim: "Ablating a category's direction removes that category's refusal more than
    the other categories'."

    Statistic: :func:`selectivity` of the drop matrix over the categories with at least
    ``min_refusals`` baseline refusals, with a paired bootstrap interval over prompts
    (``seed``); above ``margin`` is SUPPORTED. SUPPORTED also needs the own-direction
    drop to exceed the random-direction drop by the margin (else a selectivity would come
    from noise). ``level``: of the interval (a staged probe's per-look level);
    ``directions``: which directions were ablated, for the details. The details hold the
    k x k matrix of refusal rates under ablation (rows: ablated direction), the baseline
    rates, the controls' drops and the reading. This is one design's statistic; the claim's
    verdict is :func:`selective_from_designs`.
    """
    keep = matrix.measured(min_refusals)
    rng = np.random.default_rng(seed)
    counts = [rng.multinomial(rows.shape[1], np.full(rows.shape[1], 1.0 / rows.shape[1]),
                              size=CROSS_BOOTSTRAP).astype(np.float64)
              for rows in matrix.refused]
    rates = matrix.rates()
    drops, random_drops = matrix.drops(rates)
    measured = int(keep.sum())
    if measured >= 2:
        estimate = float(selectivity(drops, keep))
        boot_drops, _ = matrix.drops(matrix.rates(counts))
        interval = percentile_interval(selectivity(boot_drops, keep), level)
        own = float(np.diag(drops)[keep].mean())
        sub = drops[np.ix_(keep, keep)]
        other = float((sub.sum() - np.trace(sub)) / (measured * (measured - 1)))
    else:
        estimate, interval, own, other = float("nan"), (float("nan"),) * 2, float("nan"), \
            float("nan")
    random = float(random_drops[:, keep].mean()) if matrix.controls and measured else 0.0
    reading = _reading(interval, own, other, random, margin) if measured >= 2 else \
        "not enough categories with baseline refusals"
    names = matrix.categories
    return above("mean over categories of (drop under its own direction's ablation - mean "
                 "drop under the other categories' directions)", estimate, interval, margin,
                 n=measured, paper="not measured in the paper (ablation is 'partial', A.5)",
                 seed=seed, level=level,
                 details={"categories": names,
                          "ablated_rates": np.round(rates[1:1 + matrix.k], 4).tolist(),
                          "baseline_rates": dict(zip(names, np.round(rates[0], 4).tolist())),
                          "n_probe": dict(zip(names, [int(r.shape[1]) for r in matrix.refused])),
                          "random_drops": np.round(random_drops, 4).tolist(),
                          "mean_own_drop": round(own, 4), "mean_other_drop": round(other, 4),
                          "mean_random_drop": round(random, 4), "reading": reading,
                          "directions": directions,
                          "too_few_baseline_refusals": [n for n, k in zip(names, keep) if not k],
                          "score_agreement": dict(agreement)},
                 requires=[behaviour.refuses(),
                           (agreement["agreement"] >= min_agreement,
                            f"the cheap score agrees with the judge on only "
                            f"{agreement['agreement']:.2f} of the probes"),
                           (measured >= 2, f"only {measured} categories have >= {min_refusals} "
                                           "baseline refusals among their probes")],
                 preconditions=[(own - random >= margin,
                                 f"the own-direction drop ({own:.2f}) does not exceed the "
                                 f"random directions' ({random:.2f}) by {margin}")])


def paper_design(verdict: Verdict) -> Verdict:
    """``ablation-is-category-selective-paper-design``: the statistic on the paper's
    directions, GENRE_CAVEAT in its reason whatever it reads."""
    return with_caveat(verdict, GENRE_CAVEAT)


def selective_from_designs(paper: Verdict, matched: Verdict | str,
                           behaviour: RefusalBehaviour | None = None) -> Verdict:
    """``ablation-is-category-selective`` from its two designs.

    ``paper``: :func:`paper_design`'s verdict; ``matched``: the statistic on genre-matched
    directions, or why it was not measured; ``behaviour``: its "the model refuses"
    requirement comes first in the reason. Genre-matched SUPPORTED and the paper's design
    SUPPORTED -> SUPPORTED; genre-matched REFUTED -> REFUTED; otherwise INCONCLUSIVE
    (:func:`refusal_checks.verdicts.genre.from_genre_controls`). The genre-matched matrix
    is kept whole in ``details["genre_matched"]`` (the report draws it), its staged looks
    in ``details["staged"]``.
    """
    verdict = from_genre_controls(paper, {MATCHED_DESIGN: matched},
                                  paper_id=paper_design_id(CLAIM),
                                  requires=[behaviour.refuses()] if behaviour else [])
    if isinstance(matched, str):
        return verdict
    extra = {"genre_matched": {k: v for k, v in matched.details.items() if k != "staged"}}
    if "staged" in matched.details:
        extra["staged"] = matched.details["staged"]
    return replace(verdict, details={**verdict.details, **extra})
