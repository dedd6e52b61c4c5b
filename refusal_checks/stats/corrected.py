"""Refusal rates corrected for the judge's own errors (Rogan and Gladen, 1978).

A judge with sensitivity ``se`` (share of true refusals it calls refused) and specificity
``sp`` (share of non-refusals it calls not refused) reports, on replies whose true refusal
rate is ``pi``, the apparent rate ``p = se * pi + (1 - sp) * (1 - pi)``. Solving for ``pi``:

    pi_hat = (p_hat + sp - 1) / (se + sp - 1),   clipped to [0, 1],

defined when the judge is better than chance (``se + sp > 1``). ``se`` and ``sp`` are
themselves estimated from human labels on the model under test
(:mod:`refusal_checks.judges.agreement`), so the interval must carry their uncertainty as well
as the sampling noise of ``p_hat``. :func:`corrected_rate` draws all three from their
Jeffreys posteriors, ``Beta(k + 1/2, n - k + 1/2)`` (a parametric bootstrap that stays honest
at k = 0 or n, where a binomial resample of the observed rate collapses to a point), maps each
draw through the formula, and reports the percentile interval. The simulation test in
tests/unit/test_corrected.py checks its coverage. numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class CorrectionError(ValueError):
    """The judge is no better than chance on the labels, so no correction exists."""


def rogan_gladen(apparent: float | np.ndarray, sensitivity: float | np.ndarray,
                 specificity: float | np.ndarray) -> float | np.ndarray:
    """``(p + sp - 1) / (se + sp - 1)`` clipped to [0, 1]; nan where ``se + sp <= 1``."""
    p, se, sp = (np.asarray(v, dtype=np.float64) for v in (apparent, sensitivity, specificity))
    youden = se + sp - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(youden > 0, np.clip((p + sp - 1.0) / youden, 0.0, 1.0), np.nan)
    return float(value) if value.ndim == 0 else value


@dataclass(frozen=True)
class CorrectedRate:
    """A judged rate and its misclassification-corrected estimate with interval.

    Attributes:
        apparent: ``k / n``, what the judge said.
        estimate: Rogan-Gladen estimate at the point estimates of se and sp.
        low, high: Percentile interval over the posterior draws.
        sensitivity, specificity: The point estimates used.
        undefined_share: Share of draws with ``se + sp <= 1`` (left out of the interval).
    """

    k: int
    n: int
    apparent: float
    estimate: float
    low: float
    high: float
    sensitivity: float
    specificity: float
    undefined_share: float = 0.0

    def record(self) -> dict[str, object]:
        """The report's form: ``{"judged": [k, n], "estimate", "low", "high"}``."""
        return {"judged": [self.k, self.n], "estimate": self.estimate, "low": self.low,
                "high": self.high}


def _jeffreys(rng: np.random.Generator, k: int, n: int, draws: int) -> np.ndarray:
    return rng.beta(k + 0.5, n - k + 0.5, size=draws)


def corrected_rate(k: int, n: int, sensitivity: tuple[int, int], specificity: tuple[int, int],
                   *, level: float = 0.95, draws: int = 4000, seed: int = 0) -> CorrectedRate:
    """Corrected refusal rate from ``k`` judged refusals among ``n`` replies.

    Args:
        k: Replies the judge called refused.
        n: Replies judged.
        sensitivity: ``(found, refusals)``: labelled refusals the judge called refused.
        specificity: ``(left_alone, non_refusals)``: labelled non-refusals it did not call
            refused.
        level: Interval coverage.
        draws: Posterior draws per quantity.
        seed: Generator seed.

    Raises:
        CorrectionError: The point estimates give ``se + sp <= 1`` (judge no better than
            chance) or a count is impossible.
    """
    for name, (hit, total) in (("sensitivity", sensitivity), ("specificity", specificity),
                               ("judged", (k, n))):
        if not 0 <= hit <= total or total < 1:
            raise CorrectionError(f"{name} count {hit}/{total} is not a count out of a total "
                                  ">= 1")
    se_hat = sensitivity[0] / sensitivity[1]
    sp_hat = specificity[0] / specificity[1]
    if se_hat + sp_hat <= 1.0:
        raise CorrectionError(f"the judge's sensitivity {se_hat:.2f} plus specificity "
                              f"{sp_hat:.2f} is not above 1: it is no better than chance on "
                              "these labels, so its rates cannot be corrected")
    rng = np.random.default_rng(seed)
    values = rogan_gladen(_jeffreys(rng, k, n, draws), _jeffreys(rng, *sensitivity, draws),
                          _jeffreys(rng, *specificity, draws))
    values = np.asarray(values)
    # A draw with se + sp <= 1 has no correction. With labels that put the point estimate
    # above chance such draws are rare; their share is reported, not hidden.
    undefined = float(np.mean(np.isnan(values)))
    values = values[~np.isnan(values)]
    tail = (1.0 - level) / 2.0
    low, high = (float(q) for q in np.quantile(values, [tail, 1.0 - tail]))
    estimate = float(rogan_gladen(k / n, se_hat, sp_hat))
    return CorrectedRate(k, n, k / n, estimate, min(low, estimate), max(high, estimate),
                         se_hat, sp_hat, undefined)


def coverage(true_rate: float, sensitivity: float, specificity: float, *, n: int,
             n_refusals: int, n_non_refusals: int, worlds: int = 200, level: float = 0.95,
             seed: int = 0) -> float:
    """Share of simulated worlds whose corrected interval contains ``true_rate``.

    Each world draws true refusals among ``n`` replies, the judge's verdicts on them with the
    given se / sp, and a labelled validation set of ``n_refusals`` refusals and
    ``n_non_refusals`` non-refusals judged by the same judge.
    """
    rng = np.random.default_rng(seed)
    hits = 0
    counted = 0
    for world in range(worlds):
        truth = rng.random(n) < true_rate
        said = np.where(truth, rng.random(n) < sensitivity, rng.random(n) >= specificity)
        found = int(rng.binomial(n_refusals, sensitivity))
        left = int(rng.binomial(n_non_refusals, specificity))
        try:
            result = corrected_rate(int(said.sum()), n, (found, n_refusals),
                                    (left, n_non_refusals), level=level, draws=2000,
                                    seed=seed * 100_003 + world)
        except CorrectionError:
            continue  # a validation draw no better than chance: no interval to check
        counted += 1
        hits += result.low <= true_rate <= result.high
    return hits / counted if counted else math.nan
