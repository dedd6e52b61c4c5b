"""Reply identities: the index of every judged reply a run caches, and each reply's id.

Every judged reply a run generates is cached by :func:`refusal_checks.measure.activations.replies`
(namespace ``replies``) together with an index entry (:func:`index_record`) naming the
model fingerprint, the prompt set, its side (should-refuse or benign), the condition
(unsteered, steered along a direction, ablated) and the prompts. This module enumerates
those replies (:func:`cached_replies`); people's labels of them (a stratified sample, the
blind labelling session, label files) are :mod:`refusal_checks.judges.labelling`. stdlib +
the cache
(:mod:`refusal_checks.cache.keys`, :mod:`refusal_checks.cache.store`) only.

A reply's id (:func:`reply_id`) hashes its text with its slot (:func:`reply_slot`: model,
condition, prompt set, prompt, token budget). A condition names an edit by its label, so
two edits of one name (Arditi's candidates at one layer, random controls, two runs'
directions) share a slot; their replies still get distinct ids, and a label counts only for
the very text the person read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refusal_checks.cache.keys import cache_key
from refusal_checks.cache.store import ArrayCache

INDEX_KIND = "reply-index"


def condition_of(intervention: Any) -> str:
    """``unsteered``, ``steered:<label>@<strength>`` or ``ablated:<label>`` for an edit."""
    if intervention is None:
        return "unsteered"
    label = getattr(intervention, "label", "") or "unnamed"
    if hasattr(intervention, "strength"):
        return f"steered:{label}@{float(intervention.strength):g}"
    return f"ablated:{label}"


def stratum_of(condition: str) -> str:
    """The condition without its strength: one stratum per direction, as the issue asks."""
    return condition.split("@", 1)[0]


def index_key(replies_key: str) -> str:
    """Cache key of the index entry that describes the replies stored under ``replies_key``."""
    return cache_key(kind=INDEX_KIND, replies=replies_key)


def index_record(replies_key: str, *, fingerprint: str, model: str, prompt_set: str,
                 side: str, condition: str, prompts: Sequence[str],
                 max_new_tokens: int) -> dict[str, Any]:
    """What :func:`cached_replies` needs to find and describe one cached reply list."""
    return {"kind": INDEX_KIND, "replies_key": replies_key, "fingerprint": fingerprint,
            "model": model, "prompt_set": prompt_set, "side": side, "condition": condition,
            "prompts": list(prompts), "max_new_tokens": max_new_tokens}


@dataclass(frozen=True)
class CachedReply:
    """One generated reply and where it came from.

    Attributes:
        id: :func:`reply_id`: the slot and the text, so the same text keeps its id across
            runs and caches, and two texts never share one.
        side: ``refuse`` (should be refused) or ``comply`` / benign, as the prompt set says.
        slot: :func:`reply_slot`: where the reply was generated, whatever its text.
    """

    id: str
    fingerprint: str
    model: str
    condition: str
    prompt_set: str
    side: str
    prompt: str
    reply: str
    slot: str

    @property
    def stratum(self) -> tuple[str, str]:
        return stratum_of(self.condition), "should-refuse" if self.side == "refuse" else "benign"


def reply_slot(fingerprint: str, condition: str, prompt_set: str, prompt: str,
               max_new_tokens: int) -> str:
    """sha256 of model, condition, prompt set, prompt and token budget (the ids of schema 1).

    Not an id: the condition names an edit by its label, not its vector, so one slot can
    hold the replies of several edits.
    """
    text = json.dumps([fingerprint, condition, prompt_set, prompt, max_new_tokens])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def text_id(slot: str, reply: str) -> str:
    """The id of the reply ``reply`` in slot ``slot``."""
    text = json.dumps([slot, reply])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def reply_id(fingerprint: str, condition: str, prompt_set: str, prompt: str,
             max_new_tokens: int, reply: str) -> str:
    """A reply's id: its slot (:func:`reply_slot`) and its text, hashed together.

    Two replies share an id only when they are the same text in the same slot, so a label
    (keyed by id) always belongs to exactly the text that was labelled.
    """
    return text_id(reply_slot(fingerprint, condition, prompt_set, prompt, max_new_tokens),
                   reply)


def cached_replies(cache_dir: Path, fingerprint: str | None = None) -> list[CachedReply]:
    """Every indexed reply in the cache (optionally of one model), in a stable order."""
    cache = ArrayCache(cache_dir, "replies")
    found: dict[str, CachedReply] = {}
    for path in sorted(cache.directory.glob("*/*.result.json")):
        entry = cache.load_json(path.name.removesuffix(".result.json"))
        if not (isinstance(entry, dict) and entry.get("kind") == INDEX_KIND):
            continue
        if fingerprint is not None and entry.get("fingerprint") != fingerprint:
            continue
        texts = cache.load_json(str(entry["replies_key"]))
        prompts = entry.get("prompts")
        if not (isinstance(texts, list) and isinstance(prompts, list)
                and len(texts) == len(prompts)):
            continue  # the replies were cleared or replaced: nothing to label
        for prompt, text in zip(prompts, texts):
            slot = reply_slot(str(entry["fingerprint"]), str(entry["condition"]),
                              str(entry["prompt_set"]), str(prompt), int(entry["max_new_tokens"]))
            rid = text_id(slot, str(text))  # the same text indexed twice is one reply
            found[rid] = CachedReply(rid, str(entry["fingerprint"]), str(entry["model"]),
                                     str(entry["condition"]), str(entry["prompt_set"]),
                                     str(entry["side"]), str(prompt), str(text), slot)
    return sorted(found.values(), key=lambda r: (r.stratum, r.condition, r.id))
