"""Verdict robustness: does a geometry claim's verdict survive a different prompt sample
or a neighbouring layer? Re-checked from cached activations, no model work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from refusal_checks.measure.activations import CollectionActivations
from refusal_checks.measure.study import DirectionStudy, study_directions
from refusal_checks.stats.verdict import Verdict

# Each re-check keeps this share of every prompt set (drawn without replacement).
SUBSAMPLE = 0.8
# A verdict that stays the same in fewer than 80% of re-checks is reported as fragile.
STABLE_SHARE = 0.8
# Re-checks use fewer bootstrap replicates and splits: they ask "same outcome?", and the
# calibration study found the rates unchanged at these sizes for the geometry claims.
RECHECK_BOOT = 100
RECHECK_SPLITS = 200


def _take(array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    keep = max(2, int(round(SUBSAMPLE * len(array))))
    return array[np.sort(rng.choice(len(array), keep, replace=False))]


def recheck(
    claim: Callable[..., Verdict],
    original: Verdict,
    acts: CollectionActivations,
    behaviour: Any,
    *,
    control: str,
    layer: int,
    n_layers: int,
    times: int,
    seed: int,
    **claim_options: Any,
) -> dict[str, Any]:
    """Re-run ``claim`` on ``times`` random prompt subsamples at layers ``layer-1..layer+1``.

    Args:
        claim: A geometry verdict function of :mod:`refusal_checks.verdicts.geometry`.
        original: The verdict at full sample and the chosen layer.
        acts: All-layer activations (``CollectionActivations``).
        behaviour: The refusal behaviour the claim's precondition reads.
        control: ``"general"`` (the benign pool) or ``"matched"`` (genre-matched sets).
        layer: The chosen layer; neighbours outside ``[0, n_layers)`` are skipped.
        times: Number of re-checks.
        seed: Seed of the subsamples.

    Returns:
        ``{"checks", "same", "share", "fragile", "outcomes", "layers"}`` for the report.
    """
    rng = np.random.default_rng(seed)
    layers = [l for l in (layer - 1, layer, layer + 1) if 0 <= l < n_layers]
    outcomes: Counter[str] = Counter()
    for i in range(times):
        view = acts.at_layer(layers[i % len(layers)])
        if control == "matched":
            refuse = {c: _take(a, rng) for c, a in view.refuse.items() if c in view.matched}
            benign: Any = {c: _take(view.matched[c], rng) for c in refuse}
        else:
            refuse = {c: _take(a, rng) for c, a in view.refuse.items()}
            benign = _take(view.benign, rng)
        study: DirectionStudy = study_directions(
            refuse, benign, control=control, layer=view.layer, seed=seed + i,
            n_boot=RECHECK_BOOT, n_splits=RECHECK_SPLITS)
        outcomes[claim(study, behaviour, **claim_options).outcome.value] += 1
    same = outcomes[original.outcome.value]
    return {"checks": times, "same": same, "share": same / times if times else float("nan"),
            "fragile": bool(times) and same / times < STABLE_SHARE,
            "outcomes": dict(outcomes), "layers": layers, "subsample": SUBSAMPLE}
