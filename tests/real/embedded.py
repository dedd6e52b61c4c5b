"""What the real-model tests share: loading an embedded model, one torch thread."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from refusal_checks.cache.keys import default_cache_dir
from refusal_checks.models.loading import LoadOptions, load_backend
from refusal_checks.models.registry import EMBEDDED, resolve


def load_embedded(alias: str) -> Any:
    """The embedded model ``alias`` as ``--model alias`` loads it; the test is skipped, with
    the install command, where its package is missing."""
    missing = [p for p in EMBEDDED[alias].packages if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"embedded model {alias} is not installed ({', '.join(missing)} missing): "
                    f"{EMBEDDED[alias].install}")
    return load_backend(resolve(alias), LoadOptions(cache_dir=default_cache_dir()))


def one_torch_thread() -> Iterator[None]:
    """One intra-op thread while a module runs: on this busy 2-core machine a second thread
    makes a small model's generation 10-30 x slower (waiting for a core), not faster:
    measured 1.7 s vs 24-66 s on SmolLM2."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
