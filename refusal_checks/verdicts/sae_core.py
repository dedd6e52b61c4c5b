"""sae-shared-core (Joad et al. 2026, PAPER.md A.6): latents active for every category.

The paper counts the latents shared by all 11 splits: 591 / 517 / 421 of 16,384 (3.6% /
3.2% / 2.6% of the dictionary at layers 9 / 20 / 31). The statistic here is that count as a
share of the dictionary, with a firing rule stated before any result:

* a latent is **active for a category** when it fires (code > 0) on at least
  ``ACTIVE_RATE_GAP`` (10 points) more of the category's refused prompts than of its
  genre-matched twins: ``p_refused - p_twins > 0.10``;
* the **core** is the set of latents active for every category; the statistic is
  ``|core| / d_sae``, over the WHOLE dictionary (not the top few latents of each).

The interval counts latents, not replicates (a bootstrap of a count of thresholded minima
is degenerate wherever no latent sits near the margin: 0.00 [0.00, 0.00] on the embedded
Qwen). Each latent's difference in each category gets a Newcombe interval:

* lower count ``K_lo``: latents whose lower bound exceeds the margin in every category,
  at a per-latent one-sided level ``0.025 / d_sae`` (Bonferroni over the dictionary). A
  latent outside the core enters only if one category's bound is wrong, so
  ``P(K_lo > |core|) <= 0.025``;
* upper count ``K_hi``: latents whose upper bound exceeds the margin in every category, at
  ``0.0125 / (d_sae k)`` per bound (a core latent leaves if any of its k bounds is wrong),
  and whose pooled difference's upper bound does too, at ``0.0125 / d_sae``; so
  ``P(K_hi < |core|) <= 0.025``. (Without the pooled test: ``0.025 / (d_sae k)``.)

``[K_lo, K_hi] / d_sae`` is then a 95% interval of the core's share. Its upper end is
wide by design. At 64 prompts a side a latent that never fires in a category has a
Wilson upper bound of 0.27 there at the upper count's z (4.8), above the 0.10 margin;
pooled over the categories (when each has as many twins as refused prompts; half the upper
tail goes to the pooled test) a latent that rarely fires anywhere is shown inactive, but a
category's own latents (active in one category) are not. In planted worlds without a core
the upper count was ~15% of the dictionary, so the claim reads INCONCLUSIVE there, not
REFUTED: REFUTED needs more prompts (per category ``z^2 / (n + z^2) < 0.10``, ~220). A
REFUTED that rests on the noise of a few prompts is what this replaces. Like every SAE
claim, a category whose difference in means is mostly noise (split-half < 0.30) makes it
INCONCLUSIVE: its latents would be ranked on noise.
"""

from __future__ import annotations

import numpy as np

from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.stats.decisions import above
from refusal_checks.stats.intervals import newcombe_bounds, normal_quantile
from refusal_checks.stats.verdict import Verdict
from refusal_checks.verdicts.sae import (TOP, SaeInputs, SaeMissing, contrast_of, core_share,
                                         details_of, missing_verdict, ones_of,
                                         reliability_requirement, requirements_of)

# A latent is active for a category when it fires on 10 more of every 100 refused prompts
# than of the twins (the same 10 points as sae-category-tail's threshold). Smaller gaps are
# within the sampling noise of a 64-prompt rate (sd up to 0.09), and a latent firing about
# as often on both sides says nothing about refusal.
ACTIVE_RATE_GAP = 0.10
# The core holds at least 1% of the dictionary: under half the paper's smallest core (2.6%,
# 421 of 16,384) so that a sparser or narrower SAE can still show one, yet at d_sae 3,584
# (the embedded Qwen's 4x SAE) 36 latents, more than the 32 a TopK SAE fires on any one
# token: a smaller "core" is no more than a few latents that every prompt may use.
# Sampling noise alone makes a latent active in all 11 categories at once with
# probability far below 1e-6 (each category's chance of passing is independent).
CORE_SHARE_THRESHOLD = 0.01
# One-sided error of each count bound; the two together give a 95% interval.
TAIL = 0.025

STATISTIC = (f"share of the dictionary active for every category (fires on >= "
             f"{ACTIVE_RATE_GAP:.2f} more of its refused prompts than of its twins)")
PAPER = "591 / 517 / 421 core latents of 16,384 = 3.6% / 3.2% / 2.6% (layers 9 / 20 / 31)"


def core_counts(refuse_fired: np.ndarray, n_refuse: np.ndarray, matched_fired: np.ndarray,
                n_matched: np.ndarray, gap: float = ACTIVE_RATE_GAP, tail: float = TAIL
                ) -> dict[str, object]:
    """Latents active for every category: the count and its bounds.

    Args:
        refuse_fired, matched_fired: ``(k, d_sae)`` prompts on which each latent fires.
        n_refuse, n_matched: ``(k,)`` prompts per category and side.
        gap: The firing-rate margin a latent must exceed in each category.
        tail: One-sided error of each bound (module docstring).

    Returns:
        ``count`` (estimate), ``lower`` / ``upper`` (the bounds), ``core`` (indices counted
        in ``lower``), ``possible`` (in ``upper``), ``z_lower`` / ``z_upper`` and
        ``active_in_j`` (latents whose estimate passes in exactly j categories).
    """
    r, m = np.asarray(refuse_fired, np.float64), np.asarray(matched_fired, np.float64)
    k, d_sae = r.shape
    n_r = np.asarray(n_refuse, np.float64)[:, None]
    n_m = np.asarray(n_matched, np.float64)[:, None]
    z_lower = normal_quantile(1.0 - tail / d_sae)
    estimate = r / n_r - m / n_m
    lower, _ = newcombe_bounds(r, n_r, m, n_m, z_lower)
    # A core latent must pass in every category, so its pooled difference passes too when
    # each category has as many refused prompts as twins (the pooled difference is then
    # their n-weighted mean, >= the smallest): half the upper tail tests that, 11 times the
    # prompts, the other half each category's own bound.
    pooled = bool(np.array_equal(n_r, n_m))
    split = 2.0 if pooled else 1.0
    z_upper = normal_quantile(1.0 - tail / (split * d_sae * k))
    _, upper = newcombe_bounds(r, n_r, m, n_m, z_upper)
    possible = (upper > gap).all(axis=0)
    if pooled:
        _, upper_pooled = newcombe_bounds(r.sum(0), n_r.sum(), m.sum(0), n_m.sum(),
                                          normal_quantile(1.0 - tail / (2.0 * d_sae)))
        possible &= upper_pooled > gap
    passes = (estimate > gap).sum(axis=0)
    return {"count": int((passes == k).sum()),
            "lower": int((lower > gap).all(axis=0).sum()),
            "upper": int(possible.sum()),
            "core": np.flatnonzero((lower > gap).all(axis=0)),
            "possible": np.flatnonzero(possible),
            "z_lower": z_lower, "z_upper": z_upper,
            "active_in_j": {j: int((passes == j).sum()) for j in range(1, k + 1)}}


def sae_shared_core(inputs: SaeInputs | SaeMissing, behaviour: RefusalBehaviour, *,
                    threshold: float = CORE_SHARE_THRESHOLD) -> Verdict:
    """Claim: "A core of refusal latents is shared by every category" (A.6).

    The share of the dictionary active for every category (:func:`core_counts`), its
    count interval, must exceed ``threshold``. Requires a refusing model, an SAE that
    explains half the variance at the decision state, >= 3 categories with twins, and
    every category's direction reliable (split-half >= 0.30).
    """
    if isinstance(inputs, SaeMissing):
        return missing_verdict(STATISTIC, threshold, inputs, behaviour, PAPER)
    requires = requirements_of(inputs, behaviour, 3)
    if inputs.refuse_fired is None or inputs.matched_fired is None or not inputs.k:
        nan = float("nan")
        return above(STATISTIC, nan, (nan, nan), threshold, n=inputs.k, paper=PAPER,
                     seed=inputs.seed, details=details_of(inputs), requires=requires + [
                         (False, "no firing counts over the whole dictionary: build the "
                                 "inputs with refusal_checks.verdicts.sae.sae_inputs")])
    reliable, half = reliability_requirement(inputs)
    d_sae = inputs.refuse_fired.shape[1]
    counts = core_counts(inputs.refuse_fired, [len(a) for a in inputs.refuse_acts],
                         inputs.matched_fired, [len(a) for a in inputs.matched_acts])
    top = float(core_share(*contrast_of(inputs, *ones_of(inputs)))[0])
    details = details_of(
        inputs, core_count=counts["count"], core_count_interval=[counts["lower"],
                                                                 counts["upper"]],
        d_sae=d_sae, active_rate_gap=ACTIVE_RATE_GAP,
        bound_z=[round(counts["z_lower"], 3), round(counts["z_upper"], 3)],
        core_latents=counts["core"].tolist(),
        latents_active_in_j_categories=counts["active_in_j"],
        top_latents_shared_share=round(top, 4),
        top_latents_shared_note=f"share of each category's top-{TOP} latents common to "
                                "all categories: the statistic before 2026-12-08",
        split_half=half)
    return above(STATISTIC, counts["count"] / d_sae,
                 (counts["lower"] / d_sae, counts["upper"] / d_sae), threshold, n=inputs.k,
                 paper=PAPER, seed=inputs.seed, details=details,
                 requires=requires + [reliable])
