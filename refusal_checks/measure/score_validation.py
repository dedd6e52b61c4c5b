"""The cheap score against the judge (and human labels), per condition: the report's
``models.<name>.score_validation``.

The cheap score (:mod:`refusal_checks.models.scoring`: log-odds that the first reply token opens a
refusal, refused when > 0) stands in for judged replies in the steering sweeps. Whether it
may is a question per condition: an edit can make the model open with "I" and comply, or
refuse after a neutral first token. So every reply the run judges is also scored, on the
same prompt under the same intervention (:class:`refusal_checks.measure.observations.Observations`),
and the pairs (score refused?, judge refused?) are summarised per condition stratum
(:func:`refusal_checks.cache.replies.stratum_of`: unsteered, steered along each direction,
ablated) with :func:`refusal_checks.judges.agreement.binary_agreement`, the judge as the
reference: ``accuracy`` is the share of replies where the two agree (Wilson interval),
``sensitivity`` the share of judged refusals the score finds, ``specificity`` the share of
judged non-refusals it leaves alone, ``kappa`` Cohen's kappa with a bootstrap interval.

With ``--refusal-labels``, the score is also compared with the human labels of the replies
of this run (matched by :func:`refusal_checks.cache.replies.reply_id`, which binds the reply
text; refused = the human ``refused`` class), per condition. A label of a prompt and
condition this run judged, but of a text the run did not produce there, is counted as
``stale`` and not used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from refusal_checks.judges.agreement import binary_agreement
from refusal_checks.cache.replies import stratum_of
from refusal_checks.measure.observations import Observations


def _by_stratum(rows: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    strata: dict[str, list[str]] = {}
    for rid, row in rows.items():
        strata.setdefault(stratum_of(str(row["condition"])), []).append(rid)
    return dict(sorted(strata.items()))


def _agreement(said: np.ndarray, reference: np.ndarray, bootstrap: int, seed: int
               ) -> dict[str, Any]:
    result = binary_agreement(said, reference, bootstrap=bootstrap, seed=seed)
    result["score_refused"] = int(said.sum())
    result["reference_refused"] = int(reference.sum())
    return result


def summarise(observations: Observations, *, bootstrap: int = 1000, seed: int = 0,
              labels: Mapping[str, Mapping[str, Any]] | None = None,
              labels_source: str = "") -> dict[str, Any]:
    """The ``score_validation`` section (see the module docstring).

    Args:
        observations: One model's records.
        bootstrap: Kappa bootstrap replicates.
        seed: Kappa bootstrap seed.
        labels: Human label records by reply id (:func:`refusal_checks.judges.labelling.read_labels`
            of this model), or None without ``--refusal-labels``.
        labels_source: The label file, for the report.

    Returns:
        ``{"reference": "judge", "n", "all", "by_condition": {stratum: ...}}`` plus
        ``"labels"`` (the same against human labels, ``n`` labelled replies of this run)
        when ``labels`` is given.
    """
    # Sorted by reply id: the same records give the same numbers (kappa's bootstrap draws
    # included) in whatever order a run, or its pytest-xdist workers, recorded them.
    judged = dict(sorted(observations.judged.items()))
    out: dict[str, Any] = {
        "reference": "the run's judge on the same replies (score refused = score > 0)",
        "n": len(judged), "by_condition": {}}
    if judged:
        score = np.array([row["score"] for row in judged.values()], bool)
        judge = np.array([row["judge"] for row in judged.values()], bool)
        out["all"] = _agreement(score, judge, bootstrap, seed)
        index = {rid: i for i, rid in enumerate(judged)}
        for stratum, ids in _by_stratum(judged).items():
            rows = np.array([index[rid] for rid in ids])
            out["by_condition"][stratum] = _agreement(score[rows], judge[rows], bootstrap, seed)
    if labels is not None:
        out["labels"] = against_labels(observations, labels, bootstrap=bootstrap, seed=seed)
        out["labels"]["source"] = labels_source
    return out


def against_labels(observations: Observations, labels: Mapping[str, Mapping[str, Any]], *,
                   bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The score's agreement with the human labels of this run's judged replies, overall and
    per condition stratum (refused = the human ``refused`` class). ``stale``: labels of a
    prompt and condition this run judged whose text it did not produce, so not counted."""
    from refusal_checks.judges.labelling import stale_labels

    judged = dict(sorted(observations.judged.items()))
    matched = {rid: row for rid, row in judged.items() if rid in labels}
    stale = stale_labels(labels, {rid: str(row.get("slot")) for rid, row in judged.items()})
    out: dict[str, Any] = {"counted_as_refusal": ["refused"], "n": len(matched),
                           "by_condition": {}, "stale": len(stale)}
    if not matched:
        out["note"] = ("no labelled reply among the replies this run judged (labels match by "
                       "reply id: model, condition, prompt set, prompt, reply length and the "
                       "reply's text)")
        return out
    score = np.array([row["score"] for row in matched.values()], bool)
    human = np.array([labels[rid]["label"] == "refused" for rid in matched], bool)
    out["all"] = _agreement(score, human, bootstrap, seed)
    index = {rid: i for i, rid in enumerate(matched)}
    for stratum, ids in _by_stratum(matched).items():
        rows = np.array([index[rid] for rid in ids])
        out["by_condition"][stratum] = _agreement(score[rows], human[rows], bootstrap, seed)
    return out


def read_run_labels(path: str | Path, fingerprint: str) -> dict[str, dict[str, Any]]:
    """This model's label records of the evaluation half by reply id
    (:mod:`refusal_checks.judges.label_split`; an unreadable file: none, the judge
    validation reports the problem)."""
    from refusal_checks.judges.label_split import EVALUATION, half_of
    from refusal_checks.judges.labelling import LabelFileError, read_labels

    try:
        labels = read_labels(Path(path).expanduser(), fingerprint)
    except LabelFileError:
        return {}
    return {rid: row for rid, row in labels.items() if half_of(row) == EVALUATION}


def summary_line(model: str, validation: Mapping[str, Any]) -> str | None:
    """One terminal line: the score's agreement with the judge, pooled per kind of condition
    (unsteered, steered, ablated), each with its lowest stratum."""
    kinds: dict[str, list[tuple[str, int, int]]] = {}
    for stratum, row in (validation.get("by_condition") or {}).items():
        acc = row["accuracy"]
        if acc["n"]:
            kinds.setdefault(stratum.split(":", 1)[0], []).append((stratum, acc["k"], acc["n"]))
    cells = []
    for kind in sorted(kinds, key=lambda k: (k != "unsteered", k)):
        rows = kinds[kind]
        k, n = sum(r[1] for r in rows), sum(r[2] for r in rows)
        cell = f"{kind} {k / n:.2f} (n={n}"
        if len(rows) > 1:
            low = min(rows, key=lambda r: (r[1] / r[2], r[0]))
            cell += f"; lowest {low[0]} {low[1] / low[2]:.2f}, n={low[2]}"
        cells.append(cell + ")")
    if not cells:
        return None
    return f"cheap score vs judge [{model}]: " + ", ".join(cells)
