"""Calibration: the pure verdict layer matches the claims, and a quick known-answer run.

The full study (200 worlds per scenario, calibration/README.md) takes about half an hour;
here a quick subset checks that a planted shared direction is never SUPPORTED and a
planted distinct geometry is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from refusal_checks.plugin import hooks as plugin

from refusal_checks.calibration import geometry as calibration
from refusal_checks.calibration.behaviour import BEHAVIOUR_SCENARIOS, BUNDLED_NAMES
from refusal_checks.calibration.measurements import BEHAVIOUR_CLAIM_IDS, behaviour_verdicts
from refusal_checks.core.defaults import POSITION as DEFAULT_POSITION
from refusal_checks.measure.activations import collect, paper_layer
from refusal_checks.measure.behaviour import observe_refusals
from refusal_checks.measure.behaviour_control import REPLY_TOKENS
from refusal_checks.measure.effects import judged
from refusal_checks.judges.base import SubstringJudge
from refusal_checks.prompts.load import bundled
from refusal_checks.models.synthetic import SyntheticBackend
from refusal_checks.stats.verdict import Verdict

REPO = Path(__file__).resolve().parents[2]
QUICK_WORLDS = 15
BEHAVIOUR_CONTROL_WORLDS = 6


def _run(args: list[str], cwd: Path = REPO, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    # One BLAS thread, as calibration/run.py uses: on a busy 2-core machine multi-threaded
    # BLAS made each world about 5x slower.
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", COLUMNS="200")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_defaults_are_the_claims_defaults(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig()
    assert config.getoption(plugin.SEED) == calibration.DEFAULT_SEED
    assert config.getoption(plugin.BOOTSTRAP) == calibration.DEFAULT_BOOTSTRAP
    assert config.getoption(plugin.POSITION) == DEFAULT_POSITION


def test_calibration_verdicts_equal_the_claims_verdicts(tmp_path: Path) -> None:
    """Run the claims under pytest on a planted world, then the same through the library."""
    # A per-prompt refusal strength (spread) and signal 2: about half of each category's
    # prompts are refused, so the behaviour control is built and judged too.
    categories, budget, n_boot, model = ["safety_core", "hate_speech", "humanizing"], 24, 60, \
        "synthetic:distinct,signal=2,spread=3"
    report = tmp_path / "report.json"
    done = _run(["-m", "pytest", "claims/test_geometry.py", "claims/test_shared_core.py",
                 plugin.MODEL, model,
                 plugin.CATEGORIES, ",".join(categories), plugin.MAX_PROMPTS, str(budget),
                 plugin.BOOTSTRAP, str(n_boot), plugin.JSON_REPORT, str(report),
                 "--refusal-cache-dir", str(tmp_path / "cache"), "-p", "no:cacheprovider",
                 "-p", "no:hypothesispytest", "-q"])
    assert report.is_file(), done.stdout + done.stderr
    records = json.loads(report.read_text())["verdicts"]
    recorded = {v["claim"]: Verdict.from_dict(v) for v in records}

    backend = SyntheticBackend.from_spec(model.split(":", 1)[1])
    prompts = bundled().only(categories).head(budget)
    acts = collect(backend, prompts, position=-2, cache=None).at_layer(
        paper_layer(backend.n_layers))
    behaviour = observe_refusals(backend, prompts, seed=calibration.DEFAULT_SEED)
    refused = {name: judged(backend, c.refuse, SubstringJudge(), None, None,
                            max_new_tokens=REPLY_TOKENS)[0]
               for name, c in prompts.categories.items()}
    computed = calibration.claim_verdicts(acts, behaviour, n_boot=n_boot, refused=refused)

    assert set(recorded) == set(calibration.CLAIM_IDS)
    for claim, verdict in computed.items():
        theirs = recorded[claim]
        assert (verdict.outcome, verdict.statistic, verdict.n, verdict.threshold) == \
            (theirs.outcome, theirs.statistic, theirs.n, theirs.threshold), claim
        assert verdict.estimate == pytest.approx(theirs.estimate, rel=1e-12), claim
        assert verdict.interval == pytest.approx(theirs.interval, rel=1e-12), claim
        assert verdict.reason == theirs.reason, claim


def test_quick_run_never_supports_a_shared_direction_and_finds_a_distinct_one(
        tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    claims = ["distinct-under-matched-control", "more-than-one-direction"]
    done = _run(["calibration/run.py", "--quick", "--worlds", str(QUICK_WORLDS),
                 "--scenarios", "shared,real-like", "--claims", ",".join(claims),
                 "--json", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())["results"]
    for claim in claims:
        null, effect = results["shared"][claim], results["real-like"][claim]
        assert null["n"] == effect["n"] == QUICK_WORLDS
        assert null["counts"].get("supported", 0) == 0, (claim, null)
        assert effect["counts"].get("supported", 0) >= QUICK_WORLDS - 1, (claim, effect)
    assert "distinct-under-matched-control   null     shared" in done.stdout


def test_quick_behaviour_control_run_rejects_one_shared_direction_behind_genres(
        tmp_path: Path) -> None:
    """The genre world (one shared refusal direction, per-category genres, per-prompt
    refusal strength) is never distinct under the behaviour control, nor under
    distinct-directions, which the genre controls decide, though the paper's general-pool
    design calls it distinct; planted distinct directions are found (calibration/README.md
    has the 200-world rates)."""
    out = tmp_path / "quick.json"
    claims = ["distinct-directions", "distinct-directions-paper-design",
              "distinct-under-behaviour-control"]
    done = _run(["calibration/run.py", "--worlds", str(BEHAVIOUR_CONTROL_WORLDS),
                 "--scenarios", "behaviour-shared,behaviour-skewed,behaviour-shared-no-twins,"
                 "behaviour-distinct", "--claims", ",".join(claims), "--n-boot", "200",
                 "--json", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())["results"]
    for null in ("behaviour-shared", "behaviour-skewed", "behaviour-shared-no-twins"):
        for claim in ("distinct-under-behaviour-control", "distinct-directions"):
            tally = results[null][claim]
            assert tally["n"] == BEHAVIOUR_CONTROL_WORLDS
            assert tally["counts"].get("supported", 0) == 0, (null, claim, tally)
        assert results[null]["distinct-directions-paper-design"]["counts"].get(
            "supported", 0) == BEHAVIOUR_CONTROL_WORLDS  # the paper's design: genre reads as distinct
    for claim in ("distinct-under-behaviour-control", "distinct-directions"):
        effect = results["behaviour-distinct"][claim]
        assert effect["counts"].get("supported", 0) >= BEHAVIOUR_CONTROL_WORLDS - 1, effect
    assert "distinct-under-behaviour-control null     behaviour-shared" in done.stdout
    assert "distinct-directions              null     behaviour-shared-no-twins" in done.stdout


def test_run_rejects_unknown_names_and_lists_the_known_ones() -> None:
    done = _run(["calibration/run.py", "--scenarios", "sharde"])
    assert done.returncode == 2
    assert "unknown scenarios ['sharde']. Known: real-like, shared," in done.stderr


# --- behavioural claims -----------------------------------------------------------------

BEHAVIOUR_QUICK_WORLDS = 4


def test_behaviour_worlds_have_the_bundled_categories():
    """Planted worlds read probes as large as the bundled prompts give the claims."""
    assert BUNDLED_NAMES == tuple(bundled().categories)


def test_behaviour_calibration_verdicts_equal_the_claims_verdicts(tmp_path: Path) -> None:
    """The 7 behavioural claims under pytest on a planted world, then through the library."""
    spec = "shared,genre=0"
    report = tmp_path / "report.json"
    done = _run(["-m", "pytest", "claims/test_single_direction.py",
                 "claims/test_category_steering.py", plugin.MODEL, f"synthetic:{spec}",
                 plugin.JSON_REPORT, str(report), "--refusal-cache-dir", str(tmp_path / "cache"),
                 "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q"])
    assert report.is_file(), done.stdout + done.stderr
    recorded = {v["claim"]: Verdict.from_dict(v)
                for v in json.loads(report.read_text())["verdicts"]}
    computed = behaviour_verdicts(SyntheticBackend.from_spec(spec), bundled())
    assert set(recorded) == set(BEHAVIOUR_CLAIM_IDS)
    for claim, verdict in computed.items():
        theirs = recorded[claim]
        assert (verdict.outcome, verdict.statistic, verdict.n, verdict.threshold,
                verdict.reason) == (theirs.outcome, theirs.statistic, theirs.n,
                                    theirs.threshold, theirs.reason), claim
        # KL values pass through the on-disk cache (float32) in pytest: compare loosely.
        assert verdict.estimate == pytest.approx(theirs.estimate, rel=1e-5, abs=1e-7), claim
        assert verdict.interval == pytest.approx(theirs.interval, rel=1e-5, abs=1e-7), claim


def test_quick_behaviour_run_supports_planted_effects_and_never_a_null(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    # Clear nulls only: boundary nulls (half-kept, ...) say SUPPORTED in up to 2.5% of
    # worlds by design, too often for an exact count on a few worlds.
    scenarios = ["one-direction", "never-refuses", "no-ablation", "two-knobs",
                 "one-unablatable"]
    done = _run(["calibration/run.py", "--behaviour", "--worlds", str(BEHAVIOUR_QUICK_WORLDS),
                 "--behaviour-scenarios", ",".join(scenarios), "--json", str(out)])
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())["results"]
    for name in scenarios:
        scenario = BEHAVIOUR_SCENARIOS[name]
        for claim, tally in results[name].items():
            assert tally["n"] == BEHAVIOUR_QUICK_WORLDS
            supported = tally["counts"].get("supported", 0)
            if scenario.role(claim) == "null":
                assert supported == 0, (name, claim, tally)
            else:
                assert supported >= BEHAVIOUR_QUICK_WORLDS - 1, (name, claim, tally)
    assert "ablation-bypasses-refusal          null   no-ablation" in done.stdout


def test_behaviour_run_rejects_unknown_scenarios_and_lists_the_known_ones() -> None:
    done = _run(["calibration/run.py", "--behaviour", "--behaviour-scenarios", "half"])
    assert done.returncode == 2
    assert "unknown behaviour scenarios ['half']. Known: one-direction," in done.stderr


def test_behaviour_verdicts_reject_unknown_claim_ids() -> None:
    with pytest.raises(ValueError, match="Known: ablation-bypasses-refusal"):
        behaviour_verdicts(SyntheticBackend.from_spec("shared"), bundled(), ["bypass"])


def test_a_claim_planted_true_at_its_margin_is_held_to_false_refuted_only() -> None:
    from refusal_checks.calibration.tally import goal_text

    assert goal_text("margin", (0.0, 0.0, 0.02), refuted=(0.05, 0.0, 0.1)) == "REFUTED <= 5% ok"
    assert goal_text("margin", (0.0, 0.0, 0.02), refuted=(0.06, 0.0, 0.1)) == "REFUTED <= 5% MISSED"
    role = BEHAVIOUR_SCENARIOS["drops-just-above"].role("ablation-lowers-category-refusal")
    assert role == "margin"
