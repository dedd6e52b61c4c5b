"""Train a small TopK SAE on one layer's token activations, and keep it in the cache.

Why TopK (Gao et al. 2024, "Scaling and evaluating sparse autoencoders") rather than ReLU
with an L1 penalty: the sparsity is set directly (L0 = k), so there is no L1 coefficient to
search per model and layer (each try costs a full training run, and the budget is ~10 min
on 2 CPU cores); L1 also shrinks every active code toward 0, which biases the
reconstruction and the rebuilt directions; and TopK's dead latents are revived by the
auxiliary AuxK loss. TopK is one of the architectures SAELens reads and writes.

Recipe: activations scaled by one factor so that their mean norm is ``sqrt(d_in)``
(folded back into the weights on saving, so the saved SAE reads raw activations and
``normalize_activations`` is ``none``); ``b_dec`` initialised at the mean, the encoder at
the transpose of a random unit-norm decoder; Adam; decoder rows renormalised to unit norm
after every step; AuxK (the ``AUX_K`` largest pre-activations of latents dead for
``DEAD_AFTER_TOKENS`` tokens reconstruct the residual error, weight ``AUX_COEF``).
Quality figures come from held-out tokens (``HOLDOUT`` of them) and from every prompt's
decision state, the site the claims read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from refusal_checks.measure.sae import SAE, SaeConfig, load_sae, save_sae

VERSION = 1  # of the recipe: part of the cache key
HOLDOUT = 0.05
AUX_K = 256
AUX_COEF = 1.0 / 32.0
DEAD_AFTER_TOKENS = 20_000
DECAY = 0.3


@dataclass(frozen=True)
class TrainSettings:
    """Everything that changes the trained SAE (part of its cache key).

    Defaults: 4 latents per residual dimension (3,584 at d_model 896), k = 32 active
    latents per token (a common TopK setting; ~1% of the latents), 6 epochs over the
    tokens with batches of 256 at Adam's learning rate 2e-3, decayed linearly to 0 over the
    last ``DECAY`` of the steps (about a thousand steps: the budget allows no longer
    schedule, so the rate is higher than SAELens's usual 1e-4 to 5e-4), seed 0.
    """

    expansion: int = 4
    k: int = 32
    epochs: int = 6
    batch_size: int = 256
    lr: float = 2e-3
    seed: int = 0

    def key(self) -> dict[str, Any]:
        return {**asdict(self), "architecture": "topk", "version": VERSION}


def _ev(x: np.ndarray, recon: np.ndarray) -> float:
    total = float(((x - x.mean(axis=0)) ** 2).sum())
    return 1.0 - float(((x - recon) ** 2).sum()) / max(total, 1e-30)


def quality(sae: SAE, acts: np.ndarray, holdout: np.ndarray, claim_rows: np.ndarray
            ) -> dict[str, float]:
    """Reconstruction MSE (per element) and explained variance on held-out tokens,
    explained variance at the decision state, L0, and the share of dead latents (never
    firing on any token)."""
    held = acts[holdout]
    codes = sae.encode(held)
    recon = sae.decode(codes)
    fired = np.zeros(sae.d_sae, bool)
    for start in range(0, len(acts), 4096):
        fired |= (sae.encode(acts[start:start + 4096]) > 0).any(axis=0)
    claim = acts[claim_rows]
    return {"mse": float(((held - recon) ** 2).mean()),
            "explained_variance": _ev(held, recon),
            "explained_variance_decision_state": _ev(claim, sae.reconstruct(claim)),
            "l0": float((codes > 0).sum(axis=1).mean()),
            "dead_share": float(1.0 - fired.mean())}


def train_topk(acts: np.ndarray, settings: TrainSettings, *, train_rows: np.ndarray,
               hook_name: str, progress: Callable[[int, int, float], None] | None = None
               ) -> SAE:
    """Fit a TopK SAE to ``acts[train_rows]``; return it with the scale folded in."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    d = acts.shape[1]
    n_latents = settings.expansion * d
    k = min(settings.k, n_latents)
    x_all = torch.from_numpy(np.ascontiguousarray(acts[train_rows], np.float32))
    scale = math.sqrt(d) / float(x_all.norm(dim=1).mean().clamp_min(1e-12))
    x_all = x_all * scale
    W_dec = torch.randn(n_latents, d, generator=gen)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_dec.requires_grad_(True)
    W_enc = W_dec.detach().T.clone().requires_grad_(True)
    b_enc = torch.zeros(n_latents, requires_grad=True)
    b_dec = x_all.mean(dim=0).clone().requires_grad_(True)
    optimiser = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=settings.lr)
    last_fired = torch.zeros(n_latents, dtype=torch.long)
    seen = 0
    steps_per_epoch = math.ceil(len(x_all) / settings.batch_size)
    total = steps_per_epoch * settings.epochs
    step = 0
    for _ in range(settings.epochs):
        order = torch.randperm(len(x_all), generator=gen)
        for start in range(0, len(x_all), settings.batch_size):
            xb = x_all[order[start:start + settings.batch_size]]
            pre = (xb - b_dec) @ W_enc + b_enc
            values, index = pre.topk(k, dim=1)
            values = F.relu(values)
            recon = F.embedding_bag(index, W_dec, per_sample_weights=values, mode="sum") + b_dec
            error = xb - recon
            loss = error.pow(2).sum(dim=1).mean()
            seen += len(xb)
            last_fired[index[values > 0].unique()] = seen
            dead = (seen - last_fired) > DEAD_AFTER_TOKENS
            if dead.any():
                masked = pre.masked_fill(~dead, float("-inf"))
                aux_values, aux_index = masked.topk(min(AUX_K, int(dead.sum())), dim=1)
                aux = F.embedding_bag(aux_index, W_dec, per_sample_weights=F.relu(aux_values),
                                      mode="sum")
                aux_loss = (error.detach() - aux).pow(2).sum(dim=1).mean()
                loss = loss + AUX_COEF * aux_loss / error.detach().pow(2).sum(dim=1).mean()
            for group in optimiser.param_groups:
                group["lr"] = settings.lr * min(1.0, (total - step) / (DECAY * total))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            with torch.no_grad():
                W_dec /= W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
            step += 1
            if progress is not None:
                progress(step, total, float(loss.detach()))
    config = SaeConfig(d, n_latents, "topk", k, hook_name, 0, "none", None, True)
    # Fold the input scale: x~ = s x, so W_enc' = s W_enc, W_dec' = W_dec / s, b_dec' = b_dec / s.
    return SAE(config, (W_enc.detach() * scale).numpy(), (W_dec.detach() / scale).numpy(),
               b_enc.detach().numpy().copy(), (b_dec.detach() / scale).numpy())


def sae_root(cache_dir: Path, fingerprint: str, dtype: str, layer: int) -> Path:
    """Folder of every cached SAE of one model (weights + dtype) at one layer."""
    model = hashlib.sha256(f"{fingerprint}|{dtype}".encode()).hexdigest()[:24]
    return Path(cache_dir) / "saes" / model / f"layer-{layer}"


def sae_folder(cache_dir: Path, fingerprint: str, dtype: str, layer: int,
               settings: TrainSettings, texts_digest: str) -> Path:
    """Cache folder of one trained SAE: model, layer, settings and training texts."""
    key = json.dumps({**settings.key(), "texts": texts_digest}, sort_keys=True)
    return sae_root(cache_dir, fingerprint, dtype, layer) / \
        hashlib.sha256(key.encode()).hexdigest()[:16]


def cached_sae(cache_dir: Path, fingerprint: str, dtype: str, layer: int) -> Path | None:
    """The most recently trained cached SAE of this model and layer, or None."""
    root = sae_root(cache_dir, fingerprint, dtype, layer)
    found = [p for p in root.glob("*/cfg.json")] if root.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime).parent if found else None


def store(sae: SAE, folder: Path, extra: dict[str, Any]) -> None:
    """Write atomically: a temporary sibling folder, then one rename."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".train-"))
    try:
        save_sae(sae, tmp, extra)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def train_and_store(backend: Any, collection: Any, layer: int, settings: TrainSettings,
                    cache_dir: Path, *, console: Any | None = None, force: bool = False,
                    batch_size: int = 16) -> tuple[Path, dict[str, Any], bool]:
    """Train (or find in the cache) the SAE of ``backend`` at ``layer`` on ``collection``.

    Returns (folder, the cfg's ``refusal_checks`` record, whether it was trained now).
    """
    from refusal_checks.measure.activations import Bar
    from refusal_checks.measure.sae_tokens import token_activations, training_sets

    sets = training_sets(collection)
    digest = hashlib.sha256("|".join(s.digest for s in sets).encode()).hexdigest()
    folder = sae_folder(cache_dir, backend.fingerprint, backend.dtype, layer, settings, digest)
    if (folder / "cfg.json").is_file() and not force:
        return folder, dict(load_sae(folder).config.raw.get("refusal_checks") or {}), False
    started = time.perf_counter()
    total = sum(len(s) for s in sets)
    with Bar(console, f"train-sae: activations at layer {layer}", total) as bar:
        tokens = token_activations(backend, sets, layer, batch_size=batch_size,
                                   progress=bar.callback)
    extracted = time.perf_counter() - started
    rng = np.random.default_rng(settings.seed)
    held = rng.random(len(tokens.acts)) < HOLDOUT
    steps = math.ceil((~held).sum() / settings.batch_size) * settings.epochs
    with Bar(console, f"train-sae: {settings.epochs} epochs, {(~held).sum():,} tokens",
              steps) as bar:
        sae = train_topk(tokens.acts, settings, train_rows=np.flatnonzero(~held),
                         hook_name=f"blocks.{layer}.hook_resid_pre",
                         progress=lambda s, n, loss: bar.callback(s, n))
    sae.config = SaeConfig(**{**asdict(sae.config), "layer": layer, "raw": {}})
    record = {"model": backend.name, "fingerprint": backend.fingerprint,
              "dtype": backend.dtype, "layer": layer, "settings": settings.key(),
              "texts": {"source": collection.source, "sets": len(sets), "prompts": total,
                        "digest": digest},
              "tokens": {"total": int(len(tokens.acts)), "train": int((~held).sum()),
                         "held_out": int(held.sum()), "shared_prefix_dropped":
                         tokens.prefix_dropped, "token_steps": int((~held).sum()) *
                         settings.epochs},
              "quality": {n: round(v, 6) for n, v in
                          quality(sae, tokens.acts, np.flatnonzero(held),
                                  tokens.claim_rows).items()},
              "seconds": {"activations": round(extracted, 1),
                          "total": round(time.perf_counter() - started, 1)}}
    store(sae, folder, record)
    return folder, record, True
