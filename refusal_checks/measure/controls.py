"""The edits Arditi et al.'s claims make besides ablation: the raw direction added, and the
random directions of its norm that stand as negative controls.

Plain data (:class:`~refusal_checks.models.interventions.Steer` and numpy vectors); the
claims' fixtures, the cross-ablation, the staged looks and the calibration build the same
edits from here.
"""

from __future__ import annotations

import numpy as np

from refusal_checks.models.interventions import Steer

# How many random directions stand beside a refusal direction as its negative control (the
# reason and the margin they are held to: refusal_checks.verdicts.single_direction).
RANDOM_DIRECTIONS = 3


def raw_addition(layer: int, vector: np.ndarray, reference_norm: float, label: str) -> Steer:
    """Arditi adds the raw diff-in-means vector; its size relative to the residual norm is
    recorded so strengths compare across models."""
    norm = float(np.linalg.norm(vector))
    return Steer(layer, vector, strength=norm / reference_norm, alpha=1.0, label=label)


def random_like(vector: np.ndarray, seed: int) -> np.ndarray:
    """A random direction with the norm of ``vector`` (the negative control), seeded."""
    rng = np.random.default_rng(seed)
    random = rng.standard_normal(np.shape(vector))
    return random / np.linalg.norm(random) * np.linalg.norm(vector)


def random_controls(vector: np.ndarray, seed: int,
                    count: int = RANDOM_DIRECTIONS) -> list[np.ndarray]:
    """``count`` random directions with the norm of ``vector``: seeds ``seed .. seed+count-1``."""
    return [random_like(vector, seed + i) for i in range(count)]
