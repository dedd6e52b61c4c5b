"""Human labels on the model under test: find cached replies, sample them, record labels.

Every judged reply a run generates is cached by :func:`refusal_checks.measure.activations.replies`
(namespace ``replies``) together with an index entry (:func:`index_record`) naming the
model fingerprint, the prompt set, its side (should-refuse or benign), the condition
(unsteered, steered along a direction, ablated) and the prompts. This module enumerates
those replies, draws a stratified sample (the same number from every condition x side
stratum, round-robin, so rare strata are not drowned by the unsteered probes), and appends
a person's label per reply to a JSONL file keyed by the model fingerprint. The labelling
session (:func:`label_session`) never shows any judge's verdict, and skips replies already
in the file, so it can be stopped and resumed. stdlib + the cache
(:mod:`refusal_checks.cache.keys`, :mod:`refusal_checks.cache.store`) only.

A reply's id (:func:`reply_id`) hashes its text with its slot (:func:`reply_slot`: model,
condition, prompt set, prompt, token budget). A condition names an edit by its label, so
two edits of one name (Arditi's candidates at one layer, random controls, two runs'
directions) share a slot; their replies still get distinct ids, and a label counts only for
the very text the person read. Label files of schema 1 stored the slot as the id; they are
read with the id bound to their stored reply, so they keep matching.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from refusal_checks.cache.keys import cache_key
from refusal_checks.cache.store import ArrayCache
from refusal_checks.errors import RefusalChecksError

INDEX_KIND = "reply-index"
LABEL_SCHEMA = "refusal_checks/reply_label/2"
# Schema 1: the same record with the slot as its id and no ``slot`` field; still read.
SLOT_ID_SCHEMA = "refusal_checks/reply_label/1"
# Keys a person types, and the class each one records (refusal_checks.judges.base.CLASSES).
KEYS: dict[str, str] = {"c": "complied", "p": "partial", "r": "refused", "b": "broken"}
GUIDE = "docs/labelling.md"


class LabelFileError(RefusalChecksError, ValueError):
    """A label file that cannot be read; the message names the file, line and fix."""


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


def stratified_sample(replies: Iterable[CachedReply], n: int, seed: int = 0) -> list[CachedReply]:
    """Up to ``n`` replies, drawn round-robin over the strata in a seeded shuffled order.

    Each stratum (condition without strength x should-refuse / benign) gives one reply in
    turn until ``n`` are drawn or all are used, so every stratum gets ``n / strata`` when it
    has that many. The order is the labelling order; a larger ``n`` extends a smaller one.
    """
    rng = random.Random(seed)
    strata: dict[tuple[str, str], list[CachedReply]] = {}
    for reply in replies:
        strata.setdefault(reply.stratum, []).append(reply)
    queues = []
    for key in sorted(strata):
        # By slot first: where no two replies share a slot (no namesake edits) the order,
        # and so the sample of a seed, is the one drawn before ids named the text.
        members = sorted(strata[key], key=lambda r: (r.slot, r.id))
        rng.shuffle(members)
        queues.append(members)
    sample: list[CachedReply] = []
    while len(sample) < n and any(queues):
        for queue in queues:
            if queue and len(sample) < n:
                sample.append(queue.pop(0))
    return sample


def read_labels(path: Path, fingerprint: str | None = None) -> dict[str, dict[str, Any]]:
    """Labels in ``path`` by reply id (the last line wins), optionally of one model only.

    Each record's ``id`` and ``slot`` are set from its slot and its stored reply text
    (:func:`text_id`), for schema 1 (whose ``id`` is the slot) and 2 alike: a label is found
    only under the id of the text it was given.

    Raises:
        LabelFileError: A line that is not a label record; the message names file and line.
    """
    labels: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return labels
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LabelFileError(f"{path}, line {number}: invalid JSON ({exc.msg}). Delete or "
                                 "fix the line; every other label is kept.") from None
        slot = _slot_of(row)
        if slot is None:
            raise LabelFileError(f"{path}, line {number}: not a reply label (need schema "
                                 f"{LABEL_SCHEMA!r} with an id, a slot, the reply text and a "
                                 f"label in {', '.join(KEYS.values())}). Write labels with "
                                 "`python -m refusal_checks label`.")
        if fingerprint is None or row.get("fingerprint") == fingerprint:
            row = {**row, "slot": slot, "id": text_id(slot, row["reply"])}
            labels[row["id"]] = row
    return labels


def _slot_of(row: Any) -> str | None:
    """The slot of a label record (schema 1: its id), or None when it is not one."""
    if not (isinstance(row, dict) and row.get("label") in KEYS.values()
            and isinstance(row.get("id"), str) and isinstance(row.get("reply"), str)):
        return None
    if row.get("schema") == SLOT_ID_SCHEMA:
        return str(row["id"])
    if row.get("schema") == LABEL_SCHEMA and isinstance(row.get("slot"), str):
        return str(row["slot"])
    return None


def stale_labels(labels: Mapping[str, Mapping[str, Any]], slots: Mapping[str, str]
                 ) -> list[str]:
    """Ids of ``labels`` of a text that is not among the replies ``slots`` (id -> slot) but
    is in the slot of one of them: the reply was generated anew, or came from another edit
    of the same name. Such a label counts for none of those replies."""
    wanted = set(slots.values())
    return sorted(rid for rid, row in labels.items()
                  if rid not in slots and row.get("slot") in wanted)


def label_record(reply: CachedReply, label: str, labeller: str) -> dict[str, Any]:
    return {"schema": LABEL_SCHEMA, **asdict(reply), "label": label, "labeller": labeller,
            "labelled_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _show(reply: CachedReply, done: int, total: int, out: TextIO) -> None:
    # Blind: the prompt and the reply only; never a judge's class, the stratum or the side.
    out.write(f"\n--- reply {done + 1} of {total} " + "-" * 40 + "\n")
    out.write(f"PROMPT:\n{reply.prompt}\n\nREPLY:\n{reply.reply if reply.reply else '(empty)'}\n")


def label_session(sample: Sequence[CachedReply], path: Path, *, labeller: str,
                  ask: Callable[[str], str] | None = None, out: TextIO | None = None) -> int:
    """Ask for a label per unlabelled reply of ``sample``; append each to ``path`` at once.

    Answers: c / p / r / b (the classes of :data:`KEYS`), s to skip, q to stop; anything else
    asks again; end of input stops. ``ask`` defaults to :func:`input` (read from stdin).
    Returns how many labels were written.
    """
    import sys

    out = out or sys.stdout
    ask = ask or input
    done = read_labels(path)
    todo = [reply for reply in sample if reply.id not in done]
    out.write(f"{len(sample) - len(todo)} of {len(sample)} sampled replies already labelled "
              f"in {path}; {len(todo)} to go. Guide: {GUIDE}\n")
    prompt = "label [c]omplied [p]artial [r]efused [b]roken, [s]kip, [q]uit: "
    written = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    for position, reply in enumerate(todo):
        _show(reply, len(sample) - len(todo) + position, len(sample), out)
        while True:
            try:
                answer = ask(prompt).strip().lower()
            except EOFError:
                answer = "q"
            if answer in KEYS or answer in ("s", "q"):
                break
            out.write(f"{answer!r} is not one of c, p, r, b, s, q\n")
        if answer == "q":
            break
        if answer == "s":
            continue
        with open(path, "a", encoding="utf-8") as handle:  # one line per label: resumable
            handle.write(json.dumps(label_record(reply, KEYS[answer], labeller)) + "\n")
        written += 1
    out.write(f"wrote {written} labels to {path}\n")
    return written
