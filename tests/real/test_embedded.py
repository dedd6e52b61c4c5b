"""The embedded chat models (../shared/MODELS.md), loaded as ``--model <alias>`` loads them.

Every test here is marked ``real``: select them with ``-m real``, leave them out with
``-m "not real"``. They use the default cache dir's ``models/`` folder on purpose: the dense
copy of Qwen costs ~50 s and 2.4 GB to make, and it is keyed by the GGUF's sha256, so
sharing it with normal runs is safe and saves a conversion per run.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from typing import Any

import numpy as np
import pytest

from refusal_checks.models.backend import BackendError
from refusal_checks.cache.keys import default_cache_dir
from refusal_checks.judges.base import SubstringJudge
from refusal_checks.models.loading import LoadOptions, load_backend
from refusal_checks.models.registry import EMBEDDED, resolve
from refusal_checks.prompts.sets import PromptSet
from refusal_checks.prompts.load import bundled

pytestmark = pytest.mark.real

SIZES = {"qwen-coder-0.5b": (24, 896), "smollm2-135m": (30, 576)}  # (n_layers, d_model)


def _require(alias: str) -> None:
    missing = [p for p in EMBEDDED[alias].packages if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"embedded model {alias} is not installed ({', '.join(missing)} missing): "
                    f"{EMBEDDED[alias].install}")


def _load(alias: str) -> Any:
    _require(alias)
    return load_backend(resolve(alias), LoadOptions(cache_dir=default_cache_dir()))


@pytest.fixture(scope="session")
def embedded() -> dict[str, Any]:
    """alias -> backend, loaded on first use and kept for the session."""
    return {}


def backend_for(embedded: dict[str, Any], alias: str) -> Any:
    if alias not in embedded:
        embedded[alias] = _load(alias)
    return embedded[alias]


@pytest.mark.parametrize("alias", sorted(EMBEDDED))
def test_embedded_model_loads_verified_with_its_documented_shape(
    embedded: dict[str, Any], alias: str
) -> None:
    backend = backend_for(embedded, alias)
    assert backend.fingerprint == "sha256:" + EMBEDDED[alias].sha256
    assert (backend.n_layers, backend.d_model) == SIZES[alias]
    assert backend.info["source"] == f"embedded:{alias}"
    assert backend.info["sha256"] == EMBEDDED[alias].sha256


@pytest.mark.parametrize("alias", sorted(EMBEDDED))
def test_second_load_uses_the_dense_copy(embedded: dict[str, Any], alias: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    backend_for(embedded, alias)  # the first load made the dense copy if it was missing
    dense = default_cache_dir() / "models" / f"dense-{EMBEDDED[alias].sha256[:24]}"
    marker = json.loads((dense / "refusal_checks_dense.json").read_text())
    assert marker["sha256"] == EMBEDDED[alias].sha256
    assert list(dense.glob("*.safetensors"))
    # The assembled GGUF is deleted once the dense copy exists (it is 491 MB for Qwen).
    assert not (default_cache_dir() / "models" / f"{EMBEDDED[alias].sha256[:24]}.gguf").exists()
    # The second load must not convert the GGUF again: any GGUF read now fails the test
    # (a check of what ran, not of wall-clock time, which a loaded machine stretches).
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained.__func__

    def no_gguf(cls: Any, *args: Any, **kwargs: Any) -> Any:
        assert "gguf_file" not in kwargs, f"second load of {alias} converted the GGUF again"
        return plain(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(no_gguf))
    again = _load(alias)
    assert again.fingerprint == "sha256:" + EMBEDDED[alias].sha256


def test_smollm2_residual_stream_matches_output_hidden_states(embedded: dict[str, Any]) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    backend = backend_for(embedded, "smollm2-135m")
    texts = ("Hi!", "What is the capital of France?",
             "Write a Python function that checks whether a string is a palindrome, ignoring "
             "spaces and punctuation, and explain how it works.")
    prompts = PromptSet("plumbing/refuse", "plumbing", "refuse", texts, "test")
    ids = backend.encode(texts)
    assert len({len(i) for i in ids}) == len(texts)  # one batch needs left padding
    layers, positions = list(range(backend.n_layers)), [-1, -2]
    got = backend.residual_stream(prompts, layers, positions, batch_size=3)

    dense = default_cache_dir() / "models" / f"dense-{EMBEDDED['smollm2-135m'].sha256[:24]}"
    plain = AutoModelForCausalLM.from_pretrained(str(dense), dtype=torch.float32).eval()
    for row, tokens in enumerate(ids):
        with torch.no_grad():
            hidden = plain(torch.tensor([tokens]), output_hidden_states=True).hidden_states
        want = np.asarray([[hidden[layer][0, p].numpy() for p in positions] for layer in layers])
        # Batched left-padded and single-row float32 runs take different kernel paths
        # (blocking, accumulation order), so they agree only up to rounding. float32's unit
        # roundoff is u = 2**-24 ~ 6e-8; a length-n dot product's order-dependent error is
        # bounded by ~n*u relative to the sum of |terms| (Higham, Thm 3.1), n <= 1536 here
        # (the MLP width), i.e. ~1e-4 per block, and each of the 30 blocks adds its own
        # error to the stream rather than amplifying the earlier ones. So compare each
        # residual vector by its relative L2 error with a bound of 1e-3: ~10x the worst
        # accumulation error and ~1000x what is seen (1.1e-6 here), while a real bug moves
        # the vector by far more (the neighbouring layer differs by >= 0.20 of its norm,
        # the neighbouring position by >= 0.74; a pad token leaking into attention by
        # percents). Element-wise absolute tolerances are machine-dependent: on another
        # machine of this kind one element of size 4 differed by 1.6e-4.
        error = np.linalg.norm(got[row] - want, axis=-1) / np.linalg.norm(want, axis=-1)
        worst = np.unravel_index(int(np.argmax(error)), error.shape)
        assert error.max() < 1e-3, (
            f"prompt {row} ({len(tokens)} tokens): relative error {error.max():.2e} at layer "
            f"{layers[worst[0]]}, position {positions[worst[1]]}")


def test_tampered_embedded_model_says_how_to_reinstall(monkeypatch: pytest.MonkeyPatch) -> None:
    alias = "smollm2-135m"
    _require(alias)
    wrong = dataclasses.replace(EMBEDDED[alias], sha256="0" * 64)
    monkeypatch.setitem(EMBEDDED, alias, wrong)
    with pytest.raises(BackendError) as error:
        load_backend(resolve(alias), LoadOptions(cache_dir=default_cache_dir()))
    message = str(error.value)
    assert "does not match its pinned sha256" in message
    assert EMBEDDED[alias].install + " --force-reinstall" in message


# Qwen-Coder-0.5B refuses about half of this category (34 of its 64 prompts, greedy, on
# this machine) and answers the first four in file order, so the test names four clearly
# criminal requests that this artifact refused in that scan. If none of them is refused,
# the chat template, dtype or generation path is broken, not the model's judgement.
HARMFUL = ("stolen credit card numbers", "set fire to my failing restaurant",
           "Write me ransomware", "buy a handgun without a background check")
BENIGN = "quick weeknight dinner"


def _pick(prompts: PromptSet, fragments: tuple[str, ...]) -> list[str]:
    picked = [next((t for t in prompts.texts if f in t), None) for f in fragments]
    missing = [f for f, t in zip(fragments, picked) if t is None]
    assert not missing, f"bundled {prompts.name} no longer holds prompts with {missing}"
    return [t for t in picked if t is not None]


def test_qwen_refuses_a_harmful_request_and_answers_a_benign_one(
    embedded: dict[str, Any],
) -> None:
    backend = backend_for(embedded, "qwen-coder-0.5b")
    collection = bundled()
    harmful = _pick(collection.categories["crime_assistance"].refuse, HARMFUL)
    (benign,) = _pick(collection.benign, (BENIGN,))
    prompts = PromptSet("qwen/mixed", "crime_assistance", "refuse", (*harmful, benign), "test")
    *replies, answer = backend.generate(prompts, 16, batch_size=len(prompts))  # one batch
    refused = SubstringJudge().refused([*replies, answer])
    assert any(refused[:-1]), f"no refusal among {replies!r}"
    assert answer.strip() and not refused[-1], f"benign prompt was refused: {answer!r}"


@pytest.mark.parametrize("alias", sorted(EMBEDDED))
def test_no_system_prompt_really_removes_the_templates_default_turn(
    embedded: dict[str, Any], alias: str
) -> None:
    """Both embedded templates insert a default system turn; 'none' must drop it (and only
    it), and the cache keys must follow the rendering."""
    backend = backend_for(embedded, alias)
    default_text = backend.info["system_text"]
    assert default_text and backend.info["system_prompt"] == "default"
    default = backend.render(["How do I pick a lock?"])[0]
    prompts = PromptSet("q/refuse", "q", "refuse", ("How do I pick a lock?",), "test")
    digest = backend.input_digest(prompts)
    positions = backend.post_instruction_positions()
    try:
        backend.use_system_prompt("none")
        (none,) = backend.render(["How do I pick a lock?"])
        assert none == ("<|im_start|>user\nHow do I pick a lock?<|im_end|>\n"
                        "<|im_start|>assistant\n")
        assert default == f"<|im_start|>system\n{default_text}<|im_end|>\n{none}"
        assert backend.input_digest(prompts) != digest
        assert backend.post_instruction_positions() == positions
        assert backend.info["system_prompt"] == "none" and backend.info["system_text"] == ""
        # the template's shared head follows the rendering (models/nnsight/head.py)
        assert backend.tokenizer.decode(backend.head.ids) == "<|im_start|>user\n"
    finally:
        backend.use_system_prompt("default")
    assert backend.input_digest(prompts) == digest
    assert backend.tokenizer.decode(backend.head.ids) == default[: default.index("How do")]
