"""Arditi et al.'s direction selection over layers and post-instruction positions.

Candidates are un-normalised differences in means of resid_pre at every (layer, position).
For each: bypass = mean refusal score on harmful prompts with the candidate ablated
everywhere; induce = mean refusal score on harmless prompts with the raw candidate added at
its layer; KL = mean next-token KL on harmless prompts under ablation. Candidates with
induce < 0, KL > 0.1 or a layer in the last 20% are dropped; the lowest bypass wins
(PAPER.md, Paper B, "Selection").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from refusal_checks.backend import Backend
from refusal_checks.cache import ArrayCache
from refusal_checks.effects import kl, scores
from refusal_checks.errors import RefusalChecksError
from refusal_checks.interventions import Ablate, Steer
from refusal_checks.prompts import PromptSet

MAX_KL = 0.1  # Arditi et al.'s filter
LAST_LAYERS_EXCLUDED = 0.2  # "layer in the last 20%" is dropped


@dataclass(frozen=True)
class Candidate:
    layer: int
    position: int
    bypass: float
    induce: float
    kl: float
    kept: bool
    why: str = ""


@dataclass(frozen=True)
class Selection:
    """The chosen direction and every candidate's scores (for reports)."""

    layer: int
    position: int
    direction: np.ndarray = field(repr=False)
    candidates: list[Candidate] = field(default_factory=list)


def select_direction(
    backend: Backend,
    harmful: PromptSet,
    harmless: PromptSet,
    *,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] = (-1, -2, -3),
    cache: ArrayCache | None = None,
    token_ids: Sequence[int] | None = None,
    batch_size: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> Selection:
    """Pick the refusal direction the way Arditi et al. do.

    Args:
        backend: The model.
        harmful: Prompts the model should refuse (used to build and to score bypass).
        harmless: Prompts it should answer (build, induce, KL).
        layers: Candidate layers; default every layer outside the last 20%.
        positions: Candidate post-instruction positions (negative offsets).
        cache: Where scores and KL values are cached.
        token_ids: Refusal tokens; default ``backend.refusal_token_ids()``.

    Raises:
        RefusalChecksError: No candidate passes the filters.
    """
    limit = int(np.ceil((1 - LAST_LAYERS_EXCLUDED) * backend.n_layers))
    layers = list(range(limit)) if layers is None else list(layers)
    token_ids = list(token_ids or backend.refusal_token_ids())
    acts_h = backend.residual_stream(harmful, layers, positions, batch_size=batch_size)
    acts_b = backend.residual_stream(harmless, layers, positions, batch_size=batch_size)
    candidates: list[Candidate] = []
    best: tuple[float, int, int, np.ndarray] | None = None
    total = len(layers) * len(positions)
    for i, layer in enumerate(layers):
        for j, position in enumerate(positions):
            direction = acts_h[:, i, j].mean(axis=0) - acts_b[:, i, j].mean(axis=0)
            if not np.linalg.norm(direction) > 0:
                continue
            ablate = Ablate(direction, f"candidate L{layer} P{position}")
            bypass = float(scores(backend, harmful, token_ids, ablate, cache, batch_size).mean())
            induce = float(scores(backend, harmless, token_ids,
                                  Steer(layer, direction, alpha=1.0), cache, batch_size).mean())
            divergence = float(kl(backend, harmless, ablate, cache, batch_size).mean())
            why = "; ".join(text for bad, text in [
                (induce < 0, f"induce {induce:.2f} < 0"),
                (divergence > MAX_KL, f"KL {divergence:.3f} > {MAX_KL}"),
                (layer >= limit, f"layer {layer} in the last 20%")] if bad)
            candidates.append(Candidate(layer, position, bypass, induce, divergence,
                                        not why, why))
            if not why and (best is None or bypass < best[0]):
                best = (bypass, layer, position, direction)
            if progress is not None:
                progress(len(candidates), total)
    if best is None:
        raise RefusalChecksError(
            f"no candidate direction of {backend.name} passed Arditi et al.'s filters "
            f"(induce >= 0, KL <= {MAX_KL}, not in the last 20% of layers) among "
            f"{len(candidates)} candidates; use the paper's fixed layer instead.")
    return Selection(best[1], best[2], best[3], candidates)
