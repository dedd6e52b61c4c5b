"""Joad et al.'s SAE view (PAPER.md A.6): a shared core of refusal latents, a tail of
category-specific ones, and directions rebuilt from a few latents.

The SAE is --refusal-sae PATH (SAELens's format, read at the claims' layer), else the one
`python -m refusal_checks train-sae` cached for this model and layer; without either each
claim is INCONCLUSIVE and names the command. Every category is contrasted with its
genre-matched benign twins. Statistics, thresholds and the reasons for them live in
refusal_checks/verdicts/sae.py, so that calibration/run.py --sae judges planted worlds with
exactly these verdicts. The fourth sentence, steering with the top latents' mean decoder
vector, reuses shared-knob's sweep, statistic and threshold (refusal_checks/verdicts/sae_steering.py,
calibrated by calibration/run.py --sae-steering).
"""

import pytest

from refusal_checks.verdicts.sae_core import (
    ACTIVE_RATE_GAP,  # 0.10: a latent is active for a category 10 points above its twins
    CORE_SHARE_THRESHOLD,  # 0.01: the core holds >= 1% of the dictionary
    sae_shared_core,
)
from refusal_checks.verdicts.sae import (
    REBUILD_THRESHOLD,  # 0.80: the rebuild holds >= 64% of the direction's squared norm
    TAIL_THRESHOLD,  # 0.10: own latents fire 10 points more there than elsewhere, held out
    TOP,
    sae_category_tail,
    sae_reconstructs_direction,
)
from refusal_checks.verdicts.sae_steering import staged_same_knob
from refusal_checks.measure.staged import PROTOCOL as STAGED

LATENTS = (f"SAE latents at the claims' layer and position, ranked by firing-rate "
           f"difference of each category's refused prompts over its genre-matched twins; "
           f"its top {TOP} are its refusal latents")


@pytest.mark.claim("sae-shared-core",
                   protocol=f"SAE latents at the claims' layer and position; a latent is active "
                            f"for a category when it fires on >= {ACTIVE_RATE_GAP:.2f} more of "
                            "its refused prompts than of its genre-matched twins; the core is "
                            "the latents active for every category, as a share of the "
                            "dictionary",
                   paper="PAPER.md A.6 (591 / 517 / 421 core latents of 16,384)",
                   says="A small core of refusal latents is shared by all categories.")
def test_a_core_of_refusal_latents_is_shared_by_every_category(sae_evidence,
                                                                refusal_behaviour, judge):
    judge(sae_shared_core(sae_evidence, refusal_behaviour, threshold=CORE_SHARE_THRESHOLD))


@pytest.mark.claim("sae-category-tail",
                   protocol=f"{LATENTS}; own latents chosen on half the prompts, their "
                            "specificity measured on the other half",
                   paper="PAPER.md A.6 (a long tail of split-specific latents)",
                   says="Beyond the core, each category has refusal latents of its own.")
def test_categories_have_refusal_latents_of_their_own(sae_evidence, refusal_behaviour, judge):
    judge(sae_category_tail(sae_evidence, refusal_behaviour, threshold=TAIL_THRESHOLD))


@pytest.mark.claim("sae-reconstructs-direction",
                   protocol=f"{LATENTS}; their decoder vectors weighted by the mean code "
                            "difference vs the difference in means, noise-corrected",
                   paper="PAPER.md A.6 (cosine 0.85-0.97)",
                   says="Directions rebuilt from a few refusal latents match the "
                        "activation-space directions.")
def test_a_few_refusal_latents_rebuild_each_category_direction(sae_evidence,
                                                               refusal_behaviour, judge):
    judge(sae_reconstructs_direction(sae_evidence, refusal_behaviour,
                                     threshold=REBUILD_THRESHOLD))


@pytest.mark.claim("sae-steering-same-knob",
                   protocol=f"{LATENTS} (chosen on the train halves); each category's mean "
                            "decoder vector of them steered at the shared-knob strengths x "
                            "the mean residual norm, cheap first-token score; its RR-vs-ORR "
                            f"path against the category directions' path; {STAGED}",
                   paper="PAPER.md A.6 (judged by eye in the paper, as A.3)",
                   says="Steering with the top latents' mean decoder vector traces the same "
                        "refusal vs over-refusal trade-off as the category directions.")
def test_steering_with_the_refusal_latents_is_the_same_knob(
        sae_knob_sweep, sae_steering, staged_probe, harmful_categories, sweep_score_agreement,
        refusal_behaviour, refusal_budget, pytestconfig, judge):
    # PATH_MARGIN 0.15, shared-knob's threshold: the same "nearly identical trade-off".
    judge(staged_same_knob(sae_knob_sweep, sae_steering, staged_probe, harmful_categories,
                           sweep_score_agreement, refusal_behaviour,
                           pytestconfig.getoption("--refusal-seed"), budget=refusal_budget))
