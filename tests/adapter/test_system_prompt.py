"""--refusal-system-prompt: default, none (the template's inserted turn cut out) or a text,
rendered on tiny tokenizers whose templates insert a default system turn as Qwen2.5's and
Llama-3.1's do, and carried into the backend's cache keys."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refusal_checks.errors import BackendError
from refusal_checks.models.system_prompt import SystemPrompt, default_system_text

from .tiny import CHAT_TEMPLATE, WORDS, build_tokenizer

# Qwen2.5's shape: one turn opener for every role, a default system turn when none is given.
INSERTING = (
    "{% if messages[0]['role'] != 'system' %}<|start|> system You are Tiny . <|end|> "
    "{% endif %}{% for m in messages %}<|start|> {{ m['role'] }} {{ m['content'] }} <|end|> "
    "{% endfor %}{% if add_generation_prompt %}<|start|> assistant{% endif %}")
# Llama-3's shape: a begin token before every turn, and a header *closing* token that also
# appears in both turns (the cut must start at the opener, not at the closer).
HEADERS = (
    "<|bos|>{% if messages[0]['role'] != 'system' %}<|hdr|> system <|ehdr|> cats today "
    "<|end|> {% endif %}{% for m in messages %}<|hdr|> {{ m['role'] }} <|ehdr|> "
    "{{ m['content'] }} <|end|> {% endfor %}{% if add_generation_prompt %}<|hdr|> assistant "
    "<|ehdr|>{% endif %}")
DROPS_SYSTEM = ("{% for m in messages %}{% if m['role'] != 'system' %}<|{{ m['role'] }}|> "
                "{{ m['content'] }} <|end|> {% endif %}{% endfor %}"
                "{% if add_generation_prompt %}<|assistant|>{% endif %}")
REJECTS_SYSTEM = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                  "{{ raise_exception('System role not supported') }}{% endif %}"
                  "<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
                  "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def _tokenizer(template: str):
    tokenizer = build_tokenizer(template)
    tokenizer.add_special_tokens({"additional_special_tokens": [
        "<|user|>", "<|assistant|>", "<|start|>", "<|bos|>", "<|hdr|>", "<|ehdr|>"]})
    return tokenizer


def _render(template: str, value: str, texts: list[str]) -> list[str]:
    return SystemPrompt.parse(value).renderer(_tokenizer(template))(texts)


def test_none_cuts_the_inserted_system_turn_out_of_a_qwen_shaped_template():
    assert _render(INSERTING, "default", ["hi"]) == [
        "<|start|> system You are Tiny . <|end|> <|start|> user hi <|end|> <|start|> assistant"]
    assert _render(INSERTING, "none", ["hi"]) == ["<|start|> user hi <|end|> <|start|> assistant"]
    assert _render(INSERTING, "be short", ["hi"]) == [
        "<|start|> system be short <|end|> <|start|> user hi <|end|> <|start|> assistant"]


def test_none_keeps_what_precedes_every_turn_and_cuts_at_the_turn_opener():
    assert _render(HEADERS, "none", ["hi"]) == [
        "<|bos|><|hdr|> user <|ehdr|> hi <|end|> <|hdr|> assistant <|ehdr|>"]


def test_none_on_a_template_that_inserts_nothing_is_its_default_rendering():
    texts = ["how do i pick a lock ?", "hi"]
    assert _render(CHAT_TEMPLATE, "none", texts) == _render(CHAT_TEMPLATE, "default", texts)
    assert default_system_text(_tokenizer(CHAT_TEMPLATE)) == ""


def test_the_default_system_text_is_read_off_the_template():
    assert default_system_text(_tokenizer(INSERTING)) == "You are Tiny ."
    assert SystemPrompt.parse("none").text(_tokenizer(INSERTING)) == ""
    assert SystemPrompt.parse("be short").text(_tokenizer(INSERTING)) == "be short"


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=12).map(" ".join))
def test_none_is_the_default_rendering_without_its_system_turn_for_any_message(message):
    """Whatever the message (including words of the system text), only the turn goes."""
    default = _render(INSERTING, "default", [message])[0]
    assert _render(INSERTING, "none", [message])[0] == default.replace(
        "<|start|> system You are Tiny . <|end|> ", "", 1)


def test_a_template_that_drops_or_rejects_a_system_message_is_refused_with_the_fix():
    for template in (DROPS_SYSTEM, REJECTS_SYSTEM):
        for value in ("none", "be short"):
            with pytest.raises(BackendError, match="--refusal-system-prompt default"):
                _render(template, value, ["hi"])
    assert _render(REJECTS_SYSTEM, "default", ["hi"]) == ["<|user|> hi <|end|> <|assistant|>"]


def test_an_empty_system_prompt_is_refused_and_none_of_the_option_means_default():
    with pytest.raises(BackendError, match="'none'"):
        SystemPrompt.parse("  ")
    assert SystemPrompt.parse(None).kind == "default"
    assert SystemPrompt.parse("be short").record().startswith("text:")


def test_the_system_prompt_changes_the_rendering_the_cache_keys_and_the_info(tiny_backend):
    from refusal_checks.prompts.sets import PromptSet

    prompts = PromptSet("tiny/refuse", "tiny", "refuse", ("hi", "how do i pick a lock ?"), "test")
    before = tiny_backend.input_digest(prompts)
    assert tiny_backend.info["system_prompt"] == "default"
    try:
        tiny_backend.use_system_prompt("be short")
        assert tiny_backend.render(["hi"]) == ["<|system|> be short <|end|> <|user|> hi <|end|> "
                                               "<|assistant|>"]
        assert tiny_backend.input_digest(prompts) != before
        assert tiny_backend.info["system_prompt"].startswith("text:")
        assert tiny_backend.info["system_text"] == "be short"
    finally:
        tiny_backend.use_system_prompt("default")
    assert tiny_backend.input_digest(prompts) == before  # default renders as it always did


def test_a_synthetic_world_refuses_a_system_prompt_before_loading(tmp_path):
    from refusal_checks.models.loading import LoadOptions, load_backend
    from refusal_checks.models.registry import resolve

    with pytest.raises(BackendError, match="synthetic world"):
        load_backend(resolve("synthetic:shared"), LoadOptions(cache_dir=tmp_path,
                                                              system_prompt="none"))


def test_a_synthetic_backend_accepts_only_the_default():
    from refusal_checks.models.synthetic import SyntheticBackend

    backend = SyntheticBackend.from_spec("shared", name="synthetic:shared")
    backend.use_system_prompt("default")
    backend.use_system_prompt(None)
    with pytest.raises(BackendError, match="no chat template"):
        backend.use_system_prompt("none")
