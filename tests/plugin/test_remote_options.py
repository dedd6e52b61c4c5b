"""--refusal-remote at start-up: usage errors (exit 4) before any model loads, no network.

pytest runs in a subprocess in an empty folder with --collect-only, so only the plugin's
configure-time checks run; nnsight's own key file is pointed at a file that does not exist.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from refusal_checks.plugin import hooks as plugin


def run(tmp_path: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "NDIF_"))}
    env["NNSIGHT_CONFIG"] = str(tmp_path / "no-such-nnsight-config.yaml")
    if key is not None:
        env["NDIF_API_KEY"] = key
    return subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", "-p",
                           "no:cacheprovider", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_remote_needs_a_hub_model(tmp_path: Path) -> None:
    done = run(tmp_path, plugin.REMOTE, "--model", "synthetic:distinct", key="k")
    assert done.returncode == 4, done.stderr
    assert "hub id" in done.stderr and "--refusal-remote-local" in done.stderr


def test_remote_without_a_key_says_how_to_get_one(tmp_path: Path) -> None:
    done = run(tmp_path, plugin.REMOTE, "--model", "llama")
    assert done.returncode == 4, done.stderr
    assert "nnsight login" in done.stderr and "NDIF_API_KEY" in done.stderr


def test_remote_with_a_key_and_a_hub_model_starts(tmp_path: Path) -> None:
    done = run(tmp_path, plugin.REMOTE, "--model", "llama", key="k")
    assert done.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, done.stdout + done.stderr


def test_remote_local_accepts_any_model(tmp_path: Path) -> None:
    done = run(tmp_path, plugin.REMOTE_LOCAL, "--model", "synthetic:distinct")
    assert done.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, done.stdout + done.stderr
