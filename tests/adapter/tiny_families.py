"""Tiny random-init chat models of every family the ablation table knows, built from a config.

Every model has 3 blocks of width 32 (grouped-query attention: 4 heads, 2 KV heads, head
width 8) over the word-level vocabulary of :mod:`.tiny`. Every norm weight is randomised:
with the default weights (all gains equal) a post-norm is a plain rescaling and an ablation
that ignores it would look right; per-channel gains are what real checkpoints have.
"""

from __future__ import annotations

from typing import Any

D_MODEL = 32
N_LAYERS = 3

# model_type -> (config class, model class, extra config keys). Gemma-2's soft-capping and
# sliding window are on (its defaults) with a window shorter than the prompts, so the
# sliding-window path runs too.
_FAMILIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 8}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"head_dim": 8}),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {}),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {"head_dim": 8}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM",
               {"head_dim": 8, "query_pre_attn_scalar": 8, "sliding_window": 4}),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM",
                    {"head_dim": 8, "query_pre_attn_scalar": 8, "sliding_window": 4}),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", {}),
    "olmo3": ("Olmo3Config", "Olmo3ForCausalLM", {"sliding_window": 4}),
}
FAMILIES = tuple(_FAMILIES)


def build_family(model_type: str, vocab_size: int, pad_token_id: int, eos_token_id: int,
                 *, seed: int = 0, tie_word_embeddings: bool = False) -> Any:
    """A tiny random-init CausalLM of ``model_type`` with every norm weight randomised.

    ``initializer_range=0.1`` for the reason given in :func:`.tiny.build_model`: activations
    of order 1, so an edit that misses shows far above float32 noise.
    """
    import torch
    import transformers

    config_name, model_name, extra = _FAMILIES[model_type]
    torch.manual_seed(seed)
    config = getattr(transformers, config_name)(
        hidden_size=D_MODEL, intermediate_size=64, num_hidden_layers=N_LAYERS,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab_size,
        max_position_embeddings=128, initializer_range=0.1, pad_token_id=pad_token_id,
        eos_token_id=eos_token_id, bos_token_id=None, tie_word_embeddings=tie_word_embeddings,
        **extra,
    )
    model = getattr(transformers, model_name)(config).eval()
    randomise_norms(model, seed)
    return model


def randomise_norms(model: Any, seed: int) -> None:
    """Add uniform(-0.7, 0.7) noise to every norm weight (gains from ~0.3 to ~1.7 whether
    the family's gain is ``w`` (default 1) or ``1 + w`` (default 0))."""
    import torch

    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, module in model.named_modules():
            weight = getattr(module, "weight", None)
            if "norm" in type(module).__name__.lower() and weight is not None:
                weight += (torch.rand(weight.shape, generator=generator) * 1.4 - 0.7)
