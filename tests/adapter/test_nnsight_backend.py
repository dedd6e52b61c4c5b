"""The nnsight backend against plain transformers, on a tiny random-init Llama.

Reference values come from a second copy of the model loaded by plain transformers and run
on each prompt ALONE (no padding): ``output_hidden_states[L]`` is the input of block L,
which is what ``residual_stream`` calls layer L ("resid_pre").
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from refusal_checks.models.backend import Backend, BackendError
from refusal_checks.prompts.sets import PromptSet

from .tiny import CHAT_TEMPLATE, D_MODEL, N_LAYERS, PROMPTS, build_tokenizer, save_tiny

POSITIONS = [-1, -2]


def prompt_set(texts: tuple[str, ...] = PROMPTS, name: str = "tiny/refuse") -> PromptSet:
    return PromptSet(name, "tiny", "refuse", texts, "test")


def alone_ids(tokenizer: Any, text: str) -> Any:
    """Token ids of one templated prompt, as a [1, seq] tensor (no padding)."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True,
        return_dict=True, return_tensors="pt",
    )["input_ids"]


@pytest.fixture(scope="module")
def reference_states(plain_model: tuple[Any, Any]) -> np.ndarray:
    """``(prompt, layer, position, d_model)`` from output_hidden_states, one prompt per pass."""
    import torch

    model, tokenizer = plain_model
    rows = []
    for text in PROMPTS:
        with torch.no_grad():
            hidden = model(alone_ids(tokenizer, text), output_hidden_states=True).hidden_states
        rows.append([[hidden[layer][0, p].numpy() for p in POSITIONS] for layer in range(N_LAYERS)])
    return np.asarray(rows, dtype=np.float32)


# -- shape and identity ----------------------------------------------------------------------
def test_tiny_backend_is_a_backend_with_the_config_sizes(tiny_backend: Any) -> None:
    assert isinstance(tiny_backend, Backend)
    assert (tiny_backend.n_layers, tiny_backend.d_model) == (N_LAYERS, D_MODEL)
    assert tiny_backend.dtype == "float32"
    assert tiny_backend.tokenizer.padding_side == "left"


def test_prompts_need_padding_in_one_batch(tiny_backend: Any) -> None:
    """Guards the parity tests: without different lengths, padding would go untested."""
    lengths = [len(ids) for ids in tiny_backend.encode(PROMPTS)]
    assert len(set(lengths)) == len(lengths), lengths


# -- residual stream -------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 3])
def test_residual_stream_matches_output_hidden_states_of_each_prompt_alone(
    tiny_backend: Any, reference_states: np.ndarray, batch_size: int
) -> None:
    got = tiny_backend.residual_stream(
        prompt_set(), list(range(N_LAYERS)), POSITIONS, batch_size=batch_size
    )
    assert got.shape == (len(PROMPTS), N_LAYERS, len(POSITIONS), D_MODEL)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, reference_states, atol=1e-5, rtol=0)


def test_reference_is_sensitive_to_position(reference_states: np.ndarray) -> None:
    """The 1e-5 tolerance means something: neighbouring positions differ by far more."""
    gap = np.abs(reference_states[:, 1:, 0] - reference_states[:, 1:, 1]).max()
    assert gap > 1e-2


def test_layers_in_any_order_with_repeats_and_negative_indices(
    tiny_backend: Any, reference_states: np.ndarray
) -> None:
    got = tiny_backend.residual_stream(prompt_set(), [3, -4, 1, 3], [-2], batch_size=4)
    want = reference_states[:, [3, 0, 1, 3]][:, :, [1]]
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_progress_reports_each_batch(tiny_backend: Any) -> None:
    calls: list[tuple[int, int]] = []
    tiny_backend.residual_stream(prompt_set(), [0], [-1], batch_size=3,
                                 progress=lambda done, total: calls.append((done, total)))
    assert calls == [(3, 4), (4, 4)]


@pytest.mark.parametrize("layer", [N_LAYERS, -N_LAYERS - 1, 100])
def test_layer_out_of_range_names_the_range(tiny_backend: Any, layer: int) -> None:
    with pytest.raises(BackendError) as error:
        tiny_backend.residual_stream(prompt_set(), [0, layer], [-1])
    message = str(error.value)
    assert f"layer {layer} is out of range" in message
    assert f"0..{N_LAYERS - 1}" in message and f"-{N_LAYERS}..-1" in message


@pytest.mark.parametrize("position", [0, 1])
def test_non_negative_position_is_refused(tiny_backend: Any, position: int) -> None:
    with pytest.raises(BackendError) as error:
        tiny_backend.residual_stream(prompt_set(), [0], [-1, position])
    message = str(error.value)
    assert f"position {position} is not a negative offset" in message
    assert "-1 is its last token" in message


def test_position_before_the_shortest_prompt_is_refused(tiny_backend: Any) -> None:
    """Left padding would otherwise hand back pad-token states for the short prompt."""
    shortest = min(len(ids) for ids in tiny_backend.encode(PROMPTS))
    tiny_backend.residual_stream(prompt_set(), [0], [-shortest])  # the first token: fine
    with pytest.raises(BackendError) as error:
        tiny_backend.residual_stream(prompt_set(), [0], [-1, -(shortest + 1)])
    assert f"Use positions in -{shortest}..-1" in str(error.value)


# -- generation ------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size", [1, 3])
def test_generate_matches_plain_greedy_generate_of_each_prompt_alone(
    tiny_backend: Any, plain_model: tuple[Any, Any], batch_size: int
) -> None:
    import torch

    model, tokenizer = plain_model
    want = []
    for text in PROMPTS:
        ids = alone_ids(tokenizer, text)
        with torch.no_grad():
            tokens = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                    do_sample=False, pad_token_id=tokenizer.pad_token_id)
        want.append(tokenizer.decode(tokens[0, ids.shape[1]:], skip_special_tokens=True))
    got = tiny_backend.generate(prompt_set(), 8, batch_size=batch_size)
    assert got == want
    assert len(set(want)) > 1, "replies should depend on the prompt, or the test proves little"


# -- inputs ----------------------------------------------------------------------------------
def test_input_digest_is_stable_and_changes_with_a_prompt(tiny_backend: Any) -> None:
    digest = tiny_backend.input_digest(prompt_set())
    assert digest == tiny_backend.input_digest(prompt_set(name="other/name"))
    changed = (*PROMPTS[:-1], PROMPTS[-1] + " please")
    assert tiny_backend.input_digest(prompt_set(changed)) != digest
    assert tiny_backend.input_digest(prompt_set(PROMPTS[::-1])) != digest


def test_input_digest_and_info_change_with_the_chat_template(
    tiny_backend: Any, plain_model: tuple[Any, Any]
) -> None:
    from refusal_checks.models.nnsight.backend import NnsightBackend

    model, _ = plain_model
    tokenizer = build_tokenizer(CHAT_TEMPLATE.replace("<|end|> {% endfor %}",
                                                      "<|end|> <|user|> {% endfor %}"))
    other = NnsightBackend(model, tokenizer, name="tiny-other-template", fingerprint="x",
                           dtype="float32", device="cpu")
    assert other.input_digest(prompt_set()) != tiny_backend.input_digest(prompt_set())
    assert other.info["chat_template"] != tiny_backend.info["chat_template"]


def test_missing_chat_template_says_to_use_a_chat_variant(
    tiny_folder: Path, tmp_path: Path
) -> None:
    from refusal_checks.models.nnsight.loading import load_folder

    folder = Path(shutil.copytree(tiny_folder, tmp_path / "base-model"))
    (folder / "chat_template.jinja").unlink()
    with pytest.raises(BackendError) as error:
        load_folder(folder, name="base-model", fingerprint="x", dtype="float32", device="cpu")
    message = str(error.value)
    assert "base-model" in message and "no chat template" in message
    assert "instruct/chat variant" in message and "chat_template" in message


def test_unknown_dtype_lists_the_supported_ones(tiny_folder: Path) -> None:
    from refusal_checks.models.nnsight.loading import load_folder

    with pytest.raises(BackendError, match="float32, bfloat16, float16"):
        load_folder(tiny_folder, name="tiny", fingerprint="x", dtype="float8", device="cpu")


# -- local folders through the model registry ------------------------------------------------
def test_folder_loads_through_resolve_with_a_stable_fingerprint(
    tiny_folder: Path, tiny_cache_dir: Path, tiny_backend: Any
) -> None:
    from refusal_checks.models.loading import LoadOptions, load_backend
    from refusal_checks.models.registry import resolve

    spec = resolve(str(tiny_folder))
    assert (spec.kind, spec.source) == ("folder", str(tiny_folder.resolve()))
    again = load_backend(spec, LoadOptions(cache_dir=tiny_cache_dir))
    assert again.fingerprint == tiny_backend.fingerprint
    assert again.fingerprint.startswith("sha256:") and len(again.fingerprint) == 7 + 64
    assert again.info["source"] == f"folder:{tiny_folder.resolve()}"


def test_folder_fingerprint_changes_when_a_weight_file_changes(
    tiny_folder: Path, tmp_path: Path
) -> None:
    from refusal_checks.models.loading import LoadOptions, load_backend
    from refusal_checks.models.registry import resolve

    folder = Path(shutil.copytree(tiny_folder, tmp_path / "model"))
    options = LoadOptions(cache_dir=tmp_path / "cache")
    before = load_backend(resolve(str(folder)), options).fingerprint
    size = (folder / "model.safetensors").stat().st_size
    save_tiny(folder, seed=1)  # same architecture, new weights, same file size
    assert (folder / "model.safetensors").stat().st_size == size
    after = load_backend(resolve(str(folder)), options).fingerprint
    assert after != before
    assert load_backend(resolve(str(folder)), options).fingerprint == after


def test_folder_that_is_not_a_model_is_a_backend_error(tmp_path: Path) -> None:
    from refusal_checks.models.loading import LoadOptions, load_backend
    from refusal_checks.models.registry import resolve

    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(BackendError) as error:
        load_backend(resolve(str(folder)), LoadOptions(cache_dir=tmp_path / "cache"))
    assert str(folder) in str(error.value)


# -- hub, offline ----------------------------------------------------------------------------
MISSING = "nonexistent-org/nonexistent-model"


def _load_missing_from_hub() -> tuple[str, float]:
    from refusal_checks.models.nnsight.loading import load_hub

    started = time.perf_counter()
    with pytest.raises(BackendError) as error:
        load_hub(MISSING, None, name="missing", dtype="float32", device="cpu")
    return str(error.value), time.perf_counter() - started


def test_hub_model_offline_fails_fast_and_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message, seconds = _load_missing_from_hub()
    assert seconds < 30
    assert MISSING in message and "missing" in message
    assert "--model /path/to/folder" in message
    assert "hub:" not in message  # offline: the hub itself is never tried


def test_hub_model_without_offline_flag_fails_without_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This machine cannot reach the hub; huggingface_hub alone would retry for ~50 s."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "5")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "5")
    message, seconds = _load_missing_from_hub()
    assert seconds < 30
    assert MISSING in message and "--model /path/to/folder" in message
