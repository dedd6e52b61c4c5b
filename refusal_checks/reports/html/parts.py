"""Small HTML pieces every section of the report page uses: escaping, tables, embedded
figures (or a note when one cannot be drawn), intervals, and finding a claim's records."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from html import escape
from typing import Any

from refusal_checks.reports.summary import estimate_text


def esc(value: Any) -> str:
    return escape(str(value), quote=True)


def html_table(header: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table; ``header`` is escaped, cells are HTML already (escape before passing)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{esc(cls)}"><tr>{head}</tr>{body}</table>'


def _image(png: bytes, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">{cap}</figure>'


def figure_or_note(make: Callable[[], bytes], alt: str, caption: str = "") -> str:
    """A figure, or a visible note when its data cannot be drawn (never a crashed report)."""
    try:
        return _image(make(), alt, caption)
    except (ValueError, TypeError, KeyError, IndexError) as error:
        return f'<p class="note">{esc(alt)}: cannot draw ({esc(error)}).</p>'


def interval_text(record: dict[str, Any]) -> str:
    lo, hi = record["interval"]
    return estimate_text(record["estimate"], lo, hi)


def models_of(payload: dict[str, Any]) -> list[str]:
    names = [v["model"] for v in payload["verdicts"]] + list(payload.get("models") or {})
    return list(dict.fromkeys(str(n) for n in names))


def by_claim(payload: dict[str, Any], claim_filter: Callable[[dict], bool]
              ) -> dict[str, dict[str, Any]]:
    """model -> first verdict record whose details pass ``claim_filter``."""
    found: dict[str, dict[str, Any]] = {}
    for record in payload["verdicts"]:
        details = record.get("details")
        if isinstance(details, dict) and claim_filter(record) and record["model"] not in found:
            found[record["model"]] = record
    return found
