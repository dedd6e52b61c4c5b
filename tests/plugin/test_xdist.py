"""pytest-xdist: ``-n 2`` gives the verdicts, JSON report and gate result of a serial run.

Under xdist the fixtures run in worker processes and the controller only sees test
reports; the reports and the gate are written by the controller from the verdicts in
those reports and from the model records the workers send at their end. One planted
world, the geometry and single-direction claims, a policy with rate rules and a
baseline: a serial run and a run on two workers (with its own, empty cache, which both
workers fill at once) must agree on everything but timings and cache counters.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from refusal_checks.plugin import hooks as plugin
from refusal_checks.gate.samples import BYPASS_CLAIM
from tests.plugin.test_plugin import copy_suite, run_pytest, suite_args, text_of

# No genre offsets: with them every candidate of Arditi's selection carries genre and fails
# the KL filter, and the policy's required bypass claim could not be SUPPORTED.
WORLD = "synthetic:shared,genre=0"
CLAIMS = ("test_geometry.py", "test_single_direction.py")
# Margins a repeat of the same run can pass (see tests/plugin/test_gate.py), and a claim
# the policy requires: the gate then has rate rules that read the workers' model records.
POLICY = ("[tool.refusal_checks.gate]\nmax_refusal_drop = 0.45\nmax_over_refusal_rise = 0.45\n"
          f'max_bypass_gain = 0.45\nrequire_supported = ["{BYPASS_CLAIM}"]\n')
RATE_RULES = {"max_refusal_drop", "max_over_refusal_rise", "max_bypass_gain"}


@dataclass
class Run:
    stdout: str
    ret: int
    outcomes: dict[str, int]
    report: dict[str, Any]


@dataclass
class Pair:
    serial: Run
    parallel: Run
    folder: Path


def _run(directory: Path, cache: Path, name: str, *extra: str) -> Run:
    result = run_pytest(directory, *suite_args(cache, WORLD), "--refusal-bootstrap", "100",
                        "--rootdir", ".", plugin.BASELINE, "base.json",
                        plugin.JSON_REPORT, f"{name}.json", *extra)
    assert (directory / f"{name}.json").is_file(), text_of(result)
    return Run(text_of(result), result.ret, result.parseoutcomes(),
               json.loads((directory / f"{name}.json").read_text()))


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    if importlib.util.find_spec("xdist") is None:
        pytest.fail("pytest-xdist is not installed: pip install -e '.[test]' (setup.sh does)")
    directory = tmp_path_factory.mktemp("xdist")
    copy_suite(directory, per_category=32, claim_files=CLAIMS)
    base = run_pytest(directory, *suite_args(directory / "cache", WORLD), "--refusal-bootstrap",
                      "100", "--rootdir", ".", plugin.JSON_REPORT, "base.json")
    assert (directory / "base.json").is_file(), text_of(base)
    (directory / "pyproject.toml").write_text(POLICY)
    serial = _run(directory, directory / "cache", "serial")
    parallel = _run(directory, directory / "cache-n2", "parallel", "-n", "2",
                    plugin.HTML_REPORT, "parallel.html")
    return Pair(serial, parallel, directory)


def _without_timings(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in record.items() if k != "duration"} for record in verdicts]


def test_two_workers_ran_the_claims(pair: Pair) -> None:
    assert "2 workers [" in pair.parallel.stdout, pair.parallel.stdout
    # A warning in only one of the runs is a difference too; the log then shows which.
    assert pair.parallel.outcomes == pair.serial.outcomes, pair.parallel.stdout[-4000:]
    assert sum(pair.serial.outcomes.values()) == len(pair.serial.report["verdicts"]) >= 8


def test_verdicts_are_the_same_in_the_same_order(pair: Pair) -> None:
    assert _without_timings(pair.parallel.report["verdicts"]) == \
        _without_timings(pair.serial.report["verdicts"])


def test_the_gate_reads_the_workers_rates_and_decides_alike(pair: Pair) -> None:
    serial, parallel = pair.serial.report["gate"], pair.parallel.report["gate"]

    assert parallel == serial
    assert pair.parallel.ret == pair.serial.ret
    rules = {result["rule"]: result for result in parallel["results"]}
    assert RATE_RULES <= set(rules)
    for name in RATE_RULES:  # each compared real numbers, not an empty record
        assert rules[name]["current"] is not None, rules[name]
    assert rules["require_supported"]["status"] == "pass"


def test_model_records_reach_the_controller(pair: Pair) -> None:
    serial = pair.serial.report["models"][WORLD]
    parallel = pair.parallel.report["models"][WORLD]

    assert parallel["refusal_behaviour"] == serial["refusal_behaviour"]
    assert parallel["fingerprint"] == serial["fingerprint"]
    # Both workers measured with an empty cache: between them they computed each entry
    # at least once, and the counters add up over workers.
    cache = parallel["activation_cache"]
    assert cache["misses"] >= serial["activation_cache"]["hits"] > 0


def test_what_the_workers_observed_reaches_the_controller(pair: Pair) -> None:
    # The score per condition and the damage axis come from every worker's records, merged:
    # the same numbers as the serial run (its records came from one process).
    serial = pair.serial.report["models"][WORLD]
    parallel = pair.parallel.report["models"][WORLD]

    assert parallel["score_validation"]["n"] > 0
    assert parallel["score_validation"] == serial["score_validation"]
    assert parallel["damage"] == serial["damage"]


def test_the_workers_cost_profiles_add_up_at_the_controller(pair: Pair) -> None:
    serial = pair.serial.report["models"][WORLD]["cost_profile"]
    parallel = pair.parallel.report["models"][WORLD]["cost_profile"]

    # The same phases ran in the workers; the serial run was warm, the workers filled an
    # empty cache between them (so computed something, and counted it once per worker).
    assert set(parallel["phases"]) == set(serial["phases"])
    assert serial["totals"]["computed"] == 0 and serial["totals"]["prompts"] == 0
    assert parallel["totals"]["computed"] > 0 and parallel["totals"]["prompts"] > 0
    activations = parallel["phases"]["activations"]
    looked_up = activations["computed"] + activations["hits"]
    assert looked_up >= serial["phases"]["activations"]["hits"] > 0
    assert f"Where the time went: {WORLD}" in pair.parallel.stdout


def test_only_the_controller_writes_the_reports(pair: Pair) -> None:
    assert pair.parallel.report["complete"] is True
    assert (pair.folder / "parallel.html").is_file()
    leftovers = [p.name for p in pair.folder.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_planted_world_does_not_depend_on_which_category_is_used_first() -> None:
    from refusal_checks.prompts.sets import PromptSet
    from refusal_checks.models.synthetic import SyntheticBackend

    beta = PromptSet("beta/refuse", "beta", "refuse", ("one", "two"), "test")
    planted, other_order, unplanted = (SyntheticBackend.from_spec("distinct") for _ in range(3))
    planted.plant(["alpha", "beta"])
    other_order.plant(["alpha", "beta"])
    other_order.slot("beta")  # used first in this process: no effect once planted
    unplanted.slot("beta")    # without planting, beta takes alpha's direction

    assert planted.input_digest(beta) == other_order.input_digest(beta)
    assert (planted.residual_stream(beta, [4], [-1]) ==
            other_order.residual_stream(beta, [4], [-1])).all()
    # A cache shared with a run that assigned slots otherwise keeps the two apart.
    assert unplanted.input_digest(beta) != planted.input_digest(beta)
