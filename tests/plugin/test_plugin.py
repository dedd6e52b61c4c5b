"""The pytest plugin, run as a user runs it.

Each test copies the repository's claims suite (conftest.py, fixtures/, claims/) into a
temporary directory, writes its own prompt files there (so nothing depends on the bundled
prompt sets), and runs pytest in a subprocess: the plugin loads through its entry point and
its configure-time behaviour (usage errors, cache clearing) is exercised for real. The
cache always lives under a temporary directory, never in the user's cache.

The planted worlds of ``refusal_checks.models.synthetic`` have known answers, so verdicts are
asserted exactly. Runs that several tests inspect (the three worlds, with --refusal-json
and --junitxml) happen once per module.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Imported here, not inside the tests: pytester restores sys.modules after each test, and
# numpy (which cache and synthetic import) cannot be imported twice in one process.
from refusal_checks.plugin import hooks as plugin
from refusal_checks.cache.store import ArrayCache
from refusal_checks.models.registry import known_names
from refusal_checks.plugin.state import VERDICT_PROPERTY
from refusal_checks.stats.verdict import Outcome, Verdict

REPO = Path(__file__).resolve().parents[2]
WORLDS = ("synthetic:distinct", "synthetic:shared", "synthetic:null")
HEAVY_MODULES = ("torch", "transformers", "nnsight", "numpy")

# 96 refused prompts per category: with fewer, the shared world's matched-control cosine
# (about 1.0) has an interval that can reach below the claim's 0.90 threshold, and the
# verdict becomes INCONCLUSIVE instead of REFUTED (seen at 32 per category).
PROMPTS_PER_CATEGORY = 96
CATEGORIES = ("alpha", "beta", "gamma")

# Wide enough that the verdict table shows every column unabridged.
WIDE = "200"


# -- helpers -----------------------------------------------------------------------------------

def write_prompts(path: Path, per_category: int = PROMPTS_PER_CATEGORY,
                  categories: tuple[str, ...] = CATEGORIES) -> Path:
    """Generic JSONL: refuse + matched rows per category, and a general benign pool."""
    rows = []
    for category in categories:
        for i in range(per_category):
            rows.append({"category": category, "side": "refuse",
                         "prompt": f"{category} request number {i} about topic {i * 7 % 13}"})
            rows.append({"category": category, "side": "matched",
                         "prompt": f"{category} harmless look-alike {i} about topic {i * 7 % 13}"})
    for i in range(2 * per_category):
        rows.append({"category": "benign", "side": "benign",
                     "prompt": f"benign question number {i} about topic {i * 5 % 11}"})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def copy_suite(directory: Path, per_category: int = PROMPTS_PER_CATEGORY,
               claim_files: tuple[str, ...] = ("test_geometry.py",),
               categories: tuple[str, ...] = CATEGORIES) -> None:
    """The claims suite as a user has it (the geometry claims by default), plus prompts.jsonl.

    The plugin's machinery is exercised on the four geometry claims; the behavioural
    claims get their own known-answer test (tests/plugin/test_behaviour_claims.py).
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copy(REPO / "conftest.py", directory / "conftest.py")
    shutil.copytree(REPO / "fixtures", directory / "fixtures", ignore=ignore)
    (directory / "claims").mkdir()
    for name in claim_files:
        shutil.copy(REPO / "claims" / name, directory / "claims" / name)
    write_prompts(directory / "prompts.jsonl", per_category, categories)


def suite_args(cache: Path, *models: str) -> list[str]:
    # hypothesis's plugin is turned off only because importing it costs ~1 s per run.
    args = ["--refusal-prompts", "prompts.jsonl", "--refusal-cache-dir", str(cache),
            "-p", "no:cacheprovider", "-p", "no:hypothesispytest"]
    for model in models:
        args += ["--model", model]
    return args


def text_of(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def assert_no_traceback(result: pytest.RunResult) -> None:
    """No Python traceback of any kind: only the plugin's own message."""
    text = text_of(result)
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
    # pytest's own traceback rendering: source lines ("> ") and exception lines ("E ").
    assert not [line for line in result.outlines if re.match(r"^(>|E) {3}", line)], text
    assert not re.search(r"\.py:\d+: \w*(Error|Exception)\b", text), text


def squeeze(text: str) -> str:
    """Drop all whitespace: help text is re-wrapped (and broken at hyphens) by argparse."""
    return "".join(text.split())


def verdict_rows(lines: list[str]) -> set[tuple[str, str, str]]:
    """(claim, model, VERDICT) from the rows of the summary table."""
    rows = set()
    for line in lines:
        cells = [cell.strip() for cell in line.split("│")]
        if len(cells) > 4 and cells[3] in ("SUPPORTED", "REFUTED", "INCONCLUSIVE"):
            rows.add((cells[1], cells[2], cells[3]))
    return rows


def comparable(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Verdicts without their timings, in a stable order."""
    return sorted(({k: v for k, v in record.items() if k != "duration"} for record in verdicts),
                  key=lambda record: record["test"])


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("COLUMNS", WIDE)
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8")
    copy_suite(pytester.path)
    return pytester


# -- one run of the three planted worlds, shared by several tests -------------------------------

@dataclass
class WorldsRun:
    result: pytest.RunResult
    report: dict[str, Any]
    junit: ET.ElementTree
    claim_functions: set[str]

    def verdict(self, claim: str, model: str) -> dict[str, Any]:
        found = [v for v in self.report["verdicts"] if v["claim"] == claim and v["model"] == model]
        assert len(found) == 1, (claim, model, found)
        return found[0]

    def outcome_line(self, function: str, model: str) -> str:
        nodeid = f"claims/test_geometry.py::{function}[{model}]"
        found = [line for line in self.result.outlines if line.startswith(nodeid + " ")]
        assert len(found) == 1, (nodeid, self.result.outlines)
        return found[0]


def run_pytest(directory: Path, *args: str) -> pytest.RunResult:
    """pytest in a subprocess, as pytester's runpytest_subprocess does (module-scoped use)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(COLUMNS=WIDE, PYTHONIOENCODING="utf-8")
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=directory, env=env,
                          capture_output=True, text=True, timeout=300)
    return pytest.RunResult(done.returncode, done.stdout.splitlines(), done.stderr.splitlines(),
                            time.monotonic() - start)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> WorldsRun:
    directory = tmp_path_factory.mktemp("worlds")
    copy_suite(directory)
    result = run_pytest(directory, *suite_args(directory / "cache", *WORLDS), "-v", "-rs",
                        "--refusal-json", "out/report.json", "--junitxml", "out/junit.xml")
    claims_file = (directory / "claims" / "test_geometry.py").read_text()
    functions = set(re.findall(r"^def (test_\w+)\(", claims_file, re.M))
    assert (directory / "out" / "report.json").is_file(), text_of(result)
    return WorldsRun(result, json.loads((directory / "out" / "report.json").read_text()),
                     ET.parse(directory / "out" / "junit.xml"), functions)


# -- 1. --help -------------------------------------------------------------------------------

class _RecordingParser:
    """Stands in for pytest.Parser to read what pytest_addoption registers."""

    def __init__(self) -> None:
        self.options: dict[str, dict[str, Any]] = {}
        self.group_description = ""

    def getgroup(self, name: str, description: str = "") -> "_RecordingParser":
        self.group_description = description
        return self

    def addoption(self, *names: str, **kwargs: Any) -> None:
        for name in names:
            self.options[name] = kwargs


def test_help_lists_every_option_with_its_help_text(pytester: pytest.Pytester,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    recorded = _RecordingParser()
    plugin.pytest_addoption(recorded)  # type: ignore[arg-type]
    constants = {value for name, value in vars(plugin).items()
                 if name.isupper() and isinstance(value, str) and value.startswith("--")}
    assert constants == set(recorded.options), "every option constant is registered, no other"

    monkeypatch.setenv("COLUMNS", WIDE)
    result = pytester.runpytest_subprocess("--help", "-p", "no:hypothesispytest")

    assert result.ret == pytest.ExitCode.OK
    help_text = squeeze("\n".join(result.outlines))
    assert squeeze(recorded.group_description) in help_text
    for name in sorted(constants):
        assert squeeze(recorded.options[name]["help"]) in help_text, name
        assert re.search(rf"^\s+{re.escape(name)}\b", "\n".join(result.outlines), re.M), name


# -- 2. usage errors at start-up -------------------------------------------------------------

def test_unknown_model_is_a_usage_error_listing_the_known_aliases(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", "lama"))

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --model 'lama' is not a known model. Known: *"])
    message = text_of(result)
    assert f"Known: {', '.join(known_names())}." in message
    assert "[tool.refusal_checks.models] in pyproject.toml" in message  # the fix
    assert_no_traceback(result)
    assert not (suite.path / "cache").exists(), "nothing runs after a usage error"


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param([plugin.POSITION, "3"],
                 f"*argument {plugin.POSITION}: got 3, but positions count back from the end "
                 "of the chat-templated prompt and must be negative (-1 is the last template "
                 "token, -2 the paper's decision state).", id="position-3"),
    pytest.param([plugin.POSITION, "0"], f"*argument {plugin.POSITION}: got 0, *must be negative*",
                 id="position-0"),
    pytest.param([plugin.MAX_PROMPTS, "few"],
                 f"*argument {plugin.MAX_PROMPTS}: expected an integer, got 'few'",
                 id="max-prompts-text"),
    pytest.param([plugin.BOOTSTRAP, "many"],
                 f"*argument {plugin.BOOTSTRAP}: expected a positive integer (1, 2, ...), "
                 "got 'many'", id="bootstrap-text"),
    pytest.param([plugin.SEED, "x"], f"*argument {plugin.SEED}: expected an integer, got 'x'",
                 id="seed-text"),
])
def test_bad_option_values_are_usage_errors_naming_the_option(
        suite: pytest.Pytester, args: list[str], expected: str) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", WORLDS[0]), *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])
    assert_no_traceback(result)


def test_malformed_model_alias_table_is_a_usage_error(suite: pytest.Pytester) -> None:
    suite.makepyprojecttoml('[tool.pytest.ini_options]\n\n'
                            '[tool.refusal_checks]\nmodels = "synthetic:distinct"\n')

    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", WORLDS[0]))

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"ERROR: [[]tool.refusal_checks.models[]] in {suite.path / 'pyproject.toml'} must be a "
        'table of alias = "hub-id-or-path" entries.'])
    assert_no_traceback(result)


def test_model_alias_from_pyproject_names_the_tests(suite: pytest.Pytester) -> None:
    suite.makepyprojecttoml('[tool.pytest.ini_options]\n\n'
                            '[tool.refusal_checks.models]\nplanted = "synthetic:distinct"\n')

    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", "planted"),
                                        "--collect-only", "-q")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["claims/test_geometry.py::test_*[[]planted[]]"] * 6)


# -- 3. problems found by the fixtures or at configure time ------------------------------------

def test_layer_out_of_range_fails_each_claim_with_the_allowed_range(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", WORLDS[0]),
                                        plugin.LAYER, "99", plugin.MAX_PROMPTS, "16")

    result.assert_outcomes(errors=6)
    result.stdout.fnmatch_lines([
        f"{plugin.LAYER}: layer 99 is out of range for synthetic:distinct, which has 8 blocks. "
        "Use a layer in 0..7 (or -8..-1 from the end)."] * 6)
    assert_no_traceback(result)


def test_malformed_prompt_file_is_a_usage_error_naming_file_and_line(
        suite: pytest.Pytester) -> None:
    lines = (suite.path / "prompts.jsonl").read_text().splitlines()
    lines[4] = '{"category": "alpha", "side": '
    (suite.path / "prompts.jsonl").write_text("\n".join(lines) + "\n")

    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", WORLDS[0]))

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"ERROR: {plugin.PROMPTS}: prompts.jsonl, line 5: invalid JSON (*). Each JSONL line must "
        'be one object such as {"prompt": *}; fix or delete this line.'])
    assert_no_traceback(result)
    assert not (suite.path / "cache").exists(), "the file is checked before any model loads"


def test_empty_prompt_file_is_a_usage_error(suite: pytest.Pytester) -> None:
    (suite.path / "prompts.jsonl").write_text("")

    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", WORLDS[0]))

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"ERROR: {plugin.PROMPTS}: prompts.jsonl: the file is empty. Add prompt rows (*"])
    assert_no_traceback(result)


def test_unknown_category_is_a_usage_error_listing_the_categories(
        suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", WORLDS[0]),
                                        plugin.CATEGORIES, "alpha,zeta")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        f"ERROR: {plugin.CATEGORIES}: Unknown categories ['zeta'] in ['alpha', 'zeta']. "
        "Known: alpha, beta, gamma. Choose from these names."])


# -- 4. verdicts on planted worlds --------------------------------------------------------------

def test_distinct_world_supports_distinct_directions(worlds: WorldsRun) -> None:
    verdict = worlds.verdict("distinct-directions", "synthetic:distinct")

    assert verdict["outcome"] == Outcome.SUPPORTED.value
    assert verdict["interval"][1] < verdict["threshold"]
    assert worlds.outcome_line("test_refusal_categories_have_distinct_directions",
                               "synthetic:distinct").split()[1] == "PASSED"


def test_shared_world_refutes_distinct_under_matched_control(worlds: WorldsRun) -> None:
    verdict = worlds.verdict("distinct-under-matched-control", "synthetic:shared")

    assert verdict["outcome"] == Outcome.REFUTED.value
    assert verdict["interval"][0] > verdict["threshold"]
    assert worlds.outcome_line("test_distinct_directions_survive_genre_matched_control",
                               "synthetic:shared").split()[1] == "FAILED"
    worlds.result.stdout.fnmatch_lines([
        "REFUTED: mean noise-corrected between-category cosine, matched control * < 0.900 "
        "(n=3) -> refuted: *"])


def test_null_world_leaves_every_claim_inconclusive_for_lack_of_refusal(
        worlds: WorldsRun) -> None:
    null = [v for v in worlds.report["verdicts"] if v["model"] == "synthetic:null"]

    assert {v["test"].split("::")[1].split("[")[0] for v in null} == worlds.claim_functions
    for verdict in null:
        assert verdict["outcome"] == Outcome.INCONCLUSIVE.value, verdict
        assert verdict["reason"].startswith("no measurable refusal: the model refused 0/"), verdict
    for function in worlds.claim_functions:
        assert worlds.outcome_line(function, "synthetic:null").split()[1] == "SKIPPED"
    worlds.result.stdout.fnmatch_lines(
        ["SKIPPED [[]1[]] *: INCONCLUSIVE: * -> inconclusive: no measurable refusal: *"])


def test_strict_mode_fails_the_null_worlds_inconclusive_claims(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", "synthetic:null"),
                                        plugin.STRICT, plugin.MAX_PROMPTS, "32")

    result.assert_outcomes(failed=6)
    result.stdout.fnmatch_lines(
        ["INCONCLUSIVE (--refusal-strict): * -> inconclusive: no measurable refusal: *"] * 6)
    assert_no_traceback(result)


def test_run_exit_status_follows_the_verdicts(worlds: WorldsRun) -> None:
    outcomes = [v["outcome"] for v in worlds.report["verdicts"]]

    worlds.result.assert_outcomes(passed=outcomes.count("supported"),
                                  failed=outcomes.count("refuted"),
                                  skipped=outcomes.count("inconclusive"))
    assert worlds.result.ret == pytest.ExitCode.TESTS_FAILED  # the shared world refutes one


# -- 5. the summary ------------------------------------------------------------------------------

def test_summary_table_has_one_row_per_verdict(worlds: WorldsRun) -> None:
    lines = worlds.result.outlines
    expected = {(v["claim"], v["model"], v["outcome"].upper()) for v in worlds.report["verdicts"]}
    counts = {k: sum(v["outcome"] == k for v in worlds.report["verdicts"])
              for k in ("supported", "refuted", "inconclusive")}

    worlds.result.stdout.fnmatch_lines(["=* refusal_checks verdicts =*", "*Which claims hold*"])
    assert verdict_rows(lines) == expected
    assert len(expected) == len(worlds.claim_functions) * len(WORLDS)
    assert {("distinct-directions", "synthetic:distinct", "SUPPORTED"),
            ("distinct-under-matched-control", "synthetic:shared", "REFUTED"),
            ("distinct-directions", "synthetic:null", "INCONCLUSIVE")} <= expected
    worlds.result.stdout.fnmatch_lines([
        f"{counts['supported']} supported, {counts['refuted']} refuted, "
        f"{counts['inconclusive']} inconclusive"])


def test_summary_table_names_model_and_verdict_on_an_80_column_terminal(
        suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", "synthetic:null"),
                                        plugin.MAX_PROMPTS, "16")

    # At 80 columns the table gives way to one entry per claim, so ids never wrap.
    start = result.outlines.index("Which claims hold")
    entries = [line for line in result.outlines[start:]
               if line.startswith("INCONCLUSIVE ") and "[synthetic:null]" in line]
    assert len(entries) == 6, result.outlines
    assert all(len(line) <= 80 for line in entries), entries
    ids = {line.split()[1] for line in entries}
    assert ids == {"stable-within-category", "distinct-directions",
                   "distinct-directions-paper-design", "more-than-one-direction",
                   "distinct-under-matched-control", "distinct-under-behaviour-control"}, entries


# -- 6. the JSON report ----------------------------------------------------------------------------

def test_json_report_round_trips(worlds: WorldsRun) -> None:
    report = worlds.report

    assert report["schema"] == "refusal_checks/report/1"
    assert {"python", "refusal_checks", "numpy", "pytest"} <= set(report["versions"])
    assert report["versions"]["refusal_checks"] != "not installed"
    assert report["options"]["seed"] == 0
    assert report["options"]["prompts"] == ["prompts.jsonl"]
    assert report["options"]["system_prompt"] == "default"  # the protocol names it
    assert set(report["models"]) == set(WORLDS)
    assert len(report["verdicts"]) == len(worlds.claim_functions) * len(WORLDS)
    for record in report["verdicts"]:
        assert {"claim", "model", "outcome", "estimate", "interval", "threshold", "n",
                "says", "source", "protocol", "test", "duration"} <= set(record), record
        assert record["protocol"], record["claim"]  # every claim says what produced it
        verdict = Verdict.from_dict(record)
        assert verdict.outcome is Outcome(record["outcome"])
        assert verdict.seed == 0
        assert verdict.line() == record["line"]
        assert {k: record[k] for k in verdict.to_dict()} == verdict.to_dict()
        if record["claim"] == "stable-within-category" and verdict.n:
            # Its threshold moved after a result was seen: the old one's verdict stands beside.
            assert record["details"]["at_previous_threshold"]["threshold"] == 0.80, record


# -- 7. the activation cache -----------------------------------------------------------------------

CACHE_RUN = ("--model", WORLDS[0], plugin.MAX_PROMPTS, "32")


@dataclass
class ColdRun:
    cache: Path
    report: dict[str, Any]
    ret: int = 0


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory) -> ColdRun:
    """A first run on an empty cache; each test gets a copy of the cache it filled."""
    directory = tmp_path_factory.mktemp("cold")
    copy_suite(directory)
    result = run_pytest(directory, *suite_args(directory / "cache"), *CACHE_RUN,
                        "--refusal-json", "cold.json")
    # The cache is what these tests are about, not the verdicts: with the budget of
    # CACHE_RUN a claim may come out REFUTED (stable-within-category's 0.90 at 16/16
    # halves), which fails its test but is no error of the run.
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text_of(result)
    assert result.parseoutcomes().get("errors", 0) == 0, text_of(result)
    return ColdRun(directory / "cache", json.loads((directory / "cold.json").read_text()),
                   result.ret)


def _run_on_copy(pytester: pytest.Pytester, cold: ColdRun, *extra: str) -> tuple[
        pytest.RunResult, dict[str, Any]]:
    cache = pytester.path / "cache"
    if not cache.exists():
        shutil.copytree(cold.cache, cache)
    result = pytester.runpytest_subprocess(*suite_args(cache), *CACHE_RUN,
                                           "--refusal-json", "again.json", *extra)
    return result, json.loads((pytester.path / "again.json").read_text())


def test_second_run_is_served_from_the_activation_cache(suite: pytest.Pytester,
                                                        cold: ColdRun) -> None:
    result, warm = _run_on_copy(suite, cold)

    cold_cache = cold.report["models"]["synthetic:distinct"]["activation_cache"]
    warm_cache = warm["models"]["synthetic:distinct"]["activation_cache"]
    assert cold_cache["misses"] > 0 and cold_cache["hits"] == 0
    assert (warm_cache["misses"], warm_cache["hits"]) == (0, cold_cache["misses"])
    assert comparable(warm["verdicts"]) == comparable(cold.report["verdicts"])
    assert result.ret == cold.ret  # the same verdicts as the cold run, served from cache


def test_corrupted_cache_entry_warns_and_is_recomputed(suite: pytest.Pytester,
                                                       cold: ColdRun) -> None:
    shutil.copytree(cold.cache, suite.path / "cache")
    entries = sorted((suite.path / "cache" / "activations").rglob("*.npy"))
    assert entries
    entries[0].write_bytes(b"this is not a numpy file")

    result, again = _run_on_copy(suite, cold)

    assert result.ret == cold.ret
    result.stdout.fnmatch_lines(["*warnings summary*", "*CacheWarning: *"])
    cache = again["models"]["synthetic:distinct"]["activation_cache"]
    cold_misses = cold.report["models"]["synthetic:distinct"]["activation_cache"]["misses"]
    assert (cache["misses"], cache["hits"]) == (1, cold_misses - 1)
    assert comparable(again["verdicts"]) == comparable(cold.report["verdicts"])


def test_clear_cache_reports_how_many_entries_it_removed(suite: pytest.Pytester,
                                                         cold: ColdRun) -> None:
    cache = suite.path / "cache"
    shutil.copytree(cold.cache, cache)
    # Scores too: every judged reply is also scored (the score's agreement per condition).
    stored = sum(len(ArrayCache(cache, ns).entries())
                 for ns in ("activations", "replies", "scores"))
    assert stored > 0

    result, after = _run_on_copy(suite, cold, plugin.CLEAR_CACHE)

    result.stdout.fnmatch_lines([f"refusal_checks: cleared {stored} cached entries in {cache}"])
    assert after["models"]["synthetic:distinct"]["activation_cache"]["hits"] == 0
    assert comparable(after["verdicts"]) == comparable(cold.report["verdicts"])


# -- 8. JUnit XML ----------------------------------------------------------------------------------

def test_junit_xml_carries_each_verdict_as_a_property(worlds: WorldsRun) -> None:
    cases = worlds.junit.getroot().iter("testcase")
    seen = 0
    for case in cases:
        properties = [p for p in case.iter("property") if p.get("name") == VERDICT_PROPERTY]
        assert len(properties) == 1, ET.tostring(case)
        verdict = json.loads(properties[0].get("value", ""))
        status = ("failure" if case.find("failure") is not None
                  else "skipped" if case.find("skipped") is not None else "passed")
        assert status == {"supported": "passed", "refuted": "failure",
                          "inconclusive": "skipped"}[verdict["outcome"]]
        assert case.get("name", "").endswith(f"[{verdict['model']}]")
        seen += 1
    assert seen == len(worlds.claim_functions) * len(WORLDS)


# -- 9. a light plugin -----------------------------------------------------------------------------

def test_importing_the_plugin_imports_nothing_heavy() -> None:
    code = ("import sys, refusal_checks.plugin.hooks; "
            f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip() == "[]"


def test_a_run_without_claims_imports_nothing_heavy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(f"""
        import sys

        def test_light():
            assert sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules) == []
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

    result.assert_outcomes(passed=1)


# -- 10. several models --------------------------------------------------------------------------------

def test_every_claim_runs_once_per_model(worlds: WorldsRun) -> None:
    ids = {(m.group(1), m.group(2)) for line in worlds.result.outlines
           if (m := re.match(r"claims/test_geometry\.py::(\w+)\[(.+?)\] ", line))}

    assert len(worlds.claim_functions) == 6
    assert ids == {(f, model) for f in worlds.claim_functions for model in WORLDS}
