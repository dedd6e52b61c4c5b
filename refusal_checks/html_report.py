"""One self-contained HTML page per run, built from the ``--refusal-json`` payload.

The page needs no network: figures are PNG data URIs, styles are inline, and a
Content-Security-Policy forbids loading anything else. Every string from the payload goes
through :func:`html.escape`. Sections: the verdict table (one column per model, the paper's
figure beside ours), between-category cosines with the paper's claim-1 summary beside ours,
split-half reliability, steering trade-off curves, ablation per category, the damage axis
(refusal, broken replies and benign KL per condition; the cheap score's agreement with the
judge per condition), refusal style (when a verdict carries it), and the run environment.

``python -m refusal_checks html REPORT.json OUT.html`` re-renders a saved report.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from html import escape
from pathlib import Path
from typing import Any

from refusal_checks.errors import RefusalChecksError
from refusal_checks.report import _num

SCHEMA = "refusal_checks/report/1"
VERDICT_KEYS = ("claim", "model", "outcome", "estimate", "interval", "comparison", "threshold",
                "n")

# Accuracy against the human labels of XSTest v2 (450 Mistral-Instruct completions),
# measured by benchmarks/judge_agreement.py (README, "Refusal judges and how good they are").
# Keyed by the start of the judge's name as verdicts record it.
JUDGE_ACCURACY: dict[str, str] = {
    "substring": "0.833 [0.796, 0.865] on XSTest v2 (benchmarks/judge_agreement.py)",
    "embedding": "0.902 [0.871, 0.926] on XSTest v2 (benchmarks/judge_agreement.py)",
}

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


class ReportFileError(RefusalChecksError, ValueError):
    """A saved report that cannot be rendered; the message names the file and the fix."""


def check_payload(payload: Any, source: str = "report") -> dict[str, Any]:
    """Return ``payload`` if it is a schema-1 report with well-formed verdicts.

    Raises:
        ReportFileError: Wrong type, wrong schema, or a verdict missing a required key.
    """
    fix = "Pass a file written by pytest --refusal-json"
    if not isinstance(payload, dict):
        raise ReportFileError(f"{source}: expected a JSON object, got {type(payload).__name__}. "
                              f"{fix}.")
    if payload.get("schema") != SCHEMA:
        raise ReportFileError(f"{source}: schema is {payload.get('schema')!r}, expected "
                              f"{SCHEMA!r}. {fix} (this version reads schema 1 only).")
    if not isinstance(payload.get("models", {}), dict):
        raise ReportFileError(f"{source}: 'models' must be an object (model -> details). {fix}.")
    verdicts = payload.get("verdicts")
    if not isinstance(verdicts, list):
        raise ReportFileError(f"{source}: 'verdicts' must be a list. {fix}.")
    for index, verdict in enumerate(verdicts):
        missing = [key for key in VERDICT_KEYS
                   if not isinstance(verdict, dict) or key not in verdict]
        if missing:
            raise ReportFileError(f"{source}: verdict {index} lacks {', '.join(missing)}. {fix}.")
        interval = verdict["interval"]
        if not isinstance(interval, list) or len(interval) != 2:
            raise ReportFileError(f"{source}: verdict {index} has interval {interval!r}, "
                                  f"expected [low, high]. {fix}.")
    return payload


def load_report(path: str | Path) -> dict[str, Any]:
    """Read and check a ``--refusal-json`` file.

    Raises:
        ReportFileError: Missing file, not JSON, or not a schema-1 report.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportFileError(f"{path}: no such file. Write one with pytest claims/ "
                              "--refusal-json PATH.") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ReportFileError(f"{path} cannot be read: {error}.") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise ReportFileError(f"{path}: not valid JSON (line {error.lineno}, column "
                              f"{error.colno}: {error.msg}). Pass a file written by pytest "
                              "--refusal-json.") from None
    return check_payload(payload, str(path))


# -- small HTML helpers ----------------------------------------------------------------------

def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table; ``header`` is escaped, cells are HTML already (escape before passing)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{_e(cls)}"><tr>{head}</tr>{body}</table>'


def _image(png: bytes, alt: str, caption: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{data}">{cap}</figure>'


def _figure_or_note(make: Callable[[], bytes], alt: str, caption: str = "") -> str:
    """A figure, or a visible note when its data cannot be drawn (never a crashed report)."""
    try:
        return _image(make(), alt, caption)
    except (ValueError, TypeError, KeyError, IndexError) as error:
        return f'<p class="note">{_e(alt)}: cannot draw ({_e(error)}).</p>'


def _interval(record: dict[str, Any]) -> str:
    lo, hi = record["interval"]
    return f"{_num(record['estimate'])} [{_num(lo)}, {_num(hi)}]"


def _models(payload: dict[str, Any]) -> list[str]:
    names = [v["model"] for v in payload["verdicts"]] + list(payload.get("models") or {})
    return list(dict.fromkeys(str(n) for n in names))


def _by_claim(payload: dict[str, Any], claim_filter: Callable[[dict], bool]
              ) -> dict[str, dict[str, Any]]:
    """model -> first verdict record whose details pass ``claim_filter``."""
    found: dict[str, dict[str, Any]] = {}
    for record in payload["verdicts"]:
        details = record.get("details")
        if isinstance(details, dict) and claim_filter(record) and record["model"] not in found:
            found[record["model"]] = record
    return found


# -- sections --------------------------------------------------------------------------------

def _verdict_section(payload: dict[str, Any], models: list[str]) -> str:
    claims: dict[str, dict[str, dict[str, Any]]] = {}
    for record in payload["verdicts"]:
        claims.setdefault(str(record["claim"]), {}).setdefault(str(record["model"]), record)
    rows = []
    for claim, per_model in claims.items():
        first = next(iter(per_model.values()))
        protocol = (f'<div class="reason">protocol: {_e(first["protocol"])}</div>'
                    if first.get("protocol") else "")
        cells = [f'<b id="claim-{_e(claim)}">{_e(claim)}</b><div class="says">'
                 f'{_e(first.get("says", ""))}</div>{protocol}',
                 _e(first.get("paper", "")),
                 _e(f"{first['comparison']} {_num(first['threshold'])}")]
        for model in models:
            record = per_model.get(model)
            if record is None:
                cells.append('<span class="note">not run</span>')
                continue
            outcome = str(record["outcome"])
            robust = record.get("robustness") or {}
            extra = (f" ({'fragile' if robust.get('fragile') else 'robust'} "
                     f"{_e(robust.get('same'))}/{_e(robust.get('checks'))})"
                     if robust.get("checks") else "")
            reason = (f'<div class="reason">{_e(record.get("reason", ""))}</div>'
                      if outcome == "inconclusive" and record.get("reason") else "")
            details = record.get("details")
            if not reason and isinstance(details, dict) and details.get("caveat"):
                reason = f'<div class="reason">caveat: {_e(details["caveat"])}</div>'
            if not reason and isinstance(details, dict) and details.get("counts_note"):
                reason = f'<div class="reason">{_e(details["counts_note"])}</div>'
            cells.append(f'<span class="{_e(outcome)}">{_e(outcome.upper())}</span>{extra}<br>'
                         f'{_e(_interval(record))} <span class="note">n={_e(record["n"])}'
                         f'</span>{reason}')
        rows.append(cells)
    counts = ", ".join(f"{sum(v['outcome'] == k for v in payload['verdicts'])} {k}"
                       for k in ("supported", "refuted", "inconclusive"))
    table = _table(["claim", "paper", "needs", *models], rows, "verdicts")
    return (f'<h2 id="verdicts">Which claims hold</h2><p>{_e(counts)}. Values are the '
            f"claim's statistic with its 95% interval; the paper column gives the published "
            f"figure the claim is checked against.</p>{table}")


def _summary_rows(categories: list[str], matrices: dict[str, list]) -> list[list[str]]:
    from refusal_checks.paper import PAPER_COSINES, cosine_summary

    columns = [PAPER_COSINES]
    for matrix in matrices.values():
        try:
            columns.append(cosine_summary(categories, matrix))
        except ValueError:
            columns.append(None)

    def cell(summary: Any, what: Callable[[Any], str]) -> str:
        return '<span class="note">n/a</span>' if summary is None else _e(what(summary))

    def block(value: float | None) -> str:
        return "no pair" if value is None else _num(value)

    lines: list[tuple[str, Callable[[Any], str]]] = [
        ("pairs", lambda s: str(s.pairs)), ("mean", lambda s: _num(s.mean)),
        ("lowest pair", lambda s: f"{_num(s.low)} ({s.low_pair[0]} / {s.low_pair[1]})"),
        ("highest pair", lambda s: f"{_num(s.high)} ({s.high_pair[0]} / {s.high_pair[1]})"),
        ("pairs < 0.3", lambda s: str(s.below_0_3)), ("pairs > 0.8", lambda s: str(s.above_0_8)),
        ("mean within the 7 safety-like", lambda s: block(s.within_safety)),
        ("mean within the 4 CoCoNot non-safety", lambda s: block(s.within_coconot)),
        ("mean across the two groups", lambda s: block(s.across)),
    ]
    return [[_e(name), *(cell(s, what) for s in columns)] for name, what in lines]


def _geometry_section(payload: dict[str, Any], models: list[str]) -> str:
    from refusal_checks import figures
    from refusal_checks.geometry_claims import MIN_RELIABILITY
    from refusal_checks.paper import PAPER_SPLIT_HALF, SAFETY_LIKE, SOURCE, COCONOT_NON_SAFETY

    controls: dict[str, dict[str, dict[str, Any]]] = {}
    claims_of: dict[str, list[str]] = {}
    for record in payload["verdicts"]:
        details = record.get("details")
        if not isinstance(details, dict) or "disattenuated_cosines" not in details:
            continue
        control = str(details.get("control", "benign prompts"))
        controls.setdefault(control, {}).setdefault(record["model"], record)
        claims_of.setdefault(control, [])
        if record["claim"] not in claims_of[control]:
            claims_of[control].append(str(record["claim"]))
    if not controls:
        return ""
    parts = ['<h2 id="geometry">Between-category cosines</h2>',
             f'<p class="note">Paper: {_e(SOURCE)}. The paper publishes summary figures, not '
             "its matrix; ours are computed the same way from the raw and the noise-corrected "
             f"(disattenuated) matrices. Blocks: safety-like = {_e(', '.join(SAFETY_LIKE))}; "
             f"CoCoNot non-safety = {_e(', '.join(COCONOT_NON_SAFETY))}.</p>"]
    for control, per_model in controls.items():
        parts.append(f"<h3>Against {_e(control)} (claims: {_e(', '.join(claims_of[control]))})"
                     "</h3>")
        images, header, matrices = [], ["statistic", "paper"], {}
        first = next(iter(per_model.values()))
        categories = [str(c) for c in first["details"].get("categories", [])]
        for model in models:
            record = per_model.get(model)
            if record is None:
                continue
            details = record["details"]
            cats = [str(c) for c in details.get("categories", [])]
            layer = details.get("layer", "?")
            images.append(_figure_or_note(
                lambda d=details, c=cats, m=model, l=layer: figures.cosine_heatmap(
                    c, d["disattenuated_cosines"], title=f"{m}, layer {l}: noise-corrected"),
                f"noise-corrected cosines, {model}, against {control}"))
            if cats == categories:
                for kind, key in (("raw", "raw_cosines"), ("noise-corrected",
                                                          "disattenuated_cosines")):
                    header.append(f"{model} {kind}")
                    matrices[f"{model} {kind}"] = details.get(key)
        parts.append(f'<div class="row">{"".join(images)}</div>')
        for model, record in per_model.items():  # the behaviour control's sample sizes
            counts = record["details"].get("behaviour_counts")
            if isinstance(counts, dict):
                left = record["details"].get("left_out", [])
                parts.append(f'<p class="note">{_e(model)}: refused/answered per category: '
                             + _e(", ".join(f"{c} {n.get('refused')}/{n.get('answered')}"
                                            + (" (left out)" if c in left else "")
                                            for c, n in counts.items()))
                             + f" (at least {_e(record['details'].get('min_per_side'))} on "
                             "each side)</p>")
        parts.append(_table(header, _summary_rows(categories, matrices), "summary"))
        split = {m: r["details"]["split_half_mean"] for m, r in per_model.items()
                 if isinstance(r["details"].get("split_half_mean"), dict)}
        if split:
            parts.append(_figure_or_note(
                lambda: figures.split_half_chart(split, paper_range=PAPER_SPLIT_HALF,
                                                 noise_floor=MIN_RELIABILITY,
                                                 order=categories),
                f"split-half reliability against {control}",
                f"Split-half reliability per category (mean cosine between directions from "
                f"two random halves). Paper: {PAPER_SPLIT_HALF[0]}-{PAPER_SPLIT_HALF[1]} "
                "between independent 32/32 resamples of 9B models. Below the dashed line "
                f"({MIN_RELIABILITY}) a direction is mostly noise."))
            rows = [[_e(c), *(_e(_num(split[m][c])) if c in split[m] else "-" for m in split)]
                    for c in dict.fromkeys([*categories, *(c for per in split.values()
                                                           for c in per)])
                    if any(c in per for per in split.values())]
            parts.append(_table(["category", *split], rows, "split-half"))
    return "".join(parts)


def _steering_section(payload: dict[str, Any], models: list[str]) -> str:
    from refusal_checks import figures
    from refusal_checks.paper import PAPER_STEERING_RR_ALPHA_10

    found = _by_claim(payload, lambda r: {"rr", "orr", "strengths"} <= set(r["details"]))
    if not found:
        return ""
    parts = ['<h2 id="steering">Steering: refusal vs over-refusal</h2>',
             f'<p class="note">Paper (Gemma): at alpha = 10 every direction already has RR '
             f"{PAPER_STEERING_RR_ALPHA_10[0]}-{PAPER_STEERING_RR_ALPHA_10[1]}; all directions "
             "trace nearly the same RR-vs-ORR path (judged by eye). Strength here is relative "
             "to the mean residual norm at the layer.</p>"]
    for model in models:
        record = found.get(model)
        if record is None:
            continue
        d = record["details"]
        directions = [str(x) for x in d.get("directions") or []]
        named = len(directions) == len(d["rr"])
        if not named:
            # Older reports: the JSON is written with sorted keys, so the order of
            # orr_per_unit_strength cannot name the rows; say so instead of guessing.
            directions = [f"direction {i + 1}" for i in range(len(d["rr"]))]
        counted = "n_harmful" in d and "n_benign" in d
        note = ("Bands: Wilson 95% intervals from the prompt counts." if counted else
                "No bands: this report does not carry the prompt counts behind the rates.")
        if not named:
            note += " Direction names are not in this report (rows are numbered)."
        parts.append(f"<h3>{_e(model)} ({_e(record['claim'])})</h3>")
        parts.append(_figure_or_note(
            lambda: figures.tradeoff_chart(directions, d["strengths"], d["rr"], d["orr"],
                                           n_harmful=d.get("n_harmful"),
                                           n_benign=d.get("n_benign"), title=model),
            f"steering trade-off, {model}", _e(note)))
        slopes = d.get("orr_per_unit_strength") or {}
        if slopes:
            parts.append(_table(["direction", "ORR per unit strength"],
                                [[_e(k), _e(_num(v))] for k, v in slopes.items()]))
        agreement = d.get("score_agreement")
        if isinstance(agreement, dict):
            parts.append(f'<p class="note">Cheap score vs judge on the unsteered probes: '
                         f"agreement {_e(_num(agreement.get('agreement')))} "
                         f"(n={_e(agreement.get('n'))}).</p>")
        used = d.get("score_agreement_used")
        if isinstance(used, dict):
            steered = "; ".join(
                f"{', '.join(map(str, g.get('conditions', [])))}: {_num(g.get('agreement'))} "
                f"(n={g.get('n')}) for {', '.join(map(str, g.get('directions', [])))}"
                for g in used.get("steered") or [])
            parts.append(f'<p class="note">Under steering ({_e(used.get("basis", ""))}): '
                         f"{_e(steered or 'none')}.</p>")
    return "".join(parts)


def _ablation_section(payload: dict[str, Any], models: list[str]) -> str:
    from refusal_checks import figures
    from refusal_checks.paper import PAPER_ABLATION_RR

    found = _by_claim(payload, lambda r: isinstance(r["details"].get("per_category"), dict))
    if not found:
        return _cross_ablation(payload, models)
    paper = "; ".join(f"{k}: {lo:.2f}-{hi:.2f}" for k, (lo, hi) in PAPER_ABLATION_RR.items())
    parts = ['<h2 id="ablation">Ablation per category</h2>',
             f'<p class="note">Paper, refusal rate left after ablation: {_e(paper)}.</p>',
             '<div class="row">']
    tables = []
    for model in models:
        record = found.get(model)
        if record is None:
            continue
        per = record["details"]["per_category"]
        # JSON reports sort keys: use the study's category order where one ran.
        order = next((v["details"]["categories"] for v in payload["verdicts"]
                      if v["model"] == model and isinstance(v.get("details"), dict)
                      and isinstance(v["details"].get("categories"), list)), [])
        per = {c: per[c] for c in dict.fromkeys([*(c for c in order if c in per), *per])}
        parts.append(_figure_or_note(
            lambda: figures.ablation_chart(per, title=f"{model}: ablating each category's "
                                           "own direction"), f"ablation per category, {model}"))
        rows = []
        for category, cell in per.items():
            base, kept = cell.get("baseline", {}), cell.get("kept", {})
            rows.append([_e(category), _e(f"{base.get('refused')}/{base.get('n')}"),
                         _e(f"{kept.get('refused')}/{kept.get('n')}")])
        tables.append(f"<h3>{_e(model)}</h3>" + _table(
            ["category", "refused at baseline", "still refusing under ablation"], rows))
        for key, label in (("keeps_refusing", "keep refusing"),
                           ("too_few_baseline_refusals", "too few baseline refusals to judge")):
            if record["details"].get(key):
                tables.append(f'<p class="note">{_e(label)}: '
                              f"{_e(', '.join(map(str, record['details'][key])))}</p>")
    parts.append("</div>")
    return "".join(parts + tables) + _cross_ablation(payload, models)


def _cross_ablation(payload: dict[str, Any], models: list[str]) -> str:
    """The k x k cross-ablation heatmap per model (claim ablation-is-category-selective)."""
    from refusal_checks import figures

    found = _by_claim(payload, lambda r: isinstance(r["details"].get("ablated_rates"), list))
    if not found:
        return ""
    parts = ['<h3 id="cross-ablation">Cross-ablation: each category\'s direction ablated, '
             "refusal on every category</h3>",
             '<p class="note">Cell (i, j): drop in category j\'s refusal rate (cheap score) '
             "when category i's direction is ablated. A selective ablation is a dark "
             "diagonal; one shared pathway darkens whole rows.</p>", '<div class="row">']
    notes = []
    for model in models:
        record = found.get(model)
        if record is None:
            continue
        details = record["details"]
        names = list(details["categories"])
        baseline = [details["baseline_rates"][c] for c in names]
        parts.append(_figure_or_note(
            lambda: figures.cross_ablation_heatmap(
                names, details["ablated_rates"], baseline,
                title=f"{model}: drop in refusal under cross-ablation"),
            f"cross-ablation drops, {model}"))
        notes.append(f'<p class="note">{_e(model)}: {_e(details.get("reading", ""))} '
                     f"(random directions: mean drop {_e(details.get('mean_random_drop'))})</p>")
    parts.append("</div>")
    return "".join(parts + notes)


def _rate_cell(cell: dict[str, Any] | None) -> str:
    if not cell or not cell.get("n"):
        return "-"
    return f"{cell['refused']}/{cell['n']} ({cell['refused'] / cell['n']:.2f})"


def _share_cell(cell: dict[str, Any] | None) -> str:
    if not cell or not cell.get("n"):
        return "-"
    return (f"{cell['k']}/{cell['n']} ({cell['estimate']:.2f} [{cell['low']:.2f}, "
            f"{cell['high']:.2f}])")


def _damage_rows(conditions: dict[str, Any], names: Iterable[str]) -> list[list[str]]:
    rows = []
    for name in names:
        r = conditions[name]
        replies, score = r.get("replies") or {}, r.get("score") or {}
        kl = r.get("kl_benign")
        reasons = ", ".join(f"{k} {v}" for side in replies.values()
                            for k, v in (side.get("reasons") or {}).items())
        rows.append([_e(name), _e(_rate_cell(replies.get("should-refuse"))),
                     _e(_rate_cell(replies.get("benign"))),
                     _e(_share_cell(r.get("broken"))) + (f'<div class="reason">{_e(reasons)}'
                                                         "</div>" if reasons else ""),
                     _e(_rate_cell(score.get("should-refuse"))),
                     _e(_rate_cell(score.get("benign"))),
                     _e(f"{kl['mean']:.3g} (n={kl['n']}, max {kl['max']:.3g})" if kl else "-")])
    return rows


_DAMAGE_HEADER = ["condition", "judged refusal (should-refuse)", "judged refusal (benign)",
                  "broken replies [Wilson 95%]", "score refusal (should-refuse)",
                  "score refusal (benign)", "mean KL on benign prompts"]


def _damage_section(payload: dict[str, Any], models: list[str]) -> str:
    """Per model: refusal rate, broken share and benign KL against steering strength per
    direction (``models.<name>.damage``), the ablations as a table, and the cheap score's
    agreement with the judge per condition (``models.<name>.score_validation``)."""
    from refusal_checks import figures
    from refusal_checks.damage import curves

    info = payload.get("models") or {}
    found = {m: (info.get(m) or {}) for m in models
             if isinstance((info.get(m) or {}).get("damage"), dict)
             or isinstance((info.get(m) or {}).get("score_validation"), dict)}
    if not found:
        return ""
    parts = ['<h2 id="damage">Damage beside refusal, and the cheap score per condition</h2>',
             '<p class="note">What each intervention breaks beside the refusal it moves: the '
             "share of generated replies that are broken (empty, looping, another script, "
             "gibberish; rule-based) and the mean next-token KL against the unedited model on "
             "benign prompts, from the replies, scores and forward passes the run made anyway. "
             "Refusal rates are judged where replies were generated, else the cheap score's "
             "(score &gt; 0).</p>"]
    for model, m in found.items():
        damage = m.get("damage") or {}
        conditions = damage.get("conditions") or {}
        parts.append(f"<h3>{_e(model)}</h3>")
        drawn = curves(damage)
        if drawn:
            parts.append(_figure_or_note(
                lambda d=drawn, name=model: figures.damage_chart(
                    d, title=f"{name}: refusal, broken replies and benign KL vs strength"),
                f"damage vs steering strength, {model}",
                "One panel per steering direction; filled markers are judged replies, hollow "
                "ones the cheap score. The sweeps score without generating, so their "
                "points have no broken share."))
        table = [c for c in conditions if conditions[c].get("kind") in ("unsteered", "ablated")]
        if table:
            parts.append("<p>Unsteered and ablated conditions:</p>"
                         + _table(_DAMAGE_HEADER, _damage_rows(conditions, table), "damage"))
        steered = [c for c in conditions if conditions[c].get("kind") == "steered"]
        if steered:
            parts.append("<details><summary>every steered condition</summary>"
                         + _table(_DAMAGE_HEADER, _damage_rows(conditions, steered), "damage")
                         + "</details>")
        validation = m.get("score_validation") or {}
        rows = []
        for source, block in (("judge", validation),
                              ("human labels", validation.get("labels") or {})):
            for stratum, row in (block.get("by_condition") or {}).items():
                acc, kappa = row["accuracy"], row["kappa"]
                rows.append([_e(source), _e(stratum), _e(_share_cell(acc)),
                             _e("-" if kappa.get("estimate") is None else
                                f"{kappa['estimate']:.2f}" + (
                                    "" if kappa.get("low") is None else
                                    f" [{kappa['low']:.2f}, {kappa['high']:.2f}]"))])
        if rows:
            parts.append("<p>Cheap score (&gt; 0) against the judge (and human labels, with "
                         "--refusal-labels) on the same replies, per condition:</p>"
                         + _table(["reference", "condition", "agreement [Wilson 95%]",
                                   "Cohen's kappa [bootstrap 95%]"], rows, "score-validation"))
    return "".join(parts)


def _style_section(payload: dict[str, Any], models: list[str]) -> str:
    from refusal_checks import figures
    from refusal_checks.paper import PAPER_STYLE

    found = _by_claim(payload, lambda r: isinstance(r["details"].get("style"), dict))
    if not found:
        return ""
    parts = ['<h2 id="style">Refusal style per direction</h2>',
             '<p class="note">Paper: qualitative only (one generation per split on two probe '
             "prompts); its description is shown beside our exemplars.</p>"]
    for model in models:
        record = found.get(model)
        if record is None:
            continue
        s = record["details"]["style"]
        directions = [str(x) for x in s.get("directions", [])]
        parts.append(f"<h3>{_e(model)} ({_e(record['claim'])})</h3>")
        parts.append(f"<p>Classifier accuracy {_e(_num(s.get('accuracy')))} against chance "
                     f"{_e(_num(s.get('chance')))}, permutation p = "
                     f"{_e(_num(s.get('permutation_p')))}.</p>")
        if s.get("confusion") is not None:
            parts.append(_figure_or_note(
                lambda: figures.confusion_chart(directions, s["confusion"],
                                                title=f"{model}: which direction was steered"),
                f"style confusion matrix, {model}"))
        rows = []
        for direction in directions:
            rate = (s.get("rates") or {}).get(direction) or {}
            exemplars = "".join(f"<li>{_e(x)}</li>" for x in (s.get("exemplars") or {}).get(
                direction, []))
            rows.append([_e(direction), _e(f"{rate.get('refused', '?')}/{rate.get('n', '?')}"),
                         _e(_num((s.get("strengths") or {}).get(direction, "?"))),
                         _e(", ".join(map(str, (s.get("phrases") or {}).get(direction, [])))),
                         f"<ul>{exemplars}</ul>", _e(PAPER_STYLE.get(direction, "-"))])
        parts.append(_table(["direction", "refused", "strength", "typical phrases",
                             "exemplars", "paper"], rows, "style"))
    return "".join(parts)


def _gate_section(payload: dict[str, Any], models: list[str]) -> str:
    """The release gate's rules and results, when the run had a gate (``payload["gate"]``)."""
    gate = payload.get("gate")
    if not isinstance(gate, dict):
        return ""
    passed = bool(gate.get("passed"))
    parts = ['<h2 id="gate">Release gate</h2>',
             f'<p class="{"supported" if passed else "refuted"}">'
             f'{"PASSED" if passed else "FAILED"}'
             + (f" against baseline <code>{_e(gate['baseline'])}</code>"
                if gate.get("baseline") else "") + "</p>"]
    rows = []
    for r in gate.get("results") or []:
        interval = r.get("interval")
        change = (f"{_num(r.get('change'))} [{_num(interval[0])}, {_num(interval[1])}]"
                  if interval else "-")
        extra = r.get("extra") if isinstance(r.get("extra"), dict) else {}
        if interval and extra.get("method") == "paired":
            change += f" paired on {extra.get('pairs')}"
        elif interval and extra.get("method") == "unpaired":
            change += " unpaired"
        counts = str(r.get("counts_as", r.get("status", "?")))
        rows.append([_e(r.get("rule", "?")), _e(r.get("subject", "?")), _e(r.get("model", "?")),
                     f'<span class="{_e(_GATE_CLASS.get(counts, ""))}">{_e(counts)}</span>',
                     _e(change), _e(_num(r.get("margin")) if r.get("margin") is not None
                                    else "-"), _e(r.get("message", ""))])
    parts.append(_table(["rule", "subject", "model", "counts as", "change [interval]",
                         "margin", "why"], rows, "gate"))
    for note in gate.get("notes") or []:
        parts.append(f'<p class="note">{_e(note)}</p>')
    parts += [_gate_changes(r, r["extra"]) for r in gate.get("results") or []
              if isinstance(r.get("extra"), dict) and r["extra"].get("changed")]
    return "".join(parts)


def _gate_changes(result: dict[str, Any], extra: dict[str, Any]) -> str:
    """Every prompt whose outcome changed between baseline and this run, for one rule."""
    rows = [[_e(c.get("text") or "(text not recorded)"),
             f"<code>{_e(c.get('digest', '?'))}</code>",
             "refused" if c.get("before") else "answered",
             "refused" if c.get("now") else "answered"] for c in extra["changed"]]
    how = (f"paired on {extra.get('pairs')} prompts" if extra.get("method") == "paired"
           else f"unpaired: {extra.get('why_unpaired', '')}")
    return (f"<h3>{_e(result.get('rule', '?'))} {_e(result.get('subject', ''))} "
            f"[{_e(result.get('model', '?'))}]: {_e(extra.get('refused_before_not_now'))} "
            f"refused before and not now, {_e(extra.get('refused_now_not_before'))} now and "
            f"not before ({_e(how)})</h3>"
            + _table(["prompt", "digest", "baseline", "this run"], rows, "gate-changes"))


_GATE_CLASS = {"pass": "supported", "fail": "refuted", "inconclusive": "inconclusive"}


def _judge_accuracy(judge: str, validation: dict[str, Any] | None = None) -> str:
    """This model's labels when a run had them (--refusal-labels), else say it is unvalidated."""
    mine = ((validation or {}).get("judges") or {}).get(judge)
    if mine:
        acc = mine["all"]["accuracy"]
        return (f"{acc['estimate']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] on {acc['n']} "
                "labelled replies of this model")
    for prefix, accuracy in JUDGE_ACCURACY.items():
        if judge.startswith(prefix):
            where = accuracy.replace("on XSTest v2", "on XSTest v2 Mistral-Instruct replies")
            return f"not validated on this model; {where}"
    return "not measured"


def _environment_section(payload: dict[str, Any], models: list[str]) -> str:
    info = payload.get("models") or {}
    rows = []
    for model in models:
        m = info.get(model) or {}
        behaviour = m.get("refusal_behaviour") or {}
        judge = str(m.get("judge") or behaviour.get("judge") or "?")
        refusal = (f"{behaviour.get('refused')}/{behaviour.get('n')} should-not-comply, "
                   f"{behaviour.get('benign_refused')}/{behaviour.get('benign_n')} benign"
                   if behaviour else "-")
        rows.append([_e(model), _e(m.get("source", "-")), _e(m.get("description", "-")),
                     f"<code>{_e(m.get('fingerprint', '-'))}</code>"
                     + (f"<br>revision <code>{_e(m['revision'])}</code>" if m.get("revision")
                        else "")
                     + (f'<div class="reason">{_e(m["error"])}</div>' if m.get("error")
                        else ""),
                     _e(f"{m.get('dtype', '-')} / {m.get('device', '-')}"),
                     _e(f"{m.get('n_layers', '?')} layers, d_model {m.get('d_model', '?')}"),
                     _e(judge), _e(_judge_accuracy(judge, m.get("judge_validation"))),
                     _e(refusal)])
    parts = ['<h2 id="environment">Run environment</h2>',
             _table(["model", "source", "description", "fingerprint / revision", "dtype / device",
                     "shape", "judge", "judge accuracy", "refused (unsteered)"], rows, "models")]
    for title, mapping in (("versions", payload.get("versions")),
                           ("options", payload.get("options")),
                           ("timings (seconds)", payload.get("timings"))):
        if isinstance(mapping, dict) and mapping:
            parts.append(f"<h3>{_e(title)}</h3>" + _table(
                ["name", "value"],
                [[_e(k), _e(_num(v) if isinstance(v, float) else json.dumps(v)
                          if isinstance(v, (list, dict, type(None), bool)) else v)]
                 for k, v in mapping.items()]))
    parts += _cost_tables(info, models)
    durations = [[_e(v["claim"]), _e(v["model"]), _e(_num(v["duration"]))]
                 for v in payload["verdicts"] if isinstance(v.get("duration"), (int, float))]
    if durations:
        parts.append("<h3>claim durations (seconds)</h3>"
                     + _table(["claim", "model", "seconds"], durations))
    command = payload.get("command") or {}
    parts.append(f'<p class="note">platform {_e(payload.get("platform", "?"))}; created '
                 f'{_e(payload.get("created", "?"))}; command '
                 f"<code>{_e(' '.join(map(str, command.get('argv', []))))}</code> in "
                 f"<code>{_e(command.get('cwd', '?'))}</code></p>")
    return "".join(parts)


def _cost_tables(info: dict[str, Any], models: list[str]) -> list[str]:
    """Per model, where the time went (the report's ``cost_profile``), slowest phase first."""
    from refusal_checks.cost import HEADER, table_rows

    parts = []
    for model in models:
        profile = (info.get(model) or {}).get("cost_profile")
        if isinstance(profile, dict) and profile.get("phases"):
            parts.append(f"<h3>where the time went: {_e(model)}</h3>"
                         + _table(HEADER, [[_e(cell) for cell in row]
                                           for row in table_rows(profile)], "cost")
                         + '<p class="note">cached/computed: cache entries served / computed; '
                         "resumed: batches an interrupted run had finished; prompts forwarded; "
                         "replies generated. Seconds of a phase exclude the phases inside it; "
                         "under pytest-xdist they add up over workers.</p>")
    return parts


def _selection_section(payload: dict[str, Any], models: list[str]) -> str:
    """Arditi et al.'s candidate heatmaps (:mod:`refusal_checks.selection_report`)."""
    from refusal_checks.selection_report import selection_section

    return selection_section(payload, models)


def _section(make: Callable[[dict[str, Any], list[str]], str], payload: dict[str, Any],
             models: list[str]) -> str:
    """One section; details of an unexpected shape (a hand-edited or foreign report) give a
    visible note in place of the section instead of a crash. The verdict table's fields are
    checked by check_payload, so it always renders."""
    try:
        return make(payload, models)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as error:
        name = make.__name__.strip("_").replace("_section", "")
        return (f'<p class="note">The {_e(name)} section cannot be drawn from this report: '
                f"{_e(type(error).__name__)}: {_e(error)}.</p>")


def render_html(payload: dict[str, Any]) -> str:
    """The whole page for a schema-1 report payload (checked first).

    Raises:
        ReportFileError: The payload is not a schema-1 report.
    """
    check_payload(payload)
    models = _models(payload)
    title = f"refusal_checks: {', '.join(models) or 'no model'}"
    warning = "" if payload.get("complete") is not False else (
        f"<p><strong>Incomplete run</strong> ({_e(str(payload.get('incomplete', '')))}): "
        "the verdicts cover only the claims that ran before it stopped.</p>")
    body = warning + "".join(_section(section, payload, models) for section in (
        _verdict_section, _gate_section, _geometry_section, _selection_section,
        _steering_section, _ablation_section, _damage_section, _style_section,
        _environment_section))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>"
            f"<body><h1>{_e(title)}</h1>{body}<script>{SCRIPT}</script></body></html>\n")


def write_html(payload: dict[str, Any], path: str | Path) -> Path:
    """Render and write atomically (a unique temporary file, then os.replace)."""
    from refusal_checks.files import write_text_atomic

    return write_text_atomic(path, render_html(payload))
