"""Steering and ablation on embedded SmolLM2-135M, against plain torch forward hooks.

The reference is a second, plain-transformers copy of the model (from the dense copy in the
default cache dir) with forward hooks, generating for each prompt ALONE; the backend runs
the three prompts in one left-padded batch through nnsight. Token ids must match.
The same check on the tiny random model is tests/adapter/test_interventions.py; this one
shows it holds on a real chat template, a real tokenizer and tied embeddings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from refusal_checks.cache.keys import default_cache_dir
from refusal_checks.models.interventions import Ablate, Intervention, steer
from refusal_checks.models.registry import EMBEDDED
from refusal_checks.prompts.sets import PromptSet
from tests.hook_reference import hooked
from tests.real.embedded import load_embedded, one_torch_thread

pytestmark = pytest.mark.real

ALIAS = "smollm2-135m"
LAYER = 12  # of 30: mid-stack, where refusal directions are usually taken
STRENGTH = 0.8  # of the mean residual norm at LAYER: strong enough to change every reply
N_NEW = 8
TEXTS = ("Hi!", "What is the capital of France?",
         "Write a Python function that checks whether a string is a palindrome, ignoring "
         "spaces and punctuation, and explain how it works.")


@pytest.fixture(scope="module", autouse=True)
def single_thread() -> Iterator[None]:
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def backend() -> Any:
    return load_embedded(ALIAS)


@pytest.fixture(scope="module")
def plain(backend: Any) -> Any:
    """The same weights loaded by plain transformers, untouched by nnsight."""
    import torch
    from transformers import AutoModelForCausalLM

    dense = default_cache_dir() / "models" / f"dense-{EMBEDDED[ALIAS].sha256[:24]}"
    return AutoModelForCausalLM.from_pretrained(str(dense), dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def prompts(backend: Any) -> PromptSet:
    assert len({len(ids) for ids in backend.encode(TEXTS)}) == len(TEXTS)  # needs padding
    return PromptSet("plumbing/refuse", "plumbing", "refuse", TEXTS, "test")


@pytest.fixture(scope="module")
def interventions(backend: Any, prompts: PromptSet) -> dict[str, Intervention]:
    rng = np.random.default_rng(0)
    states = backend.residual_stream(prompts, [LAYER], [-1])
    reference_norm = float(np.linalg.norm(states[:, 0, 0], axis=-1).mean())
    return {
        "steer": steer(rng.standard_normal(backend.d_model), STRENGTH, LAYER, reference_norm,
                       label="random"),
        "ablate": Ablate(rng.standard_normal(backend.d_model), label="random"),
    }


def reference(plain: Any, backend: Any, intervention: Intervention | None) -> list[list[int]]:
    """New token ids of hooked greedy generate, each prompt alone, cut at the end token."""
    import torch

    stop = {plain.generation_config.eos_token_id, backend.tokenizer.eos_token_id}
    replies = []
    for ids in backend.encode(TEXTS):
        tokens = torch.tensor([ids])
        with torch.no_grad(), hooked(plain, intervention):
            out = plain.generate(tokens, attention_mask=torch.ones_like(tokens),
                                 max_new_tokens=N_NEW, do_sample=False,
                                 pad_token_id=backend.tokenizer.pad_token_id)
        new = out[0, len(ids):].tolist()
        replies.append(new[: next((i for i, t in enumerate(new) if t in stop), len(new))])
    return replies


def generated(backend: Any, prompts: PromptSet,
              intervention: Intervention | None) -> tuple[list[str], list[list[int]]]:
    """``backend.generate``'s replies (one batch) and the token ids it decoded them from."""
    seen: list[list[int]] = []
    decode = backend.tokenizer.batch_decode

    def spy(rows: Any, *args: Any, **kwargs: Any) -> Any:
        seen.extend([int(t) for t in row] for row in rows)
        return decode(rows, *args, **kwargs)

    backend.tokenizer.batch_decode = spy
    try:
        replies = backend.generate(prompts, N_NEW, intervention=intervention,
                                   batch_size=len(prompts))
    finally:
        del backend.tokenizer.batch_decode
    return replies, seen


@pytest.mark.parametrize("kind", ["steer", "ablate"])
def test_smollm2_generation_with_intervention_matches_hooks(
    backend: Any, plain: Any, prompts: PromptSet, interventions: dict[str, Intervention],
    kind: str
) -> None:
    edit = interventions[kind]
    want = reference(plain, backend, edit)
    replies, got = generated(backend, prompts, edit)
    assert got == want
    assert replies == [backend.tokenizer.decode(row, skip_special_tokens=True) for row in want]
    # Steering ends the "Hi!" reply at once (the end token comes first): that checks the
    # stop at the end token; the other replies check the tokens themselves.
    assert sum(map(bool, want)) >= 2, f"too few replies with tokens: {replies!r}"
    if kind == "steer":  # guard: the edit is strong enough that parity means something
        unsteered = reference(plain, backend, None)
        assert all(a != b for a, b in zip(want, unsteered)), (replies, unsteered)


@pytest.mark.parametrize("kind", ["none", "steer", "ablate"])
def test_smollm2_first_step_of_generation_is_the_cheap_scores_forward(
    backend: Any, prompts: PromptSet, interventions: dict[str, Intervention], kind: str
) -> None:
    """The judged replies' cheap score is read from generation's prompt pass
    (``first_logprobs``): on a real template, tokenizer and tied embeddings it must be the
    forward pass ``last_logprobs`` makes, and reading it must leave the replies alone."""
    from refusal_checks.measure.effects import FirstStep
    from refusal_checks.models.scoring import refusal_score

    edit = None if kind == "none" else interventions[kind]
    first = FirstStep()
    replies = backend.generate(prompts, N_NEW, intervention=edit, batch_size=len(prompts),
                               first_logprobs=first)
    assert replies == generated(backend, prompts, edit)[0]
    want = backend.last_logprobs(prompts, intervention=edit, batch_size=len(prompts))
    found = first.of(prompts)
    assert found is not None
    # One batch, one prompt pass each: generation adds only a KV cache and mask-derived
    # pad positions (masked out), so the two agree to float32 rounding of the attention
    # kernels (bitwise here); 1e-4 in log-probability leaves a 100x margin over that on
    # any CPU and is far below what moves a refusal score's sign.
    np.testing.assert_allclose(found, want, rtol=0, atol=1e-4)
    tokens = backend.refusal_token_ids()
    np.testing.assert_allclose(refusal_score(found, tokens), refusal_score(want, tokens),
                               rtol=0, atol=1e-4)
