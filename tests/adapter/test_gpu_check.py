"""tools/gpu_check.py: its CPU-only dry run end to end, and its comparison maths."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["gpu_check"] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_check", None)


def test_cpu_dry_run_passes_and_prints_throughput(gpu_check: Any, tiny_folder: Path,
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    status = gpu_check.main(["--device", "cpu", "--model", str(tiny_folder), "--prompts", "6",
                             "--new-tokens", "4", "--batch-size", "4",
                             "--cache-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "all checks within tolerance" in out and "NO" not in out
    assert "reference cpu float32, device cpu float32" in out
    assert "greedy generation (new tokens/s)" in out and "forward, all layers saved" in out


def test_no_cuda_is_exit_2_with_the_fix(gpu_check: Any, tiny_folder: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    status = gpu_check.main(["--model", str(tiny_folder), "--prompts", "2",
                             "--cache-dir", str(tmp_path)])
    assert status == 2
    assert "no CUDA device" in capsys.readouterr().err


def _run(gpu_check: Any, acts: np.ndarray, replies: list[str]) -> Any:
    return gpu_check.Run("x", acts, replies, 1.0, 1.0, 10)


def test_compare_passes_float_noise_and_fails_real_differences(gpu_check: Any) -> None:
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((8, 5, 32))  # 4 harmful, 4 benign prompts; 5 layers
    acts[:4] += 3.0 * np.eye(32)[0]  # a planted refusal direction
    reference = _run(gpu_check, acts, ["a", "b", "c", "d"])
    # float32-sized noise passes the float32 tolerances...
    noisy = _run(gpu_check, acts + 1e-6 * rng.standard_normal(acts.shape), ["a", "b", "c", "d"])
    assert all(c.ok for c in gpu_check.compare(reference, noisy, 4, 2, "float32"))
    # ...bfloat16-sized noise fails them but passes bfloat16's, with 2 of 4 replies changed.
    coarse = _run(gpu_check, acts * (1 + 4e-3 * rng.standard_normal(acts.shape)),
                  ["a", "b", "x", "y"])
    assert not all(c.ok for c in gpu_check.compare(reference, coarse, 4, 2, "float32"))
    assert all(c.ok for c in gpu_check.compare(reference, coarse, 4, 2, "bfloat16"))
    # A wrong layer (a device bug) fails even bfloat16's tolerances.
    shifted = _run(gpu_check, np.roll(acts, 1, axis=1), ["a", "b", "c", "d"])
    failed = [c.name for c in gpu_check.compare(reference, shifted, 4, 2, "bfloat16") if not c.ok]
    assert any("activation" in name for name in failed)
