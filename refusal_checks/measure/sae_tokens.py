"""Residual-stream activations at every token of the prompts, for training an SAE.

The claims read one position per prompt (the decision state); an SAE that is to describe
the stream there is trained on every token of the same chat-templated prompts, so it sees
the template tokens (among them the decision state) and the users' words alike.

What is kept: each prompt's tokens after the chat template is applied, minus the longest
token prefix that every prompt shares (Qwen's default system message and the user-turn
header: ~20 tokens). A causal model computes identical states for an identical prefix, so
those rows would repeat one vector per prompt (and the first of them, the attention
sink, has a norm many times the rest); they are dropped. The decision state (position -2)
is always kept, and its row index is recorded for each prompt.

nnsight backends run each batch only up to the claim layer (``tracer.stop()``), so the
blocks after it cost nothing. Backends without token access (the planted synthetic
worlds) give their last ``SYNTHETIC_POSITIONS`` template positions instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from refusal_checks.models.backend import Backend, ProgressCallback
from refusal_checks.errors import BackendError
from refusal_checks.prompts.sets import PromptCollection, PromptSet

# Template positions per prompt read from a synthetic world (it has no tokens).
SYNTHETIC_POSITIONS = 8
# The claims' decision state (--refusal-position's default).
from refusal_checks.core.defaults import POSITION as CLAIM_POSITION  # noqa: E402


@dataclass(frozen=True)
class TokenActivations:
    """Rows of resid_pre at one layer, ``(tokens, d_model)`` float32.

    Attributes:
        acts: One row per kept token.
        claim_rows: Row of each prompt's decision state (position -2), in prompt order.
        prompts: How many prompts were read.
        prefix_dropped: Tokens of the shared prefix left out of every prompt.
    """

    acts: np.ndarray
    claim_rows: np.ndarray
    prompts: int
    prefix_dropped: int


def training_sets(collection: PromptCollection) -> list[PromptSet]:
    """Every prompt set of a collection: refused and matched per category, then benign."""
    sets: list[PromptSet] = []
    for category in collection.categories.values():
        sets.append(category.refuse)
        if category.matched is not None and len(category.matched):
            sets.append(category.matched)
    sets.append(collection.benign)
    return sets


def _common_prefix(ids: Sequence[Sequence[int]]) -> int:
    first = ids[0]
    n = min(len(i) for i in ids)
    for other in ids[1:]:
        n = next((j for j in range(n) if other[j] != first[j]), n)
    return n


def token_activations(backend: Backend, sets: Sequence[PromptSet], layer: int, *,
                      batch_size: int = 16, progress: ProgressCallback | None = None
                      ) -> TokenActivations:
    """resid_pre at ``layer`` for every kept token of every prompt of ``sets``.

    Raises:
        BackendError: The backend runs remotely (train on a local copy of the model), or
            the prompts leave no token after the shared prefix.
    """
    if getattr(backend, "remote", False):
        raise BackendError("train-sae reads every token of a local model; it does not run on "
                           "NDIF. Train on a local copy of the model.")
    if hasattr(backend, "lm") and hasattr(backend, "encode"):
        return _nnsight_tokens(backend, sets, layer, batch_size, progress)
    return _synthetic_tokens(backend, sets, layer, progress)


def _synthetic_tokens(backend: Backend, sets: Sequence[PromptSet], layer: int,
                      progress: ProgressCallback | None) -> TokenActivations:
    positions = list(range(-SYNTHETIC_POSITIONS, 0))
    blocks, claim_rows, start = [], [], 0
    total = sum(len(s) for s in sets)
    for prompts in sets:
        out = backend.residual_stream(prompts, [layer], positions)[:, 0]  # (n, P, d)
        blocks.append(out.reshape(-1, out.shape[-1]))
        rows = start + np.arange(len(prompts)) * len(positions) + positions.index(CLAIM_POSITION)
        claim_rows.append(rows)
        start += out.shape[0] * out.shape[1]
        if progress is not None:
            progress(start // len(positions), total)
    return TokenActivations(np.concatenate(blocks).astype(np.float32),
                            np.concatenate(claim_rows), total, 0)


def _nnsight_tokens(backend: Any, sets: Sequence[PromptSet], layer: int, batch_size: int,
                    progress: ProgressCallback | None) -> TokenActivations:
    import nnsight
    import torch

    texts = [t for s in sets for t in s.texts]
    ids = backend.encode(texts)
    # Keep the decision state and the token after it in every prompt.
    prefix = min(_common_prefix(ids), min(len(i) for i in ids) + CLAIM_POSITION)
    if prefix < 0:
        raise BackendError("a prompt is shorter than two tokens after the chat template.")
    order = np.argsort([len(i) for i in ids], kind="stable")  # similar lengths, less padding
    kept: list[np.ndarray | None] = [None] * len(texts)
    done = 0
    for start in range(0, len(texts), batch_size):
        chunk = [int(i) for i in order[start:start + batch_size]]
        with torch.inference_mode(), backend.lm.trace(
                backend._batch([texts[i] for i in chunk]), remote=False) as tracer:
            saved = nnsight.save(backend.lm.model.layers[layer].input)
            tracer.stop()
        states = saved.float().cpu().numpy()  # (batch, seq, d), left padded
        seq = states.shape[1]
        for row, i in enumerate(chunk):
            kept[i] = states[row, seq - len(ids[i]) + prefix:]
        done += len(chunk)
        if progress is not None:
            progress(done, len(texts))
    lengths = np.array([len(k) for k in kept])  # type: ignore[arg-type]
    acts = np.concatenate(kept).astype(np.float32)  # type: ignore[arg-type]
    if not np.isfinite(acts).all():
        raise BackendError(f"{backend.name} produced non-finite activations in dtype "
                           f"{backend.dtype}; use float32.")
    claim_rows = np.cumsum(lengths) + CLAIM_POSITION
    return TokenActivations(acts, claim_rows, len(texts), prefix)
