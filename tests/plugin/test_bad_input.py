"""Bad input and broken runs, tried as a new user would: each gets one clear message.

Every start-up problem is a usage error (exit 4) that names the value and the fix, before
any model work (the cache folder stays uncreated). A run that stops early leaves a report
marked incomplete, which the release gate refuses as a baseline. These tests may run as
root, which no file permission stops: unreadable and unwritable places are made from
what stops root too (a folder under a regular file), or the operating system's answer
is planted in the pytest process (``-p deny_read``).
"""

from __future__ import annotations

import json
from fnmatch import fnmatch

import pytest

from refusal_checks.plugin import hooks as plugin
from refusal_checks.plugin.session import MIN_PROMPT_BUDGET
from refusal_checks.models.synthetic import PRESETS
from tests.plugin.test_plugin import WIDE, assert_no_traceback, copy_suite, suite_args, text_of

WORLD = "synthetic:distinct"
BUDGET = (plugin.MAX_PROMPTS, "16")  # 16 prompts a set: every claim computes, in ~1 s


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("COLUMNS", WIDE)
    monkeypatch.setenv("PYTHONIOENCODING", "utf-8")
    monkeypatch.delenv("REFUSAL_CHECKS_CACHE", raising=False)
    copy_suite(pytester.path, per_category=24)
    return pytester


def assert_usage_error(result: pytest.RunResult, suite: pytest.Pytester, line: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, text_of(result)
    result.stderr.fnmatch_lines([line])
    assert_no_traceback(result)
    assert not (suite.path / "cache").exists(), "nothing runs after a usage error"


# -- start-up checks ---------------------------------------------------------------------------

def test_unreadable_prompt_file_is_a_usage_error_naming_file_and_fix(
        suite: pytest.Pytester) -> None:
    # What open() raises for a file without read permission, planted before configure.
    (suite.path / "deny_read.py").write_text(
        "import pathlib\n"
        "real = pathlib.Path.read_bytes\n"
        "def read_bytes(self):\n"
        "    if self.name == 'prompts.jsonl':\n"
        "        raise PermissionError(13, 'Permission denied', str(self))\n"
        "    return real(self)\n"
        "pathlib.Path.read_bytes = read_bytes\n")

    result = suite.runpytest_subprocess("-p", "deny_read", *suite_args(suite.path / "cache",
                                                                       WORLD))

    assert_usage_error(result, suite, (
        f"ERROR: {plugin.PROMPTS}: prompts.jsonl: cannot be read (Permission denied). Make it "
        "readable for this user (e.g. chmod a+r on the file, and a+x on its folders) or pass "
        "a readable copy."))


@pytest.mark.parametrize("budget", ["1", "0", str(MIN_PROMPT_BUDGET - 1)])
def test_a_prompt_budget_below_the_minimum_says_the_minimum_and_why(
        suite: pytest.Pytester, budget: str) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", WORLD),
                                        plugin.MAX_PROMPTS, budget)

    assert_usage_error(result, suite, (
        f"*argument {plugin.MAX_PROMPTS}: got {budget}, but at least {MIN_PROMPT_BUDGET} "
        "prompts per set are needed: each prompt set is split in halves *. Leave the option "
        "out to use every prompt."))


def test_the_minimum_prompt_budget_runs_every_claim_without_a_traceback(
        suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", WORLD),
                                        plugin.MAX_PROMPTS, str(MIN_PROMPT_BUDGET))

    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) == 0, text_of(result)
    assert sum(outcomes.get(k, 0) for k in ("passed", "failed", "skipped")) == 6  # geometry claims
    assert_no_traceback(result)  # failures are REFUTED verdicts, not errors


@pytest.mark.parametrize(("where", "env"), [
    ("option", {}), ("REFUSAL_CHECKS_CACHE", {"REFUSAL_CHECKS_CACHE": "{file}/cache"}),
    ("default", {"XDG_CACHE_HOME": "{file}"}),
])
def test_an_unwritable_cache_folder_is_a_usage_error_with_the_fix(
        suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, where: str,
        env: dict[str, str]) -> None:
    blocker = suite.path / "prompts.jsonl"  # a regular file: no folder can be made under it
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(file=blocker))
    args = suite_args(blocker / "cache", WORLD)
    if where != "option":
        at = args.index(plugin.CACHE_DIR)
        del args[at:at + 2]

    result = suite.runpytest_subprocess(*args)

    source = {"option": plugin.CACHE_DIR, "REFUSAL_CHECKS_CACHE": "REFUSAL_CHECKS_CACHE",
              "default": "the default location;*"}[where]
    assert_usage_error(result, suite, (
        f"ERROR: the refusal_checks cache * (from {source}) cannot be written ({blocker} is a "
        f"file, not a folder). Pass {plugin.CACHE_DIR} DIR, or set REFUSAL_CHECKS_CACHE, to a "
        "folder you can write to."))


@pytest.mark.parametrize("option", [plugin.JSON_REPORT, plugin.HTML_REPORT])
@pytest.mark.parametrize("target", ["prompts.jsonl/report.out", "claims"],
                         ids=["under-a-file", "a-folder"])
def test_an_unwritable_report_path_is_a_usage_error_before_the_run(
        suite: pytest.Pytester, option: str, target: str) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", WORLD), option, target)

    reason = ("*/prompts.jsonl is a file, not a folder" if target != "claims"
              else "*/claims is a folder, not a file")
    assert_usage_error(result, suite, (
        f"ERROR: {option} {target}: cannot write the report there ({reason}). Pass a file path "
        "in a folder you can write to."))


@pytest.mark.parametrize(("entry", "found"), [
    ('planted = { revision = "v1" }', "has no 'source'"),
    ('planted = { source = "" }', "has source ''"),
    ('planted = ""', "is '', not a model"),
])
def test_an_alias_without_a_source_is_a_usage_error_naming_alias_and_file(
        suite: pytest.Pytester, entry: str, found: str) -> None:
    suite.makepyprojecttoml(f"[tool.pytest.ini_options]\n\n[tool.refusal_checks.models]\n{entry}\n")

    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", "planted"))

    assert_usage_error(result, suite, (
        f"ERROR: [[]tool.refusal_checks.models[]] 'planted' in {suite.path / 'pyproject.toml'} "
        f'{found}: write  planted = "org/name"  or  planted = {{ source = "org/name", '
        'revision = "main" }  (a hub id, a local folder or .gguf file, or another alias).'))


@pytest.mark.parametrize(("spec", "what"), [
    ("distinkt", "synthetic preset 'distinkt' is unknown"),
    ("distinct,cos=high", "synthetic spec cos='high' is not a number"),
    ("distinct,coss=0.3", "synthetic spec part 'coss=0.3' is not key=value with a known key"),
    ("distinct,d=8", "synthetic d=8 is too small; need d >= 34 (2 x categories + 2)"),
])
def test_a_synthetic_spec_typo_is_one_usage_error_listing_the_valid_specs(
        suite: pytest.Pytester, spec: str, what: str) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", f"synthetic:{spec}"))

    assert_usage_error(result, suite, (
        f"ERROR: --model 'synthetic:{spec}': {what}. Valid specs: "
        f"synthetic:<preset>[[],key=value...[]] with a preset from {', '.join(PRESETS)} and keys "
        "from cos, signal, *; e.g. --model synthetic:distinct,cos=0.3"))


# -- runs that stop early ----------------------------------------------------------------------

STOPS = {
    "maxfail": ("test_h_stop.py", "def test_stop():\n    assert False\n", ["-x"],
                "stopped early: stopping after 1 failures"),
    "keyboard-interrupt": ("test_h_stop.py", "def test_stop():\n    raise KeyboardInterrupt\n",
                           [], "interrupted (KeyboardInterrupt*)"),
    "collection-error": ("test_h_stop.py", "def test_stop(:\n", [],
                         "1 error during collection: some claims never ran"),
}


@pytest.mark.parametrize("how", list(STOPS))
def test_a_run_that_stops_early_leaves_an_incomplete_report_the_gate_refuses(
        suite: pytest.Pytester, how: str) -> None:
    name, source, extra, reason = STOPS[how]
    (suite.path / "claims" / name).write_text(source)  # runs after test_geometry.py
    (suite.path / "claims" / "test_later.py").write_text("def test_later():\n    pass\n")
    cache = suite.path / "cache"

    stopped = suite.runpytest_subprocess(*suite_args(cache, WORLD), *BUDGET, *extra,
                                         "--refusal-json", "stopped.json")

    report = json.loads((suite.path / "stopped.json").read_text())
    assert report["complete"] is False, text_of(stopped)
    assert fnmatch(report["incomplete"], reason), report["incomplete"]
    if how != "collection-error":  # the claims before the stop did run
        # -x stops at the first failed test, which may be a REFUTED claim of the world
        # itself (stable-within-category at this budget); an interrupt comes after all six.
        assert report["verdicts"], text_of(stopped)
        if how == "keyboard-interrupt":
            assert len(report["verdicts"]) == 6
    gated = suite.runpytest_subprocess(*suite_args(cache, WORLD), *BUDGET,
                                       plugin.BASELINE, "stopped.json")
    assert gated.ret == pytest.ExitCode.USAGE_ERROR
    gated.stderr.fnmatch_lines([
        "ERROR: --refusal-baseline */stopped.json is the report of a run that did not finish "
        f"({reason}): its verdicts cover only part of the claims, so it cannot be a baseline. "
        "Make one with *"])
    assert_no_traceback(gated)


def test_a_run_that_ends_normally_is_marked_complete(suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", WORLD), *BUDGET,
                                        "-k", "distinct_directions", "--refusal-json", "r.json")

    report = json.loads((suite.path / "r.json").read_text())
    assert report["complete"] is True and "incomplete" not in report, text_of(result)
    # A -k selection is a finished run of what it chose: the four tests whose names hold
    # "distinct_directions" (the claim, its paper's design, matched twins, behaviour control).
    assert len(report["verdicts"]) == 4


def test_an_on_request_model_not_prepared_is_a_usage_error_naming_the_command(
        suite: pytest.Pytester) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", "gemma3-270m-base"))

    assert_usage_error(result, suite, (
        "ERROR: --model gemma3-270m-base: gemma3-270m-base is installed only on request and "
        f"is not prepared in {suite.path / 'cache' / 'models'}. Run: python -m refusal_checks "
        "prepare gemma3-270m-base *"))


@pytest.mark.parametrize(("value", "what"), [
    (" ", f"*{plugin.SYSTEM_PROMPT} is empty: pass 'default' (the chat template's own), 'none' "
          "(no system turn) or the system text."),
    ("none", f"*{plugin.SYSTEM_PROMPT} 'none': {WORLD} is a synthetic world with no chat "
             f"template to put a system prompt in; leave {plugin.SYSTEM_PROMPT} out for "
             "synthetic models."),
])
def test_a_system_prompt_that_cannot_be_rendered_is_a_usage_error(
        suite: pytest.Pytester, value: str, what: str) -> None:
    result = suite.runpytest_subprocess(*suite_args(suite.path / "cache", WORLD),
                                        plugin.SYSTEM_PROMPT, value)

    assert_usage_error(result, suite, what)
