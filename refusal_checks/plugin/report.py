"""What the plugin shows and writes at the end of a run.

The terminal summary (verdict table, cosine heatmap, the cheap score's agreement and the
damage per model, the cost profile) and the --refusal-json / --refusal-html reports. The
renderers live in the library (report, cost, html_report, ...), imported only when a run
has verdicts to show. pytest and the standard library only at import.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from refusal_checks.plugin.state import RunState


def terminal_summary(writer: Any, state: RunState, *, worker: bool, labels_path: str | None,
                     seed: int) -> None:
    """Print the run's verdicts, observations and cost profile to the terminal.

    Args:
        writer: pytest's terminal reporter.
        state: the run's state, with at least one verdict.
        worker: True in a pytest-xdist worker, whose observations the controller reports.
        labels_path: --refusal-labels, or None.
        seed: --refusal-seed, the seed of the score validation's bootstrap.
    """
    from refusal_checks.reports.summary import render_heatmap, render_table

    terminal = writer.config.get_terminal_writer()
    writer.section("refusal_checks verdicts")
    text = render_table(state.verdicts, width=terminal.fullwidth, color=terminal.hasmarkup)
    for line in text.rstrip("\n").splitlines():
        writer.write_line(line)
    for line in render_heatmap(state.verdicts, width=terminal.fullwidth).rstrip().splitlines():
        writer.write_line(line)
    if not worker:
        for line in _observation_lines(state, labels_path, seed):
            writer.write_line(line)
        _replication_section(writer, state)
    profiles = {model: ledger.profile() for model, ledger in state.costs.items()
                if ledger.phases}
    if profiles:
        from refusal_checks.core.cost import render

        writer.section("refusal_checks cost profile")
        text = render(profiles, width=terminal.fullwidth, color=terminal.hasmarkup)
        for line in text.rstrip("\n").splitlines():
            writer.write_line(line)


def _replication_section(writer: Any, state: RunState) -> None:
    """The claim x model grid beside published values (refusal_checks.reports.replication),
    for a run of several models or of a model with published values."""
    from refusal_checks.reports.replication import render_text, replication, wanted

    grid = replication({"verdicts": state.verdicts, "models": state.model_info})
    if not wanted(grid):
        return
    writer.section("refusal_checks replication")
    for line in render_text(grid).rstrip("\n").splitlines():
        writer.write_line(line)


def write_reports(session: pytest.Session, exitstatus: int, state: RunState, *,
                  json_path: str | None, html_path: str | None, options: dict[str, Any],
                  labels_path: str | None, seed: int, json_option: str = "--refusal-json",
                  html_option: str = "--refusal-html") -> None:
    """Write the JSON report and the HTML page (either may be None) of a finished run.

    Args:
        session: the finished session; the verdict collector says whether it is complete.
        exitstatus: the session's exit status.
        state: the run's state, with the workers' records merged in.
        json_path: --refusal-json, or None.
        html_path: --refusal-html, or None.
        options: the options that change the numbers, as the report records them.
        labels_path: --refusal-labels, or None.
        seed: --refusal-seed.
        json_option: the JSON report's option name, for a message about it.
        html_option: the HTML report's option name, for a message about it.
    """
    from refusal_checks.reports.summary import json_report
    from refusal_checks.plugin.session import in_order

    config = session.config
    collector = config.pluginmanager.get_plugin("refusal_checks_verdicts")
    incomplete = collector.completeness.reason(session, exitstatus) if collector else None
    timings = {"wall_seconds": time.time() - state.started, **state.timings}
    for model, ledger in state.costs.items():
        if ledger.phases:
            state.model_info.setdefault(model, {})["cost_profile"] = ledger.profile()
    summarise_observations(state, labels_path, seed)
    payload = json_report(in_order(state.verdicts, state.order), state.model_info,
                          options=options, timings=timings, argv=sys.argv, cwd=os.getcwd())
    from refusal_checks.reports.replication import replication

    payload["replication"] = replication(payload)
    payload["complete"] = incomplete is None
    if incomplete:
        payload["incomplete"] = incomplete
    if state.gate is not None:
        payload["gate"] = state.gate
    text = json.dumps(payload, indent=2, sort_keys=True)
    if html_path:
        # From the serialised payload, so the page equals a re-render of the JSON report.
        _write_html(session, json.loads(text), Path(html_path), state, html_option)
    if json_path:
        from refusal_checks.core.files import write_text_atomic

        try:
            write_text_atomic(json_path, text)
        except OSError as error:
            _unwritten(session, json_option, json_path, error, state)


def summarise_observations(state: RunState, labels_path: str | None, seed: int) -> None:
    """Each model's ``score_validation`` and ``damage`` sections from what the run observed
    (once; the terminal summary and the reports both read them)."""
    for model, records in state.observations.items():
        info = state.model_info.setdefault(model, {})
        if not records or "damage" in info:
            continue
        from refusal_checks.measure import damage
        from refusal_checks.measure import score_validation

        labels = (score_validation.read_run_labels(labels_path, str(info.get("fingerprint")))
                  if labels_path else None)
        info["score_validation"] = score_validation.summarise(
            records, seed=seed, labels=labels, labels_source=str(labels_path or ""))
        info["damage"] = damage.summarise(records)
        if info.get("judge_validation") and info.get("judge"):
            from refusal_checks.verdicts.corrected_conditions import corrected_by_condition

            info["corrected_rates"] = corrected_by_condition(
                records, info["judge_validation"], str(info["judge"]), seed=seed)


def _observation_lines(state: RunState, labels_path: str | None, seed: int) -> list[str]:
    """Terminal lines: the cheap score's agreement per condition and the damage, per model."""
    summarise_observations(state, labels_path, seed)
    from refusal_checks.measure import damage
    from refusal_checks.measure import score_validation

    lines = []
    for model in state.observations:
        info = state.model_info.get(model, {})
        from refusal_checks.verdicts.corrected_conditions import summary_line as corrected_line

        for line in (score_validation.summary_line(model, info.get("score_validation") or {}),
                     damage.summary_line(model, info.get("damage") or {}),
                     corrected_line(model, info.get("corrected_rates") or {})):
            if line:
                lines.append(line)
    return lines


def _write_html(session: pytest.Session, payload: dict[str, Any], path: Path,
                state: RunState, option: str) -> None:
    """Write --refusal-html (atomically) and say where. A disk that refuses it fails the
    run as the JSON report's does (:func:`_unwritten`); a payload the page cannot show
    is reported, not raised."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    try:
        from refusal_checks.reports.html.page import write_html

        write_html(payload, path)
        message = f"refusal_checks: HTML report written to {path}"
    except OSError as error:
        _unwritten(session, option, str(path), error, state)
        return
    except (ImportError, ValueError) as error:
        message = f"refusal_checks: could not write the HTML report {path}: {error}"
    if reporter is not None:
        reporter.write_line(message)


# What to do about a report that the disk refused, by errno.
_REPORT_FIX = {
    errno.ENOSPC: "Free space on that disk, or pass a path on another disk",
    errno.EDQUOT: "Free space within your quota, or pass a path on another disk",
    errno.EROFS: "Pass a path on a disk that is mounted read-write",
}


def _unwritten(session: pytest.Session, option: str, path: str, error: OSError,
               state: RunState) -> None:
    """A report the disk refused at the end of the run (a disk that filled up, a mount that
    turned read-only since the start-up check): one message with the fix instead of a
    traceback, and exit status 4, so a job never passes without the report it asked for.
    The atomic write leaves the old report, if any, and no temporary file; what the run
    computed stays in the cache, so running again costs no model work."""
    fix = _REPORT_FIX.get(error.errno or 0, "Pass a file path in a folder you can write to")
    code = errno.errorcode.get(error.errno or 0)
    reason = f"{error.strerror}, {code}" if error.strerror and code else str(error)
    message = (f"ERROR: {option} {path}: could not write the report ({reason}). {fix}, "
               f"then run the same command again: the measurements this run cached in "
               f"{state.cache_dir} are reused, so the rerun costs no model work.")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, red=True, bold=True)
    else:
        print(message, file=sys.stderr)
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                              pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
