"""The damage axis: what an intervention breaks beside the refusal it moves.

A steering strength or an ablation that drives refusal where a claim wants it may also
break the model: replies that loop, drift into another script or go empty, and next-token
distributions on harmless prompts far from the unedited model's. The report's
``models.<name>.damage`` puts these beside the refusal rates, per condition
(:func:`refusal_checks.cache.replies.condition_of`: unsteered, ``steered:<direction>@<strength>``,
``ablated:<direction>``), from what the run measured anyway
(:class:`refusal_checks.measure.observations.Observations`):

- **broken share**: of the replies the run generated under the condition, the share
  :mod:`refusal_checks.judges.degenerate` calls broken (Wilson interval), with the reasons; beside
  it the judged refusal rate of the same replies, per side (should-refuse / benign);
- **cheap-score refusal rate**: of the prompts scored under the condition (the steering
  sweeps score without generating), per side;
- **KL on benign prompts**: for each steering or ablation applied to benign prompts, the mean
  ``KL(unedited || edited)`` of the first reply token's distribution
  (:func:`refusal_checks.models.scoring.kl_divergence`). It comes from the last-position
  log-probabilities the cheap score already computes under the edit
  (:func:`scores_and_kl`), plus one unedited pass per benign prompt set, and is cached
  under the same key as :func:`refusal_checks.measure.effects.kl` (``ablation-keeps-harmless-
  behaviour``'s values are the ``ablated:refusal`` entry).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from refusal_checks.core import cost
from refusal_checks.cache.store import ArrayCache
from refusal_checks.measure.effects import kl_key, score_key, scores
from refusal_checks.cache.replies import stratum_of
from refusal_checks.measure.observations import BENIGN, SHOULD_REFUSE, Observations
from refusal_checks.models.scoring import kl_divergence, refusal_score
from refusal_checks.stats.intervals import wilson_interval

# Unedited log-probabilities kept in memory (one (prompts, vocab) float32 array per benign
# prompt set; 64 prompts of a 152k vocabulary are 39 MB). A sweep reads one or two benign
# sets at a time, so four cover it.
BASE_SETS = 4


class BaseLogprobs:
    """The unedited model's last-position log-probabilities of the last few prompt sets."""

    def __init__(self, limit: int = BASE_SETS) -> None:
        self.limit = limit
        self._memo: OrderedDict[tuple[str, str, int], np.ndarray] = OrderedDict()

    def get(self, backend: Any, prompts: Any, batch_size: int) -> tuple[np.ndarray, bool]:
        """``(logprobs, computed)``: from memory, or one forward pass."""
        key = (str(backend.fingerprint), prompts.digest, batch_size)
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key], False
        values = backend.last_logprobs(prompts, batch_size=batch_size)
        self._memo[key] = values
        while len(self._memo) > self.limit:
            self._memo.popitem(last=False)
        return values, True


def scores_and_kl(backend: Any, prompts: Any, token_ids: Sequence[int], intervention: Any,
                  cache: ArrayCache | None, batch_size: int = 16,
                  base: BaseLogprobs | None = None, first: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """The cheap refusal score per prompt, and under an edit of benign prompts also the KL.

    Unedited or should-refuse prompts: exactly :func:`refusal_checks.measure.effects.scores`, KL None.
    An edit of benign (or matched) prompts: the edited log-probabilities are computed once
    for both the score and ``KL(unedited || edited)``; both are cached under the keys of
    :func:`~refusal_checks.measure.effects.scores` and :func:`~refusal_checks.measure.effects.kl`, so a warm
    run computes nothing and the two functions serve each other's entries.

    ``first``: the edited log-probabilities, when the generation of the judged replies
    already computed them (:class:`refusal_checks.measure.effects.FirstStep`); no edited forward
    pass runs then.
    """
    if intervention is None or prompts.side == "refuse":
        return scores(backend, prompts, token_ids, intervention, cache, batch_size,
                      logprobs=first), None
    base = base if base is not None else BaseLogprobs(1)
    n = len(prompts)
    keys = (score_key(backend, prompts, token_ids, intervention),
            kl_key(backend, prompts, intervention))
    found = [cache.load(key, (n,)) if cache is not None else None for key in keys]
    hits = sum(value is not None for value in found)
    if hits == 2:
        cost.note(hits=2)
        return found[0], found[1]
    edited = first if first is not None else backend.last_logprobs(
        prompts, intervention=intervention, batch_size=batch_size)
    passes = int(first is None)
    value, kl = found
    if value is None:
        value = refusal_score(edited, token_ids)
        if cache is not None:
            cache.store(keys[0], value, {"set": prompts.name, "kind": "refusal_score"})
    if kl is None:
        unedited, computed = base.get(backend, prompts, batch_size)
        passes += int(computed)
        kl = kl_divergence(unedited, edited)
        if cache is not None:
            cache.store(keys[1], kl, {"set": prompts.name, "kind": "kl"})
    cost.note(hits=hits, computed=2 - hits, prompts=passes * n)
    return value, kl


def parse_condition(condition: str) -> dict[str, Any]:
    """``{"kind", "direction", "strength"}`` of a condition string (strength None unless
    steered)."""
    if condition == "unsteered":
        return {"kind": "unsteered", "direction": None, "strength": None}
    kind, _, rest = condition.partition(":")
    if kind == "steered":
        label, _, strength = rest.rpartition("@")
        try:
            return {"kind": "steered", "direction": label, "strength": float(strength)}
        except ValueError:
            return {"kind": "steered", "direction": rest, "strength": None}
    return {"kind": kind, "direction": rest, "strength": None}


def _share(k: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(k, n)
    return {"k": k, "n": n, "estimate": k / n if n else None, "low": low, "high": high}


def summarise(observations: Observations) -> dict[str, Any]:
    """The ``damage`` section: per condition, the broken share and judged refusal rate of
    its replies, the cheap-score refusal rate of its scored prompts (per side) and the mean
    KL on its benign prompts; ``steering`` lists each direction's conditions by strength,
    ``ablation`` the ablated ones."""
    conditions: dict[str, dict[str, Any]] = {}

    def entry(condition: str) -> dict[str, Any]:
        if condition not in conditions:
            conditions[condition] = {"stratum": stratum_of(condition),
                                     **parse_condition(condition), "replies": {}, "score": {}}
        return conditions[condition]

    for _, row in sorted(observations.judged.items()):  # order-free: a worker merge alike
        side = entry(row["condition"])["replies"].setdefault(
            row["side"], {"n": 0, "refused": 0, "broken": 0, "reasons": {}})
        side["n"] += 1
        side["refused"] += int(row["judge"])
        if row["broken"] is not None:
            side["broken"] += 1
            side["reasons"][row["broken"]] = side["reasons"].get(row["broken"], 0) + 1
    for _, row in sorted(observations.scored.items()):  # order-free: a worker merge alike
        side = entry(row["condition"])["score"].setdefault(row["side"], {"n": 0, "refused": 0})
        side["n"] += 1
        side["refused"] += int(row["score"])
    kl_values: dict[str, list[float]] = {}
    for _, row in sorted(observations.kl.items()):  # order-free: a worker merge alike
        kl_values.setdefault(row["condition"], []).append(float(row["kl"]))
    for condition, values in kl_values.items():
        array = np.asarray(values, np.float64)
        entry(condition)["kl_benign"] = {"n": int(array.size), "mean": float(array.mean()),
                                         "median": float(np.median(array)),
                                         "max": float(array.max())}
    for record in conditions.values():
        replies = record["replies"]
        for side in replies.values():
            side["refusal_rate"] = side["refused"] / side["n"]
            side["broken_share"] = side["broken"] / side["n"]
        for side in record["score"].values():
            side["refusal_rate"] = side["refused"] / side["n"]
        if replies:
            record["broken"] = _share(sum(s["broken"] for s in replies.values()),
                                      sum(s["n"] for s in replies.values()))
    ordered = dict(sorted(conditions.items(), key=lambda item: (
        item[1]["kind"] != "unsteered", item[1]["kind"], item[1]["direction"] or "",
        item[1]["strength"] if item[1]["strength"] is not None else math.inf)))
    steering: dict[str, list[str]] = {}
    for condition, record in ordered.items():
        if record["kind"] == "steered":
            steering.setdefault(record["direction"], []).append(condition)
    return {"conditions": ordered, "steering": steering,
            "ablation": [c for c, r in ordered.items() if r["kind"] == "ablated"],
            "sides": [SHOULD_REFUSE, BENIGN]}


def curves(damage: Mapping[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Per steering direction, values against strength for the report's figure:
    ``strengths``, ``refusal`` / ``over_refusal`` (judged where replies were judged, else
    the cheap score's rate), ``refusal_source`` / ``over_refusal_source`` (``judge`` or
    ``score`` per point), ``broken`` (share of judged replies) and ``kl`` (benign mean);
    NaN where the condition has no such measurement."""
    out: dict[str, dict[str, list[Any]]] = {}
    conditions = damage.get("conditions") or {}
    for direction, names in (damage.get("steering") or {}).items():
        rows = [conditions[c] for c in names if conditions[c].get("strength") is not None]
        if not rows:
            continue
        series: dict[str, list[Any]] = {"strengths": [float(r["strength"]) for r in rows]}
        for key, side in (("refusal", SHOULD_REFUSE), ("over_refusal", BENIGN)):
            values, sources = [], []
            for r in rows:
                judged = (r.get("replies") or {}).get(side)
                scored = (r.get("score") or {}).get(side)
                if judged:
                    values.append(judged["refused"] / judged["n"])
                    sources.append("judge")
                elif scored:
                    values.append(scored["refused"] / scored["n"])
                    sources.append("score")
                else:
                    values.append(math.nan)
                    sources.append("")
            series[key], series[f"{key}_source"] = values, sources
        series["broken"] = [(r.get("broken") or {}).get("estimate", math.nan)
                            if r.get("broken") else math.nan for r in rows]
        series["kl"] = [(r.get("kl_benign") or {}).get("mean", math.nan) for r in rows]
        out[str(direction)] = series
    return out


def summary_line(model: str, damage: Mapping[str, Any]) -> str | None:
    """One terminal line: the most broken condition and the largest benign KL under an edit."""
    conditions = damage.get("conditions") or {}
    edited = {c: r for c, r in conditions.items() if r.get("kind") != "unsteered"}
    parts = []
    broken = [(r["broken"]["k"] / r["broken"]["n"], c, r["broken"]) for c, r in edited.items()
              if r.get("broken") and r["broken"]["n"]]
    if broken:
        share, condition, cell = max(broken)
        parts.append(f"broken replies up to {cell['k']}/{cell['n']} ({condition})"
                     if share > 0 else
                     f"no broken reply in {sum(b[2]['n'] for b in broken)} edited replies")
    kl = [(r["kl_benign"]["mean"], c, r["kl_benign"]["n"]) for c, r in edited.items()
          if r.get("kl_benign")]
    if kl:
        value, condition, n = max(kl)
        parts.append(f"benign next-token KL up to {value:.3g} ({condition}, n={n})")
    if not parts:
        return None
    return f"damage [{model}]: " + "; ".join(parts)
