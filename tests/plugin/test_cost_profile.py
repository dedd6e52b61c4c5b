"""The cost profile of a run: where the time went, and that a warm run computes nothing.

One planted world, the geometry, shared-core and behavioural claims, run twice on one
cache folder: the cold run computes every activation, reply and score; the second run
finds each phase's entries in the cache (as many lookups as the cold run made, all hits)
and forwards no prompt and generates no reply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from refusal_checks.plugin import hooks as plugin
from tests.plugin.test_plugin import copy_suite, run_pytest, suite_args, text_of

WORLD = "synthetic:shared"
CLAIMS = ("test_geometry.py", "test_shared_core.py", "test_single_direction.py",
          "test_category_steering.py")
# Phases with model work these claims reach, each noting cache entries. Not
# addition-induces-refusal's: shared-knob runs first and judges its stage-1 steered replies
# in "score agreement" (the steered agreement, fixture sweep_score_agreement), so the claim
# finds them cached. "score validation": the cheap score on every judged prompt.
MODEL_WORK = ("activations", "baseline replies", "sweep scores", "score agreement",
              "score validation", "behaviour-control replies",
              "claim ablation-bypasses-refusal", "claim ablation-keeps-harmless-behaviour",
              "claim ablation-is-category-selective", "claim ablation-lowers-category-refusal")


@dataclass
class Runs:
    cold: dict[str, Any]
    warm: dict[str, Any]
    warm_stdout: str
    folder: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    folder = tmp_path_factory.mktemp("cost")
    copy_suite(folder, per_category=24, claim_files=CLAIMS)
    reports = {}
    for name in ("cold", "warm"):
        result = run_pytest(folder, "claims", *suite_args(folder / "cache", WORLD),
                            "--refusal-bootstrap", "100", plugin.JSON_REPORT, f"{name}.json",
                            plugin.HTML_REPORT, f"{name}.html")
        assert (folder / f"{name}.json").is_file(), text_of(result)
        reports[name] = json.loads((folder / f"{name}.json").read_text())
    return Runs(reports["cold"], reports["warm"], text_of(result), folder)


def _phases(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return report["models"][WORLD]["cost_profile"]["phases"]


def test_a_cold_run_times_and_counts_every_phase_of_model_work(runs: Runs) -> None:
    phases = _phases(runs.cold)
    assert {"model load", "direction statistics", "other fixtures", *MODEL_WORK} <= set(phases)
    for name in MODEL_WORK:
        assert phases[name]["computed"] > 0, (name, phases[name])
    assert phases["activations"]["prompts"] > 0 and phases["sweep scores"]["prompts"] > 0
    assert phases["baseline replies"]["replies"] > 0
    assert phases["claim ablation-keeps-harmless-behaviour"]["prompts"] > 0  # KL: 2 passes
    assert sum(p["share"] for p in phases.values()) == pytest.approx(1.0, abs=0.01)
    profile = runs.cold["models"][WORLD]["cost_profile"]
    assert profile["total_seconds"] <= runs.cold["timings"]["wall_seconds"]
    # The older timings stay as they were.
    assert {f"load {WORLD}", f"activations {WORLD}"} <= set(runs.cold["timings"])


def test_a_second_run_finds_every_phase_in_the_cache_and_computes_nothing(runs: Runs) -> None:
    cold, warm = _phases(runs.cold), _phases(runs.warm)
    assert set(warm) == set(cold)
    for name in MODEL_WORK:
        assert warm[name]["hits"] == cold[name]["hits"] + cold[name]["computed"], name
    totals = runs.warm["models"][WORLD]["cost_profile"]["totals"]
    assert (totals["computed"], totals["prompts"], totals["replies"],
            totals["batches_resumed"]) == (0, 0, 0, 0)
    assert runs.warm["models"][WORLD]["activation_cache"]["prompts_computed"] == 0


def test_the_terminal_and_the_html_report_show_where_the_time_went(runs: Runs) -> None:
    assert f"Where the time went: {WORLD}" in runs.warm_stdout
    sweep = next(line.split() for line in runs.warm_stdout.splitlines()
                 if line.strip().startswith("sweep scores"))
    # ... cached/computed, prompts, replies (no resumed column: nothing was resumed)
    assert sweep[-3:] == [f"{_phases(runs.warm)['sweep scores']['hits']}/0", "0", "0"]
    page = (runs.folder / "warm.html").read_text()
    assert f"where the time went: {WORLD}" in page and "<td>sweep scores</td>" in page
