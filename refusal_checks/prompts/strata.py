"""Prompt budgets that cover every sub-genre: a deterministic stratified order.

Prompt files are written in topic blocks (all homonyms, then all figurative uses ...), so
their first ``n`` rows are one sub-genre. ``stratified_order`` ranks prompts so that any
prefix draws from as many sub-genres as it can. Stdlib only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stratified_order(texts: Sequence[str], subgenres: Sequence[str] = (),
                     topics: Sequence[str] = ()) -> list[int]:
    """Indices of ``texts`` in budget order: round-robin over strata, hashed within each.

    A stratum is the sub-genre, else the topic, else one stratum for all. Strata are visited
    in sha256 order of their names; within one, prompts are ranked by sha256 of their topic
    (else text), ties by index. So the first ``n`` draw from ``min(n, strata)`` strata, never
    from one block of the file, and twins that share topics are drawn together.
    """
    def label(values: Sequence[str], i: int) -> str:
        return values[i] if values else ""
    strata: dict[str, list[int]] = {}
    for i in range(len(texts)):
        stratum = label(subgenres, i) or label(topics, i)
        strata.setdefault(stratum, []).append(i)
    queues = [sorted(members, key=lambda i: (_sha256(label(topics, i) or texts[i]), i))
              for _, members in sorted(strata.items(), key=lambda kv: _sha256(kv[0]))]
    order: list[int] = []
    for rank in range(max((len(q) for q in queues), default=0)):
        order.extend(q[rank] for q in queues if rank < len(q))
    return order

