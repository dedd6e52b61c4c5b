"""Cross-ablation: does ablating category i's direction lower refusal in category j?

People who edit refusal want to remove one kind and keep the others; the paper's "ablation
is partial" (PAPER.md A.5) leaves open whether a category's direction reaches only its own
category. :func:`measure_cross_ablation` ablates each category's train-half direction and
scores every category's probe prompts with the cheap refusal score (one forward pass per
prompt), plus random-direction controls; the claim's verdict on the k x k matrix is
:func:`refusal_checks.verdicts.cross_ablation.ablation_is_category_selective`. ``claims/test_category_steering.py`` and the
calibration (:mod:`refusal_checks.calibration.geometry`) call both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from refusal_checks.measure.controls import RANDOM_DIRECTIONS, random_controls

@dataclass(frozen=True)
class CrossAblation:
    """Refused? per probe prompt, per category, at baseline and under each ablation.

    Attributes:
        categories: Category names: rows are ablated directions, columns probe categories.
        refused: One ``(1 + k + r, n_j)`` bool array per category j: the baseline row,
            then one row per ablated category direction (in ``categories`` order), then one
            per random control direction.
        controls: Number of random control rows.
    """

    categories: list[str]
    refused: list[np.ndarray]
    controls: int

    @property
    def k(self) -> int:
        return len(self.categories)

    def rates(self, counts: list[np.ndarray] | None = None) -> np.ndarray:
        """``(..., 1 + k + r, k)`` refusal rates; ``counts``: per category ``(b, n_j)``
        resampling counts (a bootstrap), else the data."""
        if counts is None:
            return np.stack([rows.mean(axis=1) for rows in self.refused], axis=-1)
        return np.stack([c @ rows.T.astype(np.float64) / rows.shape[1]
                         for c, rows in zip(counts, self.refused)], axis=-1)

    def drops(self, rates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(``(..., k, k)`` drop matrix, ``(..., r, k)`` random-control drops):
        ``base_j - rate_j`` under ablation of direction i (row) / control r."""
        rates = self.rates() if rates is None else rates
        base = rates[..., :1, :]
        return base - rates[..., 1:1 + self.k, :], base - rates[..., 1 + self.k:, :]

    def measured(self, min_refusals: int) -> np.ndarray:
        """Categories with at least ``min_refusals`` baseline refusals among their probes."""
        return np.array([rows[0].sum() >= min_refusals for rows in self.refused])


def measure_cross_ablation(score: Callable[..., np.ndarray], probes: Mapping[str, Any],
                           directions: Mapping[str, np.ndarray], seed: int,
                           controls: int = RANDOM_DIRECTIONS) -> CrossAblation:
    """Refused? (cheap score > 0) on every category's probes under every ablation.

    Args:
        score: ``score(prompts, intervention=None) -> (prompt,)`` refusal scores (the
            ``measure`` fixture's, or
            :meth:`refusal_checks.calibration.measurements.BehaviourMeasurements.score`).
        probes: category -> held-out PromptSet.
        directions: category -> ``(d_model,)`` train-half direction; the order of the
            categories present in ``probes`` is the matrix's order.
        seed: Seed of the random control directions
            (:func:`refusal_checks.measure.controls.random_controls`, seeds ``seed ..``).
        controls: How many random directions are ablated as negative controls.
    """
    from refusal_checks.models.interventions import Ablate

    names = [name for name in directions if name in probes]
    if not names:
        raise ValueError("no category has both a direction and probe prompts.")
    randoms = random_controls(np.asarray(directions[names[0]], np.float64), seed, controls) \
        if controls else []
    edits = ([None] + [Ablate(directions[name], name) for name in names]
             + [Ablate(v, f"random {i}") for i, v in enumerate(randoms)])
    refused = [np.stack([np.asarray(score(probes[j], edit)) > 0 for edit in edits])
               for j in names]
    return CrossAblation(names, refused, len(randoms))


def selectivity(drops: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Mean over kept categories i of ``D_ii - mean_{j != i} D_ij`` (kept j only).

    ``drops``: ``(..., k, k)``, rows ablated directions, columns probe categories;
    ``keep``: ``(k,)`` bool, at least two True. Returns ``(...)``.
    """
    idx = np.flatnonzero(keep)
    sub = drops[..., idx[:, None], idx[None, :]]
    m = len(idx)
    diag = np.diagonal(sub, axis1=-2, axis2=-1)
    off = (sub.sum(axis=-1) - diag) / (m - 1)
    return (diag - off).mean(axis=-1)
