"""Verdicts of the style claims (claims/test_style.py and the style calibration).

:func:`style_differs`: refusals steered along different directions are distinguishable;
:func:`rate_matched`: at the calibrated strengths the directions refuse at the same rate;
:func:`combine`: both ("style, not rate"); :func:`families`: AI-identity and moral/legal
directions refuse with their family's markers; :func:`negative_control`: two random-half
directions of one category are not told apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from refusal_checks.stats.intervals import percentile_interval
from refusal_checks.stats.decisions import above, below
from refusal_checks.verdicts.style_classifier import StyleResult, class_codes, cluster_bootstrap
from refusal_checks.measure.style_features import LEXICAL_FEATURES, lexical_features
from refusal_checks.measure.style_steering import (
    MIN_REFUSALS,
    RATE_TOLERANCE,
    TARGET_RATE,
    SteeredReplies,
)
from refusal_checks.stats.verdict import Outcome, Verdict

# The style claims compare refusals across directions: at least three directions must
# produce enough refusals to be compared (claims/test_style.py and the calibration read it).
MIN_DIRECTIONS = 3
# "Clearly above chance": the classifier names the right direction for at least 10 more
# refusals in 100 than the within-prompt permutation null. The negative control must stay
# under the same margin, so the test and its control are judged on one scale.
STYLE_MARGIN = 0.10
# A style difference also needs a permutation p-value below this.
ALPHA = 0.05

# The paper's families of refusal style (claim 4): AI-identity refusals and moral/legal
# refusals, each with the directions the paper says produce them and its lexical marker.
FAMILIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ai": (("humanizing", "unsupported", "indeterminate"), ("ai_identity", "limitation")),
    "moral": (("safety_core", "crime_assistance", "hate_speech"), ("moral_legal",)),
}


def _rate_deviation(refused: np.ndarray) -> float:
    """Largest |rate of one direction - mean rate over directions|; ``(direction, prompt)``."""
    rates = refused.mean(axis=1)
    return float(np.max(np.abs(rates - rates.mean())))


def rate_matched(steered: SteeredReplies, *, seed: int, n_boot: int = 500,
                 tolerance: float = RATE_TOLERANCE,
                 requires: Sequence[tuple[bool, str]] = ()) -> Verdict:
    """Claim: at the calibrated strengths, no direction's refusal rate differs from the
    others' beyond ``tolerance``. Paired bootstrap over the shared prompts."""
    matrix = np.array([np.asarray(steered.refused[d], bool) for d in steered.directions])
    rng = np.random.default_rng(seed)
    n = matrix.shape[1]
    boot = [_rate_deviation(matrix[:, rng.integers(0, n, n)]) for _ in range(n_boot)]
    rates = steered.rates()
    mean_rate = float(matrix.mean())
    return below("largest gap between one direction's refusal rate and the mean over "
                 "directions, at calibrated strengths", _rate_deviation(matrix),
                 percentile_interval(boot), tolerance, n=n, seed=seed,
                 paper="not measured (the paper's alphas are not rate-matched)",
                 details={"rates": rates, "strengths": dict(steered.strengths),
                          "target_rate": TARGET_RATE, "mean_rate": round(mean_rate, 4),
                          "tried": {d: [list(p) for p in t] for d, t in steered.tried.items()}},
                 requires=[*requires,
                           (mean_rate > 0.0, "no steered reply was judged a refusal")])


def style_differs(result: StyleResult, summary: dict[str, Any], *, seed: int,
                  min_directions: int, margin: float = STYLE_MARGIN,
                  requires: Sequence[tuple[bool, str]] = ()) -> Verdict:
    """Claim: refusals produced along different directions are distinguishable.

    SUPPORTED needs the accuracy gain over the within-prompt null to lie above ``margin``
    (cluster-bootstrap interval) AND a permutation p-value below :data:`ALPHA`.
    """
    # Too few directions with refusals stops a SUPPORTED; a gain shown to lie below the
    # margin among the directions that do refuse is still a finding.
    checks = [(len(result.labels) >= min_directions,
               f"only {len(result.labels)} directions have >= {MIN_REFUSALS} refusals "
               f"(need {min_directions})")]
    verdict = above("cross-validated accuracy naming the steering direction of a refusal, "
                    "above the within-prompt permutation null", result.gain, result.interval,
                    margin, n=result.n, seed=seed,
                    paper="qualitative: one generation per category (Table 6)",
                    details={"style": summary, "test": result.summary()},
                    requires=requires, preconditions=checks)
    if verdict.outcome is Outcome.SUPPORTED and not result.p_value < ALPHA:
        return _replace(verdict, Outcome.INCONCLUSIVE,
                        f"permutation p = {result.p_value:.3f} is not below {ALPHA}")
    return verdict


def negative_control(result: StyleResult, *, seed: int, categories: Sequence[str],
                     identical: Mapping[str, float], margin: float = STYLE_MARGIN,
                     requires: Sequence[tuple[bool, str]] = ()) -> Verdict:
    """Claim (calibration of the style test): two directions of ONE category, each built
    from a random half of its prompts, do not give distinguishable refusal styles.

    Each category's two half-directions differ only by sampling noise, so a style test that
    separated them would be reading noise in the direction estimates as style. The test
    runs within each category and pools over ``categories``. SUPPORTED when the accuracy
    gain's interval lies below ``margin``, the same margin the style claim must exceed.
    ``identical`` (per category, the share of prompts where both halves gave the same
    reply) says how demanding the control was.
    """
    return below("accuracy telling apart refusals steered by two random-half directions of "
                 "one category, above the within-prompt null", result.gain, result.interval,
                 margin, n=result.n, seed=seed, paper="ours (PAPER.md: 'style needs a null')",
                 details={"categories": list(categories),
                          "identical_replies": {c: round(v, 4) for c, v in identical.items()},
                          "test": result.summary()}, requires=requires)


def combine(style: Verdict, rate: Verdict) -> Verdict:
    """Claim "style, not rate": SUPPORTED only when both parts are; REFUTED when either is."""
    outcomes = (style.outcome, rate.outcome)
    if all(o is Outcome.SUPPORTED for o in outcomes):
        outcome, reason = Outcome.SUPPORTED, "styles differ and refusal rates are matched"
    elif Outcome.REFUTED in outcomes:
        part = "style" if style.outcome is Outcome.REFUTED else "rate"
        outcome, reason = Outcome.REFUTED, f"the {part} part is refuted"
    else:
        parts = [f"{name}: {v.outcome.value} ({v.reason})" for name, v in
                 (("style", style), ("rate", rate)) if v.outcome is not Outcome.SUPPORTED]
        outcome, reason = Outcome.INCONCLUSIVE, "; ".join(parts)
    return Verdict(statistic=style.statistic, estimate=style.estimate, interval=style.interval,
                   threshold=style.threshold, comparison=style.comparison, n=style.n,
                   outcome=outcome, reason=reason, seed=style.seed,
                   paper="PAPER.md A.4: 'changes HOW, not WHETHER'",
                   details={"style": style.details.get("style", {}), "style_verdict": style.line(),
                            "rate_verdict": rate.line(), "rates": rate.details.get("rates")})


def families(texts: Sequence[str], labels: Sequence[str], groups: Sequence[int], *, seed: int,
             n_boot: int = 500) -> Verdict:
    """Claim: AI-identity directions refuse with AI-identity markers, safety/crime/hate
    directions with moral or legal ones (PAPER.md A.4).

    For each family, the share of its directions' refusals showing the family's marker
    minus the share among the other family's refusals; the statistic is the smaller of
    the two differences, with a cluster-bootstrap interval over prompts; it must be > 0.
    """
    lexical = lexical_features(texts)
    column = {name: j for j, name in enumerate(LEXICAL_FEATURES)}
    member = np.full(len(labels), "", dtype=object)
    marks = {}
    for family, (directions, markers) in FAMILIES.items():
        member[[label in directions for label in labels]] = family
        marks[family] = lexical[:, [column[m] for m in markers]].max(axis=1)
    in_family = member != ""
    names = list(FAMILIES)
    codes, _ = class_codes([int(g) for g in groups])

    def statistic(index: np.ndarray) -> float:
        gaps = []
        for family in names:
            other = names[1 - names.index(family)]
            mine = index[member[index] == family]
            theirs = index[member[index] == other]
            if len(mine) == 0 or len(theirs) == 0:
                return float("nan")
            gaps.append(marks[family][mine].mean() - marks[family][theirs].mean())
        return float(min(gaps))

    items = np.flatnonzero(in_family)
    counts = {f: int(np.sum(member == f)) for f in names}
    boot = np.empty(0)
    if all(counts.values()):
        rng = np.random.default_rng(seed)
        boot = cluster_bootstrap(items, codes[items], rng, n_boot, statistic)
        boot = boot[~np.isnan(boot)]
    shares = {f: {g: round(float(marks[f][member == g].mean()), 3) if counts[g] else None
                  for g in names} for f in names}
    interval = percentile_interval(boot) if boot.size else (float("nan"), float("nan"))
    estimate = statistic(items) if all(counts.values()) else float("nan")
    return above("smaller family gap in the share of refusals with the family's marker",
                 estimate, interval, 0.0, n=int(items.size), seed=seed,
                 paper="PAPER.md A.4: AI-identity vs moral/legal refusals (qualitative)",
                 details={"families": {f: list(d) for f, (d, _) in FAMILIES.items()},
                          "markers": {f: list(m) for f, (_, m) in FAMILIES.items()},
                          "refusals": counts, "marker_share": shares},
                 min_n=2 * MIN_REFUSALS,
                 requires=[(all(counts[f] >= MIN_REFUSALS for f in names),
                            f"too few refusals per family ({counts}; need "
                            f">= {MIN_REFUSALS} each)")])


def _replace(verdict: Verdict, outcome: Outcome, reason: str) -> Verdict:
    from dataclasses import replace

    return replace(verdict, outcome=outcome, reason=reason)
