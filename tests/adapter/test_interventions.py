"""Interventions through nnsight against plain torch forward hooks, on the tiny Llama.

The reference is the plain-transformers copy of the model (``plain_model``) with forward
hooks, run on each prompt ALONE (no padding) with ``model.generate``, which stops at the
end token. The backend runs batched, with left padding. Token ids are compared, not just
text: the word-level tokenizer drops special tokens when decoding, so two different
replies can decode to the same string.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from refusal_checks.models.interventions import Ablate, Intervention, Steer, steer
from refusal_checks.prompts.sets import PromptSet
from tests.hook_reference import hooked

from .tiny import D_MODEL, N_LAYERS, PROMPTS, build_tokenizer

STEER_LAYER = 2
N_NEW = 6
# Strong enough to change every reply (checked below), so that "edits the generated tokens"
# and "edits the prompt pass only" lead to different replies.
STRENGTH = 4.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def prompt_set(texts: Sequence[str] = PROMPTS) -> PromptSet:
    return PromptSet("tiny/refuse", "tiny", "refuse", tuple(texts), "test")


def alone_ids(tokenizer: Any, text: str) -> Any:
    """Token ids of one templated prompt, as a [1, seq] tensor (no padding)."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True,
        return_dict=True, return_tensors="pt",
    )["input_ids"]


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    return {t for t in (*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id)
            if t is not None}


def reference_generate(model: Any, tokenizer: Any, texts: Sequence[str], n: int,
                       intervention: Intervention | None, *,
                       prompt_pass_only: bool = False) -> list[list[int]]:
    """New token ids of hooked greedy ``generate``, per prompt alone, cut at the end token."""
    import torch

    stop = stop_ids(model, tokenizer)
    replies = []
    for text in texts:
        ids = alone_ids(tokenizer, text)
        with torch.no_grad(), hooked(model, intervention, prompt_pass_only=prompt_pass_only):
            tokens = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                    do_sample=False, pad_token_id=tokenizer.pad_token_id)
        new = tokens[0, ids.shape[1]:].tolist()
        replies.append(new[: next((i for i, t in enumerate(new) if t in stop), len(new))])
    return replies


def reference_logprobs(model: Any, tokenizer: Any, texts: Sequence[str],
                       intervention: Intervention | None) -> np.ndarray:
    """``(prompt, vocab)`` log_softmax of the hooked model's last-position logits."""
    import torch

    rows = []
    for text in texts:
        with torch.no_grad(), hooked(model, intervention):
            logits = model(alone_ids(tokenizer, text)).logits[0, -1]
        rows.append(torch.log_softmax(logits.float(), dim=-1).numpy())
    return np.asarray(rows)


def backend_generate(backend: Any, texts: Sequence[str], n: int,
                     intervention: Intervention | None,
                     batch_size: int) -> tuple[list[str], list[list[int]]]:
    """``backend.generate``'s replies and the token ids it decoded them from."""
    seen: list[list[int]] = []
    decode = backend.tokenizer.batch_decode

    def spy(rows: Any, *args: Any, **kwargs: Any) -> Any:
        seen.extend([int(t) for t in row] for row in rows)
        return decode(rows, *args, **kwargs)

    backend.tokenizer.batch_decode = spy
    try:
        replies = backend.generate(prompt_set(texts), n, intervention=intervention,
                                   batch_size=batch_size)
    finally:
        del backend.tokenizer.batch_decode
    assert len(seen) == len(texts), "generate() no longer decodes once per prompt"
    # generate batches prompts of like length together (head.length_batches): the rows it
    # decoded come in that order; put them back in the prompts' order.
    from refusal_checks.models.nnsight.head import length_batches

    lengths = [len(ids) for ids in backend.encode(texts)]
    order = [i for rows in length_batches(lengths, batch_size) for i in rows]
    in_order: list[list[int]] = [[] for _ in texts]
    for i, row in zip(order, seen):
        in_order[i] = row
    return replies, in_order


def decoded(tokenizer: Any, rows: list[list[int]]) -> list[str]:
    return [tokenizer.decode(row, skip_special_tokens=True) for row in rows]


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference_norm(tiny_backend: Any) -> float:
    """Mean ``|x|`` of resid_pre at the steering layer, last position."""
    states = tiny_backend.residual_stream(prompt_set(), [STEER_LAYER], [-1])
    return float(np.linalg.norm(states[:, 0, 0], axis=-1).mean())


@pytest.fixture(scope="module")
def steering(reference_norm: float) -> Steer:
    direction = np.random.default_rng(0).standard_normal(D_MODEL)
    return steer(direction, STRENGTH, STEER_LAYER, reference_norm, label="random")


@pytest.fixture(scope="module")
def ablation(tiny_backend: Any) -> Ablate:
    """The mean direction of the last-position residual at the steering layer.

    A random direction in 32 dimensions carries too little of the residual stream to
    change the tiny model's replies; this one does (checked below).
    """
    states = tiny_backend.residual_stream(prompt_set(), [STEER_LAYER], [-1])
    return Ablate(states[:, 0, 0].mean(axis=0).astype(np.float64), label="mean")


@pytest.fixture(scope="module", params=["steer", "ablate"])
def intervention(request: pytest.FixtureRequest, steering: Steer, ablation: Ablate) -> Any:
    return steering if request.param == "steer" else ablation


# -- generation ------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 3])
def test_generate_with_intervention_matches_hooks_token_for_token(
    tiny_backend: Any, plain_model: tuple[Any, Any], intervention: Intervention,
    batch_size: int
) -> None:
    model, tokenizer = plain_model
    want = reference_generate(model, tokenizer, PROMPTS, N_NEW, intervention)
    replies, got = backend_generate(tiny_backend, PROMPTS, N_NEW, intervention, batch_size)
    assert got == want
    assert replies == decoded(tokenizer, want)


def test_interventions_change_every_reply(
    tiny_backend: Any, plain_model: tuple[Any, Any], intervention: Intervention
) -> None:
    """Guards the parity test: an edit that changed nothing would pass it trivially."""
    model, tokenizer = plain_model
    plain = reference_generate(model, tokenizer, PROMPTS, N_NEW, None)
    edited = reference_generate(model, tokenizer, PROMPTS, N_NEW, intervention)
    changed = [a != b for a, b in zip(plain, edited)]
    assert all(changed), (plain, edited)


def test_steering_reaches_every_generated_token(
    tiny_backend: Any, plain_model: tuple[Any, Any], steering: Steer
) -> None:
    """The nnsight trap (../shared/MODELS.md): without the ``iter`` loop only the prompt pass
    is edited, silently. The backend must equal the all-steps hook, not the prompt-only one."""
    model, tokenizer = plain_model
    every_step = reference_generate(model, tokenizer, PROMPTS, N_NEW, steering)
    prompt_only = reference_generate(model, tokenizer, PROMPTS, N_NEW, steering,
                                     prompt_pass_only=True)
    _, got = backend_generate(tiny_backend, PROMPTS, N_NEW, steering, batch_size=len(PROMPTS))
    differs = [a != b for a, b in zip(every_step, prompt_only)]
    assert all(differs), "vector too weak to tell the two hooks apart"
    assert got == every_step
    assert all(g != p for g, p in zip(got, prompt_only))


def test_generation_stops_where_the_edited_model_emits_the_end_token(
    tiny_backend: Any, plain_model: tuple[Any, Any], reference_norm: float
) -> None:
    """Steer straight at the end token's unembedding: the reply is empty, as in a plain
    ``generate``. (Forcing a fixed number of steps with ``min_new_tokens`` bans the end
    token instead, and the reply runs on.)"""
    model, tokenizer = plain_model
    eos = tokenizer.eos_token_id
    toward_eos = steer(model.lm_head.weight[eos].detach().numpy().astype(np.float64), 3.0,
                       STEER_LAYER, reference_norm)
    first = tiny_backend.last_logprobs(prompt_set(), intervention=toward_eos).argmax(axis=-1)
    assert (first == eos).all(), "the end token is not the steered model's first choice"
    want = reference_generate(model, tokenizer, PROMPTS, N_NEW, toward_eos)
    assert want == [[] for _ in PROMPTS]
    replies, got = backend_generate(tiny_backend, PROMPTS, N_NEW, toward_eos, batch_size=3)
    assert got == want and replies == [""] * len(PROMPTS)


def test_a_generated_pad_token_does_not_end_the_reply(
    tiny_backend: Any, plain_model: tuple[Any, Any]
) -> None:
    """The tiny model emits [PAD] (a token like any other to it) for one prompt; plain
    ``generate`` only stops at the end token, so the backend must run on past it."""
    model, tokenizer = plain_model
    want = reference_generate(model, tokenizer, PROMPTS, N_NEW, None)
    assert any(tokenizer.pad_token_id in row for row in want), "no [PAD] emitted: pick another"
    _, got = backend_generate(tiny_backend, PROMPTS, N_NEW, None, batch_size=3)
    assert got == want


# -- first-token log-probabilities -----------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 3])
@pytest.mark.parametrize("kind", ["none", "steer", "ablate"])
def test_last_logprobs_match_hooked_logits(
    tiny_backend: Any, plain_model: tuple[Any, Any], steering: Steer, ablation: Ablate,
    kind: str, batch_size: int
) -> None:
    model, tokenizer = plain_model
    edit = {"none": None, "steer": steering, "ablate": ablation}[kind]
    want = reference_logprobs(model, tokenizer, PROMPTS, edit)
    got = tiny_backend.last_logprobs(prompt_set(), intervention=edit, batch_size=batch_size)
    assert got.shape == (len(PROMPTS), model.config.vocab_size) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    if edit is not None:  # the tolerance means something
        plain = reference_logprobs(model, tokenizer, PROMPTS, None)
        assert np.abs(want - plain).max() > 0.1


def test_intervention_for_another_model_is_refused_before_running(tiny_backend: Any) -> None:
    from refusal_checks.models.interventions import InterventionError

    with pytest.raises(InterventionError, match=f"width {D_MODEL + 1} .* width {D_MODEL}"):
        tiny_backend.generate(prompt_set(), 2, intervention=Ablate(np.ones(D_MODEL + 1)))
    with pytest.raises(InterventionError, match=f"0..{N_LAYERS - 1}"):
        tiny_backend.last_logprobs(prompt_set(), intervention=Steer(N_LAYERS, np.ones(D_MODEL)))


# -- weight orthogonalisation ----------------------------------------------------------------
def tied_backend() -> Any:
    """The tiny architecture with ``tie_word_embeddings=True`` (as SmolLM2 has)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from refusal_checks.models.nnsight.backend import NnsightBackend

    tokenizer = build_tokenizer()
    torch.manual_seed(1)
    config = LlamaConfig(
        hidden_size=D_MODEL, intermediate_size=64, num_hidden_layers=N_LAYERS,
        num_attention_heads=4, num_key_value_heads=2, vocab_size=len(tokenizer),
        max_position_embeddings=128, initializer_range=0.1,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None, tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config).eval()
    return NnsightBackend(model, tokenizer, name="tiny-tied", fingerprint="tied",
                          dtype="float32", device="cpu")


def wrap(model: Any, name: str) -> Any:
    from refusal_checks.models.nnsight.backend import NnsightBackend

    return NnsightBackend(model, build_tokenizer(), name=name, fingerprint=name,
                          dtype="float32", device="cpu")


@pytest.fixture(scope="module", params=["untied", "tied"])
def orthogonal_case(request: pytest.FixtureRequest, tiny_backend: Any) -> dict[str, Any]:
    """The backend, its weights before, the direction, and the orthogonalised model."""
    backend = tiny_backend if request.param == "untied" else tied_backend()
    if request.param == "tied":
        model = backend.model
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    states = backend.residual_stream(prompt_set(), [STEER_LAYER], [-1])
    ablate = Ablate(states[:, 0, 0].mean(axis=0).astype(np.float64))
    before = {k: v.detach().clone() for k, v in backend.model.state_dict().items()}
    return {"backend": backend, "before": before, "ablate": ablate,
            "model": backend.orthogonalised(ablate.direction), "tied": request.param == "tied"}


def residuals(model: Any, tokenizer: Any, text: str) -> list[Any]:
    """Every block input plus the final residual (the input of the last norm): [seq, d_model]."""
    import torch

    final = []
    handle = model.model.norm.register_forward_pre_hook(lambda m, args: final.append(args[0]))
    try:
        with torch.no_grad():
            hidden = model(alone_ids(tokenizer, text), output_hidden_states=True).hidden_states
    finally:
        handle.remove()
    return [h[0] for h in hidden[:N_LAYERS]] + [final[0][0]]


def test_orthogonalised_model_has_nothing_along_the_direction_at_any_layer(
    orthogonal_case: dict[str, Any],
) -> None:
    import torch

    r = torch.tensor(orthogonal_case["ablate"].direction, dtype=torch.float32)
    tokenizer = orthogonal_case["backend"].tokenizer
    for text in PROMPTS:
        for layer, h in enumerate(residuals(orthogonal_case["model"], tokenizer, text)):
            relative = ((h @ r).abs() / h.norm(dim=-1)).max().item()
            assert relative < 1e-4, f"layer {layer}, prompt {text!r}: {relative:.2e}"
    # ... while the original model writes plenty along it (the check above is not vacuous).
    original = residuals(orthogonal_case["backend"].model, tokenizer, PROMPTS[0])
    assert max(((h @ r).abs() / h.norm(dim=-1)).max().item() for h in original) > 0.1


def test_orthogonalised_model_generates_as_ablation_does(
    orthogonal_case: dict[str, Any],
) -> None:
    backend, ablate = orthogonal_case["backend"], orthogonal_case["ablate"]
    edited = wrap(orthogonal_case["model"], "orthogonalised")
    want_replies, want = backend_generate(backend, PROMPTS, N_NEW, ablate, batch_size=3)
    got_replies, got = backend_generate(edited, PROMPTS, N_NEW, None, batch_size=3)
    assert got == want and got_replies == want_replies
    _, plain = backend_generate(backend, PROMPTS, N_NEW, None, batch_size=3)
    assert got != plain, "ablating this direction should change the replies"
    np.testing.assert_allclose(edited.last_logprobs(prompt_set()),
                               backend.last_logprobs(prompt_set(), intervention=ablate),
                               atol=1e-4, rtol=0)


def test_orthogonalised_leaves_the_original_model_unchanged(
    orthogonal_case: dict[str, Any],
) -> None:
    import torch

    backend, before = orthogonal_case["backend"], orthogonal_case["before"]
    after = backend.model.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert backend.model.config.tie_word_embeddings == orthogonal_case["tied"]
    model = backend.model
    tied_now = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert tied_now == orthogonal_case["tied"]
    # and the copy did change:
    edited = orthogonal_case["model"].model.embed_tokens.weight
    assert not torch.equal(edited, before["model.embed_tokens.weight"])


def test_orthogonalised_weights_equal_the_numpy_formula(orthogonal_case: dict[str, Any]) -> None:
    """The torch edit and :func:`refusal_checks.models.interventions.orthogonalise` agree; the
    read-out keeps the ORIGINAL embeddings when they were tied (ablation never edits it)."""
    from refusal_checks.models.interventions import orthogonalise

    before, model = orthogonal_case["before"], orthogonal_case["model"]
    r = orthogonal_case["ablate"].direction

    def close(got: Any, want: np.ndarray) -> None:
        np.testing.assert_allclose(got.detach().numpy(), want, atol=1e-6, rtol=0)

    embed = before["model.embed_tokens.weight"].numpy()
    close(model.model.embed_tokens.weight, orthogonalise(embed, r, writes_rows=True))
    close(model.lm_head.weight, embed if orthogonal_case["tied"]
          else before["lm_head.weight"].numpy())
    for i, block in enumerate(model.model.layers):
        for name, linear in (("self_attn.o_proj", block.self_attn.o_proj),
                             ("mlp.down_proj", block.mlp.down_proj)):
            original = before[f"model.layers.{i}.{name}.weight"].numpy()
            close(linear.weight, orthogonalise(original, r, writes_rows=False))
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()


def test_orthogonalised_model_survives_save_and_load(
    orthogonal_case: dict[str, Any], tmp_path: Path
) -> None:
    """The point of weight orthogonalisation is a model that can be saved and shipped; a
    tied model must come back untied, or loading would overwrite the read-out."""
    import torch
    from transformers import AutoModelForCausalLM

    model = orthogonal_case["model"]
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32).eval()
    ids = alone_ids(orthogonal_case["backend"].tokenizer, PROMPTS[1])
    with torch.no_grad():
        np.testing.assert_allclose(loaded(ids).logits.numpy(), model(ids).logits.numpy(),
                                   atol=1e-6, rtol=0)


def test_orthogonalised_refuses_a_direction_for_another_model(tiny_backend: Any) -> None:
    from refusal_checks.models.interventions import InterventionError

    with pytest.raises(InterventionError, match=f"width {D_MODEL + 1} .* width {D_MODEL}"):
        tiny_backend.orthogonalised(np.ones(D_MODEL + 1))
    with pytest.raises(InterventionError, match="zero vector"):
        tiny_backend.orthogonalised(np.zeros(D_MODEL))
