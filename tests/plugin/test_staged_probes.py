"""Staged probes through pytest on planted worlds: a clear verdict stops at stage 1, a
borderline one grows, --refusal-budget stops growth and says so, and a larger stage
reuses every cached score of the smaller one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refusal_checks.plugin import hooks as plugin
from tests.plugin.test_bad_input import assert_usage_error
from tests.plugin.test_plugin import WIDE, copy_suite, suite_args

FILES = ("test_category_steering.py", "test_single_direction.py")
# One refusal direction, no genre, half the signal: categories refuse about half of their
# 8 probes, too few for ablation-lowers-category-refusal to decide at stage 1.
BORDERLINE = "synthetic:shared,signal=2,genre=0"
LOWERS = "ablation-lowers-category-refusal"
SELECTIVE = "ablation-is-category-selective"


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("COLUMNS", WIDE)
    copy_suite(pytester.path, per_category=48, claim_files=FILES)  # 24 held out: 8, 16, 24
    return pytester


def _run(suite: pytest.Pytester, model: str, *extra: str) -> tuple[dict, pytest.RunResult]:
    report = suite.path / "report.json"
    result = suite.runpytest_subprocess(
        "claims", *suite_args(suite.path / "cache", model), "--refusal-json", str(report),
        "--refusal-bootstrap", "100", *extra)
    assert "Traceback" not in result.stdout.str()
    return {v["claim"]: v for v in json.loads(report.read_text())["verdicts"]}, result


def _files(cache: Path) -> dict[str, int]:
    return {str(p.relative_to(cache)): p.stat().st_mtime_ns
            for kind in ("scores", "replies") for p in (cache / kind).rglob("*") if p.is_file()}


def test_clear_verdicts_stop_at_stage_one(suite):
    verdicts, result = _run(suite, "synthetic:shared")
    # One direction behind genres: the paper's directions read selective, the genre-matched
    # ones that decide ablation-is-category-selective read one pathway; both at stage 1.
    for claim, outcome in (("shared-knob", "supported"),
                           ("ablation-is-category-selective-paper-design", "supported"),
                           ("ablation-is-category-selective", "refuted")):
        staged = verdicts[claim]["details"]["staged"]
        assert verdicts[claim]["outcome"] == outcome, verdicts[claim]["line"]
        assert (staged["stage"], staged["stages"], staged["stopped"]) == (1, 3, "decided")
        assert len(staged["looks"]) == 1 and staged["looks"][0]["per_category"] == 8
    # ablation-lowers needs EVERY category's own interval above 0 (intersection-union,
    # issue #26): at 8 prompts Tango's interval at 0.983 per look clears 0 only when 6 or
    # more refusals are lost and none gained; a category of this world that loses fewer
    # at stage 1 grows the probe once.
    lowers = verdicts[LOWERS]
    assert lowers["outcome"] == "supported", lowers["line"]
    assert lowers["details"]["staged"]["stage"] <= 2
    assert lowers["details"]["staged"]["stopped"] == "decided"
    assert "stage 1 of 3 (n=8/cat, 32 benign, level 0.9833 per look)" in \
        verdicts["shared-knob"]["line"]
    assert "staged probes" in verdicts["shared-knob"]["protocol"]
    result.stdout.fnmatch_lines(["*staged probes: x2 per look*",
                                 f"*staged: {SELECTIVE} [[]synthetic:shared[]]: stage 1 of 3 "
                                 "(n=8/cat)*"])


def test_a_borderline_verdict_grows_and_reuses_the_smaller_stage(suite):
    cache = suite.path / "cache"
    capped, result = _run(suite, BORDERLINE, plugin.BUDGET, "24")
    lowers = capped[LOWERS]
    assert lowers["outcome"] == "inconclusive", lowers["line"]
    assert lowers["details"]["staged"]["stopped"] == "budget"
    assert lowers["details"]["staged"]["stages"] == 1
    assert "the budget stopped growth (--refusal-budget 24: stage 2 of 3 needs 48 prompts)" \
        in lowers["reason"]
    # The reason names the straddling categories (issue #26), so the line may wrap.
    result.stdout.fnmatch_lines([f"*inconclusive: {LOWERS}*straddle*",
                                 "*the budget stopped growth*"])
    before = _files(cache)

    grown, _ = _run(suite, BORDERLINE)
    lowers = grown[LOWERS]
    staged = lowers["details"]["staged"]
    assert staged["stage"] >= 2 and staged["stopped"] == "decided", lowers["line"]
    assert [look["per_category"] for look in staged["looks"]] == [8, 16, 24][:staged["stage"]]
    assert f"stage {staged['stage']} of 3 (n={8 * 2 ** (staged['stage'] - 1)}/cat" \
        in lowers["line"]
    after = _files(cache)
    # Nothing of the capped run was computed again or rewritten; only new increments added.
    assert all(after.get(name) == mtime for name, mtime in before.items())
    assert len(after) > len(before)


@pytest.mark.parametrize("budget", ["0", "-5", "many"])
def test_a_bad_budget_is_a_usage_error(suite, budget):
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", "synthetic:shared"),
                                        plugin.BUDGET, budget)
    message = "expected an integer" if budget == "many" else "a positive integer"
    assert_usage_error(result, suite, f"*argument {plugin.BUDGET}: *{message}*")
