"""Every judged refusal rate of a run, corrected for the judge's error on this model: the
report's ``models.<name>.corrected_rates``.

With ``--refusal-labels``, the run's judge is measured against the human labels per
condition stratum (``models.<name>.judge_validation``: sensitivity and specificity as
counts). Each stratum the run judged (unsteered, steered along each direction, ablated)
then has its judged refusal rate, per side (should-refuse prompts, benign prompts),
corrected with that stratum's sensitivity and specificity
(:func:`refusal_checks.stats.corrected.corrected_rate`: Rogan-Gladen, with an interval that
carries the uncertainty of the judged rate and of both error rates; its coverage is checked
in known-answer worlds, ``calibration/run.py --corrected``). The judge's error is taken as
the same on both sides of a stratum: the labels of one stratum are too few to split.

A stratum with no labels, or with labels that cannot measure the judge (no labelled refusal
or non-refusal; a judge no better than chance there) gets a note instead: its rates are
left as judged, and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from refusal_checks.stats.corrected import CorrectionError, corrected_rate
from refusal_checks.cache.replies import stratum_of
from refusal_checks.measure.observations import Observations

SIDES = {"should-refuse": "should_not_comply", "benign": "benign"}


def _judged_counts(observations: Observations) -> dict[str, dict[str, list[int]]]:
    """stratum -> side -> [judged refused, judged]."""
    counts: dict[str, dict[str, list[int]]] = {}
    for row in observations.judged.values():
        side = SIDES.get(str(row["side"]), str(row["side"]))
        cell = counts.setdefault(stratum_of(str(row["condition"])), {}).setdefault(side, [0, 0])
        cell[0] += int(bool(row["judge"]))
        cell[1] += 1
    return dict(sorted(counts.items()))


def _error_counts(validation: Mapping[str, Any] | None
                  ) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(sensitivity, specificity) as (k, n) from one judge_validation cell, or None."""
    if not validation:
        return None
    try:
        se, sp = validation["sensitivity"], validation["specificity"]
        return (int(se["k"]), int(se["n"])), (int(sp["k"]), int(sp["n"]))
    except (KeyError, TypeError, ValueError):
        return None


def corrected_by_condition(observations: Observations, judge_validation: Mapping[str, Any],
                           judge_name: str, *, seed: int = 0) -> dict[str, Any]:
    """The ``corrected_rates`` section (see the module docstring).

    Args:
        observations: One model's judged replies.
        judge_validation: ``models.<name>.judge_validation`` of the same run.
        judge_name: The run's judge (``models.<name>.judge``).
        seed: Seed of the interval's posterior draws.
    """
    cells = (judge_validation.get("judges") or {}).get(judge_name)
    out: dict[str, Any] = {"judge": judge_name, "by_condition": {}}
    if cells is None:
        out["note"] = (f"the labels did not measure {judge_name!r} on this model, so no rate "
                       "is corrected")
        return out
    by_condition = cells.get("by_condition") or {}
    for stratum, sides in _judged_counts(observations).items():
        errors = _error_counts(by_condition.get(stratum))
        record: dict[str, Any] = {"judged": {side: list(c) for side, c in sides.items()}}
        if errors is None:
            record["note"] = "no labelled reply of this condition: rates left as judged"
        elif not errors[0][1] or not errors[1][1]:
            record["note"] = (f"the labels of this condition hold {errors[0][1]} refusals and "
                              f"{errors[1][1]} non-refusals: both are needed to measure the "
                              "judge, so rates are left as judged")
        else:
            record["sensitivity"], record["specificity"] = list(errors[0]), list(errors[1])
            try:
                record["rates"] = {side: corrected_rate(k, n, *errors, seed=seed).record()
                                   for side, (k, n) in sides.items()}
            except CorrectionError as error:
                record["note"] = f"{error}; rates left as judged"
        out["by_condition"][stratum] = record
    return out


def summary_line(model: str, section: Mapping[str, Any]) -> str | None:
    """One terminal line: how many conditions' rates were corrected, and the unsteered ones."""
    rows = section.get("by_condition") or {}
    corrected = [s for s, r in rows.items() if "rates" in r]
    if not rows:
        return None
    text = (f"corrected refusal rates [{model}]: {len(corrected)} of {len(rows)} conditions "
            f"have labels that measure {section.get('judge')}")
    unsteered = (rows.get("unsteered") or {}).get("rates") or {}
    parts = [f"{side} {r['judged'][0]}/{r['judged'][1]} judged -> {r['estimate']:.2f} "
             f"[{r['low']:.2f}, {r['high']:.2f}]" for side, r in unsteered.items()]
    return text + ("; unsteered " + ", ".join(parts) if parts else "")
