"""Directional ablation and weight orthogonalisation on every model family we accept.

Each family's tiny random-init model (:mod:`.tiny_families`, every norm weight randomised)
is checked for the two properties that make both edits mean Arditi et al.'s ablation:

(a) under hook ablation nothing is left along ``r`` in the residual stream: after every
    block (the stream the next block reads, before its own input projection) and at the
    final state that the last norm reads;
(b) hook ablation and the orthogonalised copy are the same model: the same greedy tokens
    and the same next-token log-probabilities.

Before the per-family write table, Gemma-2 failed both: the post-norms re-scale each
channel of a write that was projected before them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from refusal_checks.interventions import Ablate
from refusal_checks.prompts import PromptSet

from .tiny import PROMPTS, build_tokenizer
from .tiny_families import FAMILIES, N_LAYERS, build_family

N_NEW = 6
# (a) The stream is a sum of a few float32 terms of order 1; after projection the part left
# along r is rounding: each dot product and subtraction over 32 channels errs by at most a
# few ulp (2^-24 ~ 6e-8) times the vector's norm, a handful of such terms add up per block,
# and the post-norm's gain (< 2) scales them. That stays well under 1e-6 of the stream's
# norm on any CPU or summation order; 1e-5 leaves 10x room, and an ablation that misses
# (the pre-table Gemma-2 edit) leaves 1e-2 to 1e-1.
ORTHOGONAL_TOL = 1e-5
# (b) Hook ablation and the orthogonalised copy compute the same function in a different
# order (project the output vs multiply by projected weights), so they differ by float32
# rounding (~1e-7 relative per operation) carried through 3 blocks and a log_softmax over
# logits of order 1: measured below 2e-6. 1e-4 is 50x that and 1000x below the ablation's
# own effect (> 0.1, checked), so it cannot hide a wrong edit.
LOGPROB_TOL = 1e-4


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny matrices: a second intra-op thread only waits (see test_interventions.py)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def prompt_set() -> PromptSet:
    return PromptSet("tiny/refuse", "tiny", "refuse", PROMPTS, "test")


def wrap(model: Any, name: str) -> Any:
    from refusal_checks.nnsight_backend import NnsightBackend

    return NnsightBackend(model, build_tokenizer(), name=name, fingerprint=name,
                          dtype="float32", device="cpu")


def family_backend(model_type: str, *, tied: bool = False) -> Any:
    tokenizer = build_tokenizer()
    model = build_family(model_type, len(tokenizer), tokenizer.pad_token_id,
                         tokenizer.eos_token_id, tie_word_embeddings=tied)
    return wrap(model, f"tiny-{model_type}")


@pytest.fixture(scope="module", params=FAMILIES)
def case(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A family's backend and a direction its stream carries: the mean last-position
    residual entering block 1 (a random axis in 32 dimensions changes too little)."""
    backend = family_backend(request.param)
    states = backend.residual_stream(prompt_set(), [1], [-1])
    return {"family": request.param, "backend": backend,
            "ablate": Ablate(states[:, 0, 0].mean(axis=0).astype(np.float64), label="mean")}


def stream_along(backend: Any, direction: np.ndarray, ablate: Ablate | None) -> float:
    """Largest ``|h . r| / |h|`` over prompts, positions and blocks, where ``h`` is each
    block's output (the last one is the final state) during ``last_logprobs``, with
    ``ablate`` applied by the backend. Measured in float64 so the check adds no rounding."""
    import torch

    r = torch.tensor(direction / np.linalg.norm(direction), dtype=torch.float64)
    outputs: list[Any] = []
    handles = [block.register_forward_hook(lambda m, a, out: outputs.append(out.detach()))
               for block in backend.model.model.layers]
    try:
        backend.last_logprobs(prompt_set(), intervention=ablate, batch_size=len(PROMPTS))
    finally:
        for handle in handles:
            handle.remove()
    assert len(outputs) == N_LAYERS
    mask = backend._batch(PROMPTS)["attention_mask"].bool()  # pad positions are not read
    worst = 0.0
    for h in outputs:
        h = h.double()[mask]
        worst = max(worst, ((h @ r).abs() / h.norm(dim=-1)).max().item())
    return worst


def test_hook_ablation_leaves_nothing_along_r_at_any_layer(case: dict[str, Any]) -> None:
    backend, ablate = case["backend"], case["ablate"]
    assert stream_along(backend, ablate.direction, None) > 0.1, "the stream must carry r"
    along = stream_along(backend, ablate.direction, ablate)
    assert along < ORTHOGONAL_TOL, f"{case['family']}: {along:.2e} of the stream along r"


def test_orthogonalised_copy_equals_hook_ablation(case: dict[str, Any]) -> None:
    backend, ablate = case["backend"], case["ablate"]
    edited = wrap(backend.orthogonalised(ablate.direction), "orthogonalised")
    hooked = backend.last_logprobs(prompt_set(), intervention=ablate)
    copied = edited.last_logprobs(prompt_set())
    plain = backend.last_logprobs(prompt_set())
    assert np.abs(hooked - plain).max() > 0.1, "the ablation must matter for the tolerance to"
    gap = float(np.abs(copied - hooked).max())
    assert gap < LOGPROB_TOL, f"{case['family']}: log-probs differ by {gap:.2e}"
    assert edited.generate(prompt_set(), N_NEW) == backend.generate(
        prompt_set(), N_NEW, intervention=ablate)


def test_orthogonalised_copy_leaves_nothing_along_r(case: dict[str, Any]) -> None:
    edited = wrap(case["backend"].orthogonalised(case["ablate"].direction), "orthogonalised")
    along = stream_along(edited, case["ablate"].direction, None)
    assert along < ORTHOGONAL_TOL, f"{case['family']}: {along:.2e} of the stream along r"
