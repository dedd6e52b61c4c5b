"""Known-answer worlds for misclassification-corrected refusal rates.

``pytest claims/ --refusal-labels`` corrects judged refusal rates for the judge's error on
the model's own labels (:func:`refusal_checks.judges.agreement.corrected_rates`, which calls
:func:`refusal_checks.stats.corrected.corrected_rate`). This study checks that interval where
the truth is known: each world draws the true refusals among ``n`` replies, the judge's
verdicts on them at a planted sensitivity and specificity, and a labelled validation set of
the given size judged by the same judge; it counts how often the corrected interval holds
the true rate, beside the interval people would otherwise read (Wilson on the judged rate,
which ignores the judge's error). The judges are planted at the sensitivity and
specificity measured on the shipped Qwen labels (README), plus a weak judge. numpy only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from refusal_checks.stats.corrected import CorrectionError, corrected_rate
from refusal_checks.stats.intervals import wilson_interval

# (name, sensitivity, specificity): the two judges on labels/qwen-coder-0.5b.jsonl (all 400
# replies: substring 165/180 and 207/220, embedding 169/180 and 188/220) and a weak judge.
JUDGES = (("substring (Qwen labels)", 165 / 180, 207 / 220),
          ("embedding (Qwen labels)", 169 / 180, 188 / 220),
          ("weak", 0.70, 0.80))
# Labelled validation sets: the shipped file's unsteered stratum (17 refused, 25 not) and
# all of it (180, 220).
LABEL_SETS = ((17, 25), (180, 220))
# The evaluation half of the shipped labels (refusal_checks/judges/label_split.py), which
# every corrected rate now reads: the judges as measured there (substring 71/77 and 101/103,
# embedding 73/77 and 89/103) and its label sets, the unsteered stratum (7 refused, 10 not)
# and the whole half (77, 103). Their cells come after the grid above, so its seeds stay.
EVALUATION_JUDGES = (("substring (Qwen evaluation half)", 71 / 77, 101 / 103),
                     ("embedding (Qwen evaluation half)", 73 / 77, 89 / 103),
                     ("weak", 0.70, 0.80))
EVALUATION_LABEL_SETS = ((7, 10), (77, 103))
REPLIES = (24, 88)  # a stage-1 probe of 3 categories x 8; the precondition's 88
TRUE_RATES = (0.1, 0.5, 0.9)


@dataclass(frozen=True)
class CoverageCell:
    judge: str
    labels: tuple[int, int]
    n: int
    true_rate: float
    corrected: float  # share of worlds whose corrected interval holds the true rate
    naive: float  # the same for Wilson's interval on the judged rate
    mean_width: float  # of the corrected interval
    skipped: int  # worlds whose labels put the judge at chance (no correction exists)


def cell(judge: str, se: float, sp: float, labels: tuple[int, int], n: int, true_rate: float,
         worlds: int, seed: int) -> CoverageCell:
    """Coverage of the corrected and the naive interval over ``worlds`` planted worlds."""
    rng = np.random.default_rng(seed)
    hits = naive = counted = skipped = 0
    widths = []
    for world in range(worlds):
        truth = rng.random(n) < true_rate
        said = np.where(truth, rng.random(n) < se, rng.random(n) >= sp)
        k = int(said.sum())
        found = int(rng.binomial(labels[0], se))
        left = int(rng.binomial(labels[1], sp))
        low, high = wilson_interval(k, n)
        try:
            result = corrected_rate(k, n, (found, labels[0]), (left, labels[1]), draws=2000,
                                    seed=seed * 100_003 + world)
        except CorrectionError:
            skipped += 1
            continue
        counted += 1
        hits += result.low <= true_rate <= result.high
        naive += low <= true_rate <= high
        widths.append(result.high - result.low)
    return CoverageCell(judge, labels, n, true_rate, hits / max(counted, 1),
                        naive / max(counted, 1), float(np.mean(widths)) if widths else np.nan,
                        skipped)


def run_corrected(worlds: int, first_seed: int = 1, *,
                  evaluation_only: bool = False) -> list[CoverageCell]:
    """Every cell of the grid JUDGES x LABEL_SETS x REPLIES x TRUE_RATES, then of
    EVALUATION_JUDGES x EVALUATION_LABEL_SETS x REPLIES x TRUE_RATES (only these with
    ``evaluation_only``; each cell's seed is the same either way)."""
    grid = list(itertools.product(JUDGES, LABEL_SETS, REPLIES, TRUE_RATES))
    grid += itertools.product(EVALUATION_JUDGES, EVALUATION_LABEL_SETS, REPLIES, TRUE_RATES)
    first = len(JUDGES) * len(LABEL_SETS) * len(REPLIES) * len(TRUE_RATES)
    return [cell(name, se, sp, labels, n, rate, worlds, first_seed + index)
            for index, ((name, se, sp), labels, n, rate) in enumerate(grid)
            if not evaluation_only or index >= first]


def table_lines(cells: list[CoverageCell]) -> list[str]:
    lines = ["judge | labels (refused/not) | replies | true rate | corrected covers | "
             "naive covers | corrected width | judge at chance",
             "---|---|---|---|---|---|---|---"]
    for c in cells:
        lines.append(f"{c.judge} | {c.labels[0]}/{c.labels[1]} | {c.n} | {c.true_rate:.1f} | "
                     f"{c.corrected:.3f} | {c.naive:.3f} | {c.mean_width:.2f} | {c.skipped}")
    return lines
