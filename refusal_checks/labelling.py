"""Human labels on the model under test: find cached replies, sample them, record labels.

Every judged reply a run generates is cached by :func:`refusal_checks.activations.replies`
(namespace ``replies``) together with an index entry (:func:`index_record`) naming the
model fingerprint, the prompt set, its side (should-refuse or benign), the condition
(unsteered, steered along a direction, ablated) and the prompts. This module enumerates
those replies, draws a stratified sample (the same number from every condition x side
stratum, round-robin, so rare strata are not drowned by the unsteered probes), and appends
a person's label per reply to a JSONL file keyed by the model fingerprint. The labelling
session (:func:`label_session`) never shows any judge's verdict, and skips replies already
in the file, so it can be stopped and resumed. stdlib + the cache (:mod:`refusal_checks.cache`,
:mod:`refusal_checks.cache_store`) only.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from refusal_checks.cache import cache_key
from refusal_checks.cache_store import ArrayCache
from refusal_checks.errors import RefusalChecksError

INDEX_KIND = "reply-index"
LABEL_SCHEMA = "refusal_checks/reply_label/1"
# Keys a person types, and the class each one records (refusal_checks.judges.CLASSES).
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
        id: sha256 of fingerprint, condition, prompt set, prompt and token budget: the same
            reply keeps its id across runs and caches.
        side: ``refuse`` (should be refused) or ``comply`` / benign, as the prompt set says.
    """

    id: str
    fingerprint: str
    model: str
    condition: str
    prompt_set: str
    side: str
    prompt: str
    reply: str

    @property
    def stratum(self) -> tuple[str, str]:
        return stratum_of(self.condition), "should-refuse" if self.side == "refuse" else "benign"


def reply_id(fingerprint: str, condition: str, prompt_set: str, prompt: str,
             max_new_tokens: int) -> str:
    text = json.dumps([fingerprint, condition, prompt_set, prompt, max_new_tokens])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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
            rid = reply_id(str(entry["fingerprint"]), str(entry["condition"]),
                           str(entry["prompt_set"]), str(prompt), int(entry["max_new_tokens"]))
            found[rid] = CachedReply(rid, str(entry["fingerprint"]), str(entry["model"]),
                                     str(entry["condition"]), str(entry["prompt_set"]),
                                     str(entry["side"]), str(prompt), str(text))
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
        members = sorted(strata[key], key=lambda r: r.id)
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
        if not (isinstance(row, dict) and row.get("schema") == LABEL_SCHEMA
                and row.get("label") in KEYS.values() and isinstance(row.get("id"), str)):
            raise LabelFileError(f"{path}, line {number}: not a reply label (need schema "
                                 f"{LABEL_SCHEMA!r}, an id and a label in "
                                 f"{', '.join(KEYS.values())}). Write labels with "
                                 "`python -m refusal_checks label`.")
        if fingerprint is None or row.get("fingerprint") == fingerprint:
            labels[row["id"]] = row
    return labels


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
