"""What a run saw under each intervention, prompt by prompt: the raw data of the report's
``score_validation`` and ``damage`` sections.

The ``measure`` fixture records here, per model, every prompt it

- judged (a generated reply): the judge's refused / not, the cheap score's refused / not
  (score > 0) on the same prompt under the same intervention, and why the reply is broken
  (:func:`refusal_checks.judges.degenerate.broken_reason`, None when it reads as language);
- scored (the cheap score alone, e.g. the steering sweep): refused / not;
- measured the next-token KL on (benign prompts under an edit): ``KL(unedited || edited)``.

Each record carries its condition (:func:`refusal_checks.cache.replies.condition_of`) and side
(should-refuse / benign). A prompt answered twice under one condition (the same probe read
by two claims, a staged probe re-read) is one record: judged replies are keyed by
:func:`refusal_checks.cache.replies.reply_id`, which hashes the text (so a human label matches
only the text it was given, and two edits of one name keep their replies apart), scores and
KL values by condition, prompt set and prompt. Under pytest-xdist each worker records what
it ran and the controller merges (:meth:`Observations.merge`). Standard library only: the
plugin keeps these in its run state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

SHOULD_REFUSE = "should-refuse"
BENIGN = "benign"


def side_of(prompt_side: str) -> str:
    """``should-refuse`` for a ``refuse`` prompt set, ``benign`` for benign and matched ones
    (the strata of :class:`refusal_checks.cache.replies.CachedReply`)."""
    return SHOULD_REFUSE if prompt_side == "refuse" else BENIGN


def prompt_key(condition: str, prompt_set: str, prompt: str) -> str:
    text = json.dumps([condition, prompt_set, prompt])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class Observations:
    """One model's records (see the module docstring); JSON-ready dicts, keyed for dedup.

    Attributes:
        judged: reply id -> ``{"condition", "side", "judge", "score", "broken", "slot"}``
            (``slot``: :func:`refusal_checks.cache.replies.reply_slot`).
        scored: prompt key -> ``{"condition", "side", "score"}``.
        kl: prompt key -> ``{"condition", "kl"}``.
    """

    judged: dict[str, dict[str, Any]] = field(default_factory=dict)
    scored: dict[str, dict[str, Any]] = field(default_factory=dict)
    kl: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_judged(self, *, fingerprint: str, condition: str, prompt_set: str, side: str,
                   prompts: Sequence[str], max_new_tokens: int, judge: Iterable[bool],
                   score: Iterable[bool], broken: Iterable[str | None],
                   replies: Sequence[str]) -> None:
        """One prompt set's judged replies, the score on the same prompts and edit, and
        each reply's broken reason (None: not broken). Keyed by reply id, text included:
        the same text under one condition is one record, another text its own."""
        from refusal_checks.cache.replies import reply_slot, text_id

        rows = list(zip(prompts, judge, score, broken, replies, strict=True))
        for prompt, said, scored, reason, text in rows:
            slot = reply_slot(fingerprint, condition, prompt_set, prompt, max_new_tokens)
            self.judged[text_id(slot, text)] = {
                "condition": condition, "side": side_of(side), "judge": bool(said),
                "score": bool(scored), "broken": None if reason is None else str(reason),
                "slot": slot}

    def add_scored(self, *, condition: str, prompt_set: str, side: str,
                   prompts: Sequence[str], score: Iterable[bool]) -> None:
        for prompt, scored in zip(prompts, score, strict=True):
            self.scored[prompt_key(condition, prompt_set, prompt)] = {
                "condition": condition, "side": side_of(side), "score": bool(scored)}

    def add_kl(self, *, condition: str, prompt_set: str, prompts: Sequence[str],
               values: Iterable[float]) -> None:
        for prompt, value in zip(prompts, values, strict=True):
            self.kl[prompt_key(condition, prompt_set, prompt)] = {"condition": condition,
                                                                  "kl": float(value)}

    def __bool__(self) -> bool:
        return bool(self.judged or self.scored or self.kl)

    def merge(self, other: "Observations") -> None:
        """Fold in another process's records (the same key holds the same measurement)."""
        self.judged.update(other.judged)
        self.scored.update(other.scored)
        self.kl.update(other.kl)

    def to_dict(self) -> dict[str, Any]:
        return {"judged": self.judged, "scored": self.scored, "kl": self.kl}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Observations":
        return cls(dict(data.get("judged", {})), dict(data.get("scored", {})),
                   dict(data.get("kl", {})))

    def agreement_counts(self, prefix: str = "") -> dict[str, dict[str, int]]:
        """Per condition stratum whose name starts with ``prefix``: judged replies ``n`` and
        those where the score (> 0) and the judge say the same, ``agree``."""
        from refusal_checks.cache.replies import stratum_of

        counts: dict[str, dict[str, int]] = {}
        for row in self.judged.values():
            stratum = stratum_of(row["condition"])
            if stratum.startswith(prefix):
                cell = counts.setdefault(stratum, {"n": 0, "agree": 0})
                cell["n"] += 1
                cell["agree"] += int(row["judge"] == row["score"])
        return dict(sorted(counts.items()))
