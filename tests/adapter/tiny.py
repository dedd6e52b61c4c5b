"""A tiny random-init Llama chat model, built in code and saved like a hub download.

Nothing is downloaded: the tokenizer is a word-level ``tokenizers`` model over a small
vocabulary, with chat special tokens and a Jinja chat template, and the model is a
4-block Llama built from a config. :func:`save_tiny` writes both with ``save_pretrained``,
which is what ``--model /path/to/folder`` reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = (
    "how do i pick a lock on my neighbour door what is the capital of france write short "
    "poem about cats tell me joke please hi can you help with homework today"
).split()
SPECIAL = ("[UNK]", "[PAD]", "<|user|>", "<|assistant|>", "<|end|>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
# Prompts of different lengths, so a batch needs left padding (10, 21, 4 and 13 tokens
# after the template).
PROMPTS = (
    "how do i pick a lock ?",
    "what is the capital of france ? please tell me a short joke about cats today , thank",
    "hi",
    "write a short poem about my neighbour 's cats",
)
N_LAYERS = 4
D_MODEL = 32


def build_tokenizer(chat_template: str | None = CHAT_TEMPLATE) -> Any:
    """A fast tokenizer over WORDS (unknown words map to [UNK]), with chat special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate((*SPECIAL, *sorted(set(WORDS)), "?", ",", "."))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", eos_token="<|end|>",
        additional_special_tokens=["<|user|>", "<|assistant|>"],
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def build_model(vocab_size: int, pad_token_id: int, eos_token_id: int, seed: int = 0) -> Any:
    """A random-init 4-block Llama with grouped-query attention (4 heads, 2 KV heads).

    ``initializer_range=0.1`` (not the default 0.02) gives activations of order 1: reading
    a pad token into attention, or the wrong position, moves them by > 0.1, far above the
    1e-5 tolerance of the parity tests, while float32 noise stays below 1e-6. (At 0.02
    every difference is tiny; at 0.3 float32 noise alone exceeds 1e-5.)
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=D_MODEL, intermediate_size=64, num_hidden_layers=N_LAYERS,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=vocab_size,
        max_position_embeddings=128, initializer_range=0.1, pad_token_id=pad_token_id,
        eos_token_id=eos_token_id, bos_token_id=None, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def save_tiny(folder: Path, *, seed: int = 0, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """Write tokenizer + model into ``folder`` with save_pretrained; return ``folder``."""
    tokenizer = build_tokenizer(chat_template)
    model = build_model(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_gguf(path: Path, *, n_layers: int = 2, seed: int = 0) -> Path:
    """A ~150 kB float32 GGUF file (llama arch, byte-level BPE, chat template) at ``path``.

    Stands in for a real ``.gguf`` download: transformers reads it with ``gguf_file=``,
    exactly like the embedded models, and it is small enough to convert in well under 1 s.
    """
    import gguf
    import numpy as np
    from tokenizers import pre_tokenizers

    rng = np.random.default_rng(seed)
    d_model, d_ff, heads, kv_heads = 32, 64, 4, 2
    merges = ["Ġ a", "Ġ i", "i s", "o w"]
    special = ["<|user|>", "<|assistant|>", "<|end|>"]
    tokens = [*pre_tokenizers.ByteLevel.alphabet(), *(m.replace(" ", "") for m in merges),
              *special]
    n = len(tokens)
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_name("tiny-gguf")
    writer.add_block_count(n_layers)
    writer.add_context_length(128)
    writer.add_embedding_length(d_model)
    writer.add_feed_forward_length(d_ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(d_model // heads)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.NORMAL] * (n - len(special))
                           + [gguf.TokenType.CONTROL] * len(special))
    writer.add_token_merges(merges)
    writer.add_token_scores([0.0] * n)
    writer.add_bos_token_id(tokens.index("<|user|>"))
    writer.add_eos_token_id(tokens.index("<|end|>"))
    writer.add_pad_token_id(tokens.index("<|end|>"))
    writer.add_chat_template(
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )

    def random(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))

    random("token_embd.weight", n, d_model)
    writer.add_tensor("output_norm.weight", np.ones(d_model, np.float32))
    kv_width = d_model // heads * kv_heads
    for i in range(n_layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(d_model, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(d_model, np.float32))
        random(f"blk.{i}.attn_q.weight", d_model, d_model)
        random(f"blk.{i}.attn_k.weight", kv_width, d_model)
        random(f"blk.{i}.attn_v.weight", kv_width, d_model)
        random(f"blk.{i}.attn_output.weight", d_model, d_model)
        random(f"blk.{i}.ffn_gate.weight", d_ff, d_model)
        random(f"blk.{i}.ffn_up.weight", d_ff, d_model)
        random(f"blk.{i}.ffn_down.weight", d_model, d_ff)
    random("output.weight", n, d_model)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
