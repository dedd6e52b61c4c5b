"""Where the user's message ends in a chat-templated prompt: Arditi et al.'s
post-instruction positions.

Arditi et al. take candidate directions at every token of the chat template that follows
the user's instruction (for Qwen ``<|im_end|>\\n<|im_start|>assistant\\n``; for Llama-3
``<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n``). Which tokens those are
depends on the template and the tokenizer, so they are found, not listed: each prompt is
rendered, and the tokens whose text starts at or after the end of the message are the
post-instruction tokens (a token that straddles the message's end belongs to the message).
Where the tokenizer gives no character offsets, the common suffix of the rendered token
ids of messages that end differently is used instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from refusal_checks.errors import BackendError

# Messages that end in different tokens in every tokenizer we know, for the suffix fallback
# and when no prompts are given.
PROBES = ("Hello there", "What is 2 + 2?", "Tell me a story.", "x")


def _after_message(tokenizer: Any, rendered: str, message: str) -> int | None:
    """Tokens of ``rendered`` that start at or after the end of ``message`` (None: unknown)."""
    end = rendered.rfind(message)
    if not message or end < 0:
        return None
    end += len(message)
    try:
        encoded = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    except (NotImplementedError, TypeError, ValueError):  # slow tokenizers have no offsets
        return None
    offsets = encoded.get("offset_mapping")
    if not offsets:
        return None
    count = 0  # from the end: template tokens, and zero-width (special) tokens among them
    for start, stop in reversed(list(offsets)):
        if start < end and stop > start:
            break
        count += 1
    return count


def _common_suffix(sequences: Sequence[Sequence[int]]) -> int:
    shortest = min(len(s) for s in sequences)
    n = 0
    while n < shortest and len({tuple(s[len(s) - n - 1:]) for s in sequences}) == 1:
        n += 1
    return n


def post_instruction_positions(tokenizer: Any, render: Callable[[Sequence[str]], list[str]],
                               texts: Sequence[str] = (), *, limit: int = 16) -> list[int]:
    """Negative positions ``[-k, ..., -1]`` of the template tokens after the user's message.

    ``k`` is the fewest post-instruction tokens over ``texts`` (up to ``limit`` of them,
    plus :data:`PROBES`), so every position exists in every prompt and none lies inside a
    message.

    Raises:
        BackendError: The template puts nothing after the message (no assistant turn).
    """
    messages = [*list(texts)[:limit], *PROBES]
    rendered = render(messages)
    counts = [_after_message(tokenizer, r, m) for r, m in zip(rendered, messages)]
    if any(c is None for c in counts):
        ids = [tokenizer(r, add_special_tokens=False)["input_ids"] for r in rendered]
        k = _common_suffix(ids)
    else:
        k = min(c for c in counts if c is not None)
    if k < 1:
        raise BackendError(
            "the chat template puts no token after the user's message, so there is no "
            "post-instruction position to take a direction at. Use a chat model whose "
            "template opens the assistant turn (add_generation_prompt).")
    return list(range(-k, 0))
