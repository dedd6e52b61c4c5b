"""A saved report's verdicts as the Markdown table the documentation shows.

docs/claims.md's table of the embedded Qwen is this module's output for the reference report
shipped beside it (docs/reference/), printed by ``python -m refusal_checks table REPORT``;
tests/unit/test_reference_table.py fails when the page and the report disagree, so the
numbers on the page are always those of a run, never typed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from refusal_checks.reports.summary import estimate_text, number


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def models_in(report: dict[str, Any]) -> list[str]:
    """The report's models, in the order their first verdict appears."""
    return list(dict.fromkeys(v["model"] for v in report["verdicts"]))


def verdict_table(report: dict[str, Any], model: str, *, why: bool = True) -> str:
    """One row per claim of ``model``: verdict, value [95% CI], what it needs, n, and why
    (``why=False``: without the reasons, README's compact table).

    Raises:
        ValueError: the report has no verdict of ``model`` (the message lists its models).
    """
    verdicts = [v for v in report["verdicts"] if v["model"] == model]
    if not verdicts:
        raise ValueError(f"the report has no verdict of {model!r}; its models: "
                         f"{', '.join(models_in(report)) or 'none'}")
    lines = ["| claim | verdict | value [95% CI] | needs | n |" + (" why |" if why else ""),
             "|---|---|---|---|---|" + ("---|" if why else "")]
    for v in verdicts:
        lo, hi = v["interval"]
        lines.append(f"| {v['claim']} | {v['outcome'].upper()} | "
                     f"{estimate_text(v['estimate'], lo, hi)} | "
                     f"{v['comparison']} {number(v['threshold'])} | {v['n']} |"
                     + (f" {_cell(v.get('reason', ''))} |" if why else ""))
    return "\n".join(lines) + "\n"


def tally(report: dict[str, Any], model: str) -> str:
    """``1 SUPPORTED, 8 REFUTED and 17 INCONCLUSIVE``: the model's verdicts counted."""
    counts = Counter(v["outcome"] for v in report["verdicts"] if v["model"] == model)
    return (f"{counts['supported']} SUPPORTED, {counts['refuted']} REFUTED and "
            f"{counts['inconclusive']} INCONCLUSIVE")
