"""A greedy reply as tokens: one generation at the longest budget serves every shorter one.

Greedy decoding picks each token from the tokens before it, so the first ``b`` tokens of a
reply generated with budget ``B >= b`` are the reply a ``b``-token generation of the same
batch gives (tests/adapter/test_reply_tokens.py checks it token for token on a real
model). :func:`trim` keeps a generated row up to and including its first end token;
:func:`cut` is how a ``b``-token generation ends it: the first ``b`` tokens, then
everything from the first end token on dropped, so the text is the one
``Backend.generate(prompts, b)`` returns. stdlib only.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

# Called after each generated batch with (its prompt texts, each row's new token ids up to
# and including its first end token: :func:`trim`).
ReplyTokens = Callable[[Sequence[str], list[list[int]]], None]


def trim(row: Sequence[int], stop: Collection[int]) -> list[int]:
    """``row`` up to and including its first end token (all of it when it has none): what
    follows an end token is padding or, under an edit, text no reply shows."""
    for i, token in enumerate(row):
        if token in stop:
            return [int(t) for t in row[: i + 1]]
    return [int(t) for t in row]


def stopped(row: Sequence[int], stop: Collection[int]) -> bool:
    """The row holds an end token: the reply is finished for every budget."""
    return any(token in stop for token in row)


def cut(row: Sequence[int], budget: int, stop: Collection[int]) -> list[int]:
    """The token ids a ``budget``-token generation shows: ``row[:budget]`` before its first
    end token."""
    head = list(row[:budget])
    for i, token in enumerate(head):
        if token in stop:
            return [int(t) for t in head[:i]]
    return [int(t) for t in head]


def serves(row: Sequence[int], generated_budget: int, budget: int,
           stop: Collection[int]) -> bool:
    """A row generated with ``generated_budget`` new tokens holds the ``budget``-token reply:
    the budget is no longer, or the reply ended before the generation did."""
    if budget < 1 or generated_budget < 1:
        raise ValueError(f"token budgets must be positive, got {budget} and {generated_budget}")
    return budget <= generated_budget or stopped(row, stop)
