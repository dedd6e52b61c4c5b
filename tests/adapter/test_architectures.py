"""Directional ablation and weight orthogonalisation on every model family we accept.

Each family's tiny random-init model (:mod:`.tiny_families`, every norm weight randomised)
is checked for the two properties that make both edits mean Arditi et al.'s ablation:

(a) under hook ablation nothing is left along ``r`` in the residual stream: after every
    block (the stream the next block reads, before its own input projection) and at the
    final state that the last norm reads;
(b) hook ablation and the orthogonalised copy are the same model: the same greedy tokens
    and the same next-token log-probabilities.

Before the per-family write table (``r`` projected out of every o_proj / down_proj output
in every family), Gemma-2, Gemma-3, OLMo-2 and OLMo-3 failed both: their post-norms re-scale
each channel of a write that was projected before them. Measured then: 0.17 / 0.29 / 0.12 /
0.14 of the stream's norm left along r under hooks, and hook vs copy log-probs 0.30 / 0.46 /
0.12 / 0.13 apart. Now: under 1.2e-7 and 2e-6 in every family.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refusal_checks.models.interventions import Ablate
from refusal_checks.prompts.sets import PromptSet

from .test_interventions import backend_generate
from .tiny import PROMPTS, build_tokenizer
from .tiny_families import FAMILIES, N_LAYERS, build_family

N_NEW = 6
# (a) The stream is a sum of a few float32 terms of order 1; after projection the part left
# along r is rounding: each dot product and subtraction over 32 channels errs by at most a
# few ulp (2^-24 ~ 6e-8) times the vector's norm, a handful of such terms add up per block,
# and the post-norm's gain (< 2) scales them. That stays well under 1e-6 of the stream's
# norm on any CPU or summation order; 1e-5 leaves 10x room, and an ablation that misses
# (the pre-table post-norm edit) leaves 0.1 to 0.3.
ORTHOGONAL_TOL = 1e-5
# (b) Hook ablation and the orthogonalised copy compute the same function in a different
# order (project the output vs multiply by projected weights), so they differ by float32
# rounding (~1e-7 relative per operation) carried through 3 blocks and a log_softmax over
# logits of order 1: measured below 2e-6. 1e-4 is 50x that and 1000x below the ablation's
# own effect (> 0.1, checked), so it cannot hide a wrong edit.
LOGPROB_TOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def prompt_set() -> PromptSet:
    return PromptSet("tiny/refuse", "tiny", "refuse", PROMPTS, "test")


def wrap(model: Any, name: str) -> Any:
    from refusal_checks.models.nnsight.backend import NnsightBackend

    return NnsightBackend(model, build_tokenizer(), name=name, fingerprint=name,
                          dtype="float32", device="cpu")


def family_backend(model_type: str, *, tied: bool = False) -> Any:
    tokenizer = build_tokenizer()
    model = build_family(model_type, len(tokenizer), tokenizer.pad_token_id,
                         tokenizer.eos_token_id, tie_word_embeddings=tied)
    return wrap(model, f"tiny-{model_type}")


# Every family untied, and Gemma-2 also with the tied embeddings its checkpoints have.
CASES = [(family, False) for family in FAMILIES] + [("gemma2", True)]


@pytest.fixture(scope="module", params=CASES,
                ids=[f"{f}-tied" if tied else f for f, tied in CASES])
def case(request: pytest.FixtureRequest) -> dict[str, Any]:
    """A family's backend and a direction its stream carries: the mean last-position
    residual entering block 1 (a random axis in 32 dimensions changes too little)."""
    family, tied = request.param
    backend = family_backend(family, tied=tied)
    states = backend.residual_stream(prompt_set(), [1], [-1])
    return {"family": family, "backend": backend,
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
    # One pass of the prompts, and one of the template's shared head when this edit's head
    # was not computed before (refusal_checks.models.nnsight.head): it must carry nothing
    # along r either, and its rows are all real tokens. The prompts' pass sees only their
    # tokens after the head: the mask's last columns; pad positions are not read.
    assert len(outputs) in (N_LAYERS, 2 * N_LAYERS)
    from refusal_checks.models.nnsight.head import length_batches

    (rows,) = length_batches([len(ids) for ids in backend.encode(PROMPTS)], len(PROMPTS))
    mask = backend._inputs([PROMPTS[i] for i in rows], None)[0]["attention_mask"].bool()
    worst = 0.0
    for h in outputs:
        h = h.double()[mask[:, -h.shape[1]:]] if h.shape[0] == len(PROMPTS) else h.double()[0]
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
    want_text, want = backend_generate(backend, PROMPTS, N_NEW, ablate, batch_size=3)
    got_text, got = backend_generate(edited, PROMPTS, N_NEW, None, batch_size=3)
    assert got == want and got_text == want_text  # token ids, not only the decoded text
    _, plain_ids = backend_generate(backend, PROMPTS, N_NEW, None, batch_size=3)
    assert got != plain_ids, "the ablation must change the greedy replies"


def test_orthogonalised_copy_leaves_nothing_along_r(case: dict[str, Any]) -> None:
    edited = wrap(case["backend"].orthogonalised(case["ablate"].direction), "orthogonalised")
    along = stream_along(edited, case["ablate"].direction, None)
    assert along < ORTHOGONAL_TOL, f"{case['family']}: {along:.2e} of the stream along r"


@pytest.mark.parametrize("ablated", [False, True], ids=["plain", "ablated"])
def test_backend_logprobs_equal_plain_torch(case: dict[str, Any], ablated: bool) -> None:
    """The backend's batched, left-padded nnsight pass against the model's own forward on
    each prompt alone, with the ablation as forward hooks (tests/hook_reference.py): the
    same float32 model, so only summation order differs (1e-5, as in test_interventions).
    Unablated, this is what caught Gemma-2's logit soft-capping, which lm_head's output
    (what the backend used to read) does not include."""
    import torch

    from tests.hook_reference import hooked

    backend = case["backend"]
    ablate = case["ablate"] if ablated else None
    rows = []
    for text in PROMPTS:
        ids = backend.tokenizer(backend.render([text]), return_tensors="pt",
                                add_special_tokens=False)["input_ids"]
        with torch.no_grad(), hooked(backend.model, ablate):
            logits = backend.model(ids).logits[0, -1]
        rows.append(torch.log_softmax(logits.float(), dim=-1).numpy())
    got = backend.last_logprobs(prompt_set(), intervention=ablate, batch_size=len(PROMPTS))
    np.testing.assert_allclose(got, np.asarray(rows), atol=1e-5, rtol=0)


# -- the algebra behind the post-norm rule ---------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(x=hnp.arrays(np.float64, 16, elements=st.floats(-10, 10)),
       gain=hnp.arrays(np.float64, 16, elements=st.floats(0, 3)),
       r=hnp.arrays(np.float64, 16, elements=st.floats(-1, 1)),
       eps=st.sampled_from([1e-6, 1e-5, 1.0]))
def test_a_write_projected_against_gain_times_r_is_orthogonal_to_r_after_the_norm(
    x: np.ndarray, gain: np.ndarray, r: np.ndarray, eps: float
) -> None:
    """``RMSNorm_g(x) . r = (x . (g * r)) / rms(x)``: projecting ``x`` against ``g * r``
    empties ``r`` after the norm whatever the gains (zeros included) and ``eps`` (every
    real norm has one > 0)."""
    assume(np.linalg.norm(r) > 1e-3)
    r = r / np.linalg.norm(r)

    def norm(v: np.ndarray) -> np.ndarray:
        return v / np.sqrt(np.mean(v**2) + eps) * gain

    u = gain * r
    projected = x - (x @ u) / (u @ u) * u if u @ u > 0 else x
    y = norm(projected)
    # What is left is the rounding of ``projected . u`` (a few 16-term float64 dot products:
    # < 1e-14 |x| |u|), divided by the norm's divisor; 1e-12 leaves 100x room.
    divisor = np.sqrt(np.mean(projected**2) + eps)
    assert abs(y @ r) <= 1e-12 * (np.linalg.norm(x) * np.linalg.norm(u) + 1) / divisor


def test_projecting_against_r_before_a_post_norm_leaves_r_after_it() -> None:
    """The pre-table edit, on one worked example: gains (1, 3), r = e1+e2, x = e1 - e2.
    x . r = 0, yet the norm writes (1, -3) / rms, which has (1 - 3) / sqrt(2) along r."""
    gain, r, x = np.array([1.0, 3.0]), np.array([1.0, 1.0]) / np.sqrt(2), np.array([1.0, -1.0])
    y = x / np.sqrt(np.mean(x**2)) * gain
    assert x @ r == 0 and y @ r == pytest.approx(-2 / np.sqrt(2))


# -- families we do not know --------------------------------------------------------------
def mystery_backend() -> Any:
    """A Llama whose config claims a family nobody has told the table about."""
    backend = family_backend("llama")
    backend.model.config.model_type = "mystery"
    return backend


def test_an_unknown_family_is_refused_with_the_fix() -> None:
    from refusal_checks.errors import BackendError

    backend = mystery_backend()
    ablate = Ablate(np.ones(backend.d_model))
    message = r"model_type 'mystery'.*Supported model types: .*gemma2.*LAYOUTS"
    with pytest.raises(BackendError, match=message):
        backend.last_logprobs(prompt_set(), intervention=ablate)
    with pytest.raises(BackendError, match=message):
        backend.generate(prompt_set(), 2, intervention=ablate)
    with pytest.raises(BackendError, match=message):
        backend.orthogonalised(ablate.direction)
    # Steering and plain measurements do not depend on the write table.
    from refusal_checks.models.interventions import Steer

    steered = backend.last_logprobs(prompt_set(), intervention=Steer(1, np.ones(32)))
    assert np.isfinite(steered).all()


def test_gpt2_is_refused_with_its_reason() -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from refusal_checks.errors import BackendError

    tokenizer = build_tokenizer()
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4,
                                       vocab_size=len(tokenizer), n_positions=64)).eval()
    backend = wrap(model, "tiny-gpt2")
    with pytest.raises(BackendError, match=r"model_type 'gpt2': GPT-2 blocks live under "):
        backend.last_logprobs(prompt_set(), intervention=Ablate(np.ones(32)))


def test_a_changed_norm_formula_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """If transformers changed Gemma-2's gain from ``1 + w`` to ``w``, the table's gains
    would be wrong; the probe in ``_gain`` must notice rather than edit wrongly."""
    from refusal_checks.models import architectures
    from refusal_checks.errors import BackendError

    wrong = architectures.Layout("Gemma-2", architectures.LAYOUTS["gemma2"].writes, 0.0)
    monkeypatch.setitem(architectures.LAYOUTS, "gemma2", wrong)
    backend = family_backend("gemma2")
    with pytest.raises(BackendError, match=r"block 0 post_attention_layernorm does not "
                                           r"compute x / rms\(x\) \* \(0 \+ weight\)"):
        backend.orthogonalised(np.ones(backend.d_model))


def test_readme_lists_every_family_ablation_supports() -> None:
    from pathlib import Path

    from refusal_checks.models.architectures import LAYOUTS

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert all(f"`{model_type}`" in readme for model_type in LAYOUTS)
    assert set(FAMILIES) == set(LAYOUTS), "every family in the table needs a tiny model here"
