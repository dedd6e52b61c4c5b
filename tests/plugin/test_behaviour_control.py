"""distinct-under-behaviour-control in a real pytest run, on a prompt file without matched rows.

One run (module-scoped) of the geometry claims on three planted worlds, with a user prompt
file that has no genre-matched rows (as most users' files): each category's prompts carry
a per-prompt refusal strength (``spread``) so the model refuses about 60% of them (signal
3): some refused and some answered in every category, and the "model refuses"
precondition holds on its 8-prompt sample per category.

* one shared refusal direction behind per-category genres: the general pool calls the
  categories distinct (the paper's confound, distinct-directions-paper-design), the
  behaviour control does not, and distinct-directions, which it decides, is REFUTED;
* orthogonal planted directions: distinct under the behaviour control too, and
  distinct-directions SUPPORTED;
* a model that refuses everything (no spread): the behaviour control cannot be built, its
  verdict is INCONCLUSIVE with the per-category counts, distinct-directions is INCONCLUSIVE
  (no genre control decides) and the paper's design says that its result may reflect genre.
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
DIRECTIONS = "distinct-directions"
PAPER = "distinct-directions-paper-design"


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
    assert run.verdict(PAPER, SHARED)["outcome"] == "supported"
    verdict = run.verdict(CLAIM, SHARED)
    assert verdict["outcome"] == "refuted", verdict["line"]
    assert verdict["estimate"] > 0.9
    assert verdict["statistic"] == \
        "mean noise-corrected between-category cosine, behaviour control"
    counts = verdict["details"]["behaviour_counts"]
    assert set(counts) == set(CATEGORIES) and verdict["details"]["left_out"] == []
    assert all(n["refused"] + n["answered"] == PER_CATEGORY for n in counts.values())


def test_the_genre_world_is_not_supported_by_distinct_directions(run: Run) -> None:
    # The claim follows its genre control, with the control's numbers; the paper's design
    # is reported beside it, with its caveat, and decides nothing.
    claim, control = run.verdict(DIRECTIONS, SHARED), run.verdict(CLAIM, SHARED)
    assert claim["outcome"] == "refuted", claim["line"]
    assert (claim["estimate"], claim["interval"]) == (control["estimate"], control["interval"])
    assert claim["details"]["decided_by"] == CLAIM
    assert claim["details"]["designs"][PAPER]["outcome"] == "supported"
    assert claim["details"]["designs"]["distinct-under-matched-control"] == {
        "outcome": "not measured", "reason": "fewer than two categories have genre-matched "
        "benign rows (side 'matched' in the prompt files)"}
    assert "caveat" not in claim["details"]
    assert "this result may reflect genre" in run.verdict(PAPER, SHARED)["reason"]


def test_planted_distinct_directions_are_distinct_under_the_behaviour_control(run: Run) -> None:
    verdict = run.verdict(CLAIM, DISTINCT)
    assert verdict["outcome"] == "supported", verdict["line"]
    assert verdict["details"]["control"] == CONTROL
    assert run.verdict(DIRECTIONS, DISTINCT)["outcome"] == "supported"


def test_without_any_genre_control_the_claim_is_inconclusive_and_the_confound_flagged(
        run: Run) -> None:
    verdict = run.verdict(CLAIM, REFUSES_ALL)
    assert verdict["outcome"] == "inconclusive"
    assert f"0 of 3 categories have >= {MIN_PER_SIDE} refused" in verdict["reason"]
    assert "alpha 64/0 (left out)" in verdict["reason"]
    claim = run.verdict(DIRECTIONS, REFUSES_ALL)
    assert claim["outcome"] == "inconclusive"
    assert claim["reason"].startswith("no genre control decides")
    general = run.verdict(PAPER, REFUSES_ALL)
    assert general["outcome"] == "supported"
    assert "this result may reflect genre, not refusal" in general["line"]
    assert general["details"]["caveat"] in general["reason"]
    text = "\n".join(run.result.outlines)
    # In the terminal: the caveat of a verdict that is not INCONCLUSIVE, the reason of one
    # that is, and the counts.
    assert f"caveat: {PAPER} [{REFUSES_ALL}]: this result may reflect genre" in text
    assert f"inconclusive: {DIRECTIONS} [{REFUSES_ALL}]: no genre control decides" in text
    assert f"{CLAIM} [{SHARED}]: refused/answered per category: alpha " in text


def test_the_reports_show_the_paper_design_beside_the_claim(run: Run) -> None:
    # The terminal table (200 columns): claim, model, outcome cells per row.
    cells = [[c.strip() for c in line.split("│")[1:4]] for line in run.result.outlines
             if line.startswith("│")]
    assert [PAPER, SHARED, "SUPPORTED"] in cells, cells
    assert [DIRECTIONS, SHARED, "REFUTED"] in cells, cells
    claims = {v["claim"] for v in run.report["verdicts"]}
    assert {DIRECTIONS, PAPER, CLAIM} <= claims  # the JSON report
    assert f'id="claim-{PAPER}"' in run.page and f'id="claim-{DIRECTIONS}"' in run.page
    assert "The paper&#x27;s design reproduces" in run.page


def test_heatmaps_show_the_behaviour_control(run: Run) -> None:
    text = "\n".join(run.result.outlines)
    assert CONTROL[:38] in text  # the terminal heatmap's block title (38 columns)
    assert f"<h3>Against {CONTROL} (claims: {CLAIM})</h3>" in run.page
    assert f"<h3>Against general benign pool (claims: " in run.page
    assert "refused/answered per category: alpha" in run.page
    assert "caveat: this result may reflect genre" in run.page
    assert "Traceback" not in text_of(run.result)
