"""The SAE claims in real pytest runs on a planted synthetic model.

* train-sae caches an SAE of the synthetic model; the claims then find and read it, and
  sae-steering-same-knob sweeps each category's mean decoder vector beside the category
  directions, at shared-knob's strengths, on its probes;
* in a cache without one, every SAE claim is INCONCLUSIVE and names the train-sae command;
* --refusal-sae: a folder at another layer than an explicit --refusal-layer is a usage
  error (exit 4) naming the fix; a folder of another width fails the claims with the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from refusal_checks.plugin import hooks as plugin
from refusal_checks.__main__ import main
from tests.plugin.test_plugin import assert_no_traceback, copy_suite, suite_args, text_of
from tests.unit.test_sae import write_sae

MODEL = "synthetic:distinct,signal=4"
CLAIMS = ("sae-shared-core", "sae-category-tail", "sae-reconstructs-direction",
          "sae-steering-same-knob")
STEERING = "sae-steering-same-knob"


def run(directory: Path, cache: Path, *extra: str) -> tuple[pytest.RunResult, dict | None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(COLUMNS="200", PYTHONIOENCODING="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *suite_args(cache, MODEL), "--refusal-bootstrap",
         "100", "-rs", plugin.JSON_REPORT, "report.json", "--color=no", *extra],
        cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    result = pytest.RunResult(done.returncode, done.stdout.splitlines(),
                              done.stderr.splitlines(), 0.0)
    report = directory / "report.json"
    data = json.loads(report.read_text()) if report.is_file() else None
    if report.is_file():
        report.unlink()
    return result, data


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sae_claims")
    copy_suite(directory, per_category=32, claim_files=("test_sae.py",))
    return directory


def test_a_trained_sae_is_found_in_the_cache_and_read(suite: Path) -> None:
    cache = suite / "cache"
    assert main(["--cache-dir", str(cache), "train-sae", "--model", MODEL, "--max-prompts",
                 "10", "--epochs", "2"]) == 0
    result, report = run(suite, cache)
    assert report is not None, text_of(result)
    assert_no_traceback(result)
    verdicts = {v["claim"]: v for v in report["verdicts"]}
    assert set(verdicts) == set(CLAIMS)
    for verdict in verdicts.values():
        assert verdict["outcome"] in ("supported", "refuted", "inconclusive")
        assert "no SAE" not in verdict["reason"]
        assert str(cache) in verdict["details"]["sae"]["source"]
        assert verdict["details"]["sae"]["training"]["quality"]["l0"] <= 32
    steering = verdicts[STEERING]["details"]
    categories = [d for d in steering["directions"] if not d.startswith("sae:")]
    assert [f"sae:{c}" for c in steering["refusal_latents"]] == [
        d for d in steering["directions"] if d.startswith("sae:")] != []
    assert len(categories) >= 3 and steering["strengths"] == [0.1, 0.2, 0.35, 0.5]
    assert all(len(latents) == 16 for latents in steering["refusal_latents"].values())
    assert "staged probes" in verdicts[STEERING]["protocol"]


def test_without_an_sae_every_sae_claim_is_inconclusive_and_names_the_command(
        suite: Path) -> None:
    result, report = run(suite, suite / "empty-cache")
    assert report is not None, text_of(result)
    for verdict in report["verdicts"]:
        assert verdict["outcome"] == "inconclusive"
        assert f"train-sae --model {MODEL} --layer 3" in verdict["reason"]
    assert result.ret == 0  # INCONCLUSIVE skips


def test_an_sae_of_another_layer_or_width_is_refused_with_the_fix(suite: Path) -> None:
    folder = write_sae(suite / "small-sae")  # d_in 3, blocks.2.hook_resid_pre
    result, _ = run(suite, suite / "cache", plugin.SAE, str(folder), plugin.LAYER, "3")
    assert result.ret == 4
    assert "Pass --refusal-layer 2" in text_of(result)
    result, _ = run(suite, suite / "cache", plugin.SAE, str(folder), plugin.LAYER, "2")
    assert_no_traceback(result)
    assert "d_model 64" in text_of(result) and result.ret == 1
