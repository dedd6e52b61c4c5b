"""--refusal-html and the compact heatmap, in a real pytest run on two planted worlds.

One run (module-scoped) of the geometry claims on synthetic:distinct and synthetic:null with
--refusal-html and --refusal-json, at 80 columns: the page names every verdict of the run
side by side, equals a re-render of the JSON report by ``python -m refusal_checks html``,
and the terminal summary carries the heatmap within 80 columns.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from refusal_checks.plugin import hooks as plugin
from tests.plugin.test_plugin import copy_suite, suite_args, text_of

MODELS = ("synthetic:distinct", "synthetic:null")


@dataclass
class HtmlRun:
    directory: Path
    result: pytest.RunResult
    page: str
    report: dict


@pytest.fixture(scope="module")
def html_run(tmp_path_factory: pytest.TempPathFactory) -> HtmlRun:
    directory = tmp_path_factory.mktemp("html")
    copy_suite(directory, per_category=48)
    # An 80-column terminal (run_pytest's is wider): the heatmap must fit there.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(COLUMNS="80", PYTHONIOENCODING="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *suite_args(directory / "cache", *MODELS),
         "--refusal-bootstrap", "100", plugin.HTML_REPORT, "out/report.html",
         plugin.JSON_REPORT, "out/report.json", "--color=no"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=300)
    result = pytest.RunResult(done.returncode, done.stdout.splitlines(),
                              done.stderr.splitlines(), 0.0)
    html = directory / "out" / "report.html"
    assert html.is_file(), text_of(result)
    return HtmlRun(directory, result, html.read_text(),
                   json.loads((directory / "out" / "report.json").read_text()))


def test_html_report_is_written_and_its_path_printed(html_run: HtmlRun) -> None:
    assert "refusal_checks: HTML report written to out/report.html" in html_run.result.outlines
    assert not list((html_run.directory / "out").glob("*.tmp"))
    assert "Traceback" not in text_of(html_run.result)


def test_html_report_shows_every_verdict_of_the_run_side_by_side(html_run: HtmlRun) -> None:
    page = html_run.page
    verdicts = html_run.report["verdicts"]
    assert len(verdicts) == 6 * len(MODELS)
    header = re.search(r'<table class="verdicts"><tr>(.*?)</tr>', page).group(1)
    assert re.findall(r"<th>(.*?)</th>", header) == ["claim", "paper", "needs", *MODELS]
    for verdict in verdicts:
        assert f'id="claim-{verdict["claim"]}"' in page
    # Each model's cosine heatmaps (both controls) sit in one row per control.
    for model in MODELS:
        assert page.count(f'alt="noise-corrected cosines, {model}, against ') == 2


def test_html_report_equals_a_re_render_of_the_json_report(html_run: HtmlRun) -> None:
    again = html_run.directory / "out" / "again.html"
    done = subprocess.run([sys.executable, "-m", "refusal_checks", "html",
                           str(html_run.directory / "out" / "report.json"), str(again)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert again.read_text() == html_run.page


def test_terminal_summary_has_a_compact_heatmap_within_80_columns(html_run: HtmlRun) -> None:
    lines = html_run.result.outlines
    start = lines.index("Between-category cosines (noise-corrected)")
    block = lines[start:start + 32]
    assert any(line.startswith("a alpha") for line in block), block
    assert any("general benign pool" in line for line in block)
    assert all(len(line) <= 80 for line in block), block
    assert not any("\x1b" in line for line in lines)


def test_unwritable_html_path_is_reported_without_a_traceback(pytester: pytest.Pytester) -> None:
    copy_suite(pytester.path, per_category=8)
    (pytester.path / "taken").mkdir()
    result = pytester.runpytest_subprocess(
        *suite_args(pytester.path / "cache", "synthetic:null"), "--refusal-bootstrap", "20",
        plugin.HTML_REPORT, "taken", "-k", "stable")
    # Found before the run (a usage error), not after it; test_bad_input.py has the variants.
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {plugin.HTML_REPORT} taken: cannot write the report "
                                 "there (*/taken is a folder, not a file). *"])
    assert "Traceback" not in text_of(result) and "INTERNALERROR" not in text_of(result)
