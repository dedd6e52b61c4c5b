"""The papers' reference numbers, and our numbers summarised the way the paper summarises.

Joad et al. 2026 (PAPER.md, paper A) publish no full cosine matrix for their eleven
directions, only summary figures (claim 1: mean, range, block means; claim 2: split-half
range). The HTML report shows those figures beside ours, computed the same way from our
raw and noise-corrected matrices by :func:`cosine_summary`. numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SOURCE = "Joad et al. 2026 (arXiv 2602.02132), Gemma-2-9B-it, layer 20; PAPER.md A"

# Claim 1's block structure: the seven safety-like splits and the four CoCoNot non-safety ones.
SAFETY_LIKE: tuple[str, ...] = ("safety_core", "over_refusal", "safety_concerns", "hate_speech",
                                "crime_assistance", "inappropriate_topics", "unqualified_advice")
COCONOT_NON_SAFETY: tuple[str, ...] = ("humanizing", "incomplete", "indeterminate", "unsupported")


@dataclass(frozen=True)
class CosineSummary:
    """Claim 1's summary figures of a between-category cosine matrix.

    Attributes:
        pairs: Number of category pairs (k (k - 1) / 2).
        mean: Mean cosine over the pairs.
        low, high: Smallest and largest pair cosine, with the pairs that have them.
        below_0_3, above_0_8: How many pairs have cosine < 0.3 and > 0.8.
        within_safety, within_coconot, across: Block means (None when a block has no pair
            among the categories present).
    """

    pairs: int
    mean: float
    low: float
    low_pair: tuple[str, str]
    high: float
    high_pair: tuple[str, str]
    below_0_3: int
    above_0_8: int
    within_safety: float | None
    within_coconot: float | None
    across: float | None


# Claim 1 (Gemma, layer 20): 55 pairs, mean 0.55, range -0.06 (OverRefusal-XST vs
# Incomplete-CCN) to 0.92 (HateSpeech-SB vs CrimeAssistance-SB); 7 pairs below 0.3, 7 above
# 0.8; block means 0.71 (safety-like), 0.65 (CoCoNot non-safety), 0.42 across.
PAPER_COSINES = CosineSummary(
    pairs=55, mean=0.55, low=-0.06, low_pair=("over_refusal", "incomplete"), high=0.92,
    high_pair=("hate_speech", "crime_assistance"), below_0_3=7, above_0_8=7,
    within_safety=0.71, within_coconot=0.65, across=0.42)

# Claim 2: directions from independent 32/32 resamples of one split agree at 0.956-0.990.
PAPER_SPLIT_HALF: tuple[float, float] = (0.956, 0.990)

# Claim 3 (Gemma): at alpha = 10 the refusal rate is already 0.89-0.97 for every direction.
PAPER_STEERING_RR_ALPHA_10: tuple[float, float] = (0.89, 0.97)

# Claim 5: refusal rate left after ablating a direction (Gemma safety-type, Gemma CoCoNot
# non-safety, Llama every direction).
PAPER_ABLATION_RR: dict[str, tuple[float, float]] = {
    "Gemma, safety-type directions": (0.00, 0.15),
    "Gemma, CoCoNot non-safety directions": (0.34, 0.45),
    "Llama, every direction": (0.35, 0.64),
}


def _block_mean(matrix: np.ndarray, rows: list[int], cols: list[int], *,
                same: bool) -> float | None:
    # Upper triangle only: (min, max) of each pair.
    values = [matrix[min(i, j), max(i, j)] for i in rows for j in cols
              if (i < j if same else i != j)]
    return float(np.mean(values)) if values else None


def cosine_summary(categories: Sequence[str], matrix: np.ndarray | Sequence[Sequence[float]]
                   ) -> CosineSummary:
    """Summarise a symmetric (category, category) cosine matrix as claim 1 does.

    Only the upper triangle (i < j) is read. Block means average the pairs whose two
    categories are both in SAFETY_LIKE, both in COCONOT_NON_SAFETY, or one in each; unknown
    category names belong to no block.

    Raises:
        ValueError: The matrix is not k x k for k = len(categories) >= 2, or has
            non-finite entries in the upper triangle.
    """
    m = np.asarray(matrix, dtype=float)
    k = len(categories)
    if k < 2 or m.shape != (k, k):
        raise ValueError(f"need a k x k matrix for k = {k} >= 2 categories, got shape {m.shape}")
    iu = np.triu_indices(k, 1)
    values = m[iu]
    if not np.all(np.isfinite(values)):
        raise ValueError("the cosine matrix has non-finite entries")
    lo, hi = int(np.argmin(values)), int(np.argmax(values))
    safety = [i for i, c in enumerate(categories) if c in SAFETY_LIKE]
    coconot = [i for i, c in enumerate(categories) if c in COCONOT_NON_SAFETY]
    return CosineSummary(
        pairs=len(values), mean=float(values.mean()),
        low=float(values[lo]), low_pair=(categories[iu[0][lo]], categories[iu[1][lo]]),
        high=float(values[hi]), high_pair=(categories[iu[0][hi]], categories[iu[1][hi]]),
        below_0_3=int((values < 0.3).sum()), above_0_8=int((values > 0.8).sum()),
        within_safety=_block_mean(m, safety, safety, same=True),
        within_coconot=_block_mean(m, coconot, coconot, same=True),
        across=_block_mean(m, safety, coconot, same=False))


# Claim 4: how steering along each direction changes the way the model refuses (qualitative:
# one generation per split on two probe prompts). Directions the paper does not describe
# are absent.
PAPER_STYLE: dict[str, str] = {
    "humanizing": '"I am an AI, I have no body/feelings"',
    "incomplete": "short confusion, asks for context",
    "unsupported": '"I am just a text-based AI, I cannot do that"',
    "indeterminate": '"I am just a text-based AI, I cannot do that"',
    "safety_core": "refusal plus moralising",
    "safety_concerns": "refusal plus moralising",
    "crime_assistance": 'moral condemnation plus "seek help"',
    "hate_speech": 'moral condemnation plus "seek help"',
    "unqualified_advice": '"I am not a lawyer/doctor" disclaimer',
    "over_refusal": "repetitive refusal with policy lines and crisis resources",
}
