"""How a label file was written.

A label's worth depends on how it was made: by a person, one reply at a time, blind to
every judge. ``python -m refusal_checks label`` records that per row (``labeller``,
``labelled_at`` to the second when the label was typed, ``blind: true`` and ``written_by``);
:func:`provenance` reads it back from any file and says what the rows do and do not show,
so a report never claims more than its labels carry. A file whose rows share one timestamp
was written in one batch, not label by label through the command, and rows without the
``blind`` flag do not record blindness, whatever their ``labeller`` text says.

How far two label sets agree is :func:`refusal_checks.judges.agreement.set_agreement`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

WRITTEN_BY = "python -m refusal_checks label"


def provenance(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the rows record about how they were made, and a plain note of what that shows.

    Returns:
        ``rows``, ``labellers`` (name -> rows), ``timestamps`` (distinct ``labelled_at``),
        ``largest_batch`` (most rows sharing one timestamp), ``blind_recorded`` (rows with
        ``blind: true``), ``by_command`` (rows the label command wrote: ``written_by``), and
        ``notes``: sentences for a report.
    """
    stamps = Counter(str(row.get("labelled_at")) for row in rows)
    blind = sum(row.get("blind") is True for row in rows)
    by_command = sum(row.get("written_by") == WRITTEN_BY for row in rows)
    piped = sum(row.get("interactive") is False for row in rows)
    largest = max(stamps.values(), default=0)
    notes = []
    if rows and largest > 1:
        notes.append(f"{largest} of {len(rows)} labels share one timestamp "
                     f"({stamps.most_common(1)[0][0]}): written in one batch, not one label "
                     "at a time through the label command, so when and how each was read is "
                     "not recorded")
    if len(rows) > blind:
        notes.append(f"{len(rows) - blind} of {len(rows)} labels do not record that the "
                     "labeller was blind to the judges (no 'blind' flag; the label command "
                     "writes one)")
    if len(rows) > by_command:
        notes.append(f"{len(rows) - by_command} of {len(rows)} labels were not written by "
                     f"`{WRITTEN_BY}` as far as they record")
    if piped:
        notes.append(f"{piped} of {len(rows)} labels were answered from piped input, not "
                     "typed at a terminal")
    return {"rows": len(rows), "piped": piped,
            "labellers": dict(Counter(str(row.get("labeller")) for row in rows)),
            "timestamps": len(stamps), "largest_batch": largest, "blind_recorded": blind,
            "by_command": by_command, "notes": notes}
