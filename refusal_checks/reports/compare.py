"""Compare two --refusal-json reports claim by claim (``python -m refusal_checks compare``).

Built for questions of the form "does this change of run settings change any answer?":
float32 against bfloat16, one torch version against another, a CPU run against a GPU run.
Two runs of one claim *agree* when

- they reach the same outcome (SUPPORTED / REFUTED / INCONCLUSIVE), and
- their estimates differ by at most ``SHIFT_SHARE`` of the first report's interval width.

The second rule asks that the change moves the estimate by much less than the sampling
uncertainty the verdict already carries: a shift of a quarter of the interval width moves
either bound by a quarter of the width, which cannot flip a verdict unless the bound was
already within that distance of the threshold, and then the outcome rule catches it.
Records are matched on (claim, model name, test id); a claim found in only one report is
listed, never silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SHIFT_SHARE = 0.25


@dataclass(frozen=True)
class Row:
    """One claim on one model in both reports."""

    key: tuple[str, str, str]
    first: dict[str, Any] | None
    second: dict[str, Any] | None

    @property
    def label(self) -> str:
        claim, model, test = self.key
        return claim if claim == test else f"{claim} ({test})"

    def shift(self) -> float | None:
        """|estimate difference| as a share of the first report's interval width."""
        if self.first is None or self.second is None:
            return None
        try:
            a, b = float(self.first["estimate"]), float(self.second["estimate"])
            lo, hi = (float(x) for x in self.first["interval"])
        except (KeyError, TypeError, ValueError):
            return None
        if not all(math.isfinite(x) for x in (a, b, lo, hi)):
            return None
        width = hi - lo
        if width <= 0:
            return 0.0 if a == b else math.inf
        return abs(a - b) / width

    def agrees(self) -> bool:
        if self.first is None or self.second is None:
            return False
        if self.first.get("outcome") != self.second.get("outcome"):
            return False
        shift = self.shift()
        return shift is None or shift <= SHIFT_SHARE


def _key(record: dict[str, Any]) -> tuple[str, str, str]:
    claim = str(record.get("claim", "?"))
    test = str(record.get("test", claim)).split("::")[-1]
    return claim, str(record.get("model", "?")), test


def pair(first: dict[str, Any], second: dict[str, Any]) -> list[Row]:
    """Rows for every claim in either report, in the first report's order."""
    a = {_key(r): r for r in first.get("verdicts", [])}
    b = {_key(r): r for r in second.get("verdicts", [])}
    keys = list(a) + [k for k in b if k not in a]
    return [Row(k, a.get(k), b.get(k)) for k in keys]


def _cell(record: dict[str, Any] | None) -> str:
    if record is None:
        return "-"
    try:
        lo, hi = (float(x) for x in record["interval"])
        return f"{record['outcome']} {float(record['estimate']):.3f} [{lo:.3f}, {hi:.3f}]"
    except (KeyError, TypeError, ValueError):
        return str(record.get("outcome", "?"))


def render(rows: list[Row], first_name: str, second_name: str) -> str:
    """A plain-text table (one line a claim) and the count of agreements."""
    lines = [f"{'claim':<46} {first_name:<34} {second_name:<34} shift  agree"]
    for row in rows:
        shift = row.shift()
        shown = "-" if shift is None else ("inf" if math.isinf(shift) else f"{shift:.2f}")
        lines.append(f"{row.label[:46]:<46} {_cell(row.first)[:34]:<34} "
                     f"{_cell(row.second)[:34]:<34} {shown:>5}  "
                     f"{'yes' if row.agrees() else 'NO'}")
    agreed = sum(r.agrees() for r in rows)
    lines.append(f"{agreed} of {len(rows)} claims agree (same outcome, estimate shift <= "
                 f"{SHIFT_SHARE} of the first interval's width)")
    return "\n".join(lines) + "\n"
