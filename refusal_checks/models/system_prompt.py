"""The system prompt a chat model reads: a recorded protocol option.

Arditi et al.'s chat templates carry no system prompt, but many templates insert one when
the messages have none (Qwen2.5's: "You are Qwen, created by Alibaba Cloud. You are a
helpful assistant."; SmolLM2's names itself). ``--refusal-system-prompt`` says which one the
model reads:

- ``default``: the template's own behaviour for a lone user message (whatever system turn
  it inserts, or none);
- ``none``: no system turn at all. Where the template inserts one, the turn is cut out of
  the rendered text (:func:`system_turn_cut`): the prompt is rendered with a sentinel
  system message, and everything from the first turn-opening token before the sentinel to
  the same token that opens the user's turn is dropped;
- any other text: a system message with that text.

The rendered text is what the model reads, so it is part of every cache key (the backend's
``input_digest`` hashes its token ids), and a changed system prompt never reuses another's
activations or replies. Every choice is checked on a probe before any model work
(:class:`SystemPrompt.renderer`), with a message that says what to do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from refusal_checks.errors import BackendError

DEFAULT = "default"
NONE = "none"
# A system text no template contains, to find where the system turn lies.
SENTINEL = "refusal-checks-system-sentinel-7f3a"
PROBE = "refusal-checks user probe: what is 2 + 2?"


def _chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def _turn_tokens(tokenizer: Any) -> list[str]:
    """The tokenizer's added and special tokens (turn markers are among them), longest first."""
    tokens = set(getattr(tokenizer, "all_special_tokens", None) or [])
    try:
        tokens |= set(tokenizer.get_added_vocab())
    except (AttributeError, NotImplementedError, TypeError):
        pass
    return sorted((t for t in tokens if t), key=len, reverse=True)


def default_system_text(tokenizer: Any) -> str:
    """The system text the template inserts for a lone user message ("" where none, or
    where the template rejects a system message, so the text cannot be located)."""
    plain = _chat(tokenizer, [{"role": "user", "content": PROBE}])
    try:
        marked = _chat(tokenizer, [{"role": "system", "content": SENTINEL},
                                   {"role": "user", "content": PROBE}])
    except Exception:  # a template without a system role inserts none either
        return ""
    at = marked.find(SENTINEL)
    before, after = marked[:at], marked[at + len(SENTINEL):]
    if at < 0 or not (plain.startswith(before) and plain.endswith(after)):
        return ""
    return plain[len(before):len(plain) - len(after)]


def system_turn_cut(tokenizer: Any, message: str = PROBE) -> tuple[int, int] | None:
    """Where the system turn lies in ``[system: SENTINEL, user: message]``'s rendering.

    Returns ``(start, stop)``: dropping ``rendered[start:stop]`` leaves the rendering with no
    system turn, the user's turn opened by the same token that opened the system's. None when
    the template inserts no system turn of its own (its lone-user rendering is already one
    without a system prompt).

    Raises:
        BackendError: The template inserts a system turn but no turn-opening token can be
            found around it (so it cannot be removed), or it refuses a system message.
    """
    plain = _chat(tokenizer, [{"role": "user", "content": message}])
    try:
        with_sentinel = _chat(tokenizer, [{"role": "system", "content": SENTINEL},
                                          {"role": "user", "content": message}])
    except Exception as error:  # jinja raises TemplateError, or a plain exception
        raise BackendError(
            f"the chat template rejects a system message ({error}); use "
            "--refusal-system-prompt default on this model.") from None
    at = with_sentinel.find(SENTINEL)
    if at < 0:
        raise BackendError(
            "the chat template drops a given system message, so its system turn cannot be "
            "found; use --refusal-system-prompt default on this model.")
    before, after = with_sentinel[:at], with_sentinel[at + len(SENTINEL):]
    inserts = (plain.startswith(before) and plain.endswith(after)
               and len(plain) > len(before) + len(after))
    if not inserts:
        return None
    # The turn opener: of the tokens found both before the sentinel and after it (where it
    # opens the user's turn), the one that comes first before it (Llama-3's
    # <|start_header_id|>, not the <|end_header_id|> after the role name).
    openers = sorted((before.find(token), token) for token in _turn_tokens(tokenizer)
                     if token in before and token in after)
    for start, token in openers:
        stop = at + len(SENTINEL) + after.find(token)
        kept = with_sentinel[:start] + with_sentinel[stop:]
        if message in kept and SENTINEL not in kept:
            return start, stop
    raise BackendError(
        "the chat template inserts a default system prompt, and no token of the tokenizer "
        "opens both the system and the user turn, so 'none' cannot remove it; use "
        "--refusal-system-prompt default, or a text of your own.")


@dataclass(frozen=True)
class SystemPrompt:
    """``default``, ``none`` or a system text (see the module docstring)."""

    value: str = DEFAULT

    @classmethod
    def parse(cls, value: str | None) -> "SystemPrompt":
        """The option's value; empty or whitespace is refused (say ``none``)."""
        if value is None:
            return cls(DEFAULT)
        if not value.strip():
            raise BackendError(
                "--refusal-system-prompt is empty: pass 'default' (the template's own), "
                "'none' (no system turn) or the system text itself.")
        return cls(value)

    @property
    def kind(self) -> str:
        return self.value if self.value in (DEFAULT, NONE) else "text"

    def record(self) -> str:
        """What reports and the model info say: ``default``, ``none`` or the text's digest."""
        if self.kind != "text":
            return self.value
        digest = hashlib.sha256(self.value.encode()).hexdigest()[:16]
        return f"text:{digest}"

    def text(self, tokenizer: Any) -> str:
        """The system text the model reads under this choice ("" for none)."""
        if self.kind == DEFAULT:
            return default_system_text(tokenizer)
        return "" if self.kind == NONE else self.value

    def renderer(self, tokenizer: Any) -> Callable[[Sequence[str]], list[str]]:
        """A function from user messages to rendered prompts, checked on a probe.

        Raises:
            BackendError: This choice cannot be rendered with this template.
        """
        if self.kind == DEFAULT:
            def render(texts: Sequence[str]) -> list[str]:
                return [_chat(tokenizer, [{"role": "user", "content": t}]) for t in texts]
        elif self.kind == "text":
            system = self.value

            def render(texts: Sequence[str]) -> list[str]:
                return [_chat(tokenizer, [{"role": "system", "content": system},
                                          {"role": "user", "content": t}]) for t in texts]
            try:
                probe = render([PROBE])[0]
            except Exception as error:  # jinja's TemplateError, or a plain exception
                raise BackendError(
                    f"the chat template rejects a system message ({error}); use "
                    "--refusal-system-prompt default on this model.") from None
            if system not in probe:
                raise BackendError(
                    "the chat template drops the given system text; use "
                    "--refusal-system-prompt default or none on this model.")
        else:
            render = _without_system(tokenizer)
        return render


def _without_system(tokenizer: Any) -> Callable[[Sequence[str]], list[str]]:
    cut = system_turn_cut(tokenizer)
    if cut is None:
        def plain(texts: Sequence[str]) -> list[str]:
            return [_chat(tokenizer, [{"role": "user", "content": t}]) for t in texts]
        return plain
    start, stop = cut
    head = _chat(tokenizer, [{"role": "system", "content": SENTINEL},
                             {"role": "user", "content": PROBE}])[:stop]

    def render(texts: Sequence[str]) -> list[str]:
        out = []
        for text in texts:
            full = _chat(tokenizer, [{"role": "system", "content": SENTINEL},
                                     {"role": "user", "content": text}])
            if not full.startswith(head):  # the system turn moved with the message
                raise BackendError(
                    "the chat template renders the system turn differently for this "
                    f"message ({text[:40]!r}...), so 'none' cannot remove it reliably; use "
                    "--refusal-system-prompt default.")
            out.append(full[:start] + full[stop:])
        return out
    return render
