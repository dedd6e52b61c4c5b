"""train-sae on a tiny model: a loadable SAELens folder with sane figures, cached."""

from __future__ import annotations

import json

import numpy as np

from refusal_checks.__main__ import main
from refusal_checks.measure.sae import load_sae
from refusal_checks.measure.sae_train import cached_sae
from tests.adapter.tiny import D_MODEL, save_tiny


def test_train_sae_writes_a_loadable_folder_with_sane_metrics(tmp_path, capsys):
    model = save_tiny(tmp_path / "tiny")
    args = ["--cache-dir", str(tmp_path / "cache"), "train-sae", "--model", str(model),
            "--max-prompts", "10", "--epochs", "2", "--expansion", "2", "-k", "4",
            "--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert "trained SAE" in capsys.readouterr().out
    sae = load_sae(tmp_path / "out")
    assert (sae.d_in, sae.d_sae, sae.config.k, sae.layer) == (D_MODEL, 2 * D_MODEL, 4, 1)
    record = json.loads((tmp_path / "out" / "cfg.json").read_text())["refusal_checks"]
    quality = record["quality"]
    assert 0.0 < quality["explained_variance"] <= 1.0 and quality["mse"] > 0
    assert quality["l0"] <= 4 and 0.0 <= quality["dead_share"] < 1.0
    assert record["tokens"]["train"] > 1000 and record["settings"]["architecture"] == "topk"
    codes = sae.encode(np.random.default_rng(0).standard_normal((5, D_MODEL)))
    assert ((codes > 0).sum(axis=1) <= 4).all()
    # A second call finds it in the cache instead of training again.
    assert main(args) == 0
    assert "cached SAE" in capsys.readouterr().out
    fingerprint_dirs = list((tmp_path / "cache" / "saes").glob("*/layer-1/*/cfg.json"))
    assert len(fingerprint_dirs) == 1


def test_cached_sae_is_none_when_nothing_was_trained(tmp_path):
    assert cached_sae(tmp_path, "sha256:x", "float32", 3) is None
