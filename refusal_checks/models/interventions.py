"""Interventions as plain data: what to do to the residual stream, not how.

Backends turn these into edits (nnsight for real models, arithmetic for synthetic worlds),
so claims and fixtures can build, cache-key and report them without torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from refusal_checks.errors import RefusalChecksError


class InterventionError(RefusalChecksError, ValueError):
    """An intervention that cannot be applied as given."""


def _check_vector(vector: np.ndarray, d_model: int | None, what: str) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    if vector.ndim != 1:
        raise InterventionError(f"{what} must be one vector of shape (d_model,), got shape "
                                f"{vector.shape}.")
    if d_model is not None and vector.shape[0] != d_model:
        raise InterventionError(
            f"{what} has width {vector.shape[0]} but the model's residual stream has width "
            f"{d_model}. Build the direction from this model's activations.")
    if not np.all(np.isfinite(vector)):
        raise InterventionError(f"{what} contains NaN or inf; check the strength and the "
                                "activations it was built from.")
    return vector


@dataclass(frozen=True)
class Steer:
    """Activation addition: ``x <- x + vector`` at the input of block ``layer``.

    Applied at every position, prompt and generated tokens alike.

    Attributes:
        layer: Block whose input (resid_pre) is edited.
        vector: ``(d_model,)`` the raw vector added (``alpha * r_hat``).
        strength: ``alpha`` relative to the mean residual norm at the layer (comparable
            across models, unlike raw alphas: PAPER.md, claim 3).
        alpha: The raw coefficient, ``strength * reference_norm``.
        label: What the direction is (for reports).
    """

    layer: int
    vector: np.ndarray = field(repr=False)
    strength: float = 0.0
    alpha: float = 0.0
    label: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "vector", _check_vector(self.vector, None, "steering vector"))

    def key(self) -> dict[str, object]:
        return {"kind": "steer", "layer": self.layer, "vector": _digest(self.vector)}


@dataclass(frozen=True)
class Ablate:
    """Directional ablation (Arditi et al.): ``x <- x - (x . r_hat) r_hat``.

    Applied to every block input and every attention and MLP write, at all layers and all
    positions, generated ones included. Where the model family adds a post-norm to those
    writes (Gemma-2/3, OLMo-2/3) the output is projected against the gain-weighted
    direction so the write after the norm is orthogonal to ``r``
    (:mod:`refusal_checks.models.architectures`).
    """

    direction: np.ndarray = field(repr=False)
    label: str = ""

    def __post_init__(self) -> None:
        direction = _check_vector(self.direction, None, "ablation direction")
        norm = float(np.linalg.norm(direction))
        if norm == 0.0:
            raise InterventionError("ablation direction is the zero vector.")
        object.__setattr__(self, "direction", direction / norm)

    def key(self) -> dict[str, object]:
        return {"kind": "ablate", "direction": _digest(self.direction)}


Intervention = Steer | Ablate


def _digest(vector: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(vector, np.float64).tobytes()).hexdigest()


def steer(direction: np.ndarray, strength: float, layer: int, reference_norm: float,
          label: str = "") -> Steer:
    """Steer along ``direction`` by ``strength`` times the typical residual norm.

    Args:
        direction: ``(d_model,)``; only its direction matters.
        strength: Relative strength; 0.1 adds a tenth of the mean residual norm.
        layer: Block whose input is edited.
        reference_norm: Mean ``|x|`` of the residual stream at ``layer`` (benign prompts).
    """
    direction = _check_vector(direction, None, "steering direction")
    norm = float(np.linalg.norm(direction))
    if norm == 0.0:
        raise InterventionError("steering direction is the zero vector.")
    if not np.isfinite(strength) or not np.isfinite(reference_norm):
        raise InterventionError(f"steering strength {strength} x reference norm "
                                f"{reference_norm} is not finite.")
    alpha = float(strength) * float(reference_norm)
    return Steer(layer, alpha * direction / norm, float(strength), alpha, label)


def check_for_model(intervention: Intervention | None, d_model: int, n_layers: int) -> None:
    """Width and layer checks with messages that name the value and the fix."""
    if intervention is None:
        return
    if isinstance(intervention, Steer):
        _check_vector(intervention.vector, d_model, "steering vector")
        if not 0 <= intervention.layer < n_layers:
            raise InterventionError(
                f"steering layer {intervention.layer} is out of range: the model has "
                f"{n_layers} blocks (0..{n_layers - 1}).")
    else:
        _check_vector(intervention.direction, d_model, "ablation direction")


def orthogonalise(weight: np.ndarray, direction: np.ndarray, writes_rows: bool) -> np.ndarray:
    """Weight orthogonalisation: remove ``direction`` from what a matrix writes.

    ``W <- W - r_hat r_hat^T W`` for a matrix whose output (columns of ``W`` as
    ``y = W x``) lands in the residual stream; ``writes_rows=True`` is the embedding layout
    (each row is a vector in the residual stream): ``E <- E - E r_hat r_hat^T``.
    """
    w = np.asarray(weight, np.float64)
    # Check first: a zero direction would silently give an all-NaN matrix.
    r = _check_vector(direction, w.shape[-1] if writes_rows else w.shape[0],
                      "orthogonalisation direction")
    norm = float(np.linalg.norm(r))
    if norm == 0.0:
        raise InterventionError("orthogonalisation direction is the zero vector.")
    r = r / norm
    if writes_rows:
        return w - np.outer(w @ r, r)
    return w - np.outer(r, r @ w)
