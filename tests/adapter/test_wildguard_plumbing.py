"""The WildGuard judge's plumbing on a tiny stand-in: a random-init Llama and a word-level
tokenizer saved with save_pretrained, loaded through the same loader as the 7B model.

The stand-in cannot judge anything; what is checked is everything around the judgement:
where the model is found, that a missing model is named with the fix, that real generation
runs and its unreadable answer is reported, and, with ``generate`` replaced by a fake that
answers from the exchange it is given, batching, left padding, prompt pairing, reading only
the new tokens, and the path a run takes (:func:`refusal_checks.measure.effects.judged`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from refusal_checks.judges.registry import load_judge
from refusal_checks.judges.base import JudgeUnavailableError, classify
from refusal_checks.judges.wildguard import (
    ENV, WildGuardJudge, WildGuardOutputError, load_wildguard_judge,
)

from .tiny import PROMPTS, build_model

WORDS = (
    "you are a classifier for analyzing interactions between humans and llms given request from "
    "human user response an llm assistant determine whether the 's is harmful refusal ai answers "
    "inst yes no n how do i pick lock on my door sure here step one sorry can not help with that "
    "what capital of france paris write poem about cats"
).split()
SPECIAL = ("[UNK]", "[PAD]", "<s>", "</s>", "<|user|>", "<|assistant|>")


def build_tokenizer() -> Any:
    """Word-level over WORDS, lower-cased, with WildGuard's special tokens; unknown words are
    [UNK]."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    symbols = ("?", ",", ".", ":", "/", "-", "[", "]", ")", "1", "2", "3", "'")
    vocab = {t: i for i, t in enumerate((*SPECIAL, *sorted(set(WORDS)), *symbols))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", bos_token="<s>",
        eos_token="</s>", additional_special_tokens=["<|user|>", "<|assistant|>"])


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wildguard-standin")
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed=3)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def fake_generate(judge: WildGuardJudge, batches: list[list[str]]) -> Any:
    """A ``generate`` answering from each row's exchange: ``Response refusal: yes`` when the
    prompt mentions a lock, ``n/a`` for an empty reply, else ``no``. Records each batch's
    decoded inputs and checks the padding is on the left."""
    import torch

    tokenizer = judge.tokenizer
    split = re.compile(r"human user :(.*)ai assistant :(.*)answers :", re.DOTALL)

    def generate(*, input_ids: Any, attention_mask: Any, max_new_tokens: int, do_sample: bool,
                 pad_token_id: int) -> Any:
        assert not do_sample and max_new_tokens == judge.max_new_tokens
        assert pad_token_id == tokenizer.pad_token_id
        # Left padding: every row's last input token is real, so new tokens line up.
        assert bool(attention_mask[:, -1].all())
        rows, answers = [], []
        for row in tokenizer.batch_decode(input_ids, skip_special_tokens=True):
            rows.append(row)
            prompt, reply = split.search(row).groups()
            value = "n / a" if not reply.strip() else "yes" if "lock" in prompt else "no"
            answers.append(f"harmful request : no response refusal : {value} harmful "
                           "response : no")
        batches.append(rows)
        new = tokenizer(answers, add_special_tokens=False, padding=True,
                        return_tensors="pt")["input_ids"]
        return torch.cat([input_ids, new], dim=1)

    return generate


# --- loading -------------------------------------------------------------------------------


def test_the_standin_loads_from_the_variable_through_the_registry(standin, monkeypatch):
    monkeypatch.setenv(ENV, str(standin))
    judge = load_judge("wildguard", device="cpu")
    assert isinstance(judge, WildGuardJudge)
    assert judge.source == str(standin) and judge.device == "cpu"
    assert judge.tokenizer.padding_side == "left"
    assert next(judge.model.parameters()).dtype.is_floating_point
    assert not judge.model.training


def test_a_hub_id_not_in_the_cache_is_unavailable_offline(monkeypatch, tmp_path):
    # An empty Hugging Face cache and offline mode: the hub id cannot resolve, and nothing
    # may be fetched (local_files_only makes sure of it either way).
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(JudgeUnavailableError) as info:
        load_judge("wildguard", device="cpu")
    message = str(info.value)
    assert "Refusal judge 'wildguard' cannot be loaded" in message
    assert "'allenai/wildguard' in the Hugging Face cache" in message
    assert f"set {ENV}=DIR" in message and "Nothing is downloaded at run time" in message


# --- real generation -----------------------------------------------------------------------


def test_real_generation_runs_and_its_unreadable_answer_names_the_reply(standin):
    # The random stand-in writes words, not WildGuard's answer: the judge must say so and
    # name the exchange, never fall back to a verdict.
    judge = load_wildguard_judge(str(standin), device="cpu", batch_size=2)
    judge.max_new_tokens = 6  # enough to run generation; the answer is unreadable anyway
    texts = judge.generations(["Sure, here is step one.", "Sorry, I can not help."],
                              ["How do I pick a lock?", "Write a poem about cats"])
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert judge.calls == 1
    with pytest.raises(WildGuardOutputError) as info:
        judge.refused(["Sure, here is step one."], ["How do I pick a lock?"])
    message = str(info.value)
    assert "no 'Response refusal: yes/no' line" in message
    assert "'Sure, here is step one.'" in message and "'How do I pick a lock?'" in message
    assert str(standin) in message and ENV in message


# --- the fake generate: batching, pairing, parsing -----------------------------------------


@pytest.fixture
def faked(standin, monkeypatch) -> tuple[WildGuardJudge, list[list[str]]]:
    judge = load_wildguard_judge(str(standin), device="cpu", batch_size=2)
    batches: list[list[str]] = []
    monkeypatch.setattr(judge.model, "generate", fake_generate(judge, batches))
    return judge, batches


def test_verdicts_follow_each_replys_own_prompt_across_batches(faked):
    judge, batches = faked
    prompts = ["how do i pick a lock on my door", "what is the capital of france",
               "write a poem about cats", "how do i pick a lock", "what capital"]
    # Replies of different lengths, so sorting by length reorders the exchanges; the fourth
    # quotes an answer line, which must not be read (only the new tokens are).
    replies = ["sure here is step one", "paris", "cats cats cats",
               "response refusal : no sorry i can not help with that",
               "paris is the capital of france"]
    assert judge.refused(replies, prompts) == [True, False, False, True, False]
    assert [len(b) for b in batches] == [2, 2, 1] and judge.calls == 3
    # Every exchange was sent once, each reply beside its own prompt.
    sent = sorted(" ".join(row.split()) for batch in batches for row in batch)
    for prompt, reply in zip(prompts, replies):
        assert sum(f"human user : {prompt}" in row and f"ai assistant : {reply}" in row
                   for row in sent) == 1


def test_classify_reads_no_reply_as_broken_and_refused_as_not_refused(faked):
    judge, _ = faked
    prompts = ["how do i pick a lock", "how do i pick a lock", "write a poem about cats"]
    replies = ["sorry i can not help", "", "cats cats"]
    assert judge.refused(replies, prompts) == [True, False, False]
    assert judge.classify(replies, prompts) == ["refused", "broken", "complied"]
    assert classify(judge, replies, prompts) == ["refused", "broken", "complied"]


def test_a_run_judges_replies_with_their_prompts(faked, tiny_backend):
    # The path every claim's judged replies take: effects.judged passes the prompt set.
    from refusal_checks.measure.effects import judged
    from refusal_checks.prompts.sets import PromptSet

    judge, batches = faked
    prompts = PromptSet("tiny/refuse", "tiny", "refuse", PROMPTS, "test")
    refused, texts = judged(tiny_backend, prompts, judge, None, None, max_new_tokens=4)
    assert len(texts) == len(PROMPTS)
    # Stand-in replies are random words and may be empty (then WildGuard says n/a: not a
    # refusal); otherwise only the prompt with "lock" in it is called a refusal.
    expected = ["lock" in p and bool(t.strip()) for p, t in zip(PROMPTS, texts)]
    assert refused.tolist() == expected and any(expected)
    assert sum(len(b) for b in batches) == len(PROMPTS)
