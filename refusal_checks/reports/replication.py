"""The replication table: every claim x every model of a run, beside the published values.

:func:`replication` builds it from a report payload (its verdicts and models); the plugin
stores it in the JSON report (``replication``) and prints :func:`render_text` at the end of
a run with several models or with a model that has published values; the HTML page draws
it (:mod:`refusal_checks.reports.html.replication`) and ``python -m refusal_checks table
REPORT --replication`` prints :func:`render_markdown` for the README. A published value is
set beside ours only for the model it was measured on
(:mod:`refusal_checks.reports.published`), with whether it falls inside our 95% interval
and what differs between the two measurements.
"""

from __future__ import annotations

from typing import Any

from refusal_checks.reports.published import inside, published_for
from refusal_checks.reports.summary import estimate_text, number


def _models(payload: dict[str, Any]) -> list[str]:
    names = [str(v["model"]) for v in payload["verdicts"]]
    names += [str(m) for m in payload.get("models") or {}]
    return list(dict.fromkeys(names))


def _site(record: dict[str, Any], n_layers: Any) -> dict[str, Any] | None:
    """Our Arditi selection, from a single-direction verdict's details."""
    details = record.get("details")
    selection = details.get("selection") if isinstance(details, dict) else None
    if not isinstance(selection, dict):
        return None
    chosen = selection.get("selected")
    return {"layer": chosen["layer"] if chosen else None,
            "position": chosen["position"] if chosen else None,
            "n_layers": n_layers, "outcome": selection.get("protocol", ""),
            "not_run": selection.get("not_run")}


def replication(payload: dict[str, Any]) -> dict[str, Any]:
    """The claim x model grid of a report, with published values where one exists.

    Returns:
        ``{"models": [...], "claims": [...], "cells": {claim: {model: cell}},
        "selection": {model: {"ours": ..., "published": ...}}}``; a cell holds the verdict's
        outcome, estimate, interval, threshold, n and, where the model has a published value
        for the claim, ``published`` (value, source, differs, inside).
    """
    models = _models(payload)
    infos = payload.get("models") or {}
    cells: dict[str, dict[str, Any]] = {}
    ours: dict[str, Any] = {}
    for record in payload["verdicts"]:
        claim, model = str(record["claim"]), str(record["model"])
        if model in cells.get(claim, {}):
            continue
        info = infos.get(model) or {}
        cell = {"outcome": record["outcome"], "estimate": record["estimate"],
                "interval": list(record["interval"]), "comparison": record["comparison"],
                "threshold": record["threshold"], "n": record["n"]}
        reference = published_for(info)
        for value in reference.values if reference else ():
            if value.claim == claim:
                cell["published"] = {"value": value.value, "source": value.source,
                                     "differs": value.differs,
                                     "inside": inside(value.value, record["interval"])}
        cells.setdefault(claim, {})[model] = cell
        if model not in ours:
            site = _site(record, info.get("n_layers"))
            if site is not None:
                ours[model] = site
    selection: dict[str, Any] = {}
    for model in models:
        reference = published_for(infos.get(model) or {})
        theirs = None
        if reference is not None and reference.site is not None:
            layer, n_layers, position = reference.site
            theirs = {"layer": layer, "n_layers": n_layers, "position": position,
                      "source": reference.site_source}
        if model in ours or theirs:
            selection[model] = {"ours": ours.get(model), "published": theirs}
    return {"models": models, "claims": list(cells), "cells": cells, "selection": selection}


def wanted(grid: dict[str, Any]) -> bool:
    """Whether a run's end shows the table: several models, or any published value."""
    return len(grid["models"]) > 1 or any(
        "published" in cell for row in grid["cells"].values() for cell in row.values()) or any(
        s.get("published") for s in grid["selection"].values())


def mark(flag: bool | None) -> str:
    return {True: "inside", False: "OUTSIDE", None: "no interval"}[flag]


def cell_text(cell: dict[str, Any] | None) -> str:
    """``SUPPORTED 0.81 [0.69, 0.89]``, or ``not run``."""
    if cell is None:
        return "not run"
    lo, hi = cell["interval"]
    return f"{cell['outcome'].upper()} {estimate_text(cell['estimate'], lo, hi)}"


def published_text(cell: dict[str, Any] | None) -> str:
    """``published 0.98: OUTSIDE`` or ``""``."""
    found = (cell or {}).get("published")
    if not found:
        return ""
    return f"published {number(found['value'])}: {mark(found['inside'])}"


def site_text(site: dict[str, Any] | None) -> str:
    if not site:
        return "none"
    if site.get("not_run"):
        return f"search not run ({site['not_run']})"
    if site.get("layer") is None:
        return "no direction selected"
    of = f" of {site['n_layers']}" if site.get("n_layers") else ""
    return f"layer {site['layer']}{of}, position {site['position']}"


def render_text(grid: dict[str, Any]) -> str:
    """The terminal's replication section: per claim, one line per model (a model name
    longer than 24 characters is cut, so a line stays within about 80 columns)."""
    name_width = min(max((len(m) for m in grid["models"]), default=5), 24)
    lines = []
    for claim in grid["claims"]:
        lines.append(claim)
        for model in grid["models"]:
            cell = grid["cells"][claim].get(model)
            extra = published_text(cell)
            lines.append(f"  {model[:name_width]:<{name_width}}  {cell_text(cell)}"
                         + (f"  ({extra})" if extra else ""))
    if grid["selection"]:
        lines.append("Arditi's selected direction (layer index of n layers, position)")
        for model, pair in grid["selection"].items():
            text = f"  {model[:name_width]:<{name_width}}  ours: {site_text(pair['ours'])}"
            if pair.get("published"):
                text += f"; published: {site_text(pair['published'])}"
            lines.append(text)
    notes = _differences(grid)
    if notes:
        lines.append("Published values are measured differently from ours:")
        lines.extend(f"  {claim}: {text}" for claim, text in notes.items())
    return "\n".join(lines) + "\n"


def _differences(grid: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for claim, row in grid["cells"].items():
        for cell in row.values():
            differs = (cell.get("published") or {}).get("differs")
            if differs and claim not in found:
                found[claim] = differs
    return found


def _md(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render_markdown(grid: dict[str, Any]) -> str:
    """The grid as a Markdown table (README's replication table), with a published column
    after each model that has published values, and the selections below it."""
    with_published = [m for m in grid["models"] if any(
        "published" in (grid["cells"][c].get(m) or {}) for c in grid["claims"])]
    header = ["claim"]
    for model in grid["models"]:
        header.append(model)
        if model in with_published:
            header.append(f"{model}: published")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for claim in grid["claims"]:
        row = [claim]
        for model in grid["models"]:
            cell = grid["cells"][claim].get(model)
            row.append(_md(cell_text(cell)))
            if model in with_published:
                row.append(_md(published_text(cell).removeprefix("published ")))
        lines.append("| " + " | ".join(row) + " |")
    if grid["selection"]:
        lines += ["", "| model | Arditi selection: ours | published |", "|---|---|---|"]
        for model, pair in grid["selection"].items():
            lines.append(f"| {model} | {_md(site_text(pair['ours']))} | "
                         f"{_md(site_text(pair.get('published')))} |")
    return "\n".join(lines) + "\n"
