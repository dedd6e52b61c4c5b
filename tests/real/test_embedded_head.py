"""The chat template's shared head on embedded Qwen2.5-Coder-0.5B: the full pass's values.

Qwen's template puts the same 24 tokens (its default system prompt and the user turn's
opening) in front of every message, over half of a bundled prompt's tokens.
:mod:`refusal_checks.models.nnsight.head` computes their keys and values once per edit and
runs only each prompt's own tokens against them. The same checks on every family's tiny
model are tests/adapter/test_shared_head.py; this one runs the real template, tokenizer
and width, left-padded bundled prompts of several categories, and the sweep's layer.

Tolerances. Both paths compute the same function on the same tokens; only the head's
keys and values come from a pass over one row instead of a padded batch, so matmul
blocking, and with it float32 rounding, differs. Over 24 blocks of width 896 that gave at
most 3.4e-5 on residuals whose largest entries are ~70 (5e-7 relative) and 3.6e-5 on
log-probabilities (measured on this model, unedited, steered and ablated). The bounds
below are 1e-5 of each layer's largest entry and 1e-3 on log-probabilities: 20-30x the
measured rounding, so another CPU's summation order stays inside, and 100x below what
reading one pad token or a shifted position moves (tests/adapter/test_shared_head.py).
Greedy replies must be identical: a reply changes only where two tokens' logits lie
within rounding of each other, and each differing reply is printed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from refusal_checks.measure.activations import paper_layer
from refusal_checks.models.interventions import Ablate, steer
from refusal_checks.models.nnsight.head import SharedHead
from refusal_checks.prompts.load import bundled
from refusal_checks.prompts.sets import PromptSet
from tests.real.embedded import load_embedded, one_torch_thread

pytestmark = pytest.mark.real

ALIAS = "qwen-coder-0.5b"
BATCH = 4
N_NEW = 8
QWEN_HEAD = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
             "assistant.<|im_end|>\n<|im_start|>user\n")


@pytest.fixture(scope="module")
def backend() -> Iterator[Any]:
    """The embedded Qwen, with one torch thread while this module runs."""
    thread = one_torch_thread()
    next(thread)
    yield load_embedded(ALIAS)
    next(thread, None)


def probes() -> PromptSet:
    """Two should-refuse prompts of four categories and four benign ones: 12 prompts of
    different lengths, so every batch is left-padded."""
    collection = bundled()
    texts = [t for c in list(collection.categories.values())[:4] for t in c.refuse.texts[:2]]
    texts += list(collection.benign.texts[:4])
    return PromptSet("probe/refuse", "probe", "refuse", tuple(texts), "bundled")


def test_qwens_head_is_its_system_prompt_and_user_turn(backend: Any) -> None:
    assert backend.tokenizer.decode(backend.head.ids) == QWEN_HEAD
    assert len(backend.head.ids) == 24
    lengths = [len(ids) for ids in backend.encode(probes().texts)]
    assert len(set(lengths)) > 1  # padding happens


def test_values_and_replies_equal_the_full_pass_on_qwen(backend: Any) -> None:
    prompts = probes()
    layer = paper_layer(backend.n_layers)
    layers = list(range(backend.n_layers))
    rng = np.random.default_rng(0)
    direction = rng.standard_normal(backend.d_model)
    norm = float(np.linalg.norm(backend.residual_stream(prompts, [layer], [-1])[:, 0, 0],
                                axis=-1).mean())
    edits = [None, steer(direction, 1.0, layer, norm), Ablate(direction)]

    def run() -> tuple[np.ndarray, list[np.ndarray], list[list[str]]]:
        stream = backend.residual_stream(prompts, layers, [-1, -2, -5], batch_size=BATCH)
        scores = [backend.last_logprobs(prompts, intervention=e, batch_size=BATCH)
                  for e in edits]
        replies = [backend.generate(prompts, N_NEW, intervention=e, batch_size=BATCH)
                   for e in edits]
        return stream, scores, replies

    reused = run()
    assert backend.head.misses == len(edits)  # one head per edit, computed once
    kept, backend.head = backend.head, SharedHead([], off="switched off by the test")
    try:
        full = run()
    finally:
        backend.head = kept
    scale = np.abs(full[0]).max(axis=(0, 2, 3))  # per layer
    assert (np.abs(reused[0] - full[0]).max(axis=(0, 2, 3)) <= 1e-5 * scale).all()
    for got, want in zip(reused[1], full[1]):
        np.testing.assert_allclose(got, want, atol=1e-3, rtol=0)
    differing = [(i, a, b) for got, want in zip(reused[2], full[2])
                 for i, (a, b) in enumerate(zip(got, want)) if a != b]
    for i, a, b in differing:
        print(f"prompt {i}: head reused {a!r} vs full pass {b!r}")
    assert not differing
    assert any(a != b for a, b in zip(full[2][0], full[2][1]))  # the steer changed replies
