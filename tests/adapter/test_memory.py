"""The memory check: a size estimate from config or safetensors index, before any loading."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.models import memory
from refusal_checks.errors import BackendError

GIB = memory.GIB
LLAMA_31_8B = {  # meta-llama/Llama-3.1-8B-Instruct's config.json, the sizes only
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}


def test_llama_31_8b_has_its_published_parameter_count() -> None:
    assert memory.parameter_count(LLAMA_31_8B) == 8_030_261_248


@settings(max_examples=12, deadline=None)
@given(d_heads=st.integers(1, 4), heads=st.sampled_from([2, 4]), kv=st.sampled_from([1, 2]),
       layers=st.integers(1, 3), ff=st.integers(8, 40), vocab=st.integers(10, 60),
       tied=st.booleans())
def test_parameter_count_equals_a_built_llama(d_heads: int, heads: int, kv: int, layers: int,
                                              ff: int, vocab: int, tied: bool) -> None:
    """The formula against transformers' own Llama, built on the meta device (no memory)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = {"hidden_size": 8 * d_heads * heads, "intermediate_size": ff,
              "num_hidden_layers": layers, "num_attention_heads": heads,
              "num_key_value_heads": kv, "vocab_size": vocab, "tie_word_embeddings": tied}
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**config))
    assert memory.parameter_count(config) == sum(p.numel() for p in model.parameters())


def test_estimate_prefers_the_safetensors_index_and_rescales_the_dtype(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 16 * GIB}, "weight_map": {}}))
    as_stored = memory.estimate(tmp_path, LLAMA_31_8B, "bfloat16")
    assert as_stored.weight_bytes == 16 * GIB and "index" in as_stored.how
    assert memory.estimate(tmp_path, LLAMA_31_8B, "float32").weight_bytes == 32 * GIB


def test_estimate_falls_back_to_file_sizes_then_config(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 4000)
    assert memory.estimate(tmp_path, {"torch_dtype": "float32"}, "bfloat16").weight_bytes == 2000
    by_config = memory.estimate(None, LLAMA_31_8B, "float32")
    assert by_config.weight_bytes == 4 * 8_030_261_248 and "config" in by_config.how


def test_a_model_that_does_not_fit_is_refused_with_the_numbers_and_fixes() -> None:
    with pytest.raises(BackendError) as raised:
        memory.check_fits("llama", None, LLAMA_31_8B, "float32", "cpu",
                          free=(24 * GIB, "available RAM"))
    text = str(raised.value)
    assert "29.9 GiB in float32" in text and "24.0 GiB of available RAM" in text
    for fix in ("--refusal-dtype bfloat16", "--refusal-remote", "--refusal-device cuda",
                memory.SKIP_ENV):
        assert fix in text
    # In bfloat16 it fits in the same memory (15 GiB x 1.2 + 2 GiB = 20 GiB < 24 GiB).
    fits = memory.check_fits("llama", None, LLAMA_31_8B, "bfloat16", "cpu",
                             free=(24 * GIB, "available RAM"))
    assert fits is not None and fits.need_bytes < 24 * GIB


def test_on_a_gpu_the_message_names_gpu_memory() -> None:
    with pytest.raises(BackendError, match="of free GPU memory on cuda:0") as raised:
        memory.check_fits("llama", None, LLAMA_31_8B, "bfloat16", "cuda:0",
                          free=(8 * GIB, "free GPU memory on cuda:0"))
    assert "--refusal-device cuda" not in str(raised.value)


def test_skip_variable_and_unknown_configs_never_block(monkeypatch: pytest.MonkeyPatch) -> None:
    assert memory.check_fits("x", None, {"model_type": "odd"}, "float32", "cpu",
                             free=(1, "RAM")) is None
    monkeypatch.setenv(memory.SKIP_ENV, "1")
    assert memory.check_fits("llama", None, LLAMA_31_8B, "float32", "cpu", free=(1, "RAM")) is None


def test_free_memory_without_psutil_reads_proc_meminfo(monkeypatch: pytest.MonkeyPatch) -> None:
    with_psutil = memory.free_bytes("cpu")
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now fails
    without = memory.free_bytes("cpu")
    assert without[1].endswith("(/proc/meminfo)") and with_psutil[0] > 0
    # The same quantity, read twice a moment apart: within 1 GiB on any quiet machine.
    assert abs(without[0] - with_psutil[0]) < GIB


def test_loading_a_folder_that_does_not_fit_stops_before_reading_weights(
        tiny_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    from refusal_checks.models.loading import LoadOptions, load_backend
    from refusal_checks.models.registry import resolve

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the weights were read before the memory check")

    monkeypatch.setattr(memory, "free_bytes", lambda device: (1000, "available RAM"))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", never)
    with pytest.raises(BackendError, match="will not fit.*0.0 GiB of available RAM"):
        load_backend(resolve(str(tiny_folder)), LoadOptions(cache_dir=tiny_folder.parent))
