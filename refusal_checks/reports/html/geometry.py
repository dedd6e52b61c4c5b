"""The report page's between-category cosines: heatmaps per model and control, the paper's
claim-1 summary beside ours, and split-half reliability per category."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from refusal_checks.reports.html.parts import esc, figure_or_note, html_table
from refusal_checks.reports.summary import number


def _summary_rows(categories: list[str], matrices: dict[str, list]) -> list[list[str]]:
    from refusal_checks.reports.paper import PAPER_COSINES, cosine_summary

    columns = [PAPER_COSINES]
    for matrix in matrices.values():
        try:
            columns.append(cosine_summary(categories, matrix))
        except ValueError:
            columns.append(None)

    def cell(summary: Any, what: Callable[[Any], str]) -> str:
        return '<span class="note">n/a</span>' if summary is None else esc(what(summary))

    def block(value: float | None) -> str:
        return "no pair" if value is None else number(value)

    lines: list[tuple[str, Callable[[Any], str]]] = [
        ("pairs", lambda s: str(s.pairs)), ("mean", lambda s: number(s.mean)),
        ("lowest pair", lambda s: f"{number(s.low)} ({s.low_pair[0]} / {s.low_pair[1]})"),
        ("highest pair", lambda s: f"{number(s.high)} ({s.high_pair[0]} / {s.high_pair[1]})"),
        ("pairs < 0.3", lambda s: str(s.below_0_3)), ("pairs > 0.8", lambda s: str(s.above_0_8)),
        ("mean within the 7 safety-like", lambda s: block(s.within_safety)),
        ("mean within the 4 CoCoNot non-safety", lambda s: block(s.within_coconot)),
        ("mean across the two groups", lambda s: block(s.across)),
    ]
    return [[esc(name), *(cell(s, what) for s in columns)] for name, what in lines]


def geometry_section(payload: dict[str, Any], models: list[str]) -> str:
    from refusal_checks.reports.html import heatmaps as figures_heatmaps
    from refusal_checks.reports.html import rates as figures_rates
    from refusal_checks.verdicts.geometry import MIN_RELIABILITY
    from refusal_checks.reports.paper import PAPER_SPLIT_HALF, SAFETY_LIKE, SOURCE, COCONOT_NON_SAFETY

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
             f'<p class="note">Paper: {esc(SOURCE)}. The paper publishes summary figures, not '
             "its matrix; ours are computed the same way from the raw and the noise-corrected "
             f"(disattenuated) matrices. Blocks: safety-like = {esc(', '.join(SAFETY_LIKE))}; "
             f"CoCoNot non-safety = {esc(', '.join(COCONOT_NON_SAFETY))}.</p>"]
    for control, per_model in controls.items():
        parts.append(f"<h3>Against {esc(control)} (claims: {esc(', '.join(claims_of[control]))})"
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
            images.append(figure_or_note(
                lambda d=details, c=cats, m=model, l=layer: figures_heatmaps.cosine_heatmap(
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
                parts.append(f'<p class="note">{esc(model)}: refused/answered per category: '
                             + esc(", ".join(f"{c} {n.get('refused')}/{n.get('answered')}"
                                            + (" (left out)" if c in left else "")
                                            for c, n in counts.items()))
                             + f" (at least {esc(record['details'].get('min_per_side'))} on "
                             "each side)</p>")
        parts.append(html_table(header, _summary_rows(categories, matrices), "summary"))
        split = {m: r["details"]["split_half_mean"] for m, r in per_model.items()
                 if isinstance(r["details"].get("split_half_mean"), dict)}
        if split:
            parts.append(figure_or_note(
                lambda: figures_rates.split_half_chart(split, paper_range=PAPER_SPLIT_HALF,
                                                       noise_floor=MIN_RELIABILITY,
                                                       order=categories),
                f"split-half reliability against {control}",
                f"Split-half reliability per category (mean cosine between directions from "
                f"two random halves). Paper: {PAPER_SPLIT_HALF[0]}-{PAPER_SPLIT_HALF[1]} "
                "between independent 32/32 resamples of 9B models. Below the dashed line "
                f"({MIN_RELIABILITY}) a direction is mostly noise."))
            rows = [[esc(c), *(esc(number(split[m][c])) if c in split[m] else "-" for m in split)]
                    for c in dict.fromkeys([*categories, *(c for per in split.values()
                                                           for c in per)])
                    if any(c in per for per in split.values())]
            parts.append(html_table(["category", *split], rows, "split-half"))
    return "".join(parts)
