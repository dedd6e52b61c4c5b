"""Gate results -> the terminal table (as text), the JSON entry, JUnit properties.

Never prints by itself; the plugin prints. Standard library at import; rich when rendering.
"""

from __future__ import annotations

import io
from typing import Any

from refusal_checks.gate.rules import Baseline, GateResult, gate_passed
from refusal_checks.gate.policy import FAIL, INCONCLUSIVE, PASS, REQUIRE_SUPPORTED, Policy


def summary(results: list[GateResult], policy: Policy, *, baseline: Baseline | None,
            found_notes: list[str]) -> dict[str, Any]:
    """The ``gate`` entry of the JSON report."""
    return {
        "passed": gate_passed(results, policy),
        "policy": policy.to_dict(),
        "baseline": baseline.path if baseline else None,
        "notes": list(found_notes),
        "results": [result.to_dict(policy) for result in results],
    }


def junit_properties(results: list[GateResult], policy: Policy) -> list[tuple[str, str]]:
    """Testsuite-level JUnit properties: the gate's outcome, then one per rule and model."""
    props = [("refusal_gate", "passed" if gate_passed(results, policy) else "failed")]
    for r in results:
        props.append((f"refusal_gate {r.rule} {r.subject} [{r.model}]",
                      f"{r.status} (counts as {r.counts_as(policy)}): {r.message}"))
    return props


_STYLE = {PASS: "bold green", FAIL: "bold red", INCONCLUSIVE: "bold yellow"}
# Changed prompts listed per rule in the terminal; the JSON and HTML reports list them all.
SHOWN_PROMPTS = 3
_PROMPT_CHARS = 70


def changed_lines(result: GateResult, shown: int = SHOWN_PROMPTS) -> list[str]:
    """The first ``shown`` prompts whose outcome changed between the runs, one line each."""
    changed = result.extra.get("changed") or []
    lines = []
    for item in changed[:shown]:
        text = " ".join(str(item.get("text") or "").split()) or "(text not recorded)"
        if len(text) > _PROMPT_CHARS:
            text = text[:_PROMPT_CHARS - 3] + "..."
        how = "refused before, not now" if item.get("before") else "refused now, not before"
        lines.append(f"    - {how}: {text} [{item.get('digest', '?')}]")
    if len(changed) > shown:
        lines.append(f"    ... and {len(changed) - shown} more (all in --refusal-json and "
                     "--refusal-html)")
    return lines



def render(results: list[GateResult], policy: Policy, found_notes: list[str], *,
           width: int = 120, color: bool = False) -> str:
    """The gate's terminal section as text (rich renders it; the caller prints it)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Release gate", expand=False)
    # Model and result never wrap; the rule folds; under 100 columns (piped CI logs) the
    # value column goes: the lines under the table carry every number.
    wide = width >= 100
    table.add_column("rule", overflow="fold", min_width=20, ratio=1)
    table.add_column("model", no_wrap=True)
    table.add_column("result", no_wrap=True)
    if wide:
        table.add_column("value [CI]", no_wrap=True)
    for r in results:
        if r.margin is not None:
            rule = f"{r.rule} {r.margin:g}"
        else:
            rule = f"{r.subject} {'must hold' if r.rule == REQUIRE_SUPPORTED else 'must not hold'}"
        if r.change is not None and r.interval is not None:
            value = f"{r.change:+.2f} [{r.interval[0]:+.2f}, {r.interval[1]:+.2f}]"
        elif "outcome" in r.extra:
            value = r.extra["outcome"].upper()
            if r.current is not None and r.interval is not None:
                value += f" {r.current:.2f} [{r.interval[0]:.2f}, {r.interval[1]:.2f}]"
        else:
            value = "-"
        shown = r.status.upper()
        if r.status == INCONCLUSIVE:
            shown += f" -> {r.counts_as(policy)}"
        table.add_row(rule, r.model, f"[{_STYLE[r.status]}]{shown}[/]", *([value] if wide else []))
    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 80), force_terminal=color,
                      color_system="standard" if color else None, highlight=False)
    console.print(table)
    for r in results:
        # One unwrapped line per rule, so a CI log can be searched for it.
        console.print(f"  {r.status}: {r.rule} {r.subject} [{r.model}]: {r.message}",
                      markup=False, highlight=False, soft_wrap=True)
        for line in changed_lines(r):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    for note in found_notes:
        console.print(f"  note: {note}", markup=False, highlight=False, soft_wrap=True)
    failing = [r for r in results if r.counts_as(policy) == FAIL]
    if not results:
        console.print("gate PASSED: no rules apply (no claims required, no baseline)")
    elif failing:
        console.print(f"gate FAILED: {len(failing)} of {len(results)} rules fail "
                      f"(inconclusive = \"{policy.inconclusive}\"); exit status 1",
                      markup=False, highlight=False)
    else:
        console.print(f"gate PASSED: {len(results)} rules pass "
                      f"(inconclusive = \"{policy.inconclusive}\")", markup=False,
                      highlight=False)
    return buffer.getvalue()
