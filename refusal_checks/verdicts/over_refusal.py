"""over-refusal-is-a-different-axis (Joad et al. 2026, PAPER.md A.2): the over-refusal
direction against the oracle, as an absolute noise-corrected cosine with Fieller's interval.

The over-refusal direction is the over-refusal set's refused minus its answered benign
prompts (the ``over_refusal`` category's genre-matched look-alikes, so genre cancels); the
oracle is :mod:`refusal_checks.verdicts.oracle`'s. Their noise-corrected cosine is the ratio
``G_12 / sqrt(G_11 G_22)`` of cross-half products (:func:`~refusal_checks.stats.reliability.
cross_half_gram`, as every between-category cosine of the geometry claims).

* **|cos|, not cos.** "A different axis" is about the axis: an over-refusal direction
  anti-aligned with the oracle (cosine -1) lies on the same axis. A signed test of
  ``cos < 0.5`` read it as SUPPORTED; the statistic is now the absolute value.
* **Fieller's interval** (:func:`~refusal_checks.stats.ratio.abs_ratio_interval`), from the
  bootstrap covariance of ``(G_12, sqrt(G_11 G_22))`` over prompt resamples
  (:func:`~refusal_checks.stats.reliability.bootstrap_gram`), intersected with [0, 1]. The
  percentile interval of the ratio it replaces ran to 468 on the embedded Qwen, where the
  over-refusal direction is barely reliable: replicates whose denominator came near 0.

INCONCLUSIVE as before when the oracle or the over-refusal direction cannot be built or is
mostly noise (split-half < 0.30, :func:`refusal_checks.verdicts.geometry.reliable`).
"""

from __future__ import annotations

import numpy as np

from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.measure.study import DirectionStudy, study_directions
from refusal_checks.stats.decisions import below
from refusal_checks.stats.ratio import abs_ratio_interval, fieller_set
from refusal_checks.stats.reliability import bootstrap_gram, cross_half_gram
from refusal_checks.stats.verdict import Verdict
from refusal_checks.verdicts.geometry import reliable
from refusal_checks.verdicts.oracle import (CONTROL, ORACLE, OVER, OVER_REFUSAL_THRESHOLD,
                                            OracleInputs)

STATISTIC = "|noise-corrected cosine| of the over-refusal direction with the oracle"
PAPER = "~0.10 (uncorrected)"


def over_refusal_study(inputs: OracleInputs) -> DirectionStudy:
    """The oracle and the over-refusal direction as a two-direction study (split halves,
    noise-corrected cosine, prompt bootstrap), each against its own answered side."""
    if inputs.over_refused is None or inputs.over_answered is None:
        raise ValueError("no over-refusal set: " + inputs.over_buildable()[1])
    return study_directions({ORACLE: inputs.harmful_refused, OVER: inputs.over_refused},
                            {ORACLE: inputs.benign_answered, OVER: inputs.over_answered},
                            control=CONTROL, layer=inputs.layer, seed=inputs.seed,
                            n_boot=inputs.n_boot)


def corrected_abs_cosine(study: DirectionStudy, seed: int, n_boot: int
                         ) -> tuple[float, tuple[float, float], dict[str, object]]:
    """(|G_12| / sqrt(G_11 G_22), Fieller's interval of it in [0, 1], details) for the
    study's two directions; ``n_boot`` prompt resamples give the (co)variances."""
    sets, pools = study.inputs
    rng = np.random.default_rng([seed, 21])
    gram, _ = cross_half_gram(sets, pools, rng)
    boot, _ = bootstrap_gram(sets, pools, rng, n_boot)
    a, b = float(gram[0, 1]), float(np.sqrt(max(gram[0, 0], 0.0) * max(gram[1, 1], 0.0)))
    a_boot = boot[:, 0, 1]
    b_boot = np.sqrt(np.maximum(boot[:, 0, 0], 0.0) * np.maximum(boot[:, 1, 1], 0.0))
    if not b > 0:
        nan = float("nan")
        return nan, (nan, nan), {"fieller": "the cross-half norm of a direction is <= 0"}
    lo, hi = abs_ratio_interval(a, b, a_boot, b_boot)
    estimate = abs(a) / b
    if np.isfinite(hi) and hi <= 1.0:  # capped as its interval is: |cos| <= 1
        estimate = min(estimate, 1.0)
    s_lo, s_hi, bounded = fieller_set(a, b, a_boot, b_boot)
    return estimate, (lo, hi), {
        "signed_corrected_cosine": round(a / b, 4),
        "fieller_signed_set": ([round(s_lo, 4), round(s_hi, 4)] if bounded else
                               "unbounded: the denominator is not significantly > 0")}


def over_refusal_axis(inputs: OracleInputs, behaviour: RefusalBehaviour, *,
                      threshold: float = OVER_REFUSAL_THRESHOLD) -> Verdict:
    """Claim: "Over-refusal is a different axis from the oracle."

    The absolute noise-corrected cosine of the over-refusal direction with the oracle
    (:func:`corrected_abs_cosine`), Fieller's interval, must lie below ``threshold``.
    INCONCLUSIVE when the model refuses fewer than ``MIN_PER_SIDE`` (or answers fewer) of
    the over-refusal set, when the oracle cannot be built, or when either direction is
    mostly noise (split-half < 0.30).
    """
    requires = [behaviour.refuses(), inputs.oracle_buildable(), inputs.over_buildable()]
    n = sum(inputs.over_counts)
    nan = float("nan")
    if not all(ok for ok, _ in requires):
        return below(STATISTIC, nan, (nan, nan), threshold, n=n, paper=PAPER,
                     seed=inputs.seed, details=inputs.summary(), requires=requires)
    study = over_refusal_study(inputs)
    estimate, interval, fieller = corrected_abs_cosine(study, inputs.seed, inputs.n_boot)
    details = {**inputs.summary(), "raw_cosine": round(float(study.raw[0, 1]), 4),
               "split_half_mean": study.reliability(), "control": CONTROL,
               "interval_method": "Fieller (bootstrap covariance), |.| in [0, 1]", **fieller}
    return below(STATISTIC, estimate, interval, threshold, n=n, paper=PAPER,
                 seed=inputs.seed, details=details, requires=requires + [reliable(study)])
