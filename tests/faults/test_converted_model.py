"""A GGUF model's converted copy deleted or damaged between runs (a cache cleanup, a copy
cut short by a full disk): rebuilt once, and the folder named in what the user sees.

A tiny random-init GGUF file (tests/adapter/tiny.py) goes through the same path as an
embedded model: converted once into ``<cache>/models/dense-<sha256>``, loaded from there
on later runs. Every conversion is announced with the folder (``LoadOptions.notify``; the
claims suite prints it), and a copy found damaged is a CacheWarning that names the file.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from refusal_checks.cache.store import CacheWarning
from refusal_checks.models.loading import LoadOptions, load_backend
from refusal_checks.models.registry import resolve
from refusal_checks.prompts.sets import PromptSet
from tests.adapter.tiny import write_tiny_gguf
from tests.faults.runs import Run, environment, finished, make_suite
from tests.plugin.test_plugin import suite_args

PROMPTS = PromptSet("g/refuse", "g", "refuse", ("how do i pick a lock?", "hi"), "test")


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny-chat.gguf")


def _load(gguf: Path, cache: Path) -> tuple[Any, list[str], list[str]]:
    """Load as a run does: the backend, the lines it announced, the warnings it gave."""
    said: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = load_backend(resolve(str(gguf)), LoadOptions(cache_dir=cache,
                                                               notify=said.append))
    return backend, said, [str(w.message) for w in caught if w.category is CacheWarning]


def _acts(backend: Any) -> np.ndarray:
    return backend.residual_stream(PROMPTS, [0, 1], [-1], batch_size=2)


def _truncate(dense: Path) -> str:
    weights = dense / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])
    return f"model.safetensors is {size // 2} bytes, but it was {size} bytes when converted"


def _delete_a_file(dense: Path) -> str:
    (dense / "config.json").unlink()
    return "config.json is missing"


@pytest.mark.parametrize("damage", ["folder-deleted", "weights-truncated", "file-deleted"])
def test_a_converted_model_damaged_between_runs_is_rebuilt_once_and_named(
        tiny_gguf: Path, tmp_path: Path, damage: str) -> None:
    first, said, warned = _load(tiny_gguf, tmp_path)  # the first run converts
    digest = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    dense = tmp_path / "models" / f"dense-{digest[:24]}"
    announced = (f"converting {tiny_gguf.resolve()} into a dense copy in {dense}, once: "
                 "later runs load that copy")
    assert (said, warned) == ([announced], [])
    weights = (dense / "model.safetensors").read_bytes()
    before = _acts(first)

    if damage == "folder-deleted":
        shutil.rmtree(dense)
        found = None
    else:
        found = (_truncate if damage == "weights-truncated" else _delete_a_file)(dense)

    second, said, warned = _load(tiny_gguf, tmp_path)  # the next run

    assert said == [announced]  # rebuilt, and where
    if found is None:  # a missing copy is a first conversion again: nothing is wrong
        assert warned == []
    else:
        assert warned == [f"the converted copy of {tiny_gguf.resolve()} in {dense} is "
                          f"damaged ({found}); converting it again from "
                          f"gguf:{tiny_gguf.resolve()}"]
    assert (dense / "model.safetensors").read_bytes() == weights
    np.testing.assert_array_equal(_acts(second), before)

    inode = (dense / "model.safetensors").stat().st_ino
    _, said, warned = _load(tiny_gguf, tmp_path)  # and the run after: rebuilt only once
    assert (said, warned) == ([], [])
    assert (dense / "model.safetensors").stat().st_ino == inode
    assert sorted(p.name for p in (tmp_path / "models").iterdir()
                  if p.name.startswith(".")) == []  # no half conversion left


def test_a_run_names_the_converted_copy_it_rebuilds(tiny_gguf: Path, tmp_path: Path) -> None:
    """What a user sees: the claims suite prints the announcement on the terminal."""
    make_suite(tmp_path)
    (tmp_path / "claims" / "test_load.py").write_text(
        "def test_loads(backend):\n    assert backend.n_layers == 2\n")
    cache = tmp_path / "cache"
    _load(tiny_gguf, cache)
    digest = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    dense = cache / "models" / f"dense-{digest[:24]}"
    shutil.rmtree(dense)  # deleted between runs

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "claims/test_load.py",
         *suite_args(cache, str(tiny_gguf))], cwd=tmp_path, env=environment(None),
        capture_output=True, text=True, timeout=300)
    result: Run = finished(tmp_path, None, done.returncode, done.stdout, done.stderr, 0)

    assert result.ret == 0, result.text
    assert (f"refusal_checks: converting {tiny_gguf.resolve()} into a dense copy in {dense}, "
            "once: later runs load that copy") in " ".join(result.err.split()), result.err
    assert (dense / "model.safetensors").is_file()
