"""SAEs in SAELens's format: reading (ReLU, TopK, JumpReLU), encoding against a hand
computation, bad folders, and the claims' statistics on planted inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from refusal_checks.measure.sae import SaeError, check_for_model, inspect_folder, load_sae, \
    option_problem
from refusal_checks.verdicts.sae import core_share, tail_specificity, top_latents

D_IN, D_SAE = 3, 4
W_ENC = np.array([[1.0, 0.0, -1.0, 0.5],
                  [0.0, 2.0, 1.0, 0.5],
                  [1.0, -1.0, 0.0, 0.5]], np.float32)
B_ENC = np.array([0.0, -0.5, 0.1, -1.0], np.float32)
B_DEC = np.array([0.5, 0.0, -0.5], np.float32)
W_DEC = np.arange(12, dtype=np.float32).reshape(D_SAE, D_IN) / 10


def write_sae(folder: Path, architecture: str = "relu", *, key: str = "architecture",
              cfg: dict | None = None, tensors: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {key: architecture, "d_in": D_IN, "d_sae": D_SAE,
              "hook_name": "blocks.2.hook_resid_pre", "hook_layer": 2,
              "normalize_activations": "none", "apply_b_dec_to_input": True}
    if architecture == "topk":
        config["k"] = 2
    config.update(cfg or {})
    weights = {"W_enc": W_ENC, "W_dec": W_DEC, "b_enc": B_ENC, "b_dec": B_DEC}
    if architecture == "jumprelu":
        weights["threshold"] = np.array([0.5, 0.5, 2.0, 0.1], np.float32)
    weights.update(tensors or {})
    save_file(weights, str(folder / "sae_weights.safetensors"))
    (folder / "cfg.json").write_text(json.dumps({k: v for k, v in config.items()
                                                 if v is not None}))
    return folder


X = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 0.0]], np.float32)


def hand_pre() -> np.ndarray:
    # (x - b_dec) W_enc + b_enc, row by row, written out.
    rows = []
    for x in X:
        c = x - B_DEC
        rows.append([c[0] * 1 + c[2] * 1 + 0.0,
                     c[1] * 2 - c[2] - 0.5,
                     -c[0] + c[1] + 0.1,
                     0.5 * (c[0] + c[1] + c[2]) - 1.0])
    return np.array(rows)


@pytest.mark.parametrize("key", ["architecture", "activation_fn"])
def test_relu_codes_and_reconstruction_match_a_hand_computation(tmp_path, key):
    sae = load_sae(write_sae(tmp_path / "relu", key=key))
    pre = hand_pre()
    np.testing.assert_allclose(sae.encode(X), np.maximum(pre, 0), rtol=1e-6)
    np.testing.assert_allclose(sae.reconstruct(X), np.maximum(pre, 0) @ W_DEC + B_DEC,
                               rtol=1e-5)
    assert sae.layer == 2 and sae.describe()["architecture"] == "relu"


def test_topk_keeps_the_k_largest_through_a_relu(tmp_path):
    sae = load_sae(write_sae(tmp_path / "topk", "topk"))
    pre = hand_pre()
    expected = np.zeros_like(pre)
    for i, row in enumerate(pre):
        top = np.argsort(-row)[:2]
        expected[i, top] = np.maximum(row[top], 0)
    np.testing.assert_allclose(sae.encode(X), expected, rtol=1e-6)


def test_topk_k_may_sit_in_activation_fn_kwargs(tmp_path):
    folder = write_sae(tmp_path / "kw", "topk", key="activation_fn",
                       cfg={"k": None, "activation_fn_kwargs": {"k": 1}})
    assert (load_sae(folder).encode(X) > 0).sum(axis=1).max() == 1


def test_jumprelu_zeroes_codes_at_or_below_the_threshold(tmp_path):
    sae = load_sae(write_sae(tmp_path / "jump", "jumprelu"))
    pre = hand_pre()
    threshold = np.array([0.5, 0.5, 2.0, 0.1])
    np.testing.assert_allclose(sae.encode(X), np.where(pre > threshold, np.maximum(pre, 0), 0),
                               rtol=1e-6)


def test_resid_post_of_block_l_is_the_input_of_block_l_plus_one(tmp_path):
    folder = write_sae(tmp_path / "post", cfg={"hook_name": "blocks.4.hook_resid_post",
                                               "hook_layer": 4})
    assert inspect_folder(folder).layer == 5


def test_constant_norm_rescale_scales_each_token_and_back(tmp_path):
    sae = load_sae(write_sae(tmp_path / "norm", cfg={"normalize_activations":
                                                      "constant_norm_rescale"}))
    scale = np.sqrt(D_IN) / np.linalg.norm(X, axis=1, keepdims=True)
    codes = np.maximum((X * scale - B_DEC) @ W_ENC + B_ENC, 0)
    np.testing.assert_allclose(sae.encode(X), codes, rtol=1e-5)
    np.testing.assert_allclose(sae.reconstruct(X), (codes @ W_DEC + B_DEC) / scale, rtol=1e-5)


@pytest.mark.parametrize("change, message", [
    ({"cfg": {"d_in": None}}, "needs 'd_in'"),
    ({"cfg": {"hook_name": "blocks.2.hook_mlp_out"}}, "not a residual-stream hook"),
    ({"cfg": {"hook_layer": 3}}, "disagrees with hook_name"),
    ({"cfg": {"architecture": "gated"}}, "is not one of"),
    ({"cfg": {"normalize_activations": "expected_average_only_in"}}, "scaling_factor"),
    ({"tensors": {"W_dec": np.zeros((D_SAE, 5), np.float32)}}, "W_dec has shape [4, 5]"),
])
def test_bad_folders_say_what_is_wrong(tmp_path, change, message):
    folder = write_sae(tmp_path / "bad", **change)
    with pytest.raises(SaeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_sae(folder)


def test_missing_files_and_topk_without_k(tmp_path):
    with pytest.raises(SaeError, match="is not a folder"):
        load_sae(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SaeError, match="has no cfg.json"):
        load_sae(tmp_path / "empty")
    folder = write_sae(tmp_path / "nok", "topk", cfg={"k": None})
    with pytest.raises(SaeError, match="needs 'k'"):
        load_sae(folder)
    folder = write_sae(tmp_path / "nothreshold", "jumprelu")
    save_file({"W_enc": W_ENC, "W_dec": W_DEC, "b_enc": B_ENC, "b_dec": B_DEC},
              str(folder / "sae_weights.safetensors"))
    with pytest.raises(SaeError, match="lacks 'threshold'"):
        load_sae(folder)


def test_model_width_and_layer_mismatches_name_the_fix(tmp_path):
    config = inspect_folder(write_sae(tmp_path / "s"))
    with pytest.raises(SaeError, match="d_model 896.*train-sae --model qwen --layer 2"):
        check_for_model(config, 896, 2, "qwen", "--refusal-sae s")
    with pytest.raises(SaeError, match="Pass --refusal-layer 2"):
        check_for_model(config, D_IN, 11, "qwen", "--refusal-sae s")
    assert "Pass --refusal-layer 2" in option_problem(str(tmp_path / "s"), 11)
    assert option_problem(str(tmp_path / "s"), 2) is None


def test_hub_ids_need_the_hub(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    problem = option_problem("hf:org/saes/layer_11", None)
    assert "HF_HUB_OFFLINE is set" in problem and "hf download org/saes" in problem
    assert "is not hf:" in option_problem("hf:org", None)


# -- the claims' statistics -------------------------------------------------------------
def test_top_latents_ignores_non_positive_differences():
    rate = np.array([[0.5, -0.1, 0.0, 0.2]])
    code = np.zeros_like(rate)
    top = top_latents(rate, code, 3)
    assert sorted(top[0].tolist()) == [-1, 0, 3]


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 6), st.integers(1, 8), st.integers(0, 2**31 - 1))
def test_planted_core_latents_give_their_share(k, core, seed):
    """Latents strongest in every category are the core; each category's others differ."""
    m, d = 8, 64
    core = min(core, m)
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0, 0.1, (1, k, d))
    rate[0, :, :core] = 0.9  # in every category's top m
    for c in range(k):  # own latents fill the rest, different per category
        rate[0, c, core + 8 + c * m: core + 8 + c * m + m - core] = 0.5
    assert core_share(rate, np.zeros_like(rate), m)[0] == pytest.approx(core / m)


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 6), st.floats(0.1, 0.9), st.integers(0, 2**31 - 1))
def test_tail_specificity_is_the_own_gap_on_held_out_rates(k, gap, seed):
    m, d = 4, 64
    rng = np.random.default_rng(seed)
    rate_a = np.zeros((1, k, d))
    rate_b = np.zeros((1, k, d))
    for c in range(k):
        own = np.arange(c * m, (c + 1) * m)
        rate_a[0, c, own] = rng.uniform(0.5, 1.0, m)
        rate_b[0, c, own] = gap
    spec = tail_specificity(rate_a, np.zeros_like(rate_a), rate_b, m)
    np.testing.assert_allclose(spec, gap, rtol=1e-9)  # the others are 0 there
