"""Arditi et al.'s post-instruction positions, read off the chat template of tiny models."""

from __future__ import annotations

import pytest

from refusal_checks.errors import BackendError
from refusal_checks.models.template import post_instruction_positions

from .tiny import CHAT_TEMPLATE, PROMPTS, build_tokenizer

# A second template with three tokens after the message ("<|end|> <|assistant|> ."), as
# Llama-3's header tokens follow its messages.
LONGER = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
          "{% if add_generation_prompt %}<|assistant|> . {% endif %}")
NOTHING_AFTER = "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}{% endfor %}"


def _render(tokenizer):
    return lambda texts: [tokenizer.apply_chat_template(
        [{"role": "user", "content": t}], add_generation_prompt=True, tokenize=False)
        for t in texts]


@pytest.mark.parametrize(("template", "expected"), [(CHAT_TEMPLATE, [-2, -1]),
                                                    (LONGER, [-3, -2, -1])])
def test_positions_are_the_template_tokens_after_the_message(template, expected):
    tokenizer = build_tokenizer(template)
    assert post_instruction_positions(tokenizer, _render(tokenizer), PROMPTS) == expected
    # Prompts that all end in the same token ("?") do not pull it into the template.
    assert post_instruction_positions(tokenizer, _render(tokenizer),
                                      ["what is it ?", "how ?"]) == expected


def test_without_offsets_the_common_suffix_of_different_messages_is_used():
    tokenizer = build_tokenizer(LONGER)

    class NoOffsets:
        def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
            if return_offsets_mapping:
                raise NotImplementedError("slow tokenizer")
            return tokenizer(text, add_special_tokens=add_special_tokens)

    assert post_instruction_positions(NoOffsets(), _render(tokenizer), PROMPTS) == [-3, -2, -1]


def test_a_template_without_an_assistant_turn_is_refused_with_the_fix():
    tokenizer = build_tokenizer(NOTHING_AFTER)
    with pytest.raises(BackendError, match="no token after the user's message"):
        post_instruction_positions(tokenizer, _render(tokenizer), PROMPTS)


def test_the_backend_reports_the_positions_of_its_template(tiny_backend):
    assert tiny_backend.post_instruction_positions(PROMPTS) == [-2, -1]
    assert tiny_backend.post_instruction_positions() == [-2, -1]
