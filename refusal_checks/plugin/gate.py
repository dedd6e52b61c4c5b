"""The release gate in a run (issue #6): a policy in pyproject.toml, an optional baseline.

Read at configure time (a bad policy or baseline is exit 4), evaluated at the end of the
run, where it sets the exit status, adds its properties to the JUnit XML and prints its
table. pytest and the standard library only at import; refusal_checks.gate.rules is stdlib only
too, so a project with a gate table pays nothing in runs without claims.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from refusal_checks.plugin.state import VERDICT_PROPERTY, RunState

# The run's options as the JSON report records them (the gate's notes compare them with
# the baseline's): plugin.py owns the option names, so it passes its reader in.
RunOptions = Callable[[pytest.Config], dict[str, Any]]


def configure_gate(config: pytest.Config, state: RunState, baseline_path: str | None,
                   run_options: RunOptions) -> None:
    """Read [tool.refusal_checks.gate] and --refusal-baseline now: a bad one is exit 4.

    refusal_checks.gate.rules is stdlib only at import, so this costs nothing in runs without a
    gate. Under pytest-xdist only the controller, which sees every verdict, evaluates it.

    Args:
        config: the run's config; its rootpath holds the pyproject.toml with the policy.
        state: the run's state, which the gate reads at the end and records its outcome in.
        baseline_path: --refusal-baseline, relative to the invocation folder, or None.
        run_options: reads the run's options off the config at the end of the run.
    """
    pyproject = Path(str(config.rootpath)) / "pyproject.toml"
    if not baseline_path and not pyproject.is_file():
        return
    from refusal_checks.gate.rules import GateError, Policy, load_baseline, read_policy

    try:
        policy = read_policy(pyproject)
        baseline = None
        if baseline_path:
            baseline = load_baseline(Path(config.invocation_params.dir)
                                     / Path(baseline_path).expanduser())
    except GateError as error:
        raise pytest.UsageError(str(error)) from None
    # Margins alone compare nothing: without a baseline or a required claim there is no
    # gate, and the run's exit status stays the tests' own.
    requires = policy is not None and (policy.require_supported or policy.require_not_supported)
    if (baseline is None and not requires) or hasattr(config, "workerinput"):
        return
    config.pluginmanager.register(GatePlugin(state, policy or Policy(), baseline, run_options),
                                  "refusal_checks_gate")


class GatePlugin:
    """Evaluates the release gate at the end of the run and sets the exit status.

    A policy alone applies only to runs that collected claims (so ``pytest tests/`` in a
    project with a gate table is untouched); with --refusal-baseline it always applies.
    Once the gate is evaluated the exit status follows the policy: a failed rule fails the
    run even when every test passed, and a claim test that failed only on its verdict
    (REFUTED, or INCONCLUSIVE under --refusal-strict) does not fail it unless the policy
    names that claim. Any other failure (an error, a failing non-claim test) still does.
    Test outcomes themselves (pass / fail / skip, JUnit) are unchanged.
    """

    def __init__(self, state: RunState, policy: Any, baseline: Any,
                 run_options: RunOptions) -> None:
        self.state, self.policy, self.baseline = state, policy, baseline
        self.run_options = run_options
        self.results: list[Any] | None = None
        self.notes: list[str] = []
        self.verdict_failures: list[str] = []
        self.other_failures = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed:
            return
        outcomes = [json.loads(value).get("outcome") for name, value in report.user_properties
                    if name == VERDICT_PROPERTY]
        if report.when == "call" and outcomes and outcomes[-1] in ("refuted", "inconclusive"):
            self.verdict_failures.append(report.nodeid)
        else:
            self.other_failures += 1

    # tryfirst: before the JSON report and the JUnit XML (written in their own
    # pytest_sessionfinish) so both carry the gate, and before the terminal summary.
    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        # Under pytest-xdist the workers' claims reach the controller at their end.
        state = self.state
        if self.baseline is None and not state.claims_collected and not state.verdicts:
            return
        from refusal_checks.gate import rules as gate
        from refusal_checks.gate import report as gate_report
        from refusal_checks.plugin.session import in_order

        self.results = gate.evaluate(self.policy, in_order(state.verdicts, state.order),
                                     state.model_info,
                                     state.models, baseline=self.baseline,
                                     collected=state.claims_collected)
        self.notes = gate.notes(self.baseline, state.model_info, state.models,
                                self.run_options(session.config))
        state.gate = gate_report.summary(self.results, self.policy, baseline=self.baseline,
                                         found_notes=self.notes)
        xml = _junit_xml(session.config)
        if xml is not None:
            for name, value in gate_report.junit_properties(self.results, self.policy):
                xml.add_global_property(name, value)
        # In collection order: under pytest-xdist reports arrive in any order.
        state.gate["verdict_failures"] = in_order(self.verdict_failures, state.order)
        status = session.exitstatus
        if not state.gate["passed"] and status in (
                pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        elif (state.gate["passed"] and status == pytest.ExitCode.TESTS_FAILED
              and self.verdict_failures and not self.other_failures):
            session.exitstatus = pytest.ExitCode.OK

    @pytest.hookimpl(trylast=True)  # after the verdict table
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.results is None:
            return
        from refusal_checks.gate.report import render

        terminalreporter.section("refusal_checks gate")
        text = render(self.results, self.policy, self.notes,
                      width=terminalreporter.config.get_terminal_writer().fullwidth,
                      color=terminalreporter.config.get_terminal_writer().hasmarkup)
        for line in text.rstrip("\n").splitlines():
            terminalreporter.write_line(line)
        if self.state.gate and self.state.gate["passed"] and self.verdict_failures:
            n = len(self.verdict_failures)
            terminalreporter.write_line(
                f"{n} claim test{'s' if n > 1 else ''} failed on {'their' if n > 1 else 'its'} "
                "verdict only; the policy does not make "
                f"{'them release conditions' if n > 1 else 'it a release condition'} (list a "
                "claim under require_supported to make it one), so "
                + ("the exit status is 0" if not self.other_failures
                   else "only the other failures set the exit status"))


def _junit_xml(config: pytest.Config) -> Any:
    """pytest's JUnit XML writer when --junitxml is on, else None.

    Found among the registered plugins by the method the public ``record_testsuite_property``
    fixture hands out (``add_global_property``): the gate is decided at session end, after
    every fixture, and pytest has no public handle on the writer for that moment.
    """
    for plugin in config.pluginmanager.get_plugins():
        if callable(getattr(plugin, "add_global_property", None)):
            return plugin
    return None
