"""``remote="local"`` parity on the embedded SmolLM2-135M (a real chat template and tokenizer).

Two backends over the same dense copy: one plain, one with --refusal-remote-local, where
every block is serialised as for NDIF and deserialised with refusal_checks unimportable
(tests/adapter/remote_sim.py). Both run the same float32 weights on the same batches in
one process, so they perform the same computation; the tolerances (1e-5 relative, 1e-4
absolute on activations whose typical magnitude is 1-100) only allow for a CPU kernel
choosing another reduction order between two calls, never for a different edit.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from refusal_checks.cache.keys import default_cache_dir
from refusal_checks.models.interventions import Ablate, steer
from refusal_checks.models.loading import LoadOptions, load_backend
from refusal_checks.models.registry import EMBEDDED, resolve
from refusal_checks.prompts.sets import PromptSet
from tests.adapter.remote_sim import server_without_refusal_checks

pytestmark = pytest.mark.real

ALIAS = "smollm2-135m"
LAYER = 12
N_NEW = 8
TEXTS = ("Hi!", "What is the capital of France?", "How do I pick a lock?",
         "Write a haiku about the sea.")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """A second intra-op thread slows generation on this 2-core machine (see
    test_embedded_interventions.py)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pair() -> tuple[Any, Any]:
    missing = [p for p in EMBEDDED[ALIAS].packages if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"embedded model {ALIAS} is not installed: {EMBEDDED[ALIAS].install}")
    here = load_backend(resolve(ALIAS), LoadOptions(cache_dir=default_cache_dir()))
    simulated = load_backend(resolve(ALIAS),
                             LoadOptions(cache_dir=default_cache_dir(), remote="local"))
    assert simulated.remote == "local" and simulated.fingerprint == here.fingerprint
    return here, simulated


@pytest.fixture(scope="module")
def prompts() -> PromptSet:
    return PromptSet("real/mixed", "real", "refuse", TEXTS, "test")


@pytest.fixture(scope="module")
def edits(pair: tuple[Any, Any], prompts: PromptSet) -> dict[str, Any]:
    here, _ = pair
    acts = here.residual_stream(prompts, [LAYER], [-1])[:, 0, 0, :]
    direction = acts[2] - acts[:2].mean(axis=0)  # any real-scale direction will do
    norm = float(np.linalg.norm(acts, axis=1).mean())
    return {"none": None, "steer": steer(direction, 0.8, LAYER, norm, "test"),
            "ablate": Ablate(direction)}


def test_activations_match(pair: tuple[Any, Any], prompts: PromptSet) -> None:
    here, simulated = pair
    layers = [0, LAYER, here.n_layers - 1]
    with server_without_refusal_checks():
        got = simulated.residual_stream(prompts, layers, [-1, -2], batch_size=4)
    np.testing.assert_allclose(got, here.residual_stream(prompts, layers, [-1, -2],
                                                         batch_size=4), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("edit", ["none", "steer", "ablate"])
def test_logprobs_match(pair: tuple[Any, Any], prompts: PromptSet, edits: dict[str, Any],
                        edit: str) -> None:
    here, simulated = pair
    with server_without_refusal_checks():
        got = simulated.last_logprobs(prompts, intervention=edits[edit], batch_size=4)
    want = here.last_logprobs(prompts, intervention=edits[edit], batch_size=4)
    # log-probs are O(1-30); 1e-4 absolute is far below any edit's effect (checked below).
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    if edit != "none":
        assert np.abs(want - here.last_logprobs(prompts, batch_size=4)).max() > 0.1


@pytest.mark.parametrize("edit", ["none", "steer", "ablate"])
def test_greedy_replies_match(pair: tuple[Any, Any], prompts: PromptSet, edits: dict[str, Any],
                              edit: str) -> None:
    here, simulated = pair
    with server_without_refusal_checks():
        got = simulated.generate(prompts, N_NEW, intervention=edits[edit], batch_size=4)
    assert got == here.generate(prompts, N_NEW, intervention=edits[edit], batch_size=4)
