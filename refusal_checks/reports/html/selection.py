"""The HTML report's section on Arditi et al.'s direction selection.

Reads the ``selection`` record (:meth:`refusal_checks.measure.selection.Selection.record`) that
the single-direction claims keep in their details: the selected (layer, position), the
search, and every candidate's bypass, induce and KL, drawn as heatmaps like the paper's
figure, with the candidate table below.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from refusal_checks.reports.html.parts import esc, figure_or_note, html_table

PANELS = (("bypass", "bypass: refusal score, harmful, candidate ablated (lower bypasses)"),
          ("induce", "induce: refusal score, harmless, candidate added (>= 0 kept)"),
          ("kl", "KL: harmless next token under ablation (<= 0.1 kept)"))


def grids(record: dict[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray,
                                           dict[str, np.ndarray]]:
    """``name -> (position, layer)`` values of each score (NaN: none), the ``kept`` grid,
    and ``name -> (position, layer)`` True where that score was not computed (filter order;
    a record from before it has no ``not_computed``)."""
    layers, positions = list(record["layers"]), list(record["positions"])
    shape = (len(positions), len(layers))
    values = {name: np.full(shape, np.nan) for name, _ in PANELS}
    skipped = {name: np.zeros(shape, bool) for name, _ in PANELS}
    kept = np.zeros(shape, bool)
    for c in record["candidates"]:
        i, j = positions.index(c["position"]), layers.index(c["layer"])
        missing = _skipped(c)
        for name, _ in PANELS:
            values[name][i, j] = np.nan if c[name] is None else float(c[name])
            skipped[name][i, j] = name in missing
        kept[i, j] = bool(c["kept"])
    return values, kept, skipped


def _skipped(candidate: dict[str, Any]) -> list[str]:
    """Scores the candidate's record names as not computed (none in a record from before
    the filter order)."""
    return list(candidate.get("not_computed") or [])


def selection_section(payload: dict[str, Any], models: list[str]) -> str:
    """One heatmap figure and candidate table per model whose verdicts hold a selection."""
    from refusal_checks.reports.html import heatmaps as figures_heatmaps

    found: dict[str, dict[str, Any]] = {}
    for v in payload["verdicts"]:
        details = v.get("details")
        if isinstance(details, dict) and isinstance(details.get("selection"), dict):
            found.setdefault(v["model"], details["selection"])
    if not found:
        return ""
    parts = ['<h2 id="selection">Arditi et al.\'s direction selection</h2>',
             '<p class="note">Candidates: difference in means at every layer outside the last '
             "20% and every chat-template position after the user's message; scored on a "
             "validation split of the train halves; kept when induce &gt;= 0 and KL &lt;= 0.1 "
             "(outlined); the lowest bypass wins (red). The single-direction claims are judged "
             "on the selected direction, on held-out prompts.</p>"]
    for model in models:
        record = found.get(model)
        if record is None:
            continue
        parts.append(f"<h3>{esc(model)}</h3><p>{esc(record.get('protocol', ''))}</p>")
        if not record.get("candidates"):
            parts.append(f'<p class="note">{esc(record.get("not_run") or "no candidates")}</p>')
            continue
        values, kept, skipped = grids(record)
        selected = record.get("selected")
        chosen = (selected["layer"], selected["position"]) if selected else None
        panels = {label: values[name] for name, label in PANELS}
        blank = {label: skipped[name] for name, label in PANELS}
        parts.append(figure_or_note(
            lambda p=panels, k=kept, c=chosen, r=record, m=model, b=blank: (
                figures_heatmaps.selection_heatmaps(r["layers"], r["positions"], p, k, c,
                                                    title=f"{m}: Arditi candidates",
                                                    not_computed=b)),
            f"Arditi selection heatmap, {model}"))
        if any(_skipped(c) for c in record["candidates"]):
            parts.append('<p class="note">Filter order: "not computed" cells were never '
                         "measured (their candidate fails the induce filter, so it cannot be "
                         "selected); they are not zeros. --refusal-selection-order full "
                         "computes them.</p>")
        rows = [[esc(c["layer"]), esc(c["position"]),
                 *(esc(_cell(c, name, digits)) for name, digits in (
                     ("bypass", 2), ("induce", 2), ("kl", 3))),
                 "selected" if chosen == (c["layer"], c["position"]) else
                 ("kept" if c["kept"] else esc(_why(c)))]
                for c in record["candidates"]]
        parts.append(f"<details><summary>candidate table ({len(rows)})</summary>"
                     + html_table(["layer", "position", "bypass", "induce", "KL", "kept / why"],
                             rows) + "</details>")
    return "".join(parts)


def _why(candidate: dict[str, Any]) -> str:
    missing = " and ".join("KL" if p == "kl" else p for p in _skipped(candidate))
    if not missing:
        return candidate["why"]
    return f"{candidate['why']}; {missing} not computed: {candidate.get('not_computed_why', '')}"


def _cell(candidate: dict[str, Any], name: str, digits: int) -> str:
    if name in _skipped(candidate):
        return "not computed"
    value = candidate[name]
    return "-" if value is None else f"{float(value):.{digits}f}"
