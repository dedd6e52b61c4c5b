"""One greedy reply per (prompt, edit): generated once at the longest budget a run reads,
every shorter reader served its token prefix.

The same prompts are answered at several budgets (the behaviour control at 16 tokens, the
baseline at 24, the judged probes at 32). Greedy decoding makes the shorter reply the
prefix of the longer one, so :func:`shared_replies` keeps each generated reply as tokens
(cache namespace ``replies``, kind ``reply-tokens``, one entry per prompt and edit, keyed
by the model's fingerprint and dtype, the prompt's chat-templated token ids and the edit's
key: never the budget) with the budget it was generated at. A reader at budget ``b`` is
served an entry generated at ``B >= b``, or one whose reply ended before ``B``, cut as a
``b``-token generation cuts it (:func:`refusal_checks.models.reply_tokens.cut`: in tokens,
end token included); the rest are generated at ``max(b, plan)``, where the
:class:`ReplyPlan` holds the longest budget any selected claim reads for that prompt. An
entry is replaced only by one that serves more budgets.

What a prefix cannot promise: a prompt served from another reader's batch ran beside other
prompts than a reader's own generation would have put beside it, and batch shape changes
float32 rounding (padding, matrix sizes). ``benchmarks/shared_replies.py`` counts how often
that changes a reply on the real model (docs/performance.md); the cache keys of every
release ignore batch shape for the same reason (:mod:`refusal_checks.cache.resume`).
"""

from __future__ import annotations

import json

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from refusal_checks.cache.keys import cache_key
from refusal_checks.cache.store import ArrayCache
from refusal_checks.models.interventions import Intervention
from refusal_checks.models.reply_tokens import serves
from refusal_checks.prompts.sets import PromptSet

TOKENS_KIND = "reply-tokens"


def shares_replies(backend: Any) -> bool:
    """The backend hands back generated tokens and cuts them (the nnsight backend does;
    planted worlds generate text and keep the per-set path)."""
    return callable(getattr(backend, "reply_text", None)) and callable(
        getattr(backend, "stop_tokens", None))


def _edit_key(intervention: Intervention | None) -> Any:
    return None if intervention is None else intervention.key()


def _plan_key(intervention: Intervention | None) -> str | None:
    """The edit as the plan's dictionary key (an intervention's key is a dict)."""
    return None if intervention is None else json.dumps(intervention.key(), sort_keys=True)


@dataclass
class ReplyPlan:
    """The longest budget any selected claim reads, per (prompt text, edit key).

    A reader asking for fewer tokens generates at the planned budget, so the longer reader
    that comes later is served from the same generation.
    """

    budgets: dict[tuple[str, str | None], int] = field(default_factory=dict)

    def add(self, texts: Iterable[str], budget: int,
            intervention: Intervention | None = None) -> None:
        if int(budget) < 1:
            raise ValueError(f"a reply budget must be a positive token count, got {budget}")
        edit = _plan_key(intervention)
        for text in texts:
            where = (str(text), edit)
            self.budgets[where] = max(self.budgets.get(where, 0), int(budget))

    def budget(self, text: str, intervention: Intervention | None, asked: int) -> int:
        """``asked``, or the longer budget a selected claim reads for this prompt."""
        return max(int(asked), self.budgets.get((text, _plan_key(intervention)), 0))


def token_key(backend: Any, text: str, intervention: Intervention | None) -> str:
    """Cache key of one prompt's reply tokens under one edit (no budget: see the module)."""
    one = PromptSet("reply", "benign", "benign", (text,), "")
    return cache_key(kind=TOKENS_KIND, model=backend.fingerprint, dtype=backend.dtype,
                     inputs=backend.input_digest(one), intervention=_edit_key(intervention))


def _entry(cache: ArrayCache, key: str) -> tuple[int, list[int]] | None:
    hit = cache.load_json(key)
    if not isinstance(hit, dict):
        return None
    budget, tokens = hit.get("budget"), hit.get("tokens")
    if not (isinstance(budget, int) and budget > 0 and isinstance(tokens, list)
            and all(isinstance(t, int) for t in tokens) and len(tokens) <= budget):
        return None
    return budget, [int(t) for t in tokens]


@dataclass
class SharedStats:
    """What :func:`shared_replies` did: replies served as a prefix or whole, generated."""

    served: int = 0
    generated: int = 0
    batches: int = 0


def shared_replies(backend: Any, prompts: PromptSet, *, max_new_tokens: int,
                   cache: ArrayCache, intervention: Intervention | None = None,
                   batch_size: int = 16, first_logprobs: Any = None,
                   plan: ReplyPlan | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   stats: SharedStats | None = None) -> list[str]:
    """The ``max_new_tokens``-token greedy replies to ``prompts``, from stored tokens where
    a generation at this budget or longer holds them, generated (and stored) otherwise.

    Prompts to generate keep their order and are batched by planned budget; with no plan
    and nothing stored, the batches are those of ``backend.generate`` on the whole set.
    ``first_logprobs`` reaches the backend for the prompts it generates only.
    """
    stats = stats if stats is not None else SharedStats()
    stop = backend.stop_tokens()
    texts = list(prompts.texts)
    keys = [token_key(backend, text, intervention) for text in texts]
    rows: list[list[int] | None] = [None] * len(texts)
    for i, key in enumerate(keys):
        found = _entry(cache, key)
        if found is not None and serves(found[1], found[0], max_new_tokens, stop):
            rows[i] = found[1]
    stats.served += sum(row is not None for row in rows)
    missing = [i for i, row in enumerate(rows) if row is None]
    by_budget: dict[int, list[int]] = {}
    for i in missing:
        wanted = plan.budget(texts[i], intervention, max_new_tokens) if plan else max_new_tokens
        by_budget.setdefault(wanted, []).append(i)
    done = len(texts) - len(missing)
    if progress is not None and done:
        progress(done, len(texts))
    extra: dict[str, Any] = {}
    if intervention is not None:
        extra["intervention"] = intervention
    if first_logprobs is not None:
        extra["first_logprobs"] = first_logprobs
    for budget, where in sorted(by_budget.items()):
        for start in range(0, len(where), batch_size):
            chunk = where[start:start + batch_size]
            # By text: a backend may batch the prompts in another order (by length).
            got: dict[str, list[int]] = {}

            def keep(batch: Sequence[str], new: list[list[int]]) -> None:
                got.update(zip(batch, new))

            sub = PromptSet(prompts.name, prompts.category, prompts.side,
                            tuple(texts[i] for i in chunk), prompts.source)
            backend.generate(sub, budget, batch_size=batch_size, reply_tokens=keep, **extra)
            if any(texts[i] not in got for i in chunk):
                raise RuntimeError(f"{backend.name} reported token rows for "
                                   f"{sum(texts[i] in got for i in chunk)} of {len(chunk)} "
                                   "prompts")
            for i in chunk:
                row = rows[i] = got[texts[i]]
                old = _entry(cache, keys[i])
                # Replace only by an entry that serves more budgets (never a shorter one).
                if old is None or not serves(old[1], old[0], budget, stop):
                    cache.store_json(keys[i], {"budget": budget, "tokens": row})
            stats.generated += len(chunk)
            stats.batches += 1
            done += len(chunk)
            if progress is not None:
                progress(done, len(texts))
    return backend.reply_text([row or [] for row in rows], max_new_tokens)
