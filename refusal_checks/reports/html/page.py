"""One self-contained HTML page per run, built from the ``--refusal-json`` payload.

The page needs no network: figures are PNG data URIs, styles are inline, and a
Content-Security-Policy forbids loading anything else. Every string from the payload goes
through :func:`html.escape`. Sections: the verdict table (one column per model, the paper's
figure beside ours), between-category cosines with the paper's claim-1 summary beside ours,
split-half reliability, steering trade-off curves, ablation per category, the damage axis
(refusal, broken replies and benign KL per condition; the cheap score's agreement with the
judge per condition), refusal style (when a verdict carries it), and the run environment.

This module is the page (skeleton, styles, the verdict table, section order); the sections
live in ``html_geometry``, ``selection_report``, ``html_interventions``, ``html_damage`` and
``html_run``, their shared pieces in ``html_parts``, and reading a saved report in
``report_schema``. ``python -m refusal_checks html REPORT.json OUT.html`` re-renders a saved
report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from refusal_checks.reports.html.damage import damage_section
from refusal_checks.reports.html.geometry import geometry_section
from refusal_checks.reports.html.interventions import (ablation_section, steering_section,
                                               style_section)
from refusal_checks.reports.html.parts import esc, interval_text, models_of, html_table
from refusal_checks.reports.html.run import environment_section, gate_section
from refusal_checks.reports.summary import number
from refusal_checks.reports.schema import check_payload
from refusal_checks.reports.html.selection import selection_section
from refusal_checks.reports.html.replication import replication_section

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;
color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.supported{color:#0a6b0a;font-weight:bold}.refuted{color:#b00;font-weight:bold}
.inconclusive{color:#9a6700;font-weight:bold}
.row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
figure{margin:0}figcaption{font-size:.85em;color:#555;max-width:60em}
img{max-width:100%;height:auto}code{word-break:break-all}.note{color:#555;font-size:.9em}
.says{color:#555;font-size:.85em}.reason{color:#555;font-size:.8em}
table.cost td+td{text-align:right;font-variant-numeric:tabular-nums}
table.cost tr:last-child td{font-weight:bold}
"""

# Sets data-images-decoded on <body> once every figure has decoded (used by the browser test).
SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var ok = images.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-images-decoded", ok ? "yes" : "no");
  document.body.setAttribute("data-image-count", String(images.length));
});
"""

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline'")


def _verdict_section(payload: dict[str, Any], models: list[str]) -> str:
    claims: dict[str, dict[str, dict[str, Any]]] = {}
    for record in payload["verdicts"]:
        claims.setdefault(str(record["claim"]), {}).setdefault(str(record["model"]), record)
    rows = []
    for claim, per_model in claims.items():
        first = next(iter(per_model.values()))
        protocol = (f'<div class="reason">protocol: {esc(first["protocol"])}</div>'
                    if first.get("protocol") else "")
        cells = [f'<b id="claim-{esc(claim)}">{esc(claim)}</b><div class="says">'
                 f'{esc(first.get("says", ""))}</div>{protocol}',
                 esc(first.get("paper", "")),
                 esc(f"{first['comparison']} {number(first['threshold'])}")]
        for model in models:
            record = per_model.get(model)
            if record is None:
                cells.append('<span class="note">not run</span>')
                continue
            outcome = str(record["outcome"])
            robust = record.get("robustness") or {}
            extra = (f" ({'fragile' if robust.get('fragile') else 'robust'} "
                     f"{esc(robust.get('same'))}/{esc(robust.get('checks'))})"
                     if robust.get("checks") else "")
            reason = (f'<div class="reason">{esc(record.get("reason", ""))}</div>'
                      if outcome == "inconclusive" and record.get("reason") else "")
            details = record.get("details")
            if not reason and isinstance(details, dict) and details.get("caveat"):
                reason = f'<div class="reason">caveat: {esc(details["caveat"])}</div>'
            if not reason and isinstance(details, dict) and details.get("counts_note"):
                reason = f'<div class="reason">{esc(details["counts_note"])}</div>'
            cells.append(f'<span class="{esc(outcome)}">{esc(outcome.upper())}</span>{extra}<br>'
                         f'{esc(interval_text(record))} <span class="note">n={esc(record["n"])}'
                         f'</span>{reason}')
        rows.append(cells)
    counts = ", ".join(f"{sum(v['outcome'] == k for v in payload['verdicts'])} {k}"
                       for k in ("supported", "refuted", "inconclusive"))
    table = html_table(["claim", "paper", "needs", *models], rows, "verdicts")
    return (f'<h2 id="verdicts">Which claims hold</h2><p>{esc(counts)}. Values are the '
            f"claim's statistic with its 95% interval; the paper column gives the published "
            f"figure the claim is checked against.</p>{table}")


def _section(make: Callable[[dict[str, Any], list[str]], str], payload: dict[str, Any],
             models: list[str]) -> str:
    """One section; details of an unexpected shape (a hand-edited or foreign report) give a
    visible note in place of the section instead of a crash. The verdict table's fields are
    checked by check_payload, so it always renders."""
    try:
        return make(payload, models)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as error:
        name = make.__name__.strip("_").replace("_section", "")
        return (f'<p class="note">The {esc(name)} section cannot be drawn from this report: '
                f"{esc(type(error).__name__)}: {esc(error)}.</p>")


def render_html(payload: dict[str, Any]) -> str:
    """The whole page for a schema-1 report payload (checked first).

    Raises:
        ReportFileError: The payload is not a schema-1 report.
    """
    check_payload(payload)
    models = models_of(payload)
    title = f"refusal_checks: {', '.join(models) or 'no model'}"
    warning = "" if payload.get("complete") is not False else (
        f"<p><strong>Incomplete run</strong> ({esc(str(payload.get('incomplete', '')))}): "
        "the verdicts cover only the claims that ran before it stopped.</p>")
    body = warning + "".join(_section(section, payload, models) for section in (
        _verdict_section, replication_section, gate_section, geometry_section,
        selection_section,
        steering_section, ablation_section, damage_section, style_section,
        environment_section))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
            f"<body><h1>{esc(title)}</h1>{body}<script>{SCRIPT}</script></body></html>\n")


def write_html(payload: dict[str, Any], path: str | Path) -> Path:
    """Render and write atomically (a unique temporary file, then os.replace)."""
    from refusal_checks.core.files import write_text_atomic

    return write_text_atomic(path, render_html(payload))
