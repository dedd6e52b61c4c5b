"""Refusal rates as values: one rate with its interval, and rates over a steering grid.

:class:`Rate` and :class:`KnobSweep` are plain data with their statistics; the verdicts
(:mod:`refusal_checks.verdicts.single_direction`, :mod:`refusal_checks.verdicts.category_steering`,
:mod:`refusal_checks.verdicts.sae_steering`) read them; :mod:`refusal_checks.verdicts.staged_claims` builds
a sweep from what the fixtures measured (:mod:`refusal_checks.measure.effects`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from refusal_checks.stats import intervals as stats


@dataclass(frozen=True)
class Rate:
    """A refusal rate with its Wilson interval."""

    refused: int
    n: int

    @property
    def value(self) -> float:
        return self.refused / self.n if self.n else float("nan")

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        return stats.wilson_interval(self.refused, self.n, level)

    @classmethod
    def of(cls, refused: np.ndarray) -> "Rate":
        refused = np.asarray(refused, bool)
        return cls(int(refused.sum()), int(refused.size))


@dataclass(frozen=True)
class KnobSweep:
    """Refusal on harmful and benign probes while steering along each direction.

    Attributes:
        directions: Names of the steering directions (categories).
        strengths: Relative strengths (multiples of the mean residual norm at the layer).
        alphas: ``(direction, strength)`` raw coefficients actually added.
        harmful: ``(direction, strength, prompt)`` refused? on harmful probes.
        benign: ``(direction, strength, prompt)`` refused? on benign probes.
    """

    directions: list[str]
    strengths: list[float]
    alphas: np.ndarray
    harmful: np.ndarray
    benign: np.ndarray

    def rates(self, h_index: np.ndarray | None = None,
              b_index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Refusal rate RR and over-refusal rate ORR, each ``(direction, strength)``."""
        harmful = self.harmful if h_index is None else self.harmful[:, :, h_index]
        benign = self.benign if b_index is None else self.benign[:, :, b_index]
        return harmful.mean(axis=2), benign.mean(axis=2)

    def path_deviation(self, h_index: np.ndarray | None = None,
                       b_index: np.ndarray | None = None, *,
                       tested: Sequence[int] | None = None,
                       reference: Sequence[int] | None = None) -> float:
        """Largest mean gap between one direction's trade-off path and the others'.

        "The same trade-off" means the same RR at the same ORR, whatever the speed along
        the path (PAPER.md A.3: non-safety directions move more slowly but trace the same
        path). For each direction, the other directions' (ORR, RR) points form a monotone
        reference path (sorted by ORR, running maximum of RR); the direction's own points
        are compared with it by linear interpolation, and the gaps are averaged.

        ``tested`` / ``reference``: row indices of the directions compared and of those
        whose points form the path (default: every direction against all the others;
        ``sae-steering-same-knob`` tests the SAE directions against the category ones).
        """
        rr, orr = self.rates(h_index, b_index)
        rows = range(len(self.directions))
        worst = 0.0
        for c in (rows if tested is None else tested):
            others = [j for j in (rows if reference is None else reference) if j != c]
            x = orr[others].ravel()
            y = rr[others].ravel()
            order = np.argsort(x, kind="stable")
            x, y = x[order], np.maximum.accumulate(y[order])
            worst = max(worst, float(np.mean(np.abs(rr[c] - np.interp(orr[c], x, y)))))
        return worst

    def bootstrap_deviation(self, rng: np.random.Generator, n_boot: int,
                            level: float = 0.95, **rows: Sequence[int] | None
                            ) -> tuple[float, tuple[float, float]]:
        """Path deviation with a percentile interval over resampled probe prompts.

        The same resampled prompts serve every direction and strength (paired), so a
        difference between directions is not confused with a difference between prompts.
        ``rows``: ``tested`` / ``reference`` of :meth:`path_deviation`.
        """
        n_h, n_b = self.harmful.shape[2], self.benign.shape[2]
        replicates = np.array([
            self.path_deviation(rng.integers(0, n_h, n_h), rng.integers(0, n_b, n_b), **rows)
            for _ in range(n_boot)])
        return self.path_deviation(**rows), stats.percentile_interval(replicates, level)

    def joined(self, other: KnobSweep) -> KnobSweep:
        """Both sweeps' directions in one (same strengths and probe prompts)."""
        if list(other.strengths) != list(self.strengths):
            raise ValueError(f"sweeps at different strengths: {self.strengths} and "
                             f"{other.strengths}")
        return KnobSweep(self.directions + other.directions, list(self.strengths),
                         np.concatenate([self.alphas, other.alphas]),
                         np.concatenate([self.harmful, other.harmful]),
                         np.concatenate([self.benign, other.benign]))

    def speeds(self) -> dict[str, float]:
        """ORR gained per unit of relative strength (least squares through the grid)."""
        _, orr = self.rates()
        s = np.asarray(self.strengths, np.float64)
        s = s - s.mean()
        denominator = float(s @ s) or float("nan")
        return {d: float((orr[i] - orr[i].mean()) @ s / denominator)
                for i, d in enumerate(self.directions)}
