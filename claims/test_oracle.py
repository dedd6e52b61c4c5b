"""Joad et al. 2026's oracle direction and over-refusal axis (PAPER.md, Paper A, claim 2).

The oracle is the difference in means, at the claims' layer and position, of every
should-refuse prompt of the harmful categories that the model refused and every judged
benign prompt it answered (the model's own unsteered replies). A 32/32 resample of those
prompts should match the oracle built from the rest; a direction from benign prompts the
model refused minus benign prompts it answered (over-refusal) should not.
Statistics, thresholds and the reasons for them live in refusal_checks/verdicts/oracle.py, so that
calibration (refusal_checks/calibration/oracle.py) judges planted worlds with exactly
these verdicts.
"""

import pytest

from refusal_checks.verdicts.oracle import (
    AGREEMENT_THRESHOLD,  # mean cosine 0.90: resample and oracle share >= 81% of variance
    OVER_REFUSAL_THRESHOLD,  # |noise-corrected| 0.5: the oracle holds < 1/4 of over-refusal
    oracle_agreement,
)
from refusal_checks.verdicts.over_refusal import over_refusal_axis


@pytest.mark.claim("oracle-agreement",
                   protocol="32/32 resamples of harmful refused vs benign answered against "
                            "the oracle of the remaining prompts (held out), corrected for "
                            "the held-out oracle's noise",
                   paper="PAPER.md A.2: 0.96 +/- 0.01",
                   says="A direction from 32 refused harmful and 32 answered benign prompts "
                        "matches the large-pool oracle direction.")
def test_resampled_direction_matches_the_oracle(oracle_inputs, refusal_behaviour, judge):
    judge(oracle_agreement(oracle_inputs, refusal_behaviour, threshold=AGREEMENT_THRESHOLD))


@pytest.mark.claim("over-refusal-is-a-different-axis",
                   protocol="over-refusal set's refused minus answered benign prompts against "
                            "the full oracle: |noise-corrected cosine|, Fieller's interval",
                   paper="PAPER.md A.2: ~0.10",
                   says="Benign prompts the model refuses differ from those it answers along "
                        "a different axis than the oracle refusal direction.")
def test_over_refusal_is_a_different_axis(oracle_inputs, refusal_behaviour, judge):
    judge(over_refusal_axis(oracle_inputs, refusal_behaviour,
                            threshold=OVER_REFUSAL_THRESHOLD))
