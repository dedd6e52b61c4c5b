"""Verdict records -> a rich table (as text) and a JSON report. Never prints by itself."""

from __future__ import annotations

import io
import platform
import time
from importlib import metadata
from typing import Any

from refusal_checks.reports.schema import SCHEMA

STYLE = {"supported": "bold green", "refuted": "bold red", "inconclusive": "bold yellow"}


def number(x: Any) -> str:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return str(x)
    if value != value:
        return "nan"
    return f"{value:.3g}" if abs(value) >= 100 or (0 < abs(value) < 0.01) else f"{value:.2f}"


def estimate_text(estimate: Any, low: Any, high: Any) -> str:
    """``value [low, high]``, or ``not measured`` for a verdict that measured nothing
    (e.g. a control with no selected direction to copy) rather than ``nan [nan, nan]``."""
    if number(estimate) == "nan":
        return "not measured"
    return f"{number(estimate)} [{number(low)}, {number(high)}]"


def rows(verdicts: list[dict[str, Any]]) -> list[list[str]]:
    """One row per verdict: claim, model, verdict, estimate [interval], threshold, n, paper."""
    table = []
    for v in verdicts:
        lo, hi = v["interval"]
        verdict = v["outcome"].upper()
        robust = v.get("robustness")
        if robust and robust.get("checks"):
            verdict += f" ({'fragile' if robust['fragile'] else 'robust'} " \
                       f"{robust['same']}/{robust['checks']})"
        table.append([
            v.get("claim", "?"), v.get("model", "?"), verdict,
            estimate_text(v["estimate"], lo, hi),
            f"{v['comparison']} {number(v['threshold'])}", str(v["n"]), v.get("paper", ""),
        ])
    return table


def _table_width(cells: list[list[str]]) -> int:
    """Columns a rich table with these cells needs: each column's widest cell + borders."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return sum(widths) + 3 * len(widths) + 1


def _list_lines(verdicts: list[dict[str, Any]], width: int) -> list[str]:
    """One entry per claim for narrow output: the verdict and id on one line, numbers below.

    Claim ids never break: a reader greps CI logs for them.
    """
    lines = ["Which claims hold"]
    for claim, model, verdict, value, needs, n, *_ in rows(verdicts):
        head = f"{verdict:<12} {claim}"
        if len(head) + len(model) + 4 <= width:
            lines.append(f"{head}  [{model}]")
        else:
            lines += [head, f"{'':12} [{model}]"]
        lines.append(f"{'':12} {value} {needs}  n={n}")
    return lines


def render_table(verdicts: list[dict[str, Any]], *, width: int = 120, color: bool = False) -> str:
    """The end-of-run summary as text (rich renders it; the caller prints it).

    Wide output is a table; the paper's figure, then n, are dropped as the width shrinks.
    When even the five main columns do not fit (80-column CI logs), every claim gets a line
    of its own instead, so claim ids never wrap. Everything stays in the JSON report.
    """
    from rich.console import Console
    from rich.table import Table

    table_rows = rows(verdicts)
    columns = [("claim", {"no_wrap": True}), ("model", {"no_wrap": True}),
               ("verdict", {"no_wrap": True}), ("value [95% CI]", {"no_wrap": True}),
               ("needs", {"no_wrap": True}), ("n", {"justify": "right", "no_wrap": True}),
               ("paper", {"overflow": "fold", "ratio": 1})]
    header = [name for name, _ in columns]

    def needed(k: int) -> int:
        return _table_width([header[:k]] + [r[:k] for r in table_rows])

    # The paper column folds, so it joins once 12 columns are left for it.
    keep = (7 if width >= 130 and needed(6) + 15 <= width else
            6 if needed(6) <= width else 5 if needed(5) <= width else 0)
    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 40), force_terminal=color,
                      color_system="standard" if color else None, highlight=False)
    if keep:
        table = Table(title="Which claims hold", show_lines=False, expand=False)
        for name, kw in columns[:keep]:
            table.add_column(name, **kw)
        for row, v in zip(table_rows, verdicts):
            row[2] = f"[{STYLE.get(v['outcome'], '')}]{row[2]}[/]"
            table.add_row(*row[:keep])
        console.print(table)
    else:
        for line in _list_lines(verdicts, width):
            console.print(line, highlight=False, markup=False)
    statistics = dict.fromkeys(
        f"{v.get('claim')}: {v['statistic']}"
        + (f" [protocol: {v['protocol']}]" if v.get("protocol") else "") for v in verdicts)
    for line in statistics:
        console.print(f"  {line}", highlight=False, markup=False)
    reasons = [f"{v.get('claim')} [{v.get('model')}]: {v['reason']}" for v in verdicts
               if v["outcome"] == "inconclusive"]
    for line in reasons:
        console.print(f"  inconclusive: {line}", highlight=False, markup=False)
    for line in _notes(verdicts):
        console.print(f"  {line}", highlight=False, markup=False)
    counts = {k: sum(v["outcome"] == k for v in verdicts) for k in STYLE}
    console.print(", ".join(f"{n} {k}" for k, n in counts.items()), highlight=False)
    return buffer.getvalue()


def _notes(verdicts: list[dict[str, Any]]) -> list[str]:
    """Caveats, behaviour-control counts and the stage a staged probe reached, of verdicts
    whose reason is not printed already (INCONCLUSIVE reasons carry all three)."""
    lines = []
    for v in verdicts:
        details = v.get("details")
        where = f"{v.get('claim')} [{v.get('model')}]"
        previous = details.get("at_previous_threshold") if isinstance(details, dict) else None
        if isinstance(previous, dict):  # a threshold changed last release (docs/thresholds.md)
            lines.append(f"threshold changed: {where}: at the previous threshold "
                         f"{number(previous.get('threshold'))} (changed "
                         f"{previous.get('changed')}, CHANGELOG.md) it reads "
                         f"{str(previous.get('outcome')).upper()}")
        if v["outcome"] == "inconclusive" or not isinstance(details, dict):
            continue
        counts = details.get("behaviour_counts")
        if isinstance(counts, dict):
            text = ", ".join(f"{c} {n.get('refused')}/{n.get('answered')}"
                             + (" (left out)" if c in details.get("left_out", []) else "")
                             for c, n in counts.items() if isinstance(n, dict))
            lines.append(f"{where}: refused/answered per category: {text}")
        if details.get("caveat"):
            lines.append(f"caveat: {where}: {details['caveat']}")
        if details.get("counts_note"):  # the oracle claims' refused/answered counts
            lines.append(f"{where}: {details['counts_note']}")
        staged = details.get("staged")
        if isinstance(staged, dict) and staged.get("stages", 1) > 1:
            lines.append(f"staged: {where}: stage {staged['stage']} of {staged['stages']} "
                         f"({staged.get('label', '')})")
    return lines


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("refusal_checks", "torch", "transformers", "nnsight", "numpy", "pytest"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def json_report(verdicts: list[dict[str, Any]], models: dict[str, dict[str, Any]], *,
                options: dict[str, Any], timings: dict[str, float], argv: list[str],
                cwd: str) -> dict[str, Any]:
    """The --refusal-json payload (schema version 1)."""
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "platform": platform.platform(),
        "options": options,
        "models": models,
        "timings": timings,
        "command": {"argv": argv, "cwd": cwd},
        "verdicts": [{k: v for k, v in record.items() if not k.startswith("_")}
                     for record in verdicts],
    }


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
HEATMAP_LEGEND = ("cell = first decimal of the noise-corrected cosine (6 = 0.6x); "
                  "- below 0; + 1.0 or more; . diagonal")


def _heat_cell(value: Any) -> str:
    try:
        c = float(value)
    except (TypeError, ValueError):
        return "?"
    if c != c:
        return "?"
    return "-" if c < 0 else "+" if c >= 1 else str(int(c * 10))


def _heat_block(model: str, details: dict[str, Any], label_width: int) -> list[str]:
    categories = [str(c) for c in details["categories"]]
    matrix = details["disattenuated_cosines"]
    k = len(categories)
    lines = [f"{model}", f"{details.get('control', '?')}, layer {details.get('layer', '?')}",
             " " * (label_width + 3) + " ".join(_LETTERS[:k])]
    for i, name in enumerate(categories):
        cells = " ".join("." if i == j else _heat_cell(matrix[i][j]) for j in range(k))
        lines.append(f"{_LETTERS[i]} {name[:label_width]:<{label_width}} {cells}")
    # Titles may use up to 38 columns (two blocks side by side fit 80), matrix rows all.
    width = max(max(len(line) for line in lines[2:]), min(38, max(map(len, lines[:2]))))
    return [line[:width].ljust(width) for line in lines]


def render_heatmap(verdicts: list[dict[str, Any]], *, width: int = 80) -> str:
    """A compact text heatmap of the noise-corrected between-category cosines.

    One block per (model, control) among the verdicts that carry a matrix, placed side by
    side while they fit in ``width`` columns; plain ASCII, no colour. Empty when no
    verdict has a matrix (or more than 52 categories, which no letter code can label).
    """
    blocks: dict[tuple[str, str], dict[str, Any]] = {}
    for v in verdicts:
        details = v.get("details")
        if (isinstance(details, dict) and "disattenuated_cosines" in details
                and 2 <= len(details.get("categories", [])) <= len(_LETTERS)):
            blocks.setdefault((str(v.get("model")), str(details.get("control"))), details)
    if not blocks:
        return ""
    label_width = 12
    rendered = [_heat_block(model, details, label_width) for (model, _), details in blocks.items()]
    gap = "  "
    rows: list[list[list[str]]] = [[]]
    for block in rendered:
        used = sum(len(b[0]) + len(gap) for b in rows[-1])
        if rows[-1] and used + len(block[0]) > width:
            rows.append([])
        rows[-1].append(block)
    lines = ["", "Between-category cosines (noise-corrected)"]
    for row in rows:
        height = max(len(b) for b in row)
        for index in range(height):
            lines.append(gap.join(b[index] if index < len(b) else " " * len(b[0])
                                  for b in row).rstrip())
        lines.append("")
    lines.append(HEATMAP_LEGEND if len(HEATMAP_LEGEND) <= width else
                 "cell = cosine's first decimal; - < 0; + >= 1; . diagonal")
    return "\n".join(line[:width] for line in lines) + "\n"
