"""Hand labels in two fixed halves: a tuning half and an evaluation half.

A judge or a detector designed by reading labels is measured too kindly on those same
labels. So every label file is split, by a rule fixed before any accuracy was computed on
it, into:

- the **tuning** half: for designing judges, phrase lists, the broken-reply rules and any
  threshold read off labels;
- the **evaluation** half: for every reported accuracy, sensitivity, specificity, kappa and
  judge-error-corrected rate (:mod:`refusal_checks.judges.agreement`,
  :mod:`refusal_checks.measure.score_validation`, ``benchmarks/model_labels.py``).

The half of a label is decided by the prompt alone: the first byte of
``sha256(SPLIT_SALT + "\\0" + prompt)``, even for tuning, odd for evaluation. All replies to one
prompt (unsteered, steered, ablated) fall in the same half, so what a designer learns from a
prompt's replies (a reply that restates that prompt, say) never reaches the half that
measures the design. The rule needs no labels, model or seed, so a new label file is split
the same way, and its halves are known before anyone reads a label.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

# Fixed with the first release that split labels; changing it would re-split every file, so
# a new rule needs a new salt and a CHANGELOG line, never a quiet edit.
SPLIT_SALT = "refusal_checks/label-split/1"
TUNING = "tuning"
EVALUATION = "evaluation"
HALVES = (TUNING, EVALUATION)
RULE = (f"by prompt: the first byte of sha256('{SPLIT_SALT}' + NUL + prompt), even = "
        f"{TUNING}, odd = {EVALUATION}")


def half_of_prompt(prompt: str) -> str:
    """``tuning`` or ``evaluation`` for a prompt's text (see the module docstring)."""
    digest = hashlib.sha256(f"{SPLIT_SALT}\0{prompt}".encode("utf-8")).digest()
    return TUNING if digest[0] % 2 == 0 else EVALUATION


def half_of(row: Mapping[str, Any]) -> str:
    """The half of one label record (by its ``prompt``).

    Raises:
        ValueError: The record has no prompt text, so its half is unknown.
    """
    prompt = row.get("prompt")
    if not isinstance(prompt, str):
        raise ValueError(f"label {row.get('id')!r} has no prompt text, so its half (tuning or "
                         "evaluation) is unknown; label replies with `python -m refusal_checks "
                         "label`, which records the prompt")
    return half_of_prompt(prompt)


def split(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """``{"tuning": [...], "evaluation": [...]}``, each in the order given."""
    out: dict[str, list[Mapping[str, Any]]] = {half: [] for half in HALVES}
    for row in rows:
        out[half_of(row)].append(row)
    return out


def evaluation_half(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows every reported accuracy and corrected rate may use."""
    return split(rows)[EVALUATION]


def split_record(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """What a report says about the split: the rule and each half's size."""
    halves = split(rows)
    return {"rule": RULE, "used": EVALUATION,
            **{half: len(members) for half, members in halves.items()}}
