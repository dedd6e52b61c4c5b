"""Joad et al. 2026's conclusion: distinct category directions are different linear mixes
of one shared refusal core, a common component plus category-specific parts (PAPER.md A.7).

Both claims read the genre-matched study (each category against its genre-matched benign
twins): against one general benign pool, the pool's own genre enters every direction alike
and passes for a shared core, and each category's genre passes for a stable specific part.
Statistics, thresholds and the reasons for them live in refusal_checks/verdicts/shared_core.py, so
that calibration/run.py judges planted worlds with exactly these verdicts.
"""

import pytest

from refusal_checks.verdicts.shared_core import (
    CORE_THRESHOLD,  # loading 0.5: the core holds >= 1/4 of every direction's squared norm
    SPECIFIC_THRESHOLD,  # remainder split-half 0.5: specific signal exceeds half-sample noise
    shared_refusal_core,
    specific_parts_stable,
)

MATCHED = "each category against its genre-matched benign twins"


@pytest.mark.claim("shared-refusal-core",
                   protocol=f"{MATCHED}; one-factor model of the noise-corrected cosines",
                   paper="PAPER.md A.7 (the conclusion; no statistic in the paper)",
                   says="The category directions are mixes of one shared refusal core: a "
                        "common component carries a large share of every direction.")
def test_every_category_direction_carries_a_shared_refusal_core(matched_directions,
                                                                 refusal_behaviour,
                                                                 robustness, judge):
    verdict = shared_refusal_core(matched_directions, refusal_behaviour,
                                  threshold=CORE_THRESHOLD)
    judge(verdict, robustness(shared_refusal_core, verdict, "matched",
                              threshold=CORE_THRESHOLD))


@pytest.mark.claim("category-specific-parts-stable",
                   protocol=f"{MATCHED}; remainder after the pooled direction, split halves",
                   paper="PAPER.md A.7 (the conclusion; no statistic in the paper)",
                   says="What each category direction adds to the shared core is a stable "
                        "category-specific part, not sampling noise.")
def test_category_specific_parts_are_stable(matched_directions, refusal_behaviour,
                                            robustness, judge):
    verdict = specific_parts_stable(matched_directions, refusal_behaviour,
                                    threshold=SPECIFIC_THRESHOLD)
    judge(verdict, robustness(specific_parts_stable, verdict, "matched",
                              threshold=SPECIFIC_THRESHOLD))
