"""The cheap score of a judged reply from the generation's own prompt pass, on the tiny Llama.

``generate(..., first_logprobs=...)`` reads the first step's logits inside the same nnsight
trace that generates (step 0 of the ``iter`` loop, or of a plain generation). They must be
what ``last_logprobs`` computes under the same intervention, and reading them must not
change a reply; :class:`refusal_checks.measure.effects.FirstStep` and the ``first`` argument of
:func:`refusal_checks.measure.damage.scores_and_kl` then skip the second forward pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from refusal_checks.core import cost
from refusal_checks.cache.store import ArrayCache
from refusal_checks.measure.damage import scores_and_kl
from refusal_checks.measure.effects import FirstStep, scores
from refusal_checks.models.interventions import Ablate, Steer
from refusal_checks.prompts.sets import PromptSet

from .tiny import D_MODEL, PROMPTS

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

N_NEW = 5


def prompt_set(side: str = "refuse") -> PromptSet:
    return PromptSet(f"tiny/{side}", "tiny", side, tuple(PROMPTS), "test")


def edits() -> list[Any]:
    rng = np.random.default_rng(3)
    return [None, Steer(2, 4.0 * rng.normal(size=D_MODEL), strength=4.0, label="s"),
            Ablate(rng.normal(size=D_MODEL), label="a")]


@pytest.mark.parametrize("which", [0, 1, 2], ids=["unsteered", "steered", "ablated"])
@pytest.mark.parametrize("batch_size", [2, 3])
def test_first_step_is_last_logprobs_and_replies_do_not_change(
        tiny_backend: Any, which: int, batch_size: int) -> None:
    intervention = edits()[which]
    prompts = prompt_set()
    first = FirstStep()
    got = tiny_backend.generate(prompts, N_NEW, intervention=intervention,
                                batch_size=batch_size, first_logprobs=first)
    plain = tiny_backend.generate(prompts, N_NEW, intervention=intervention,
                                  batch_size=batch_size)
    assert got == plain  # reading step 0 edits nothing
    want = tiny_backend.last_logprobs(prompts, intervention=intervention,
                                      batch_size=batch_size)
    found = first.of(prompts)
    assert found is not None and found.shape == want.shape
    # Same weights, same batch, same prompt pass: generation only adds a KV cache and
    # derives pad positions from the mask (pads are masked out), so the values agree to
    # float32 rounding of the attention kernels on any CPU (bitwise on the machines here).
    np.testing.assert_allclose(found, want, rtol=0, atol=1e-5)


def test_first_step_leaves_out_prompts_it_did_not_see() -> None:
    first = FirstStep()
    first(["a", "b"], np.zeros((2, 3), np.float32))
    assert first.of(PromptSet("x", None, "refuse", ("a", "b"), "t")).shape == (2, 3)
    assert first.of(PromptSet("x", None, "refuse", ("a", "c"), "t")) is None
    assert first.of(PromptSet("x", None, "refuse", (), "t")) is None


class Counting:
    """A backend wrapper that counts ``last_logprobs`` prompts (forward passes)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.forwarded = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def last_logprobs(self, prompts: PromptSet, **kw: Any) -> np.ndarray:
        self.forwarded += len(prompts)
        return self.inner.last_logprobs(prompts, **kw)


@pytest.mark.parametrize("side", ["refuse", "benign"])
@pytest.mark.parametrize("which", [0, 1, 2], ids=["unsteered", "steered", "ablated"])
def test_score_from_generation_needs_no_edited_pass_and_equals_a_forward(
        tiny_backend: Any, tmp_path: Any, side: str, which: int) -> None:
    intervention = edits()[which]
    prompts = prompt_set(side)
    backend = Counting(tiny_backend)
    tokens = [0, 1]
    first = FirstStep()
    tiny_backend.generate(prompts, N_NEW, intervention=intervention, first_logprobs=first)
    ledger = cost.CostLedger()
    with ledger.phase("score validation"):
        value, divergence = scores_and_kl(backend, prompts, tokens, intervention,
                                          ArrayCache(tmp_path / "a"), first=first.of(prompts))
    # Only KL needs a pass, and only its unedited side (benign prompts under an edit).
    edited_kl = intervention is not None and side == "benign"
    assert backend.forwarded == (len(prompts) if edited_kl else 0)
    assert ledger.phases["score validation"].prompts == backend.forwarded  # the profile's count
    plain = Counting(tiny_backend)
    want, want_kl = scores_and_kl(plain, prompts, tokens, intervention,
                                  ArrayCache(tmp_path / "b"))
    assert plain.forwarded == len(prompts) * (2 if edited_kl else 1)
    np.testing.assert_allclose(value, want, rtol=0, atol=1e-5)  # as in the test above
    if edited_kl:
        np.testing.assert_allclose(divergence, want_kl, rtol=0, atol=1e-5)
    else:
        assert divergence is None and want_kl is None


def test_scores_from_given_logprobs_are_cached_like_a_forward(tiny_backend: Any,
                                                              tmp_path: Any) -> None:
    prompts = prompt_set()
    cache = ArrayCache(tmp_path)
    given = tiny_backend.last_logprobs(prompts)
    first = scores(tiny_backend, prompts, [0, 1], None, cache, logprobs=given)
    counting = Counting(tiny_backend)
    served = scores(counting, prompts, [0, 1], None, cache)
    assert counting.forwarded == 0  # served from the entry, not computed again
    np.testing.assert_array_equal(first, served)
