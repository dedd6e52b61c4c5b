"""Joad et al.'s SAE view (PAPER.md A.6): refusal latents, a shared core, a tail.

Each category's should-refuse prompts are compared with its genre-matched benign twins
(as the shared-core claims do: against one general pool, latents of the pool's genre
would pass for a core shared by every category). A latent *fires* when its code is > 0.
Latents are ranked by firing-rate difference (refused minus twins; ties broken by the
mean code difference); a category's *refusal latents* are its ``TOP`` highest-ranked
latents with a positive difference.

* ``sae-shared-core``: :mod:`refusal_checks.verdicts.sae_core` (the paper's count of
  latents active for every category, as a share of the dictionary).
* ``sae-category-tail``: held-out specificity of each category's tail (its refusal latents
  that are no other category's), selected on one half of every prompt set and measured on
  the other: firing-rate difference in the category minus the mean over the others.
* ``sae-reconstructs-direction``: cosine between the activation-space difference in means
  and the direction rebuilt from the ``TOP`` refusal latents' decoder vectors weighted by
  their mean code difference, corrected for the sampling noise of the difference in means.

Intervals: bootstrap over prompts (every set resampled), re-centred on the estimate as for
other minima and intersections (biased low under resampling). Thresholds and the reasons
for them are below; ``refusal_checks.calibration.sae`` judges planted worlds with these
very functions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.verdicts.geometry import MIN_RELIABILITY
from refusal_checks.stats.intervals import recentred_interval
from refusal_checks.stats.decisions import above
from refusal_checks.stats.verdict import Verdict

# Refusal latents per category. The paper rebuilds directions from "a few" latents and
# finds cosines of 0.85-0.97; 16 of the 3,584 latents of our 4x SAE (0.45%) is a few, and
# with 64 prompts a side a firing-rate difference has noise sd <= 0.09, so a latent must
# move by ~0.25 to rank among the top 16 reliably rather than by chance.
TOP = 16
# sae-category-tail: a category's own latents fire on at least 10 more of every 100 of its
# refused prompts (over its twins) than they do, on average, in the other categories, on
# held-out prompts. Noise selections and core latents give 0 in expectation.
TAIL_THRESHOLD = 0.10
# sae-reconstructs-direction: the rebuilt direction holds at least 0.8^2 = 64% of the
# (noise-free) direction's squared norm in every category; below the paper's lowest 0.85.
REBUILD_THRESHOLD = 0.80
# An SAE that explains less than half of the prompt-to-prompt variance at the decision
# state says little about the model there: every SAE claim is then INCONCLUSIVE.
MIN_EXPLAINED_VARIANCE = 0.5
SPLITS = 20  # random half splits behind the tail estimate and the reliability
BOOT_SPLITS = 2  # per bootstrap replicate of the reliability
CANDIDATES = 4 * TOP  # latents per category kept for the resamples (sae_inputs)
_CHUNK = 25  # replicates per chunk (bounds memory: 25 x k x d_sae floats)


@dataclass(frozen=True)
class SaeInputs:
    """Codes and activations of each category's refused prompts and matched twins."""

    categories: list[str]
    refuse_codes: list[np.ndarray]  # (n_c, d_sae)
    matched_codes: list[np.ndarray]
    refuse_acts: list[np.ndarray]  # (n_c, d_model)
    matched_acts: list[np.ndarray]
    W_dec: np.ndarray  # (candidates, d_model)
    explained_variance: float  # at the decision state, every prompt read
    sae: dict[str, Any]
    seed: int = 0
    n_boot: int = 500
    left_out: list[str] = field(default_factory=list)
    latent_ids: np.ndarray | None = None  # SAE index of each kept column
    d_sae: int = 0
    # (k, d_sae): on how many refused prompts / twins each latent of the SAE fires (all
    # latents, not only the kept columns: sae-shared-core counts the whole dictionary).
    refuse_fired: np.ndarray | None = None
    matched_fired: np.ndarray | None = None

    @property
    def k(self) -> int:
        return len(self.categories)

    @property
    def refuse_fires(self) -> list[np.ndarray]:
        return self._fires("refuse")

    @property
    def matched_fires(self) -> list[np.ndarray]:
        return self._fires("matched")

    def _fires(self, side: str) -> list[np.ndarray]:
        """1.0 where a latent fires (float64, computed once)."""
        memo = self.__dict__.setdefault("_memo", {})
        if side not in memo:
            memo[side] = [(c > 0).astype(np.float64) for c in getattr(self, f"{side}_codes")]
        return memo[side]


@dataclass(frozen=True)
class SaeMissing:
    """No SAE to read: why, and the command that trains one."""

    reason: str


def explained_variance(x: np.ndarray, recon: np.ndarray) -> float:
    """``1 - sum |x - recon|^2 / sum |x - mean(x)|^2``."""
    total = float(((x - x.mean(axis=0)) ** 2).sum())
    return 1.0 - float(((x - recon) ** 2).sum()) / max(total, 1e-30)


def sae_inputs(refuse: dict[str, np.ndarray], matched: dict[str, np.ndarray],
               benign: np.ndarray, sae: Any, *, seed: int = 0, n_boot: int = 500
               ) -> SaeInputs:
    """Encode the activations the claims read (one layer, the decision state).

    Only candidate latents are kept: the union over categories of the ``CANDIDATES``
    highest firing-rate differences on all prompts. A latent outside them would have to
    gain more than 48 ranks in a resample or half sample to become a refusal latent; the
    cut makes the bootstrap ~10x cheaper at d_sae 3,584.
    """
    names = [c for c in refuse if c in matched and len(matched[c])]
    everything = np.concatenate([*refuse.values(), *matched.values(), benign])
    codes_r = [sae.encode(refuse[c]).astype(np.float64) for c in names]
    codes_m = [sae.encode(matched[c]).astype(np.float64) for c in names]
    keep = np.arange(sae.d_sae)
    if names:
        rate = np.stack([(r > 0).mean(0) - (m > 0).mean(0) for r, m in zip(codes_r, codes_m)])
        code = np.stack([r.mean(0) - m.mean(0) for r, m in zip(codes_r, codes_m)])
        top = top_latents(rate, code, CANDIDATES)
        keep = np.unique(top[top >= 0])
    return SaeInputs(names, [c[:, keep] for c in codes_r], [c[:, keep] for c in codes_m],
                     [np.asarray(refuse[c], np.float64) for c in names],
                     [np.asarray(matched[c], np.float64) for c in names],
                     np.asarray(sae.W_dec, np.float64)[keep],
                     explained_variance(everything, sae.reconstruct(everything)),
                     sae.describe(), seed, n_boot, [c for c in refuse if c not in names],
                     keep, sae.d_sae,
                     np.array([(c > 0).sum(0) for c in codes_r]).reshape(len(names), -1),
                     np.array([(c > 0).sum(0) for c in codes_m]).reshape(len(names), -1))


def _weighted(w: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Weighted means ``(B, ...)`` of ``rows`` ``(n, ...)`` under weights ``(B, n)``."""
    return (w @ rows) / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)


def contrast_of(inputs: SaeInputs, w_r: list[np.ndarray], w_m: list[np.ndarray]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Firing-rate and mean-code differences, ``(B, k, d_sae)`` each."""
    rate = np.stack([_weighted(a, r) - _weighted(b, m) for a, b, r, m in
                     zip(w_r, w_m, inputs.refuse_fires, inputs.matched_fires)], axis=1)
    code = np.stack([_weighted(a, r) - _weighted(b, m) for a, b, r, m in
                     zip(w_r, w_m, inputs.refuse_codes, inputs.matched_codes)], axis=1)
    return rate, code


def top_latents(rate: np.ndarray, code: np.ndarray, m: int = TOP) -> np.ndarray:
    """Indices ``(..., m)`` of the ``m`` highest firing-rate differences (ties: mean code
    difference); ``-1`` where fewer than ``m`` latents have a positive difference."""
    scale = np.abs(code).max(axis=-1, keepdims=True) + 1e-12
    key = np.where(rate > 0, rate + 1e-4 * code / scale, -np.inf)
    m = min(m, key.shape[-1])
    index = np.argpartition(-key, m - 1, axis=-1)[..., :m]
    chosen = np.take_along_axis(key, index, axis=-1)
    return np.where(np.isfinite(chosen), index, -1)


def _membership(top: np.ndarray, d_sae: int) -> np.ndarray:
    """``(..., k, d_sae)`` bool: latent is among the category's refusal latents."""
    out = np.zeros(top.shape[:-1] + (d_sae + 1,), bool)
    np.put_along_axis(out, np.where(top < 0, d_sae, top), True, axis=-1)
    return out[..., :d_sae]


def core_share(rate: np.ndarray, code: np.ndarray, m: int = TOP) -> np.ndarray:
    """Share of ``m`` refusal latents common to every category: ``(B, k, d) -> (B,)``."""
    member = _membership(top_latents(rate, code, m), rate.shape[-1])
    return member.all(axis=-2).sum(axis=-1) / m


def tail_specificity(rate_a: np.ndarray, code_a: np.ndarray, rate_b: np.ndarray,
                     m: int = TOP) -> np.ndarray:
    """Per category ``(B, k)``: tail chosen on half A, mean over it of (rate difference in
    the category minus the mean over the other categories) on half B; NaN without tail."""
    member = _membership(top_latents(rate_a, code_a, m), rate_a.shape[-1])
    k = member.shape[-2]
    others = member.sum(axis=-2, keepdims=True) - member
    tail = member & (others == 0)
    gap = rate_b - (rate_b.sum(axis=-2, keepdims=True) - rate_b) / max(k - 1, 1)
    size = tail.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(size > 0, (gap * tail).sum(axis=-1) / size, np.nan)


def _halves(n: int, counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Split weights ``counts`` ``(B, n)`` into two halves by original prompt."""
    in_a = rng.permuted(np.tile(np.arange(n) < n // 2, (len(counts), 1)), axis=1)
    return counts * in_a, counts * ~in_a


def _resample(n: int, rng: np.random.Generator, b: int) -> np.ndarray:
    return rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)


def _split_weights(inputs: SaeInputs, rng: np.random.Generator, counts_r: list[np.ndarray],
                   counts_m: list[np.ndarray]) -> tuple[list, list, list, list]:
    ra, rb, ma, mb = [], [], [], []
    for c in range(inputs.k):
        a, b = _halves(len(inputs.refuse_codes[c]), counts_r[c], rng)
        ra.append(a), rb.append(b)
        a, b = _halves(len(inputs.matched_codes[c]), counts_m[c], rng)
        ma.append(a), mb.append(b)
    return ra, rb, ma, mb


def _tail_from(inputs: SaeInputs, rng: np.random.Generator, counts_r: list[np.ndarray],
               counts_m: list[np.ndarray]) -> np.ndarray:
    ra, rb, ma, mb = _split_weights(inputs, rng, counts_r, counts_m)
    rate_a, code_a = contrast_of(inputs, ra, ma)
    rate_b, _ = contrast_of(inputs, rb, mb)
    return tail_specificity(rate_a, code_a, rate_b)


def _directions(inputs: SaeInputs, w_r: list[np.ndarray], w_m: list[np.ndarray]) -> np.ndarray:
    """Difference in means ``(B, k, d_model)``."""
    return np.stack([_weighted(a, r) - _weighted(b, m) for a, b, r, m in
                     zip(w_r, w_m, inputs.refuse_acts, inputs.matched_acts)], axis=1)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _reliability(inputs: SaeInputs, rng: np.random.Generator, counts_r: list[np.ndarray],
                 counts_m: list[np.ndarray], splits: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean split-half cosine, Spearman-Brown reliability) of each direction, ``(B, k)``."""
    cos = []
    for _ in range(splits):
        ra, rb, ma, mb = _split_weights(inputs, rng, counts_r, counts_m)
        cos.append(_cos(_directions(inputs, ra, ma), _directions(inputs, rb, mb)))
    half = np.nanmean(np.stack(cos), axis=0)
    return half, np.where(half > 0, 2 * half / (1 + half), np.nan)


def reliability_requirement(inputs: SaeInputs, seed_key: int = 14
                            ) -> tuple[tuple[bool, str], dict[str, float]]:
    """((ok, reason), split-half by category): every category's difference in means
    (refused minus twins) must have mean split-half cosine >= ``MIN_RELIABILITY`` (0.30,
    as for the geometry claims), else the category's refusal latents are ranked on noise."""
    ones_r, ones_m = ones_of(inputs)
    half = _reliability(inputs, np.random.default_rng([inputs.seed, seed_key]), ones_r,
                        ones_m, SPLITS)[0][0]
    return noisy_requirement(inputs.categories, half), dict(
        zip(inputs.categories, np.round(half, 4).tolist()))


def noisy_requirement(categories: list[str], half: np.ndarray) -> tuple[bool, str]:
    noisy = [f"{c} ({h:.2f})" for c, h in zip(categories, half) if not h >= MIN_RELIABILITY]
    return (not noisy, f"the difference in means of {', '.join(noisy)} has split-half cosine "
                       f"< {MIN_RELIABILITY}: mostly sampling noise")


def rebuilt_cosine(inputs: SaeInputs, w_r: list[np.ndarray], w_m: list[np.ndarray],
                   m: int = TOP) -> np.ndarray:
    """Cosine ``(B, k)`` of the rebuilt direction with the difference in means."""
    rate, code = contrast_of(inputs, w_r, w_m)
    top = top_latents(rate, code, m)
    weights = np.where(top >= 0, np.take_along_axis(code, np.maximum(top, 0), -1), 0.0)
    rebuilt = np.einsum("bkj,bkjd->bkd", weights, inputs.W_dec[np.maximum(top, 0)])
    return _cos(rebuilt, _directions(inputs, w_r, w_m))


def ones_of(inputs: SaeInputs) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return ([np.ones((1, len(r))) for r in inputs.refuse_codes],
            [np.ones((1, len(m))) for m in inputs.matched_codes])


def _boot(inputs: SaeInputs, rng: np.random.Generator, measure: Any) -> np.ndarray:
    """``measure(counts_r, counts_m) -> (b, ...)`` over bootstrap chunks, stacked."""
    out = []
    for start in range(0, inputs.n_boot, _CHUNK):
        b = min(_CHUNK, inputs.n_boot - start)
        out.append(measure([_resample(len(r), rng, b) for r in inputs.refuse_codes],
                           [_resample(len(m), rng, b) for m in inputs.matched_codes]))
    return np.concatenate(out)


def requirements_of(inputs: SaeInputs | SaeMissing, behaviour: RefusalBehaviour, need: int
              ) -> list[tuple[bool, str]]:
    if isinstance(inputs, SaeMissing):
        return [(False, inputs.reason)]
    return [behaviour.refuses(),
            (inputs.explained_variance >= MIN_EXPLAINED_VARIANCE,
             f"the SAE explains {inputs.explained_variance:.2f} of the variance at the "
             f"decision state (< {MIN_EXPLAINED_VARIANCE}): its latents do not describe the "
             "stream the claims read"),
            (inputs.k >= need, f"needs >= {need} categories with genre-matched benign twins, "
                               f"got {inputs.k}")]


def details_of(inputs: SaeInputs, **extra: Any) -> dict[str, Any]:
    return {"sae": inputs.sae, "explained_variance_decision_state":
            round(inputs.explained_variance, 4), "top_latents": TOP,
            "categories": inputs.categories, "left_out": inputs.left_out,
            "control": "genre-matched benign twins", **extra}


def missing_verdict(statistic: str, threshold: float, inputs: SaeMissing,
             behaviour: RefusalBehaviour, paper: str) -> Verdict:
    return above(statistic, float("nan"), (float("nan"), float("nan")), threshold, n=0,
                 paper=paper, requires=requirements_of(inputs, behaviour, 0))


TAIL_STATISTIC = ("mean held-out specificity of each category's own refusal latents (firing-"
                  "rate difference there minus the mean in the other categories)")
TAIL_PAPER = "a long tail of split-specific latents (Safety-CCN, Unsupported-CCN, Incomplete-CCN)"


def sae_category_tail(inputs: SaeInputs | SaeMissing, behaviour: RefusalBehaviour, *,
                      threshold: float = TAIL_THRESHOLD) -> Verdict:
    """Claim: "Beyond the core, categories have latents of their own" (A.6)."""
    if isinstance(inputs, SaeMissing):
        return missing_verdict(TAIL_STATISTIC, threshold, inputs, behaviour, TAIL_PAPER)
    reliable, half = reliability_requirement(inputs)
    rng = np.random.default_rng([inputs.seed, 12])
    ones_r, ones_m = ones_of(inputs)
    tails = np.concatenate([_tail_from(inputs, rng, ones_r, ones_m) for _ in range(SPLITS)])
    with warnings.catch_warnings():  # a category without a tail in any split stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        per = np.nanmean(tails, axis=0)
    estimate = float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")
    reps = _boot(inputs, rng, lambda r, m: _tail_from(inputs, rng, r, m))
    with warnings.catch_warnings():  # a replicate without any tail stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(reps, axis=1)
    return above(TAIL_STATISTIC, estimate, recentred_interval(means, estimate), threshold,
                 n=inputs.k, paper=TAIL_PAPER, seed=inputs.seed,
                 details=details_of(inputs, tail_specificity=dict(zip(
                     inputs.categories, np.round(per, 4).tolist())), split_half=half),
                 requires=requirements_of(inputs, behaviour, 2) + [reliable])


REBUILD_STATISTIC = (f"lowest noise-corrected cosine of a category's direction with its "
                     f"rebuild from the top-{TOP} refusal latents")
REBUILD_PAPER = "0.85-0.97 (directions rebuilt from a few refusal latents)"


def sae_reconstructs_direction(inputs: SaeInputs | SaeMissing, behaviour: RefusalBehaviour,
                               *, threshold: float = REBUILD_THRESHOLD) -> Verdict:
    """Claim: "A few refusal latents rebuild each category's direction" (A.6).

    The raw cosine is divided by the square root of the difference in means' reliability
    (Spearman-Brown of its split-half cosine): noise in the activation-space direction
    lies mostly outside the few latents and would pull the raw cosine down however well
    they carry the true direction.
    """
    if isinstance(inputs, SaeMissing):
        return missing_verdict(REBUILD_STATISTIC, threshold, inputs, behaviour, REBUILD_PAPER)
    rng = np.random.default_rng([inputs.seed, 13])
    ones_r, ones_m = ones_of(inputs)
    raw = rebuilt_cosine(inputs, ones_r, ones_m)[0]
    half, rho = _reliability(inputs, rng, ones_r, ones_m, SPLITS)
    corrected = raw / np.sqrt(rho[0])

    # Each replicate recomputes the reliability from BOOT_SPLITS halves of its resample
    # (noisier than the data's SPLITS: slightly wide). With the data's reliability shared
    # by every replicate the interval was too narrow: 6.7% SUPPORTED at the boundary.
    def measure(r: list[np.ndarray], m: list[np.ndarray]) -> np.ndarray:
        return rebuilt_cosine(inputs, r, m) / np.sqrt(_reliability(inputs, rng, r, m,
                                                                   BOOT_SPLITS)[1])

    reps = _boot(inputs, rng, measure)
    worst = int(np.nanargmin(corrected)) if np.isfinite(corrected).any() else 0
    estimate = float(corrected[worst]) if np.isfinite(corrected).any() else float("nan")
    mins = np.where(np.isnan(reps).any(axis=1), np.nan, reps.min(axis=1))
    return above(REBUILD_STATISTIC, estimate, recentred_interval(mins, estimate), threshold,
                 n=inputs.k, paper=REBUILD_PAPER, seed=inputs.seed,
                 details=details_of(inputs, weakest=inputs.categories[worst] if inputs.k else "",
                                  raw_cosine=dict(zip(inputs.categories,
                                                      np.round(raw, 4).tolist())),
                                  corrected_cosine=dict(zip(inputs.categories,
                                                            np.round(corrected, 4).tolist())),
                                  split_half=dict(zip(inputs.categories,
                                                      np.round(half[0], 4).tolist()))),
                 requires=requirements_of(inputs, behaviour, 1) + [
                     noisy_requirement(inputs.categories, half[0])])
