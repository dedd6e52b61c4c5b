"""What the model benchmarks share: their command line and how they load the model.

Run as scripts (``python benchmarks/steer.py``), so this folder is on ``sys.path`` and they
import this module as ``common``.
"""

from __future__ import annotations

import argparse
from typing import Any

from refusal_checks.cache.keys import default_cache_dir
from refusal_checks.models.loading import LoadOptions, load_backend
from refusal_checks.models.registry import resolve


def arguments(doc: str, *, prompts: int) -> argparse.ArgumentParser:
    """``--model``, ``--prompts``, ``--batch-size`` and ``--repeats``; a benchmark adds its
    own before parsing."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--model", default="qwen-coder-0.5b")
    parser.add_argument("--prompts", type=int, default=prompts)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2,
                        help="interleaved repeats; the minimum time counts")
    return parser


def load(model: str, **options: Any) -> Any:
    """The model as ``--model`` loads it, from the default cache (converted copies)."""
    return load_backend(resolve(model), LoadOptions(cache_dir=default_cache_dir(), **options))
