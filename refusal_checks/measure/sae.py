"""Sparse autoencoders (SAEs) in SAELens's on-disk format: read, check, encode, write.

A folder holds ``cfg.json`` and ``sae_weights.safetensors``. What is read, exactly:

* ``cfg.json`` (top level, or its ``metadata`` table for the hook keys of newer SAELens):
  ``d_in`` and ``d_sae`` (integers, required); the activation function from
  ``architecture`` or, if absent, ``activation_fn`` / ``activation_fn_str``: ``relu``
  (also ``standard``), ``topk`` (with ``k``, or ``activation_fn_kwargs.k``) or
  ``jumprelu``; ``hook_name`` (required: ``blocks.L.hook_resid_pre`` is the input of block
  ``L``, the claims' site; ``blocks.L.hook_resid_post`` is the same stream as the input of
  block ``L + 1``; any other hook is refused); ``hook_layer`` (optional; must agree with
  the hook name); ``normalize_activations`` (``none``/absent, or ``constant_norm_rescale``:
  each token scaled to norm ``sqrt(d_in)`` before encoding; ``expected_average_only_in``
  only with a numeric ``scaling_factor`` in cfg.json, else fold the factor into the
  weights first); ``apply_b_dec_to_input`` (default true, as SAELens).
* ``sae_weights.safetensors``: ``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``,
  ``b_enc [d_sae]``, ``b_dec [d_in]``, and for JumpReLU ``threshold [d_sae]`` (or
  ``log_threshold``, exponentiated). Any float dtype; computed in float32.

Encoding follows SAELens: ``pre = (x - b_dec if apply_b_dec_to_input else x) W_enc + b_enc``;
ReLU ``relu(pre)``; TopK the ``k`` largest of ``pre`` through a ReLU, the rest 0; JumpReLU
``relu(pre) * (pre > threshold)``. A latent *fires* on a token when its code is > 0.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from refusal_checks.errors import RefusalChecksError

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"
ARCHITECTURES = {"relu": "relu", "standard": "relu", "topk": "topk", "jumprelu": "jumprelu"}
HUB_PREFIX = "hf:"
_HOOK = re.compile(r"^blocks\.(\d+)\.hook_resid_(pre|post)$")


class SaeError(RefusalChecksError, ValueError):
    """An SAE folder that cannot be used; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class SaeConfig:
    """What cfg.json says, after the lenient reading above (stdlib only)."""

    d_in: int
    d_sae: int
    architecture: str  # relu | topk | jumprelu
    k: int | None
    hook_name: str
    layer: int  # the block whose INPUT (resid_pre) the SAE reads
    normalize: str  # none | constant_norm_rescale | expected_average_only_in
    scaling_factor: float | None
    apply_b_dec_to_input: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


def _get(cfg: dict[str, Any], key: str) -> Any:
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    return cfg[key] if key in cfg else meta.get(key)


def _int_key(cfg: dict[str, Any], key: str, where: Path) -> int:
    value = _get(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SaeError(f"{where} needs {key!r}, a positive integer (got {value!r}).")
    return value


def read_config(folder: Path) -> SaeConfig:
    """Parse ``folder/cfg.json`` leniently (module docstring). Raises SaeError."""
    where = folder / CFG
    if not folder.is_dir():
        raise SaeError(f"{folder} is not a folder. Pass a folder holding {CFG} and {WEIGHTS} "
                       "(SAELens's save format), or train one: python -m refusal_checks "
                       "train-sae.")
    try:
        cfg = json.loads(where.read_text())
    except FileNotFoundError:
        raise SaeError(f"{folder} has no {CFG}; an SAE folder in SAELens's format holds "
                       f"{CFG} and {WEIGHTS}.") from None
    except (OSError, ValueError) as error:
        raise SaeError(f"{where} cannot be read as JSON: {error}") from None
    if not isinstance(cfg, dict):
        raise SaeError(f"{where} must hold a JSON object, not {type(cfg).__name__}.")
    d_in, d_sae = _int_key(cfg, "d_in", where), _int_key(cfg, "d_sae", where)
    name = _get(cfg, "architecture") or _get(cfg, "activation_fn") \
        or _get(cfg, "activation_fn_str") or "relu"
    if str(name).lower() not in ARCHITECTURES:
        raise SaeError(f"{where}: architecture/activation_fn {name!r} is not one of "
                       f"{', '.join(ARCHITECTURES)}.")
    architecture = ARCHITECTURES[str(name).lower()]
    k = None
    if architecture == "topk":
        kwargs = _get(cfg, "activation_fn_kwargs") or {}
        k = _get(cfg, "k") if _get(cfg, "k") is not None else kwargs.get("k")
        if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= d_sae:
            raise SaeError(f"{where}: a topk SAE needs 'k' (or activation_fn_kwargs.k), an "
                           f"integer in 1..d_sae={d_sae}; got {k!r}.")
    hook = _get(cfg, "hook_name")
    match = _HOOK.match(str(hook or ""))
    if not match:
        raise SaeError(f"{where}: hook_name {hook!r} is not a residual-stream hook "
                       "('blocks.L.hook_resid_pre' or 'blocks.L.hook_resid_post'). The claims "
                       "read resid_pre, the input of a block; use an SAE of the residual stream.")
    layer = int(match.group(1)) + (match.group(2) == "post")
    hook_layer = _get(cfg, "hook_layer")
    if hook_layer is not None and hook_layer != int(match.group(1)):
        raise SaeError(f"{where}: hook_layer {hook_layer!r} disagrees with hook_name {hook!r}.")
    normalize = str(_get(cfg, "normalize_activations") or "none").lower()
    scaling = _get(cfg, "scaling_factor")
    if normalize not in ("none", "constant_norm_rescale", "expected_average_only_in"):
        raise SaeError(f"{where}: normalize_activations {normalize!r} is not supported (none, "
                       "constant_norm_rescale, expected_average_only_in).")
    if normalize == "expected_average_only_in" and not isinstance(scaling, (int, float)):
        raise SaeError(f"{where}: normalize_activations 'expected_average_only_in' needs the "
                       "dataset's 'scaling_factor' (a number) in cfg.json. In SAELens, fold it "
                       "into the weights (sae.fold_activation_norm_scaling_factor(f)), save "
                       "again and set normalize_activations to 'none'.")
    apply_b_dec = _get(cfg, "apply_b_dec_to_input")
    return SaeConfig(d_in, d_sae, architecture, k, str(hook), layer, normalize,
                     float(scaling) if isinstance(scaling, (int, float)) else None,
                     True if apply_b_dec is None else bool(apply_b_dec), cfg)


def tensor_shapes(path: Path) -> dict[str, list[int]]:
    """Tensor name -> shape from a safetensors header (stdlib: 8-byte length + JSON)."""
    try:
        with open(path, "rb") as handle:
            size = struct.unpack("<Q", handle.read(8))[0]
            if size > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(handle.read(size))
    except FileNotFoundError:
        raise SaeError(f"{path.parent} has no {WEIGHTS}.") from None
    except (OSError, ValueError, struct.error) as error:
        raise SaeError(f"{path} is not a safetensors file: {error}") from None
    return {name: list(meta["shape"]) for name, meta in header.items()
            if name != "__metadata__" and isinstance(meta, dict) and "shape" in meta}


def expected_shapes(config: SaeConfig) -> dict[str, list[int]]:
    shapes = {"W_enc": [config.d_in, config.d_sae], "W_dec": [config.d_sae, config.d_in],
              "b_enc": [config.d_sae], "b_dec": [config.d_in]}
    if config.architecture == "jumprelu":
        shapes["threshold"] = [config.d_sae]
    return shapes


def inspect_folder(folder: Path) -> SaeConfig:
    """cfg.json and the weights' shapes, checked without loading them. Raises SaeError."""
    config = read_config(folder)
    found = tensor_shapes(folder / WEIGHTS)
    if config.architecture == "jumprelu" and "threshold" not in found and \
            "log_threshold" in found:
        found["threshold"] = found["log_threshold"]
    for name, shape in expected_shapes(config).items():
        if name not in found:
            raise SaeError(f"{folder / WEIGHTS} lacks {name!r} (has: {', '.join(sorted(found))});"
                           f" a {config.architecture} SAE needs "
                           f"{', '.join(expected_shapes(config))}.")
        if found[name] != shape:
            raise SaeError(f"{folder / WEIGHTS}: {name} has shape {found[name]}, but cfg.json "
                           f"(d_in={config.d_in}, d_sae={config.d_sae}) means {shape}.")
    return config


@dataclass
class SAE:
    """A loaded SAE (float32 numpy). ``source`` says where it came from, for reports."""

    config: SaeConfig
    W_enc: np.ndarray
    W_dec: np.ndarray
    b_enc: np.ndarray
    b_dec: np.ndarray
    threshold: np.ndarray | None = None
    source: str = ""

    @property
    def d_in(self) -> int:
        return self.config.d_in

    @property
    def d_sae(self) -> int:
        return self.config.d_sae

    @property
    def layer(self) -> int:
        return self.config.layer

    def _scale(self, x: np.ndarray) -> np.ndarray:
        """Per-token input factor of normalize_activations (ones for 'none')."""
        if self.config.normalize == "constant_norm_rescale":
            norms = np.linalg.norm(x, axis=-1, keepdims=True)
            return math.sqrt(self.d_in) / np.maximum(norms, 1e-12)
        if self.config.normalize == "expected_average_only_in":
            return np.full(x.shape[:-1] + (1,), self.config.scaling_factor, np.float32)
        return np.ones(x.shape[:-1] + (1,), np.float32)

    def encode(self, x: Any, chunk: int = 4096) -> np.ndarray:
        """Latent codes ``(n, d_sae)`` of activations ``(n, d_in)``."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.d_in:
            raise SaeError(f"the SAE reads vectors of width {self.d_in}, got shape {x.shape}.")
        out = np.empty((len(x), self.d_sae), np.float32)
        for start in range(0, len(x), chunk):
            part = x[start:start + chunk] * self._scale(x[start:start + chunk])
            if self.config.apply_b_dec_to_input:
                part = part - self.b_dec
            pre = part @ self.W_enc + self.b_enc
            out[start:start + chunk] = self._activate(pre)
        return out

    def _activate(self, pre: np.ndarray) -> np.ndarray:
        if self.config.architecture == "relu":
            return np.maximum(pre, 0.0)
        if self.config.architecture == "jumprelu":
            return np.where(pre > self.threshold, np.maximum(pre, 0.0), 0.0).astype(np.float32)
        k = int(self.config.k or 1)
        keep = np.argpartition(-pre, k - 1, axis=1)[:, :k]
        out = np.zeros_like(pre)
        rows = np.arange(len(pre))[:, None]
        out[rows, keep] = np.maximum(pre[rows, keep], 0.0)
        return out

    def decode(self, codes: Any) -> np.ndarray:
        """``codes W_dec + b_dec``, in the SAE's input space (before any rescaling)."""
        return np.asarray(codes, np.float32) @ self.W_dec + self.b_dec

    def reconstruct(self, x: Any) -> np.ndarray:
        """Encode then decode, undoing normalize_activations: in the model's units."""
        x = np.asarray(x, np.float32)
        return self.decode(self.encode(x)) / self._scale(x)

    def describe(self) -> dict[str, Any]:
        """Facts for reports: source, architecture, widths, hook, training figures if any."""
        c = self.config
        out: dict[str, Any] = {"source": self.source, "architecture": c.architecture,
                               "d_in": c.d_in, "d_sae": c.d_sae, "hook_name": c.hook_name,
                               "layer": c.layer}
        if c.k is not None:
            out["k"] = c.k
        training = c.raw.get("refusal_checks")
        if isinstance(training, dict):
            out["training"] = training
        return out


def load_sae(folder: Path | str) -> SAE:
    """Read an SAE folder in SAELens's format (module docstring). Raises SaeError."""
    from safetensors.numpy import load_file

    folder = Path(folder).expanduser()
    config = inspect_folder(folder)
    try:
        tensors = load_file(str(folder / WEIGHTS))
    except Exception as error:  # safetensors raises its own classes for damaged files
        raise SaeError(f"{folder / WEIGHTS} cannot be loaded: {error}") from None

    def get(name: str) -> np.ndarray:
        return np.ascontiguousarray(tensors[name], dtype=np.float32)

    threshold = None
    if config.architecture == "jumprelu":
        threshold = get("threshold") if "threshold" in tensors else np.exp(get("log_threshold"))
    values = [get(n) for n in ("W_enc", "W_dec", "b_enc", "b_dec")]
    if not all(np.isfinite(v).all() for v in values):
        raise SaeError(f"{folder / WEIGHTS} holds non-finite weights.")
    return SAE(config, *values, threshold=threshold, source=str(folder))


def check_for_model(config: SaeConfig, d_model: int, layer: int, model: str,
                    where: str) -> None:
    """The SAE must read this model's stream at the claims' layer. Raises SaeError."""
    if config.d_in != d_model:
        raise SaeError(f"{where} reads vectors of width d_in={config.d_in}, but {model} has "
                       f"d_model {d_model}: it was trained on another model. Use an SAE of "
                       f"{model}, or train one: python -m refusal_checks train-sae --model "
                       f"{model} --layer {layer}.")
    if config.layer != layer:
        raise SaeError(f"{where} reads {config.hook_name} (the input of block {config.layer}), "
                       f"but the claims read the input of block {layer} of {model}. Pass "
                       f"--refusal-layer {config.layer} to read the claims there, or use an "
                       f"SAE of block {layer} (python -m refusal_checks train-sae --model "
                       f"{model} --layer {layer}).")


def save_sae(sae: SAE, folder: Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``sae`` into ``folder`` (created) in SAELens's format; ``extra`` goes under the
    ``refusal_checks`` key of cfg.json (training settings and quality figures)."""
    from safetensors.numpy import save_file

    c = sae.config
    cfg: dict[str, Any] = {
        "architecture": c.architecture, "activation_fn": c.architecture,
        "d_in": c.d_in, "d_sae": c.d_sae, "hook_name": c.hook_name,
        "hook_layer": int(_HOOK.match(c.hook_name).group(1)),  # type: ignore[union-attr]
        "normalize_activations": c.normalize, "apply_b_dec_to_input": c.apply_b_dec_to_input,
        "dtype": "float32"}
    if c.k is not None:
        cfg.update(k=c.k, activation_fn_kwargs={"k": c.k})
    if extra:
        cfg["refusal_checks"] = extra
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {"W_enc": sae.W_enc, "W_dec": sae.W_dec, "b_enc": sae.b_enc, "b_dec": sae.b_dec}
    if sae.threshold is not None:
        tensors["threshold"] = sae.threshold
    save_file({n: np.ascontiguousarray(t, np.float32) for n, t in tensors.items()},
              str(folder / WEIGHTS))
    (folder / CFG).write_text(json.dumps(cfg, indent=2) + "\n")


def hub_folder(value: str) -> tuple[str, str]:
    """``hf:owner/repo/sub/folder`` -> (``owner/repo``, ``sub/folder``). Raises SaeError."""
    parts = value[len(HUB_PREFIX):].strip("/").split("/")
    if len(parts) < 2 or not all(parts):
        raise SaeError(f"{value!r} is not hf:<owner>/<repo>[/<subfolder>].")
    return "/".join(parts[:2]), "/".join(parts[2:])


def _hub_how(value: str) -> str:
    repo, sub = hub_folder(value)
    include = f"--include '{sub}/*' " if sub else ""
    return (f"download it where the hub is reachable (hf download {repo} {include}--local-dir "
            f"DIR) and pass --refusal-sae DIR{'/' + sub if sub else ''}")


def hub_problem(value: str) -> str | None:
    """Why ``hf:...`` cannot be fetched now (offline, unreachable), or None: one request."""
    import os

    repo, _ = hub_folder(value)
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}:
        return (f"--refusal-sae {value}: HF_HUB_OFFLINE is set, so nothing is downloaded; "
                f"{_hub_how(value)}.")
    try:
        from huggingface_hub import HfApi, constants
        from huggingface_hub.errors import HfHubHTTPError

        try:
            HfApi().model_info(repo, timeout=constants.HF_HUB_ETAG_TIMEOUT)
        except HfHubHTTPError:
            return None  # it answered (404, 401): the download says what is wrong
    except Exception as error:  # DNS, refused connection, timeout, TLS
        first = (str(error).splitlines() or [type(error).__name__])[0][:200]
        return (f"--refusal-sae {value}: the hub cannot be reached ({type(error).__name__}: "
                f"{first}); {_hub_how(value)}.")
    return None


def fetch_hub_sae(value: str) -> Path:
    """Download an SAE folder from the hub (only when it answers). Raises SaeError."""
    problem = hub_problem(value)
    if problem:
        raise SaeError(problem)
    repo, sub = hub_folder(value)
    try:
        from huggingface_hub import snapshot_download

        root = snapshot_download(repo, allow_patterns=[f"{sub}/*"] if sub else None)
    except Exception as error:  # 404, gated, dropped connection: all end the same way
        first = (str(error).splitlines() or [type(error).__name__])[0][:200]
        raise SaeError(f"--refusal-sae {value}: the download failed ({type(error).__name__}: "
                       f"{first}); {_hub_how(value)}.") from None
    return Path(root) / sub


def option_problem(value: str, layer: int | None) -> str | None:
    """What is wrong with a --refusal-sae value before any model loads, or None.

    A folder is read (cfg.json and the weights' header); its hook layer is compared with
    an explicit --refusal-layer. Width and the default layer are checked once the model
    is loaded (they depend on it).
    """
    try:
        if value.startswith(HUB_PREFIX):
            return hub_problem(value)
        config = inspect_folder(Path(value).expanduser())
    except SaeError as error:
        return f"--refusal-sae {value}: {error}"
    if layer is not None and layer >= 0 and config.layer != layer:
        return (f"--refusal-sae {value} reads {config.hook_name} (the input of block "
                f"{config.layer}), but --refusal-layer is {layer}. Pass --refusal-layer "
                f"{config.layer}, or an SAE of block {layer} (python -m refusal_checks "
                f"train-sae --model MODEL --layer {layer}).")
    return None
