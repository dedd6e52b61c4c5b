"""distinct-under-behaviour-control in a real pytest run, on a prompt file without matched rows.

One run (module-scoped) of the geometry claims on three planted worlds, with a user prompt
file that has no genre-matched rows (as most users' files): each category's prompts carry
a per-prompt refusal strength (``spread``) so the model refuses about 60% of them (signal
3): some refused and some answered in every category, and the "model refuses"
precondition holds on its 8-prompt sample per category.

* one shared refusal direction behind per-category genres: the general pool calls the
  categories distinct (the paper's confound), the behaviour control does not;
* orthogonal planted directions: distinct under the behaviour control too;
* a model that refuses everything (no spread): the behaviour control cannot be built, its
  verdict is INCONCLUSIVE with the per-category counts, and distinct-directions says that
  its result may reflect genre.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from refusal_checks.plugin import hooks as plugin
from refusal_checks.measure.behaviour_control import CONTROL, MIN_PER_SIDE
from tests.plugin.test_plugin import copy_suite, suite_args, text_of

SHARED = "synthetic:shared,signal=3,spread=3"
DISTINCT = "synthetic:orthogonal,signal=3,spread=3"
REFUSES_ALL = "synthetic:shared,signal=6"
CATEGORIES = ("alpha", "beta", "gamma")
PER_CATEGORY = 64
CLAIM = "distinct-under-behaviour-control"


def write_unmatched_prompts(path: Path) -> None:
    """Generic JSONL with refuse rows per category and a benign pool, no matched rows."""
    rows = [{"category": c, "side": "refuse", "prompt": f"{c} request {i} on topic {i * 7 % 13}"}
            for c in CATEGORIES for i in range(PER_CATEGORY)]
    rows += [{"category": "benign", "side": "benign", "prompt": f"benign question {i}"}
             for i in range(2 * PER_CATEGORY)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@dataclass
class Run:
    result: pytest.RunResult
    report: dict
    page: str

    def verdict(self, claim: str, model: str) -> dict:
        found = [v for v in self.report["verdicts"] if v["claim"] == claim and v["model"] == model]
        assert len(found) == 1, (claim, model, found)
        return found[0]


def run_suite(directory: Path, *models: str) -> Run:
    """Run the claims suite copied into ``directory`` on ``models`` (200 bootstrap
    replicates), with JSON and HTML reports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(COLUMNS="200", PYTHONIOENCODING="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *suite_args(directory / "cache", *models),
         "--refusal-bootstrap", "200", "-rs", plugin.JSON_REPORT, "out/report.json",
         plugin.HTML_REPORT, "out/report.html", "--color=no"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    result = pytest.RunResult(done.returncode, done.stdout.splitlines(),
                              done.stderr.splitlines(), 0.0)
    report = directory / "out" / "report.json"
    assert report.is_file(), text_of(result)
    return Run(result, json.loads(report.read_text()),
               (directory / "out" / "report.html").read_text())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    directory = tmp_path_factory.mktemp("behaviour_control")
    copy_suite(directory)
    write_unmatched_prompts(directory / "prompts.jsonl")
    return run_suite(directory, SHARED, DISTINCT, REFUSES_ALL)


def test_one_shared_direction_behind_genres_is_not_distinct_under_the_behaviour_control(
        run: Run) -> None:
    assert run.verdict("distinct-directions", SHARED)["outcome"] == "supported"
    verdict = run.verdict(CLAIM, SHARED)
    assert verdict["outcome"] == "refuted", verdict["line"]
    assert verdict["estimate"] > 0.9
    assert verdict["statistic"] == \
        "mean noise-corrected between-category cosine, behaviour control"
    counts = verdict["details"]["behaviour_counts"]
    assert set(counts) == set(CATEGORIES) and verdict["details"]["left_out"] == []
    assert all(n["refused"] + n["answered"] == PER_CATEGORY for n in counts.values())
    # The control was built, so the general-pool verdict carries no genre caveat.
    assert "caveat" not in run.verdict("distinct-directions", SHARED)["details"]


def test_planted_distinct_directions_are_distinct_under_the_behaviour_control(run: Run) -> None:
    verdict = run.verdict(CLAIM, DISTINCT)
    assert verdict["outcome"] == "supported", verdict["line"]
    assert verdict["details"]["control"] == CONTROL


def test_without_any_genre_control_the_claim_is_inconclusive_and_the_confound_flagged(
        run: Run) -> None:
    verdict = run.verdict(CLAIM, REFUSES_ALL)
    assert verdict["outcome"] == "inconclusive"
    assert f"0 of 3 categories have >= {MIN_PER_SIDE} refused" in verdict["reason"]
    assert "alpha 64/0 (left out)" in verdict["reason"]
    general = run.verdict("distinct-directions", REFUSES_ALL)
    assert "this result may reflect genre, not refusal" in general["line"]
    assert general["details"]["caveat"] in general["reason"]
    text = "\n".join(run.result.outlines)
    # In the terminal: the caveat of a verdict that is not INCONCLUSIVE, and the counts.
    assert f"caveat: distinct-directions [{REFUSES_ALL}]: this result may reflect genre" in text
    assert f"{CLAIM} [{SHARED}]: refused/answered per category: alpha " in text


def test_heatmaps_show_the_behaviour_control(run: Run) -> None:
    text = "\n".join(run.result.outlines)
    assert CONTROL[:38] in text  # the terminal heatmap's block title (38 columns)
    assert f"<h3>Against {CONTROL} (claims: {CLAIM})</h3>" in run.page
    assert "refused/answered per category: alpha" in run.page
    assert "caveat: this result may reflect genre" in run.page
    assert "Traceback" not in text_of(run.result)
