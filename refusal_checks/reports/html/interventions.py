"""The report page's intervention sections: steering trade-off curves, ablation per
category, the cross-ablation heatmap, and the refusal style per steered direction."""

from __future__ import annotations

from typing import Any

from refusal_checks.reports.html.parts import by_claim, esc, figure_or_note, html_table
from refusal_checks.reports.summary import number


def steering_section(payload: dict[str, Any], models: list[str]) -> str:
    from refusal_checks.reports.html import rates as figures_rates
    from refusal_checks.reports.paper import PAPER_STEERING_RR_ALPHA_10

    found = by_claim(payload, lambda r: {"rr", "orr", "strengths"} <= set(r["details"]))
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
        parts.append(f"<h3>{esc(model)} ({esc(record['claim'])})</h3>")
        parts.append(figure_or_note(
            lambda: figures_rates.tradeoff_chart(directions, d["strengths"], d["rr"],
                                                 d["orr"], n_harmful=d.get("n_harmful"),
                                                 n_benign=d.get("n_benign"), title=model),
            f"steering trade-off, {model}", esc(note)))
        slopes = d.get("orr_per_unit_strength") or {}
        if slopes:
            parts.append(html_table(["direction", "ORR per unit strength"],
                                [[esc(k), esc(number(v))] for k, v in slopes.items()]))
        agreement = d.get("score_agreement")
        if isinstance(agreement, dict):
            parts.append(f'<p class="note">Cheap score vs judge on the unsteered probes: '
                         f"agreement {esc(number(agreement.get('agreement')))} "
                         f"(n={esc(agreement.get('n'))}).</p>")
        used = d.get("score_agreement_used")
        if isinstance(used, dict):
            steered = "; ".join(
                f"{', '.join(map(str, g.get('conditions', [])))}: {number(g.get('agreement'))} "
                f"(n={g.get('n')}) for {', '.join(map(str, g.get('directions', [])))}"
                for g in used.get("steered") or [])
            parts.append(f'<p class="note">Under steering ({esc(used.get("basis", ""))}): '
                         f"{esc(steered or 'none')}.</p>")
    return "".join(parts)


def ablation_section(payload: dict[str, Any], models: list[str]) -> str:
    from refusal_checks.reports.html import rates as figures_rates
    from refusal_checks.reports.paper import PAPER_ABLATION_RR

    found = by_claim(payload, lambda r: isinstance(r["details"].get("per_category"), dict))
    if not found:
        return _cross_ablation(payload, models)
    paper = "; ".join(f"{k}: {lo:.2f}-{hi:.2f}" for k, (lo, hi) in PAPER_ABLATION_RR.items())
    parts = ['<h2 id="ablation">Ablation per category</h2>',
             f'<p class="note">Paper, refusal rate left after ablation: {esc(paper)}.</p>',
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
        parts.append(figure_or_note(
            lambda: figures_rates.ablation_chart(per, title=f"{model}: ablating each "
                                                 "category's own direction"),
            f"ablation per category, {model}"))
        rows = []
        for category, cell in per.items():
            base, kept = cell.get("baseline", {}), cell.get("kept", {})
            rows.append([esc(category), esc(f"{base.get('refused')}/{base.get('n')}"),
                         esc(f"{kept.get('refused')}/{kept.get('n')}")])
        tables.append(f"<h3>{esc(model)}</h3>" + html_table(
            ["category", "refused at baseline", "still refusing under ablation"], rows))
        for key, label in (("keeps_refusing", "keep refusing"),
                           ("too_few_baseline_refusals", "too few baseline refusals to judge")):
            if record["details"].get(key):
                tables.append(f'<p class="note">{esc(label)}: '
                              f"{esc(', '.join(map(str, record['details'][key])))}</p>")
    parts.append("</div>")
    return "".join(parts + tables) + _cross_ablation(payload, models)


def _cross_ablation(payload: dict[str, Any], models: list[str]) -> str:
    """The k x k cross-ablation heatmaps per model: the paper's directions (claim
    ablation-is-category-selective-paper-design) and the genre-matched directions that
    decide ablation-is-category-selective (its ``details["genre_matched"]``)."""
    from refusal_checks.reports.html import heatmaps as figures_heatmaps

    paper = by_claim(payload, lambda r: isinstance(r["details"].get("ablated_rates"), list))
    matched = by_claim(payload, lambda r: isinstance(
        (r["details"].get("genre_matched") or {}).get("ablated_rates"), list))
    if not paper and not matched:
        return ""
    parts = ['<h3 id="cross-ablation">Cross-ablation: each category\'s direction ablated, '
             "refusal on every category</h3>",
             '<p class="note">Cell (i, j): drop in category j\'s refusal rate (cheap score) '
             "when category i's direction is ablated. A selective ablation is a dark "
             "diagonal; one shared pathway darkens whole rows. The paper's directions carry "
             "each category's genre, which alone darkens the diagonal; genre-matched "
             "directions (each category against its own look-alikes) decide the claim.</p>",
             '<div class="row">']
    notes = []
    for model in models:
        for label, record, details in (
                ("paper's directions", paper.get(model), (paper.get(model) or {}).get("details")),
                ("genre-matched directions", matched.get(model),
                 ((matched.get(model) or {}).get("details") or {}).get("genre_matched"))):
            if record is None:
                continue
            names = list(details["categories"])
            baseline = [details["baseline_rates"][c] for c in names]
            parts.append(figure_or_note(
                lambda d=details, n=names, b=baseline, m=model, l=label:
                figures_heatmaps.cross_ablation_heatmap(
                    n, d["ablated_rates"], b, title=f"{m}, {l}: drop in refusal"),
                f"cross-ablation drops, {model}, {label}"))
            notes.append(f'<p class="note">{esc(model)}, {esc(label)} '
                         f'({esc(record["claim"])}): {esc(details.get("reading", ""))} '
                         f"(random directions: mean drop {esc(details.get('mean_random_drop'))})"
                         "</p>")
    parts.append("</div>")
    return "".join(parts + notes)


def style_section(payload: dict[str, Any], models: list[str]) -> str:
    from refusal_checks.reports.html import heatmaps as figures_heatmaps
    from refusal_checks.reports.paper import PAPER_STYLE

    found = by_claim(payload, lambda r: isinstance(r["details"].get("style"), dict))
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
        parts.append(f"<h3>{esc(model)} ({esc(record['claim'])})</h3>")
        parts.append(f"<p>Classifier accuracy {esc(number(s.get('accuracy')))} against chance "
                     f"{esc(number(s.get('chance')))}, permutation p = "
                     f"{esc(number(s.get('permutation_p')))}.</p>")
        if s.get("confusion") is not None:
            parts.append(figure_or_note(
                lambda: figures_heatmaps.confusion_chart(
                    directions, s["confusion"], title=f"{model}: which direction was steered"),
                f"style confusion matrix, {model}"))
        rows = []
        for direction in directions:
            rate = (s.get("rates") or {}).get(direction) or {}
            exemplars = "".join(f"<li>{esc(x)}</li>" for x in (s.get("exemplars") or {}).get(
                direction, []))
            rows.append([esc(direction), esc(f"{rate.get('refused', '?')}/{rate.get('n', '?')}"),
                         esc(number((s.get("strengths") or {}).get(direction, "?"))),
                         esc(", ".join(map(str, (s.get("phrases") or {}).get(direction, [])))),
                         f"<ul>{exemplars}</ul>", esc(PAPER_STYLE.get(direction, "-"))])
        parts.append(html_table(["direction", "refused", "strength", "typical phrases",
                             "exemplars", "paper"], rows, "style"))
    return "".join(parts)
