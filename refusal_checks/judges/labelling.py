"""People's labels of cached replies: draw a stratified sample, run the blind labelling
session, read and write label files, and find labels whose reply text has changed.

Which replies exist, and how a reply is identified, is the cache's business
(:mod:`refusal_checks.cache.replies`); this module only reads those identities. The labelling
session (:func:`label_session`) never shows any judge's verdict, and skips replies already
in the file, so it can be stopped and resumed. Label files of schema 1 stored the slot as the
id; they are read with the id bound to their stored reply, so they keep matching.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from refusal_checks.cache.replies import CachedReply, text_id
from refusal_checks.errors import RefusalChecksError

LABEL_SCHEMA = "refusal_checks/reply_label/2"
# Schema 1: the same record with the slot as its id and no ``slot`` field; still read.
SLOT_ID_SCHEMA = "refusal_checks/reply_label/1"
# Keys a person types, and the class each one records (refusal_checks.judges.base.CLASSES).
KEYS: dict[str, str] = {"c": "complied", "p": "partial", "r": "refused", "b": "broken"}
GUIDE = "docs/labelling.md"


class LabelFileError(RefusalChecksError, ValueError):
    """A label file that cannot be read; the message names the file, line and fix."""


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


def label_record(reply: CachedReply, label: str, labeller: str, *,
                 interactive: bool | None = None, seconds: float | None = None
                 ) -> dict[str, Any]:
    """One label as the label command writes it, with its provenance: who labelled
    (``labeller``), when (``labelled_at``, to the second the label was typed), that the
    labeller saw only the prompt and the reply (``blind``), which tool wrote it
    (``written_by``), whether the answers came from a terminal (``interactive``; False:
    piped in) and how long the reply was on screen before the answer (``seconds``)."""
    from refusal_checks.judges.label_provenance import WRITTEN_BY

    return {"schema": LABEL_SCHEMA, **asdict(reply), "label": label, "labeller": labeller,
            "labelled_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "blind": True, "written_by": WRITTEN_BY, "interactive": interactive,
            "seconds": None if seconds is None else round(seconds, 1)}


def _show(reply: CachedReply, done: int, total: int, out: TextIO) -> None:
    # Blind: the prompt and the reply only; never a judge's class, the stratum or the side.
    out.write(f"\n--- reply {done + 1} of {total} " + "-" * 40 + "\n")
    out.write(f"PROMPT:\n{reply.prompt}\n\nREPLY:\n{reply.reply if reply.reply else '(empty)'}\n")


def label_session(sample: Sequence[CachedReply], path: Path, *, labeller: str,
                  ask: Callable[[str], str] | None = None, out: TextIO | None = None,
                  interactive: bool | None = None) -> int:
    """Ask for a label per unlabelled reply of ``sample``; append each to ``path`` at once.

    Answers: c / p / r / b (the classes of :data:`KEYS`), s to skip, q to stop; anything else
    asks again; end of input stops. ``ask`` defaults to :func:`input` (read from stdin).
    ``interactive`` is recorded with each label (None: whether stdin is a terminal, when
    ``ask`` is :func:`input`). Returns how many labels were written.

    Raises:
        LabelFileError: ``labeller`` is empty: every label must name who gave it.
    """
    import sys
    import time

    if not labeller.strip():
        raise LabelFileError("the labeller is empty: pass --labeller NAME (who reads the "
                             "replies; it is recorded with every label)")
    out = out or sys.stdout
    if interactive is None and ask is None:
        interactive = sys.stdin.isatty()
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
        shown = time.monotonic()
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
            record = label_record(reply, KEYS[answer], labeller, interactive=interactive,
                                  seconds=time.monotonic() - shown)
            handle.write(json.dumps(record) + "\n")
        written += 1
    out.write(f"wrote {written} labels to {path}\n")
    return written
