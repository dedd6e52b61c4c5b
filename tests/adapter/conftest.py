"""Fixtures for the adapter tests: the tiny model of :mod:`.tiny`, saved once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .tiny import save_tiny, write_tiny_gguf


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder as save_pretrained writes it (config.json, safetensors, tokenizer)."""
    return save_tiny(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("refusal-cache")


@pytest.fixture(scope="session")
def tiny_backend(tiny_folder: Path, tiny_cache_dir: Path) -> Any:
    """The tiny folder loaded the way ``--model /path/to/folder`` loads it."""
    from refusal_checks.models.loading import LoadOptions, load_backend
    from refusal_checks.models.registry import resolve

    return load_backend(resolve(str(tiny_folder)), LoadOptions(cache_dir=tiny_cache_dir))


@pytest.fixture(scope="session")
def plain_model(tiny_folder: Path) -> tuple[Any, Any]:
    """The same folder loaded by plain transformers, untouched by nnsight: (model, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_folder), dtype=torch.float32)
    return model.eval(), AutoTokenizer.from_pretrained(str(tiny_folder))


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small float32 .gguf file, as ``--model /path/to/model.gguf`` would name it."""
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny-chat.gguf")


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread for a module's tests: the tiny model's matrices are far too small
    to share out, and on a busy 2-core machine a second thread makes each matmul wait ~10 ms
    for it (measured: 400 x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
