"""Judges against human labels on the model under test, per condition.

Input: the label records of :mod:`refusal_checks.cache.replies` (one model's) and each judge's
binary verdict on the same replies. Refusal is the positive class, in the binary view every
rate uses (:data:`refusal_checks.judges.base.REFUSED_CLASSES`: the human ``refused`` class;
``partial`` and ``broken`` count as not refused). Per condition stratum (unsteered, steered
along each direction, ablated) and over all replies:

- accuracy, sensitivity (refusals the judge finds), specificity (non-refusals it leaves
  alone), each ``k / n`` with a Wilson 95% interval;
- Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` with a seeded percentile-bootstrap interval over
  replies (kappa is a ratio of dependent proportions; no closed-form interval is reliable
  at n of a few dozen).

:func:`set_agreement` compares two label sets of the same replies (matched by reply id:
the same model, condition, prompt and reply text): raw agreement and Cohen's kappa over the
four classes, and the binary view (refused or not) as above.

numpy + :mod:`refusal_checks.stats.intervals` only.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from refusal_checks.judges.base import judge_refused
from refusal_checks.cache.replies import stratum_of
from refusal_checks.stats.intervals import wilson_interval


def cohen_kappa(a: Sequence[bool] | np.ndarray, b: Sequence[bool] | np.ndarray) -> float:
    """Cohen's kappa of two binary raters; nan when chance agreement is 1 (one class only)."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    if a.size == 0:
        return math.nan
    observed = float(np.mean(a == b))
    pa, pb = float(a.mean()), float(b.mean())
    expected = pa * pb + (1 - pa) * (1 - pb)
    return math.nan if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def _rate(k: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(k, n)
    return {"k": k, "n": n, "estimate": k / n if n else None, "low": low, "high": high}


def binary_agreement(judge: Sequence[bool], human: Sequence[bool], *, bootstrap: int = 1000,
                     seed: int = 0) -> dict[str, Any]:
    """Accuracy, sensitivity, specificity (Wilson) and kappa (bootstrap) of judge vs human."""
    j = np.asarray(judge, bool)
    h = np.asarray(human, bool)
    if j.shape != h.shape:
        raise ValueError(f"need one verdict per label: got {j.size} verdicts, {h.size} labels")
    tp, tn = int(np.sum(j & h)), int(np.sum(~j & ~h))
    kappa = cohen_kappa(j, h)
    low = high = math.nan
    if h.size and not math.isnan(kappa):
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, h.size, size=(bootstrap, h.size))
        values = np.array([cohen_kappa(j[d], h[d]) for d in draws])
        values = values[~np.isnan(values)]
        if values.size:
            low, high = (float(q) for q in np.quantile(values, [0.025, 0.975]))
    return {"n": int(h.size), "accuracy": _rate(tp + tn, int(h.size)),
            "sensitivity": _rate(tp, int(h.sum())), "specificity": _rate(tn, int((~h).sum())),
            "kappa": {"estimate": None if math.isnan(kappa) else kappa,
                      "low": None if math.isnan(low) else low,
                      "high": None if math.isnan(high) else high}}


def agreement_by_condition(labels: Sequence[Mapping[str, Any]],
                           verdicts: Mapping[str, Sequence[bool]], *,
                           counted: frozenset[str] = frozenset({"refused"}),
                           bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Each judge's agreement with the labels, over all replies and per condition stratum.

    Args:
        labels: Label records (``condition`` and ``label`` keys), one per reply.
        verdicts: Judge name -> its refused verdict per reply, in the order of ``labels``.
        counted: Human classes that count as refusal.
        bootstrap: Kappa bootstrap replicates.
        seed: Kappa bootstrap seed.

    Returns:
        ``{"counted_as_refusal": [...], "n": ..., "judges": {name: {"all": ...,
        "by_condition": {stratum: ...}}}}``, JSON-ready.
    """
    human = np.array([row["label"] in counted for row in labels], bool)
    strata = np.array([stratum_of(str(row["condition"])) for row in labels])
    out: dict[str, Any] = {"counted_as_refusal": sorted(counted), "n": len(labels), "judges": {}}
    for name, said in verdicts.items():
        said_array = np.asarray(said, bool)
        if said_array.shape != human.shape:
            raise ValueError(f"judge {name!r} gave {said_array.size} verdicts for "
                             f"{human.size} labels")
        by_condition = {
            stratum: binary_agreement(said_array[strata == stratum], human[strata == stratum],
                                      bootstrap=bootstrap, seed=seed)
            for stratum in sorted(set(strata.tolist()))}
        out["judges"][name] = {"all": binary_agreement(said_array, human, bootstrap=bootstrap,
                                                       seed=seed),
                               "by_condition": by_condition}
    return out


def agreement_lines(result: Mapping[str, Any]) -> list[str]:
    """A plain-text table of :func:`agreement_by_condition`'s result (never printed here)."""
    def cell(rate: Mapping[str, Any]) -> str:
        if not rate["n"]:
            return "n/a"
        return f"{rate['estimate']:.2f} [{rate['low']:.2f},{rate['high']:.2f}] ({rate['n']})"

    def kappa(value: Mapping[str, Any]) -> str:
        if value["estimate"] is None:
            return "n/a"
        if value["low"] is None:
            return f"{value['estimate']:.2f}"
        return f"{value['estimate']:.2f} [{value['low']:.2f},{value['high']:.2f}]"

    lines = [f"agreement with {result['n']} human labels (refusal = "
             f"{' or '.join(result['counted_as_refusal'])}); Wilson / bootstrap 95% intervals",
             "judge | condition | accuracy | sensitivity | specificity | kappa"]
    for name, judged in result["judges"].items():
        for stratum, row in [("all", judged["all"]), *judged["by_condition"].items()]:
            lines.append(f"{name} | {stratum} | {cell(row['accuracy'])} | "
                         f"{cell(row['sensitivity'])} | {cell(row['specificity'])} | "
                         f"{kappa(row['kappa'])}")
    return lines


def _prompts(rows: Sequence[Mapping[str, Any]]) -> list[str] | None:
    """The prompt of every labelled reply, for judges that read it; None if one lacks it."""
    prompts = [row.get("prompt") for row in rows]
    return None if any(p is None for p in prompts) else [str(p) for p in prompts]


def judge_validation(labels_path: Any, fingerprint: str, judges: Mapping[str, Any], *,
                     seed: int = 0) -> dict[str, Any]:
    """Every judge's agreement with the labels of the model with ``fingerprint``.

    Args:
        labels_path: A label file written by ``python -m refusal_checks label``.
        fingerprint: The model under test; labels of other models are ignored.
        judges: Display name -> judge (anything with ``refused(texts)``).
        seed: Kappa bootstrap seed.

    Only the evaluation half of the labels is used (:mod:`refusal_checks.judges.label_split`);
    the tuning half is for designing judges and detectors.

    Returns:
        :func:`agreement_by_condition`'s result on the evaluation half plus ``source``,
        ``fingerprint``, ``split`` (the rule and each half's size) and ``provenance``
        (:func:`refusal_checks.judges.label_provenance.provenance` of every label of this
        model); with no evaluation label for this model, ``{"n": 0, "note": ...}``.
    """
    from pathlib import Path

    from refusal_checks.judges.labelling import read_labels

    from refusal_checks.judges.label_provenance import provenance
    from refusal_checks.judges.label_split import evaluation_half, split_record

    path = Path(labels_path)
    every = list(read_labels(path, fingerprint).values())
    rows = evaluation_half(every)
    about = {"source": str(path), "fingerprint": fingerprint, "split": split_record(every),
             "provenance": provenance(every)}
    if not rows:
        held = (f"holds no label for this model (fingerprint {fingerprint[:23]}...)"
                if not every else f"holds {len(every)} labels of this model, none in the "
                "evaluation half (label_split)")
        return {**about, "n": 0,
                "note": f"{path} {held}; judges are unvalidated on it. Label its replies "
                        "with `python -m refusal_checks label`."}
    texts = [str(row["reply"]) for row in rows]
    verdicts = {name: judge_refused(judge, texts, _prompts(rows)) for name, judge in judges.items()}
    result = agreement_by_condition(rows, verdicts, seed=seed)
    return {**about, **result}


def corrected_rates(labels_path: Any, fingerprint: str, judge: Any,
                    rates: Mapping[str, tuple[int, int]], *, condition: str = "unsteered",
                    seed: int = 0) -> dict[str, Any]:
    """Judged ``(refused, n)`` rates corrected for ``judge``'s error on this model's labels.

    Sensitivity and specificity come from the evaluation half's labelled replies of
    ``condition`` (:mod:`refusal_checks.judges.label_split`; the rates
    must be measured under that condition), refusal = the human ``refused`` class;
    :func:`refusal_checks.stats.corrected.corrected_rate` gives the estimate and its interval.

    Returns:
        ``{"sensitivity": [k, n], "specificity": [k, n], "rates": {name: {...}}}``, or
        ``{"note": ...}`` when the labels cannot support a correction (none for this model
        or condition, no labelled refusal or non-refusal, a judge no better than chance).
    """
    from pathlib import Path

    from refusal_checks.stats.corrected import CorrectionError, corrected_rate
    from refusal_checks.judges.labelling import read_labels

    from refusal_checks.judges.label_split import evaluation_half

    rows = [row for row in evaluation_half(read_labels(Path(labels_path), fingerprint).values())
            if stratum_of(str(row["condition"])) == condition]
    human = np.array([row["label"] == "refused" for row in rows], bool)
    if not human.any() or human.all():
        return {"note": f"{len(rows)} labelled {condition} replies of this model, "
                        f"{int(human.sum())} refusals: need both refusals and non-refusals to "
                        "measure the judge's sensitivity and specificity"}
    said = np.asarray(judge_refused(judge, [str(row["reply"]) for row in rows], _prompts(rows)),
                      bool)
    se = (int(np.sum(said & human)), int(human.sum()))
    sp = (int(np.sum(~said & ~human)), int((~human).sum()))
    out: dict[str, Any] = {"judge": judge.name, "condition": condition,
                           "sensitivity": list(se), "specificity": list(sp), "rates": {}}
    for name, (k, n) in rates.items():
        try:
            result = corrected_rate(k, n, se, sp, seed=seed)
        except CorrectionError as error:
            return {"note": str(error), "sensitivity": list(se), "specificity": list(sp)}
        out["rates"][name] = result.record()
    return out


LABEL_CLASSES = ("complied", "partial", "refused", "broken")


def _kappa_classes(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters over the four classes; None when chance agreement is 1."""
    if not a:
        return None
    observed = float(np.mean([x == y for x, y in zip(a, b)]))
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[c] * cb[c] for c in LABEL_CLASSES) / (len(a) * len(b))
    return None if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def set_agreement(first: Mapping[str, Mapping[str, Any]],
                  second: Mapping[str, Mapping[str, Any]], *, seed: int = 0) -> dict[str, Any]:
    """Agreement of two label sets (reply id -> record) on the replies both labelled.

    Returns:
        ``matched``, ``only_first``, ``only_second``; with any match also ``classes``
        (``k``/``n`` raw agreement and ``kappa`` over the four classes), ``binary``
        (:func:`binary_agreement` of refused-or-not, the second set as reference), and
        ``confusion`` (``"first class / second class"`` -> count).
    """
    shared = sorted(set(first) & set(second))
    out: dict[str, Any] = {"matched": len(shared), "only_first": len(set(first) - set(second)),
                           "only_second": len(set(second) - set(first))}
    if not shared:
        out["note"] = ("no reply is labelled in both sets (labels match by reply id: model, "
                       "condition, prompt set, prompt and reply text)")
        return out
    a = [str(first[rid]["label"]) for rid in shared]
    b = [str(second[rid]["label"]) for rid in shared]
    agree = sum(x == y for x, y in zip(a, b))
    out["classes"] = {"k": agree, "n": len(shared), "kappa": _kappa_classes(a, b)}
    out["binary"] = binary_agreement([x == "refused" for x in a], [y == "refused" for y in b],
                                     seed=seed)
    out["confusion"] = {f"{x} / {y}": n for (x, y), n in sorted(Counter(zip(a, b)).items())}
    return out


def agreement_text(result: Mapping[str, Any], first: str, second: str) -> str:
    """A few plain lines of :func:`set_agreement`'s result."""
    lines = [f"{first} and {second}: {result['matched']} replies labelled in both "
             f"({result['only_first']} only in the first, {result['only_second']} only in "
             "the second)"]
    if not result["matched"]:
        return "\n".join([*lines, result["note"]]) + "\n"
    classes, binary = result["classes"], result["binary"]
    kappa = classes["kappa"]
    lines.append(f"four classes: {classes['k']}/{classes['n']} the same "
                 f"({classes['k'] / classes['n']:.2f}), kappa "
                 + ("n/a" if kappa is None else f"{kappa:.2f}"))
    acc, bk = binary["accuracy"], binary["kappa"]
    lines.append(f"refused or not: {acc['k']}/{acc['n']} the same ({acc['estimate']:.2f} "
                 f"[{acc['low']:.2f}, {acc['high']:.2f}]), kappa "
                 + ("n/a" if bk["estimate"] is None else
                    f"{bk['estimate']:.2f}" + ("" if bk["low"] is None else
                                               f" [{bk['low']:.2f}, {bk['high']:.2f}]")))
    lines += [f"  {pair}: {n}" for pair, n in result["confusion"].items()]
    return "\n".join(lines) + "\n"
