"""The chat template's shared head, computed once per edit (refusal_checks.models.nnsight.head).

Every family's tiny random model (:mod:`.tiny_families`, norms randomised) runs each
measurement twice, with the head reused and with it switched off (every prompt's full
input, the path before the head existed): residual stream, first-token log-probabilities
unedited, steered and ablated, and greedy replies. The maths of the inputs (positions,
masks, which tokens form the head) is checked without a model, with hypothesis.

Tolerance, 1e-5 absolute: the two paths compute the same function on the same tokens, but
the head's keys and values come from a pass over one row instead of a left-padded batch,
so matmuls are blocked differently and float32 rounding (~6e-8 relative per operation)
differs. Carried through 3 blocks of order-1 activations (initializer_range 0.1, see
tiny.build_model) and a log_softmax, that measured at most 3.3e-6 (olmo2, whose post-norms
re-scale each write; 0.5e-6 to 1.2e-6 in the other families, 0 in the sliding-window ones,
which run whole); 1e-5 is 3x that worst case, and 100x below what an input error moves: a
pad read into attention, a wrong position id or a missing head token moves these values
by > 1e-3 (checked at the end of this module).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.core import cost
from refusal_checks.models.interventions import Ablate, Steer
from refusal_checks.models.nnsight.head import SharedHead, head_ids, suffix_inputs
from refusal_checks.prompts.sets import PromptSet

from .test_architectures import family_backend
from .tiny import D_MODEL, PROMPTS
from .tiny_families import FAMILIES, N_LAYERS

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

TOL = 1e-5
N_NEW = 6
# Families whose tiny models use a 4-token sliding window (shorter than the prompts): the
# window counts cache slots, so padding between head and suffix would change what it
# reaches, and these batches must run whole (refusal_checks.models.nnsight.head._inputs).
SLIDING = {"gemma2", "gemma3_text", "olmo3"}


def prompts() -> PromptSet:
    return PromptSet("tiny/refuse", "tiny", "refuse", PROMPTS, "test")


def edits() -> list[Any]:
    rng = np.random.default_rng(5)
    return [None, Steer(1, 3.0 * rng.normal(size=D_MODEL), strength=3.0),
            Ablate(rng.normal(size=D_MODEL))]


def head_off(backend: Any) -> SharedHead:
    kept, backend.head = backend.head, SharedHead([], off="switched off by the test")
    return kept


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest) -> tuple[str, Any]:
    return request.param, family_backend(request.param)


def test_the_head_is_the_template_text_before_the_message(family: tuple[str, Any]) -> None:
    _, backend = family
    # "<|user|> {message} <|end|> <|assistant|>": only <|user|> precedes every message.
    assert backend.tokenizer.convert_ids_to_tokens(backend.head.ids) == ["<|user|>"]
    assert backend.info["shared_head"] == "1 tokens computed once per edit"


def test_every_measurement_equals_the_full_pass(family: tuple[str, Any]) -> None:
    name, backend = family
    batch, head = backend._inputs(PROMPTS, None)
    assert (head is None) == (name in SLIDING)  # sliding windows run whole
    layers, positions = list(range(N_LAYERS)), [-1, -2, -3]
    with cost.CostLedger().phase("measure"):
        reused = [backend.residual_stream(prompts(), layers, positions, batch_size=3)]
        reused += [backend.last_logprobs(prompts(), intervention=e, batch_size=3)
                   for e in edits()]
        replies = [backend.generate(prompts(), N_NEW, intervention=e, batch_size=3)
                   for e in edits()]
    kept = head_off(backend)
    try:
        full = [backend.residual_stream(prompts(), layers, positions, batch_size=3)]
        full += [backend.last_logprobs(prompts(), intervention=e, batch_size=3)
                 for e in edits()]
        full_replies = [backend.generate(prompts(), N_NEW, intervention=e, batch_size=3)
                        for e in edits()]
    finally:
        backend.head = kept
    for got, want in zip(reused, full):
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    assert replies == full_replies
    assert not np.allclose(full[1], full[2], atol=100 * TOL)  # the steer moved the scores
    assert not np.allclose(full[1], full[3], atol=100 * TOL)  # and so did the ablation


def test_a_new_edit_computes_its_head_once_and_the_cost_profile_counts_the_prompts() -> None:
    backend = family_backend("llama")
    ledger = cost.CostLedger()
    with ledger.phase("scores"):
        for _ in range(2):
            for edit in edits():
                backend.last_logprobs(prompts(), intervention=edit, batch_size=3)
    assert (backend.head.misses, backend.head.hits) == (3, 3 * 2 * 2 - 3)
    assert ledger.phases["scores"].shared_head == 2 * 3 * len(PROMPTS)


def test_a_position_before_the_suffix_runs_the_full_pass() -> None:
    backend = family_backend("llama")
    shortest = min(len(ids) for ids in backend.encode(PROMPTS)) - len(backend.head.ids)
    assert backend._inputs(PROMPTS, None, deepest=shortest)[1] is not None
    assert backend._inputs(PROMPTS, None, deepest=shortest + 1)[1] is None
    # residual_stream still answers a position inside the head of the shortest prompt
    got = backend.residual_stream(prompts(), [1], [-(shortest + 1)])
    head_off(backend)
    np.testing.assert_allclose(got, backend.residual_stream(prompts(), [1], [-(shortest + 1)]),
                               atol=TOL, rtol=0)


def test_the_input_errors_the_tolerance_must_catch_move_values_by_far_more() -> None:
    """Each way of getting the inputs wrong moves the log-probs by > 100 x TOL."""
    import torch

    backend = family_backend("llama")
    right = backend.last_logprobs(prompts(), batch_size=len(PROMPTS))
    batch, head = backend._inputs(PROMPTS, None)
    wrong = {
        "pads attended": dict(batch, attention_mask=torch.ones_like(batch["attention_mask"])),
        "positions from 0": dict(batch, position_ids=batch["position_ids"] - len(backend.head.ids)),
    }
    for what, inputs in wrong.items():
        _, head = backend._inputs(PROMPTS, None)  # a fresh cache: a pass appends to it
        with torch.inference_mode():
            logits = backend.model(**inputs, **backend._with_head(head)).logits[:, -1]
        moved = np.abs(torch.log_softmax(logits, -1).numpy() - right).max()
        assert moved > 100 * TOL, what
    with torch.inference_mode():  # the head left out
        logits = backend.model(**batch).logits[:, -1]
    assert np.abs(torch.log_softmax(logits, -1).numpy() - right).max() > 100 * TOL


# -- the inputs' maths, without a model -------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(head=st.integers(1, 30), lengths=st.lists(st.integers(1, 12), min_size=1, max_size=6))
def test_each_token_gets_the_full_pass_position_and_sees_the_same_tokens(
        head: int, lengths: list[int]) -> None:
    import torch

    suffixes = [list(range(100, 100 + n)) for n in lengths]
    got = suffix_inputs(torch, head, suffixes, pad=0, where="cpu")
    width = max(lengths)
    # The full pass: each prompt's head + suffix, left-padded as one row, positions from
    # the mask (refusal_checks.models.nnsight.backend._batch).
    full_mask = torch.tensor([[0] * (width - n) + [1] * (head + n) for n in lengths])
    full_pos = (full_mask.cumsum(-1) - 1).clamp(min=0)
    assert got["attention_mask"].shape == (len(lengths), head + width)
    for row, n in enumerate(lengths):
        # the suffix's real tokens: same ids, same positions
        assert got["input_ids"][row, width - n:].tolist() == suffixes[row]
        assert got["position_ids"][row, width - n:].tolist() == full_pos[row, -n:].tolist()
        # what they may attend to: the head and their own real tokens, nothing else
        assert got["attention_mask"][row].sum().item() == head + n
        assert got["attention_mask"][row, :head].all() and got["attention_mask"][row, -n:].all()


def char_tokenizer(merge: str = "") -> Any:
    """Characters as tokens, except that ``merge`` followed by any character is one token
    (a BPE merge across the template's last character and the message's first)."""
    def tokenize(text: str) -> list[int]:
        ids, i = [], 0
        while i < len(text):
            if merge and text.startswith(merge, i) and i + len(merge) < len(text):
                ids.append(hash(text[i:i + len(merge) + 1]) % 10**6 + 1000)
                i += len(merge) + 1
            else:
                ids.append(ord(text[i]))
                i += 1
        return ids
    return tokenize


def render(template: str) -> Any:
    return lambda messages: [template.format(m) for m in messages]


def test_the_head_stops_before_a_token_that_merges_into_the_message() -> None:
    plain = head_ids(render("<s>sys:hi|user:{}|asst:"), char_tokenizer())
    assert plain == [ord(c) for c in "<s>sys:hi|user:"]
    merged = head_ids(render("<s>sys:hi|user:{}|asst:"), char_tokenizer(merge="r:"))
    assert merged == [ord(c) for c in "<s>sys:hi|use"]  # "r:" merges with the message


def test_a_template_with_nothing_before_the_message_has_no_head() -> None:
    assert head_ids(render("{}|asst:"), char_tokenizer()) == []
    assert SharedHead([]).describe().startswith("off: the template puts no common head")


@settings(max_examples=100, deadline=None)
@given(h=st.integers(1, 8), rows=st.lists(st.lists(st.integers(0, 9), min_size=0, max_size=8),
                                           min_size=1, max_size=5),
       deepest=st.integers(1, 4))
def test_split_keeps_the_head_only_where_every_row_starts_with_it_and_reads_fit(
        h: int, rows: list[list[int]], deepest: int) -> None:
    head = SharedHead(list(range(50, 50 + h)))
    encoded = [list(range(50, 50 + h)) + row for row in rows]
    got = head.split(encoded, deepest)
    if min(len(r) for r in rows) >= deepest:
        assert got == rows
    else:
        assert got is None
    assert head.split([[7] + e for e in encoded], 1) is None  # a row without the head
