"""Where each model family's blocks write into the residual stream: one table for ablation.

Directional ablation (Arditi et al.) keeps the residual stream orthogonal to a unit
direction ``r``: the embeddings and every write a block adds must carry nothing along ``r``.
Hook ablation (:meth:`NnsightBackend._edit`) and weight orthogonalisation
(:meth:`NnsightBackend.orthogonalised`) both follow :data:`LAYOUTS`, so they are the same
edit on every family listed, and a family that is not listed is refused, never guessed.

Pre-norm blocks (Llama, Qwen2/3, Mistral, Phi-3, Gemma-1): the attention output projection
``o_proj`` and the MLP ``down_proj`` write straight into the stream, so their outputs are
projected: ``x <- x - (x . r) r``, or, in the weights, ``W <- W - r r^T W``.

Post-norm blocks (Gemma-2, Gemma-3, OLMo-2, OLMo-3): the block adds
``y = g * x / rms(x)`` where ``x`` is the ``o_proj`` / ``down_proj`` output,
``rms(x) = sqrt(mean(x^2) + eps)`` and ``g`` is the norm's per-channel gain (``1 + w`` for
Gemma, ``w`` for OLMo). Then ``y . r = (x . (g * r)) / rms(x)``, so the write is orthogonal
to ``r`` exactly when ``x`` is orthogonal to ``u = g * r`` (with ``eps``, at any scale).
Both edits therefore project ``x`` (not ``y``) against ``u_hat = u / |u|``: a linear edit
before the norm, which weights can carry, and ``y`` then has nothing along ``r``.

The embeddings are projected against ``r`` itself in every family: Gemma multiplies them by
``sqrt(d_model)``, a scalar, which keeps a row orthogonal to ``r`` orthogonal.

Projecting ``y`` itself after the norm (``y <- y - (y . r) r``) also empties ``r``, but no
weight edit equals it: the norm divides by ``rms`` of its own input, so a linear map
before it that removed ``u`` would also change that divisor (except when all gains are
equal). The two differ off ``r`` only (here the norm re-scales the projected write to its
usual size, as the model itself would, and the part removed is tilted towards large gains),
but not negligibly: on the tiny random Gemma-2 of the tests they move next-token log-probs
apart by 0.4-1.5. This module's rule is the one both edits can share.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Any

from refusal_checks.errors import BackendError


@dataclass(frozen=True)
class Write:
    """One place where a block adds to the residual stream.

    Attributes:
        source: Block child whose output is projected (``self_attn``, ``mlp``): one
            attribute name, read with ``getattr`` inside nnsight's trace.
        linear: Its last linear layer, ``(d_model, d_in)``: the weights orthogonalisation edits.
        post_norm: The RMSNorm between ``source`` and the residual add, if any.
        tuple_output: ``source`` returns ``(tensor, ...)`` (attention does in transformers 5).
    """

    source: str
    linear: str
    post_norm: str | None = None
    tuple_output: bool = False


@dataclass(frozen=True)
class Layout:
    """How one family's blocks write into the residual stream.

    Attributes:
        name: The family, for messages.
        writes: Every write of a block, in forward order (modules are requested in that
            order, as nnsight requires).
        gain_offset: A post-norm's gain is ``gain_offset + weight`` (Gemma stores ``w`` and
            multiplies by ``1 + w``; OLMo multiplies by ``w``).
    """

    name: str
    writes: tuple[Write, ...]
    gain_offset: float = 0.0


_ATTENTION = Write("self_attn", "self_attn.o_proj", tuple_output=True)
_MLP = Write("mlp", "mlp.down_proj")
_PRE_NORM = (_ATTENTION, _MLP)
_POST_NORM = (
    Write("self_attn", "self_attn.o_proj", "post_attention_layernorm", tuple_output=True),
    Write("mlp", "mlp.down_proj", "post_feedforward_layernorm"),
)

# config.model_type -> layout. Checked against transformers 5's modeling_<type>.py; every
# entry has a parity test on a tiny random model (tests/adapter/test_architectures.py).
# Llama's ``post_attention_layernorm`` is the norm BEFORE its MLP, OLMo-2's the norm after
# its attention: the same name means different places, so the table is per family.
LAYOUTS: dict[str, Layout] = {
    "llama": Layout("Llama (and SmolLM)", _PRE_NORM),
    "qwen2": Layout("Qwen2", _PRE_NORM),
    "qwen3": Layout("Qwen3", _PRE_NORM),
    "mistral": Layout("Mistral", _PRE_NORM),
    "phi3": Layout("Phi-3", _PRE_NORM),
    "gemma": Layout("Gemma-1", _PRE_NORM),
    "gemma2": Layout("Gemma-2", _POST_NORM, gain_offset=1.0),
    "gemma3_text": Layout("Gemma-3 (text-only)", _POST_NORM, gain_offset=1.0),
    "olmo2": Layout("OLMo-2", _POST_NORM),
    "olmo3": Layout("OLMo-3", _POST_NORM),
}

# Families we know and do not support, with the reason (the generic message covers the rest).
_WHY_NOT: dict[str, str] = {
    "gemma3": "multimodal Gemma-3 keeps its text blocks under model.language_model, which "
              "the backend does not read; a text-only Gemma-3 (model_type gemma3_text, e.g. "
              "google/gemma-3-1b-it) is supported",
    "gpt2": "GPT-2 blocks live under transformer.h and also add learned position "
            "embeddings to the stream",
    "gpt_neox": "GPT-NeoX blocks live under gpt_neox.layers",
    "gptj": "GPT-J blocks live under transformer.h",
    "cohere": "Cohere blocks use a LayerNorm with mean subtraction",
    "cohere2": "Cohere-2 blocks use a LayerNorm with mean subtraction",
}


def supported() -> list[str]:
    """The model types ablation and orthogonalisation support."""
    return sorted(LAYOUTS)


def layout_for(model: Any) -> Layout:
    """The write layout of a loaded transformers model, by ``config.model_type``.

    Raises:
        BackendError: The family is not in :data:`LAYOUTS`; the message names it and the fix.
    """
    model_type = str(getattr(model.config, "model_type", "unknown"))
    layout = LAYOUTS.get(model_type)
    if layout is None:
        why = _WHY_NOT.get(model_type, "refusal_checks does not know where its blocks write "
                                       "into the residual stream")
        raise BackendError(
            f"directional ablation and weight orthogonalisation are not available for "
            f"model_type {model_type!r}: {why}. Editing it like another family could leave "
            f"the refusal direction in the stream without any error. Supported model types: "
            f"{', '.join(supported())}. To add this family, check its modeling_{model_type}.py "
            "in transformers and add an entry to LAYOUTS in refusal_checks/models/architectures.py "
            "with a parity test in tests/adapter/test_architectures.py."
        )
    return layout


def submodule(root: Any, path: str) -> Any:
    """``root.a.b`` for ``path`` ``"a.b"`` (works on torch modules and nnsight envoys)."""
    return reduce(getattr, path.split("."), root)


def _gain(norm: Any, offset: float, where: str) -> Any:
    """The per-channel gain of an RMSNorm, checked against what the module computes.

    A probe of rms ~1e3 makes ``eps`` (~1e-6) negligible, so the norm's output must be
    ``probe / rms(probe) * gain``; a transformers release that changed the norm's formula
    is refused rather than edited wrongly.
    """
    import torch

    weight = norm.weight.detach()
    gain = offset + weight.float()
    probe = (torch.arange(weight.shape[0], dtype=torch.float32) % 7 - 3.0) * 1e3 + 1.0
    expected = probe / probe.pow(2).mean().sqrt() * gain
    with torch.no_grad():
        got = norm(probe.to(weight.dtype).to(weight.device)).float().cpu()
    scale = float(expected.abs().max()) or 1.0
    tol = 1e-4 if weight.dtype == torch.float32 else 2e-2  # bf16/fp16 keep ~3 digits
    if float((got - expected.cpu()).abs().max()) > tol * scale:
        raise BackendError(
            f"{where} does not compute x / rms(x) * ({offset:g} + weight), which the ablation "
            "table in refusal_checks/models/architectures.py assumes; this transformers version "
            "changed the model's code. Update the table (and run its parity tests).")
    return gain


def write_directions(model: Any, direction: Any) -> list[list[Any]]:
    """Per block, per write (in :attr:`Layout.writes` order), the unit vector to project out
    of that write's ``source`` output so that what reaches the stream has nothing along
    ``direction`` (float32, on the CPU; a zero vector where the write can never carry it).

    Args:
        model: A transformers CausalLM of a family in :data:`LAYOUTS`.
        direction: ``(d_model,)`` unit vector (torch, float32).
    """
    import torch

    layout = layout_for(model)
    r = direction.float().cpu()
    out = []
    for i, block in enumerate(model.model.layers):
        row = []
        for write in layout.writes:
            if write.post_norm is None:
                row.append(r)
                continue
            where = f"{layout.name} block {i} {write.post_norm}"
            u = _gain(submodule(block, write.post_norm), layout.gain_offset, where) * r
            norm = u.norm()
            # A zero u: every channel of r has gain 0, the norm can never write along r.
            row.append(u / norm if norm > 0 else torch.zeros_like(r))
        out.append(row)
    return out


def orthogonalise_writes(model: Any, direction: Any) -> None:
    """Edit ``model`` in place so no weight writes ``direction`` into the residual stream.

    ``E <- E - E r r^T`` on the embeddings, and ``W <- W - u u^T W`` (bias likewise) on each
    write's last linear layer, ``u`` from :func:`write_directions`. The caller unties the
    read-out first if it shares the embeddings.
    """
    import torch

    layout = layout_for(model)
    units = write_directions(model, direction)
    with torch.no_grad():
        embed = model.model.embed_tokens.weight
        r = direction.to(embed.dtype).to(embed.device)
        embed -= torch.outer(embed @ r, r)
        for block, row in zip(model.model.layers, units):
            for write, unit in zip(layout.writes, row):
                linear = submodule(block, write.linear)
                w = linear.weight  # (d_model, d_in): its columns land in the stream
                u = unit.to(w.dtype).to(w.device)
                w -= torch.outer(u, u @ w)
                if linear.bias is not None:
                    linear.bias -= (linear.bias @ u) * u
