"""The report page's run sections: the release gate's rules and changed prompts, and the
run environment (models, judge accuracy, versions, options, where the time went)."""

from __future__ import annotations

import json
from typing import Any

from refusal_checks.reports.html.parts import esc, html_table
from refusal_checks.reports.summary import number

# Accuracy against the human labels of XSTest v2 (450 Mistral-Instruct completions),
# measured by benchmarks/judge_agreement.py (README, "Refusal judges and how good they are").
# Keyed by the start of the judge's name as verdicts record it.
JUDGE_ACCURACY: dict[str, str] = {
    "substring": "0.833 [0.796, 0.865] on XSTest v2 (benchmarks/judge_agreement.py)",
    "embedding": "0.902 [0.871, 0.926] on XSTest v2 (benchmarks/judge_agreement.py)",
}


def gate_section(payload: dict[str, Any], models: list[str]) -> str:
    """The release gate's rules and results, when the run had a gate (``payload["gate"]``)."""
    gate = payload.get("gate")
    if not isinstance(gate, dict):
        return ""
    passed = bool(gate.get("passed"))
    parts = ['<h2 id="gate">Release gate</h2>',
             f'<p class="{"supported" if passed else "refuted"}">'
             f'{"PASSED" if passed else "FAILED"}'
             + (f" against baseline <code>{esc(gate['baseline'])}</code>"
                if gate.get("baseline") else "") + "</p>"]
    rows = []
    for r in gate.get("results") or []:
        interval = r.get("interval")
        change = (f"{number(r.get('change'))} [{number(interval[0])}, {number(interval[1])}]"
                  if interval else "-")
        extra = r.get("extra") if isinstance(r.get("extra"), dict) else {}
        if interval and extra.get("method") == "paired":
            change += f" paired on {extra.get('pairs')}"
        elif interval and extra.get("method") == "unpaired":
            change += " unpaired"
        counts = str(r.get("counts_as", r.get("status", "?")))
        rows.append([esc(r.get("rule", "?")), esc(r.get("subject", "?")), esc(r.get("model", "?")),
                     f'<span class="{esc(_GATE_CLASS.get(counts, ""))}">{esc(counts)}</span>',
                     esc(change), esc(number(r.get("margin")) if r.get("margin") is not None
                                    else "-"), esc(r.get("message", ""))])
    parts.append(html_table(["rule", "subject", "model", "counts as", "change [interval]",
                         "margin", "why"], rows, "gate"))
    for note in gate.get("notes") or []:
        parts.append(f'<p class="note">{esc(note)}</p>')
    parts += [_gate_changes(r, r["extra"]) for r in gate.get("results") or []
              if isinstance(r.get("extra"), dict) and r["extra"].get("changed")]
    return "".join(parts)


def _gate_changes(result: dict[str, Any], extra: dict[str, Any]) -> str:
    """Every prompt whose outcome changed between baseline and this run, for one rule."""
    rows = [[esc(c.get("text") or "(text not recorded)"),
             f"<code>{esc(c.get('digest', '?'))}</code>",
             "refused" if c.get("before") else "answered",
             "refused" if c.get("now") else "answered"] for c in extra["changed"]]
    how = (f"paired on {extra.get('pairs')} prompts" if extra.get("method") == "paired"
           else f"unpaired: {extra.get('why_unpaired', '')}")
    return (f"<h3>{esc(result.get('rule', '?'))} {esc(result.get('subject', ''))} "
            f"[{esc(result.get('model', '?'))}]: {esc(extra.get('refused_before_not_now'))} "
            f"refused before and not now, {esc(extra.get('refused_now_not_before'))} now and "
            f"not before ({esc(how)})</h3>"
            + html_table(["prompt", "digest", "baseline", "this run"], rows, "gate-changes"))


_GATE_CLASS = {"pass": "supported", "fail": "refuted", "inconclusive": "inconclusive"}


def judge_accuracy(judge: str, validation: dict[str, Any] | None = None) -> str:
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


def environment_section(payload: dict[str, Any], models: list[str]) -> str:
    info = payload.get("models") or {}
    rows = []
    for model in models:
        m = info.get(model) or {}
        behaviour = m.get("refusal_behaviour") or {}
        judge = str(m.get("judge") or behaviour.get("judge") or "?")
        refusal = (f"{behaviour.get('refused')}/{behaviour.get('n')} should-not-comply, "
                   f"{behaviour.get('benign_refused')}/{behaviour.get('benign_n')} benign"
                   if behaviour else "-")
        rows.append([esc(model), esc(m.get("source", "-")), esc(m.get("description", "-")),
                     f"<code>{esc(m.get('fingerprint', '-'))}</code>"
                     + (f"<br>revision <code>{esc(m['revision'])}</code>" if m.get("revision")
                        else "")
                     + (f'<div class="reason">{esc(m["error"])}</div>' if m.get("error")
                        else ""),
                     esc(f"{m.get('dtype', '-')} / {m.get('device', '-')}"),
                     esc(f"{m.get('n_layers', '?')} layers, d_model {m.get('d_model', '?')}"),
                     esc(judge), esc(judge_accuracy(judge, m.get("judge_validation"))),
                     esc(refusal)])
    parts = ['<h2 id="environment">Run environment</h2>',
             html_table(["model", "source", "description", "fingerprint / revision", "dtype / device",
                     "shape", "judge", "judge accuracy", "refused (unsteered)"], rows, "models")]
    for title, mapping in (("versions", payload.get("versions")),
                           ("options", payload.get("options")),
                           ("timings (seconds)", payload.get("timings"))):
        if isinstance(mapping, dict) and mapping:
            parts.append(f"<h3>{esc(title)}</h3>" + html_table(
                ["name", "value"],
                [[esc(k), esc(number(v) if isinstance(v, float) else json.dumps(v)
                          if isinstance(v, (list, dict, type(None), bool)) else v)]
                 for k, v in mapping.items()]))
    parts += _cost_tables(info, models)
    durations = [[esc(v["claim"]), esc(v["model"]), esc(number(v["duration"]))]
                 for v in payload["verdicts"] if isinstance(v.get("duration"), (int, float))]
    if durations:
        parts.append("<h3>claim durations (seconds)</h3>"
                     + html_table(["claim", "model", "seconds"], durations))
    command = payload.get("command") or {}
    parts.append(f'<p class="note">platform {esc(payload.get("platform", "?"))}; created '
                 f'{esc(payload.get("created", "?"))}; command '
                 f"<code>{esc(' '.join(map(str, command.get('argv', []))))}</code> in "
                 f"<code>{esc(command.get('cwd', '?'))}</code></p>")
    return "".join(parts)


def _cost_tables(info: dict[str, Any], models: list[str]) -> list[str]:
    """Per model, where the time went (the report's ``cost_profile``), slowest phase first."""
    from refusal_checks.core.cost import HEADER, table_rows

    parts = []
    for model in models:
        profile = (info.get(model) or {}).get("cost_profile")
        if isinstance(profile, dict) and profile.get("phases"):
            parts.append(f"<h3>where the time went: {esc(model)}</h3>"
                         + html_table(HEADER, [[esc(cell) for cell in row]
                                           for row in table_rows(profile)], "cost")
                         + '<p class="note">cached/computed: cache entries served / computed; '
                         "resumed: batches an interrupted run had finished; prompts forwarded; "
                         "replies generated. Seconds of a phase exclude the phases inside it; "
                         "under pytest-xdist they add up over workers.</p>")
    return parts
