"""The report page's damage axis: refusal, broken replies and benign KL per condition, and
the cheap score's agreement with the judge (and human labels) per condition."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from refusal_checks.reports.html.parts import esc, figure_or_note, html_table


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
        rows.append([esc(name), esc(_rate_cell(replies.get("should-refuse"))),
                     esc(_rate_cell(replies.get("benign"))),
                     esc(_share_cell(r.get("broken"))) + (f'<div class="reason">{esc(reasons)}'
                                                         "</div>" if reasons else ""),
                     esc(_rate_cell(score.get("should-refuse"))),
                     esc(_rate_cell(score.get("benign"))),
                     esc(f"{kl['mean']:.3g} (n={kl['n']}, max {kl['max']:.3g})" if kl else "-")])
    return rows


_DAMAGE_HEADER = ["condition", "judged refusal (should-refuse)", "judged refusal (benign)",
                  "broken replies [Wilson 95%]", "score refusal (should-refuse)",
                  "score refusal (benign)", "mean KL on benign prompts"]


def damage_section(payload: dict[str, Any], models: list[str]) -> str:
    """Per model: refusal rate, broken share and benign KL against steering strength per
    direction (``models.<name>.damage``), the ablations as a table, and the cheap score's
    agreement with the judge per condition (``models.<name>.score_validation``)."""
    from refusal_checks.reports.html import rates as figures_rates
    from refusal_checks.measure.damage import curves

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
        parts.append(f"<h3>{esc(model)}</h3>")
        drawn = curves(damage)
        if drawn:
            parts.append(figure_or_note(
                lambda d=drawn, name=model: figures_rates.damage_chart(
                    d, title=f"{name}: refusal, broken replies and benign KL vs strength"),
                f"damage vs steering strength, {model}",
                "One panel per steering direction; filled markers are judged replies, hollow "
                "ones the cheap score. The sweeps score without generating, so their "
                "points have no broken share."))
        table = [c for c in conditions if conditions[c].get("kind") in ("unsteered", "ablated")]
        if table:
            parts.append("<p>Unsteered and ablated conditions:</p>"
                         + html_table(_DAMAGE_HEADER, _damage_rows(conditions, table), "damage"))
        steered = [c for c in conditions if conditions[c].get("kind") == "steered"]
        if steered:
            parts.append("<details><summary>every steered condition</summary>"
                         + html_table(_DAMAGE_HEADER, _damage_rows(conditions, steered), "damage")
                         + "</details>")
        validation = m.get("score_validation") or {}
        rows = []
        for source, block in (("judge", validation),
                              ("human labels", validation.get("labels") or {})):
            for stratum, row in (block.get("by_condition") or {}).items():
                acc, kappa = row["accuracy"], row["kappa"]
                rows.append([esc(source), esc(stratum), esc(_share_cell(acc)),
                             esc("-" if kappa.get("estimate") is None else
                                f"{kappa['estimate']:.2f}" + (
                                    "" if kappa.get("low") is None else
                                    f" [{kappa['low']:.2f}, {kappa['high']:.2f}]"))])
        if rows:
            parts.append("<p>Cheap score (&gt; 0) against the judge (and human labels, with "
                         "--refusal-labels) on the same replies, per condition:</p>"
                         + html_table(["reference", "condition", "agreement [Wilson 95%]",
                                   "Cohen's kappa [bootstrap 95%]"], rows, "score-validation"))
        parts.append(_corrected_table(m.get("corrected_rates") or {}))
    return "".join(parts)


def _corrected_cell(rate: dict[str, Any] | None) -> str:
    if not rate:
        return "-"
    k, n = rate["judged"]
    return f"{k}/{n} -> {rate['estimate']:.2f} [{rate['low']:.2f}, {rate['high']:.2f}]"


def _corrected_table(section: dict[str, Any]) -> str:
    """``models.<name>.corrected_rates``: judged rates per condition and what they are once
    the judge's labelled error on that condition is taken out (with --refusal-labels)."""
    rows = []
    for stratum, row in (section.get("by_condition") or {}).items():
        rates, judged = row.get("rates") or {}, row.get("judged") or {}
        if rates:
            se, sp = row["sensitivity"], row["specificity"]
            cells = [_corrected_cell(rates.get(s)) for s in ("should_not_comply", "benign")]
            errors = f"sensitivity {se[0]}/{se[1]}, specificity {sp[0]}/{sp[1]}"
        else:
            cells = [("{}/{} as judged".format(*judged[s]) if s in judged else "-")
                     for s in ("should_not_comply", "benign")]
            errors = row.get("note", "")
        rows.append([esc(stratum), *map(esc, cells), esc(errors)])
    if not rows:
        return ""
    return (f"<p>Judged refusal rates corrected for the judge's error ({esc(section['judge'])}) "
            "measured on this model's labelled replies of the same condition (Rogan-Gladen; "
            "the interval carries the uncertainty of the rate and of both error rates):</p>"
            + html_table(["condition", "should-refuse: judged -> corrected [95%]",
                      "benign: judged -> corrected [95%]", "judge's error on the labels"],
                     rows, "corrected-rates"))
