"""The "oracle" refusal direction and the over-refusal axis (Joad et al. 2026, PAPER.md A.2).

The paper's second stability figure: a direction from 32 harmful prompts the model refused
against 32 benign prompts it answered matches a large-pool "oracle" direction (all such
prompts) at cosine 0.96 +/- 0.01, while a direction from benign prompts the model refused
against benign prompts it answered (over-refusal) matches it at only ~0.10. Two claims:

* **oracle-agreement**: the oracle is the difference in means, at the claims' layer, of
  every should-refuse prompt of the harmful categories that the model refused and every
  judged benign prompt it answered. A resample draws ``k_h`` refused and ``k_b`` answered
  prompts without replacement (32/32 as in the paper, fewer when fewer exist) and is
  compared with the oracle built from the REST: the held-out oracle shares no prompt with
  the resample, so its cosine measures agreement, not overlap. The held-out oracle is
  itself a noisy estimate (it has fewer prompts than the paper's large pool), so its raw
  cosine is biased low; the statistic corrects it for the held-out oracle's reliability
  (:func:`corrected_agreement`: the mean cosine of a resample with the noise-free oracle).
  Its interval comes from resampling the prompts themselves (:func:`bootstrap_agreement`,
  re-centred as the split-half interval of ``stable-within-category``); the uncorrected
  agreement, the paper's overlapping definition and the spread over resamples (the
  paper's +/-) are in the details.
* **over-refusal-is-a-different-axis**: :mod:`refusal_checks.verdicts.over_refusal`, on
  the same :class:`OracleInputs`.

``fixtures/oracle.py`` and calibration (:mod:`refusal_checks.calibration.oracle`) both
call :func:`gather` and the verdict functions here, so a claim and its known-answer
worlds share one implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import warnings
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.measure.behaviour_control import MIN_PER_SIDE, REPLY_TOKENS
from refusal_checks.stats.stability import apply_weights, cluster_half_weights, resample
from refusal_checks.stats.intervals import percentile_interval, recentred_interval
from refusal_checks.stats.decisions import above
from refusal_checks.stats.verdict import Verdict

FloatArray = NDArray[np.float64]

# The paper's resample: 32 harmful-refused and 32 benign-complied prompts.
RESAMPLE_SIZE = 32
# Fewest prompts on each side of the oracle: a resample of half of them (at most
# RESAMPLE_SIZE) and a held-out oracle of the rest, each at least MIN_PER_SIDE (8, the
# fewest prompts any direction of the behaviour control is built from). Below 8 a
# resample direction is a handful of prompts' difference, not a direction.
MIN_ORACLE_SIDE = 2 * MIN_PER_SIDE
# "A 32/32 direction matches the oracle": mean cosine above 0.90, the threshold of
# stable-within-category and for the same reason: two estimates at cosine 0.90 are 26
# degrees apart and share cos^2 = 0.81 of their variance, so the resample's noise carries
# at most ~1/5 of its squared norm. The paper's 0.96 +/- 0.01 clears it by six spreads.
AGREEMENT_THRESHOLD = 0.90
# "Over-refusal is a different axis": |noise-corrected cosine| with the oracle below 0.5
# (absolute: an anti-aligned direction lies on the same axis). A cosine c means the oracle
# accounts for c^2 of the over-refusal direction's squared norm: below 0.5 less than a
# quarter, so the over-refusal direction is mostly its own
# axis (the same argument as shared_core.CORE_THRESHOLD, from the other side). The paper's
# ~0.10 is far below it; one shared direction gives ~1 after noise correction.
OVER_REFUSAL_THRESHOLD = 0.5
# The category whose genre-matched benign rows are the over-refusal set (XSTest safe
# prompts load as its matched side; the bundled set has 64 hand-written look-alikes).
OVER_REFUSAL_CATEGORY = "over_refusal"
# Resamples behind the estimate, and per bootstrap replicate (averaged there too).
N_RESAMPLES = 200
BOOT_RESAMPLES = 8
# Bootstrap replicates per chunk: bounds memory at width 4096 (50 x 8 x 4096 x 8 bytes x 4).
_CHUNK = 50

ORACLE = "oracle"
OVER = "over-refusal"
CONTROL = "harmful refused vs benign answered (oracle); benign refused vs answered " \
          "(over-refusal)"


@dataclass(frozen=True)
class OracleInputs:
    """The prompts behind the oracle and the over-refusal direction, split by the judge.

    Attributes:
        harmful_refused: ``(n_h, d)`` harmful-category should-refuse prompts the model refused.
        benign_answered: ``(n_b, d)`` judged general-pool benign prompts it answered.
        over_refused: ``(n_or, d)`` over-refusal-set prompts it refused (None: no such set).
        over_answered: ``(n_oa, d)`` over-refusal-set prompts it answered.
        harmful_counts: harmful category -> (refused, answered).
        benign_counts: (refused, answered) among the judged benign prompts.
        over_source: Name of the over-refusal set ("" when there is none).
        layer, seed, n_boot: Where and how the numbers are computed.
        judge, reply_tokens: The judge and reply length of the harmful and over-refusal
            verdicts (the benign ones are the ``refusal_behaviour`` probe's).
    """

    harmful_refused: FloatArray
    benign_answered: FloatArray
    over_refused: FloatArray | None
    over_answered: FloatArray | None
    harmful_counts: dict[str, tuple[int, int]]
    benign_counts: tuple[int, int]
    over_source: str
    layer: int
    seed: int
    n_boot: int = 500
    judge: str = ""
    reply_tokens: int = REPLY_TOKENS

    @property
    def over_counts(self) -> tuple[int, int]:
        if self.over_refused is None or self.over_answered is None:
            return (0, 0)
        return (len(self.over_refused), len(self.over_answered))

    def resample_sizes(self) -> tuple[int, int]:
        """(k_h, k_b): RESAMPLE_SIZE each, or half of a smaller side."""
        return (min(RESAMPLE_SIZE, len(self.harmful_refused) // 2),
                min(RESAMPLE_SIZE, len(self.benign_answered) // 2))

    def counts_text(self) -> str:
        harmful = ", ".join(f"{c} {r}/{a}" for c, (r, a) in self.harmful_counts.items())
        over = (f"{self.over_source} {self.over_counts[0]}/{self.over_counts[1]}"
                if self.over_source else "no over-refusal set")
        return (f"harmful refused/answered: {harmful or 'none'}; benign pool refused/answered: "
                f"{self.benign_counts[0]}/{self.benign_counts[1]}; over-refusal set "
                f"refused/answered: {over}")

    def oracle_buildable(self) -> tuple[bool, str]:
        """(ok, reason): >= MIN_ORACLE_SIDE refused harmful and answered benign prompts."""
        n_h, n_b = len(self.harmful_refused), len(self.benign_answered)
        return min(n_h, n_b) >= MIN_ORACLE_SIDE, (
            f"the oracle has {n_h} refused harmful and {n_b} answered benign prompts; a "
            f"resample and a held-out oracle of >= {MIN_PER_SIDE} each need >= "
            f"{MIN_ORACLE_SIDE} on both sides ({self.counts_text()})")

    def over_buildable(self) -> tuple[bool, str]:
        """(ok, reason): >= MIN_PER_SIDE refused and answered over-refusal prompts."""
        refused, answered = self.over_counts
        if not self.over_source:
            return False, (f"no over-refusal set: the prompt files have no genre-matched "
                           f"benign rows for category {OVER_REFUSAL_CATEGORY!r} (e.g. "
                           "XSTest safe prompts)")
        return min(refused, answered) >= MIN_PER_SIDE, (
            f"the model refused {refused} and answered {answered} of {refused + answered} "
            f"over-refusal prompts ({self.over_source}); the split halves behind the noise "
            f"correction need >= {MIN_PER_SIDE} of each (4 per half)")

    def summary(self) -> dict[str, object]:
        k_h, k_b = self.resample_sizes()
        return {"harmful_counts": {c: {"refused": r, "answered": a}
                                   for c, (r, a) in self.harmful_counts.items()},
                "benign_counts": {"refused": self.benign_counts[0],
                                  "answered": self.benign_counts[1]},
                "over_refusal_set": self.over_source,
                "over_refusal_counts": {"refused": self.over_counts[0],
                                        "answered": self.over_counts[1]},
                "resample": f"{k_h}/{k_b}", "layer": self.layer, "judge": self.judge,
                "reply_tokens": self.reply_tokens, "counts_note": self.counts_text()}


def judged_rows(texts: Sequence[str], judged: Sequence[tuple[str, bool]]
                ) -> tuple[NDArray[np.int_], NDArray[np.bool_]]:
    """Rows of ``texts`` that were judged, and the judge's verdicts, in judged order.

    ``judged``: ``(prompt, refused?)`` pairs, e.g. ``RefusalBehaviour.benign_prompts``;
    prompts not in ``texts`` are skipped.
    """
    index = {text: i for i, text in enumerate(texts)}
    pairs = [(index[t], bool(r)) for t, r in judged if t in index]
    return (np.array([i for i, _ in pairs], dtype=int),
            np.array([r for _, r in pairs], dtype=bool))


def _flags(name: str, acts: ArrayLike, flags: ArrayLike) -> NDArray[np.bool_]:
    out = np.asarray(flags, bool).ravel()
    if len(out) != len(np.asarray(acts)):
        raise ValueError(f"{name} has {len(np.asarray(acts))} activation rows but {len(out)} "
                         "refusal verdicts: judge every prompt, in the order of its activations.")
    return out


def gather(refuse: Mapping[str, ArrayLike], refused: Mapping[str, ArrayLike],
           benign: ArrayLike, benign_rows: ArrayLike, benign_refused: ArrayLike,
           over: ArrayLike | None = None, over_refused: ArrayLike | None = None, *,
           over_source: str = "", layer: int, seed: int, n_boot: int = 500,
           judge: str = "", reply_tokens: int = REPLY_TOKENS) -> OracleInputs:
    """Split the activations by the judge's verdicts into the four sides.

    Args:
        refuse: harmful category -> ``(n_i, d)`` activations of its should-refuse prompts.
        refused: harmful category -> ``(n_i,)`` verdicts on their replies (same order).
        benign: ``(m, d)`` activations of the general benign pool.
        benign_rows, benign_refused: The judged benign prompts (rows of ``benign``) and
            their verdicts (:func:`judged_rows` of the ``refusal_behaviour`` probe).
        over, over_refused: The over-refusal set's activations and verdicts, or None.
    """
    harmful, counts = [], {}
    for name, acts in refuse.items():
        flags = _flags(f"category {name!r}", acts, refused[name])
        counts[name] = (int(flags.sum()), int((~flags).sum()))
        harmful.append(np.asarray(acts, np.float64)[flags])
    pool = np.asarray(benign, np.float64)
    width = pool.shape[1]
    rows, flags = np.asarray(benign_rows, int), np.asarray(benign_refused, bool)
    over_sides: tuple[FloatArray | None, FloatArray | None] = (None, None)
    if over is not None and over_refused is not None:
        acts = np.asarray(over, np.float64)
        mask = _flags(over_source or "the over-refusal set", acts, over_refused)
        over_sides = (acts[mask], acts[~mask])
    return OracleInputs(
        np.concatenate(harmful) if harmful else np.empty((0, width)),
        pool[rows[~flags]], *over_sides, counts,
        (int(flags.sum()), int((~flags).sum())),
        over_source if over_sides[0] is not None else "", layer, seed, n_boot, judge,
        reply_tokens)


def _three_way(counts: FloatArray, rng: np.random.Generator, n_splits: int, first: int
               ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Averaging weights ``(rows, n_splits, n)`` of a resample and the held-out rest.

    Each split puts ``first`` original prompts in the resample; the rest, the held-out
    oracle, is also cut into two halves A and B by original prompt (copies of a prompt stay
    in one part). Returns ``(W_in, W_out, W_A, W_B)``, rows summing to 1 (0 when empty).
    """
    rows, n = counts.shape
    perm = np.argsort(rng.random((rows, n_splits, n)), axis=2)
    middle = first + (n - first) // 2
    out = []
    for part in (perm[..., :first], perm[..., first:], perm[..., first:middle],
                 perm[..., middle:]):
        mask = np.zeros((rows, n_splits, n))
        np.put_along_axis(mask, part, 1.0, axis=2)
        weights = mask * counts[:, None, :]
        totals = weights.sum(axis=2, keepdims=True)
        out.append(np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0))
    return out[0], out[1], out[2], out[3]


def _agreement_parts(harmful: FloatArray, benign: FloatArray, counts_h: FloatArray,
                     counts_b: FloatArray, rng: np.random.Generator, n_splits: int,
                     k_h: int, k_b: int) -> dict[str, FloatArray]:
    """Per row and split (``(rows, n_splits)`` each) of resample vs held-out oracle.

    Row ``i`` weighs the prompts by ``counts_*[i]`` (ones: the data; multinomial counts: a
    bootstrap replicate). ``cos``: cosine of the resample direction ``d_in`` with the
    held-out oracle ``d_out``; ``num``: ``d_in . d_out / |d_in|``; ``gram``: ``d_A . d_B``
    of the held-out oracle's two halves, unbiased for ``|d|^2`` of the noise-free direction
    (they share no prompt); ``overlap``: cosine of ``d_in`` with the oracle of ALL prompts,
    the resample included (the paper's definition). NaN where a part drew no prompt or a
    direction is zero.
    """
    in_h, out_h, a_h, b_h = _three_way(counts_h, rng, n_splits, k_h)
    in_b, out_b, a_b, b_b = _three_way(counts_b, rng, n_splits, k_b)
    d_in = apply_weights(in_h, harmful) - apply_weights(in_b, benign)
    d_out = apply_weights(out_h, harmful) - apply_weights(out_b, benign)
    d_a = apply_weights(a_h, harmful) - apply_weights(a_b, benign)
    d_b = apply_weights(b_h, harmful) - apply_weights(b_b, benign)
    full_h, full_b = counts_h / counts_h.sum(-1, keepdims=True), counts_b / counts_b.sum(
        -1, keepdims=True)
    d_all = (full_h @ harmful - full_b @ benign)[:, None, :]
    ok = np.ones(d_in.shape[:2], bool)
    for weights in (in_h, out_h, in_b, out_b, a_h, b_h, a_b, b_b):
        ok &= weights.sum(-1) > 0
    n_in, n_out = np.linalg.norm(d_in, axis=-1), np.linalg.norm(d_out, axis=-1)
    ok &= (n_in > 0) & (n_out > 0)
    dot = np.einsum("bsd,bsd->bs", d_in, d_out)
    with np.errstate(invalid="ignore", divide="ignore"):
        parts = {"cos": np.clip(dot / (n_in * n_out), -1.0, 1.0), "num": dot / n_in,
                 "gram": np.einsum("bsd,bsd->bs", d_a, d_b),
                 "overlap": np.einsum("bsd,bsd->bs", d_in, d_all)
                 / (n_in * np.linalg.norm(d_all, axis=-1))}
    for values in parts.values():
        values[~ok] = np.nan
    return parts


def corrected_agreement(parts: dict[str, FloatArray]) -> FloatArray:
    """``(rows,)`` mean cosine of a resample direction with the NOISE-FREE oracle.

    ``mean(d_in . d_out / |d_in|) / sqrt(mean(d_A . d_B))``: the numerator estimates
    ``|d| cos(d_in, d)`` (``d_out`` is ``d`` plus noise independent of ``d_in``), the
    denominator ``|d|``. Equivalently the held-out agreement divided by the square root of
    the held-out oracle's reliability ``rho = cos^2(d_out, d)``: a held-out oracle of the
    remaining prompts is itself noisy, and its raw cosine with a resample is biased low
    against the paper's large-pool oracle. NaN where ``mean(gram) <= 0`` (no measurable
    direction).
    """
    with warnings.catch_warnings():  # a row without any usable split stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        num, gram = np.nanmean(parts["num"], axis=1), np.nanmean(parts["gram"], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(gram > 0, num / np.sqrt(np.where(gram > 0, gram, 1.0)), np.nan)


def _checked(harmful: ArrayLike, benign: ArrayLike, k_h: int, k_b: int
             ) -> tuple[FloatArray, FloatArray]:
    h, b = np.asarray(harmful, np.float64), np.asarray(benign, np.float64)
    if not (0 < k_h < len(h) - 1 and 0 < k_b < len(b) - 1):
        raise ValueError(f"resamples of {k_h}/{k_b} need at least two more prompts than that "
                         f"on each side (have {len(h)}/{len(b)}) so that the held-out oracle "
                         "has two halves.")
    return h, b


def agreement_parts(harmful: ArrayLike, benign: ArrayLike, rng: np.random.Generator,
                    k_h: int = RESAMPLE_SIZE, k_b: int = RESAMPLE_SIZE,
                    n_resamples: int = N_RESAMPLES) -> dict[str, FloatArray]:
    """:func:`_agreement_parts` of ``n_resamples`` draws without replacement: ``(1, n)``."""
    h, b = _checked(harmful, benign, k_h, k_b)
    return _agreement_parts(h, b, np.ones((1, len(h))), np.ones((1, len(b))), rng,
                            n_resamples, k_h, k_b)


def resample_agreement(harmful: ArrayLike, benign: ArrayLike, rng: np.random.Generator,
                       k_h: int = RESAMPLE_SIZE, k_b: int = RESAMPLE_SIZE,
                       n_resamples: int = N_RESAMPLES) -> FloatArray:
    """Cosines of ``n_resamples`` resample directions (``k_h`` refused harmful minus ``k_b``
    answered benign prompts, drawn without replacement) with the oracle of the rest."""
    return agreement_parts(harmful, benign, rng, k_h, k_b, n_resamples)["cos"][0]


def bootstrap_agreement(harmful: ArrayLike, benign: ArrayLike, rng: np.random.Generator,
                        k_h: int = RESAMPLE_SIZE, k_b: int = RESAMPLE_SIZE,
                        n_boot: int = 500, n_splits: int = BOOT_RESAMPLES) -> FloatArray:
    """``(n_boot,)`` replicates of :func:`corrected_agreement`: both sides resampled with
    replacement, ``n_splits`` resample / held-out splits by original prompt each. A
    replicate holds fewer distinct prompts, so it is noisier than the estimate: read it
    with :func:`~refusal_checks.stats.intervals.recentred_interval`."""
    h, b = _checked(harmful, benign, k_h, k_b)
    out = np.full(n_boot, np.nan)
    for start in range(0, n_boot, _CHUNK):
        size = min(_CHUNK, n_boot - start)
        parts = _agreement_parts(h, b, resample(len(h), rng, size),
                                 resample(len(b), rng, size), rng, n_splits, k_h, k_b)
        out[start:start + size] = corrected_agreement(parts)
    return out


def oracle_agreement(inputs: OracleInputs, behaviour: RefusalBehaviour, *,
                     threshold: float = AGREEMENT_THRESHOLD) -> Verdict:
    """Claim: "A 32/32 harmful-refused vs benign-answered direction matches the oracle."

    Mean cosine of resample directions with the noise-free oracle
    (:func:`corrected_agreement` over ``N_RESAMPLES`` draws: held-out agreement corrected
    for the held-out oracle's reliability), prompt-bootstrap interval
    (:func:`bootstrap_agreement`, re-centred), must exceed ``threshold``. The uncorrected
    held-out agreement and the paper's overlapping definition (the resample inside its
    oracle) are in the details. Fewer than ``MIN_ORACLE_SIDE`` prompts on a side ->
    INCONCLUSIVE with the counts; resamples smaller than 32/32 are named in the statistic
    and the reason.
    """
    k_h, k_b = inputs.resample_sizes()
    statistic = (f"mean cosine of {k_h}/{k_b} resample directions with the oracle, "
                 "corrected for the held-out oracle's noise")
    buildable = inputs.oracle_buildable()
    nan = float("nan")
    estimate, interval, spread = nan, (nan, nan), {}
    if buildable[0]:
        rng = np.random.default_rng([inputs.seed, 11])
        parts = agreement_parts(inputs.harmful_refused, inputs.benign_answered, rng, k_h, k_b)
        estimate = float(corrected_agreement(parts)[0])
        replicates = bootstrap_agreement(inputs.harmful_refused, inputs.benign_answered, rng,
                                         k_h, k_b, inputs.n_boot)
        interval = recentred_interval(replicates, estimate)
        cosines = parts["cos"][0]
        lo, hi = percentile_interval(cosines)
        spread = {"held_out_agreement": round(float(np.nanmean(cosines)), 4),
                  "paper_overlapping_agreement": round(float(np.nanmean(parts["overlap"])), 4),
                  "resample_cosine_sd": round(float(np.nanstd(cosines)), 4),
                  "resample_cosine_range_95": [round(lo, 4), round(hi, 4)],
                  "resamples": len(cosines)}
    verdict = above(statistic, estimate, interval, threshold,
                    n=len(inputs.harmful_refused) + len(inputs.benign_answered),
                    paper="0.96 +/- 0.01 (32/32 vs a large-pool oracle)", seed=inputs.seed,
                    details={**inputs.summary(), **spread},
                    requires=[behaviour.refuses(), buildable, (
                        not buildable[0] or np.isfinite(estimate),
                        "the held-out oracle's two halves do not agree (mean d_A . d_B <= "
                        "0): there is no measurable oracle direction to agree with")])
    if buildable[0] and (k_h, k_b) != (RESAMPLE_SIZE, RESAMPLE_SIZE):
        note = (f"resamples of {k_h}/{k_b}, fewer than the paper's "
                f"{RESAMPLE_SIZE}/{RESAMPLE_SIZE}: half of the {len(inputs.harmful_refused)} "
                f"refused harmful / {len(inputs.benign_answered)} answered benign prompts")
        verdict = replace(verdict, reason=f"{verdict.reason}; {note}")
    return verdict
