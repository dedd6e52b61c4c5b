"""The HTML report's replication section: every claim x every model, with the published
value beside ours where one exists (:mod:`refusal_checks.reports.replication`)."""

from __future__ import annotations

from typing import Any

from refusal_checks.reports.html.parts import esc, html_table
from refusal_checks.reports.replication import (cell_text, mark, replication, site_text,
                                                wanted)
from refusal_checks.reports.summary import number


def _published_cell(cell: dict[str, Any] | None) -> str:
    found = (cell or {}).get("published")
    if not found:
        return '<span class="note">none</span>'
    differs = (f'<div class="reason">measured differently: {esc(found["differs"])}</div>'
               if found.get("differs") else "")
    return (f'{esc(number(found["value"]))} <b>{esc(mark(found["inside"]))}</b> our interval'
            f'<div class="reason">{esc(found["source"])}</div>{differs}')


def replication_section(payload: dict[str, Any], models: list[str]) -> str:
    """The grid, or nothing for a one-model run without published values."""
    grid = payload.get("replication") or replication(payload)
    if not wanted(grid):
        return ""
    with_published = [m for m in grid["models"] if any(
        "published" in (grid["cells"][c].get(m) or {}) for c in grid["claims"])]
    header = ["claim"]
    for model in grid["models"]:
        header += [model, f"{model}: published"] if model in with_published else [model]
    rows = []
    for claim in grid["claims"]:
        row = [f"<b>{esc(claim)}</b>"]
        for model in grid["models"]:
            cell = grid["cells"][claim].get(model)
            row.append(esc(cell_text(cell)))
            if model in with_published:
                row.append(_published_cell(cell))
        rows.append(row)
    sites = [[esc(model), esc(site_text(pair.get("ours"))),
              esc(site_text(pair.get("published")))]
             for model, pair in grid["selection"].items()]
    selection = (html_table(["model", "Arditi selection: ours", "published"], sites,
                            "replication-selection") if sites else "")
    return ('<h2 id="replication">Replication</h2><p>Each claim on each model; where a '
            "paper published the value for that model, it stands beside ours with whether "
            "it falls inside our 95% interval, and how the two measurements differ.</p>"
            f'{html_table(header, rows, "replication")}{selection}')
