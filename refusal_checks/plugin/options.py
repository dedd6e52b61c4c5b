"""The plugin's option value parsers, each passed to argparse as ``type=``.

Value parsers raise argparse.ArgumentTypeError, not UsageError: argparse then prefixes the
option's name ("argument --refusal-max-prompts: ...") and pytest turns it into a usage error
(exit 4). A UsageError raised here would lose which option was wrong. Standard library only
at import: the plugin loads in every pytest run of the environment.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def at_least(minimum: int, expected: str) -> Callable[[str], int]:
    """An argparse ``type=`` that accepts integers >= ``minimum``.

    Args:
        minimum: the smallest accepted value.
        expected: what the message says was expected, e.g. "a positive integer".
    """

    def parse(text: str) -> int:
        try:
            value: int | None = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = at_least(1, "a positive integer (1, 2, ...)")
non_negative_int = at_least(0, "a whole number (0, 1, 2, ...)")


def prompt_budget(text: str) -> int:
    """--refusal-max-prompts: at least the prompts per set every claim needs."""
    from refusal_checks.plugin.session import MIN_PROMPT_BUDGET, PROMPT_BUDGET_WHY

    value = integer(text)
    if value < MIN_PROMPT_BUDGET:
        raise argparse.ArgumentTypeError(
            f"got {text}, but at least {MIN_PROMPT_BUDGET} prompts per set are needed: "
            f"{PROMPT_BUDGET_WHY}.")
    return value


def probe_budget(text: str) -> int:
    """--refusal-budget: the largest stage a staged probe may grow to."""
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"got {text}, but the budget is the largest number of prompts one claim's staged "
            "probe may grow to: a positive integer (stage 1, the fixed design, always runs; "
            "leave the option out for no cap).")
    return value


def integer(text: str) -> int:
    """Any integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def int_list(text: str) -> list[int]:
    """Comma-separated integers, at least one."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return values


def negative_list(text: str) -> list[int]:
    """Comma-separated post-instruction positions, each negative."""
    values = int_list(text)
    if any(v >= 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"got {text}, but post-instruction positions count back from the end of the "
            "chat-templated prompt and must be negative (-1 is its last token)")
    return values


def negative_int(text: str) -> int:
    """One template position, negative."""
    value = integer(text)
    if value >= 0:
        raise argparse.ArgumentTypeError(
            f"got {text}, but positions count back from the end of the chat-templated "
            "prompt and must be negative (-1 is the last template token, -2 the paper's "
            "decision state)."
        )
    return value
