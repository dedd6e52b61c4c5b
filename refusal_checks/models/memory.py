"""Will the model fit? An estimate before loading, instead of an OOM kill half-way through.

The weights' size comes from what is on disk without reading the weights: the safetensors
index's ``total_size`` (bytes as stored, rescaled to the requested dtype), else the
safetensors files' sizes, else a parameter count from ``config.json`` (decoder-only
transformers: embeddings, attention, gated MLP, norms, untied head). Free memory is
``torch.cuda.mem_get_info`` on a CUDA device (summed over every GPU for ``auto``, which
spreads the model over them, with :func:`max_memory` as each GPU's share), else psutil's
available RAM, else ``MemAvailable`` from /proc/meminfo. Set
``REFUSAL_CHECKS_SKIP_MEMORY_CHECK=1`` to load anyway (swap, unified memory, an estimate
that is wrong for an unusual architecture).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refusal_checks.errors import BackendError

GIB = 1024 ** 3
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
# A run holds the weights plus a working set: a batch's activations and first-token
# logits (logits_to_keep=1), the tokenizer, Python and torch. ../shared/MODELS.md measured
# a 4.7 GB peak for Qwen-0.5B at batch 32 in float32 (2.5 GB of weights); weights x 1.2
# + 2 GiB covers that (5.0 GB). The fixed part is capped at the weights' own size, so a
# tiny test model is never refused on a busy machine for want of 2 GiB it will not use.
OVERHEAD_FACTOR = 1.2
OVERHEAD_BYTES = 2 * GIB
SKIP_ENV = "REFUSAL_CHECKS_SKIP_MEMORY_CHECK"


@dataclass(frozen=True)
class Estimate:
    """Weights' bytes in the requested dtype, and how that was found."""

    weight_bytes: int
    how: str

    @property
    def need_bytes(self) -> int:
        return int(self.weight_bytes * OVERHEAD_FACTOR + min(OVERHEAD_BYTES, self.weight_bytes))


def parameter_count(config: dict[str, Any]) -> int:
    """Parameters of a decoder-only chat model from its config (Llama, Qwen, Gemma, Mistral).

    Raises:
        KeyError: The config lacks the sizes (not a decoder-only transformer config).
    """
    config = config.get("text_config", config)  # multimodal wrappers nest the LM's config
    d = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    vocab = int(config["vocab_size"])
    ff = int(config.get("intermediate_size") or 4 * d)
    heads = int(config.get("num_attention_heads") or 1)
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or d // heads)
    attention = d * heads * head_dim * 2 + d * kv_heads * head_dim * 2  # q, o and k, v
    mlp = 3 * d * ff  # gate, up, down
    per_layer = attention + mlp + 2 * d  # two norms
    embed = vocab * d
    head = 0 if config.get("tie_word_embeddings", True) else vocab * d
    return embed + head + layers * per_layer + d


def stored_dtype(config: dict[str, Any]) -> str:
    value = str(config.get("dtype") or config.get("torch_dtype") or "float32")
    return value.removeprefix("torch.")


def estimate(folder: Path | None, config: dict[str, Any], dtype: str) -> Estimate:
    """Bytes of the weights in ``dtype``, from the folder's files if it has them, else the config."""
    want = BYTES.get(dtype, 4)
    stored = BYTES.get(stored_dtype(config), 4)
    if folder is not None:
        index = folder / "model.safetensors.index.json"
        try:
            total = int(json.loads(index.read_text())["metadata"]["total_size"])
            return Estimate(total * want // stored, f"{index.name} ({total / GIB:.1f} GiB "
                            f"as stored in {stored_dtype(config)})")
        except (OSError, ValueError, KeyError, TypeError):
            pass
        files = sorted(folder.glob("*.safetensors"))
        if files:
            total = sum(f.stat().st_size for f in files)
            return Estimate(total * want // stored, f"{len(files)} safetensors file(s), "
                            f"{total / GIB:.1f} GiB as stored in {stored_dtype(config)}")
    count = parameter_count(config)
    return Estimate(count * want, f"{count / 1e9:.2f}B parameters from config.json")


def gpu_free() -> dict[int, int]:
    """Free bytes on each CUDA device torch sees, by index ({} without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return {}
    return {i: int(torch.cuda.mem_get_info(i)[0]) for i in range(torch.cuda.device_count())}


def max_memory(found: Estimate, free: dict[int, int] | None = None) -> dict[int, int]:
    """accelerate's ``max_memory`` for ``device_map="auto"``: what each GPU may hold of the
    weights, its free memory less an equal share of a run's working memory (the part of
    :attr:`Estimate.need_bytes` beyond the weights), so that the shares add up to what
    :func:`check_fits` compared. GPUs left with nothing are not named."""
    free = gpu_free() if free is None else free
    share = (found.need_bytes - found.weight_bytes) // max(len(free), 1)
    return {i: room - share for i, room in free.items() if room > share}


def free_bytes(device: str) -> tuple[int, str]:
    """(bytes free, what that is) for ``device``; ``auto``: every GPU together."""
    if device == "auto":
        free = gpu_free()
        if not free:
            raise OSError("no CUDA device to spread the model over")
        return sum(free.values()), (f"free GPU memory on cuda:0 to cuda:{len(free) - 1} "
                                    f"together ({len(free)} GPUs)")
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        free, _total = torch.cuda.mem_get_info(index)
        return int(free), f"free GPU memory on cuda:{index}"
    try:
        import psutil

        return int(psutil.virtual_memory().available), "available RAM"
    except ImportError:
        pass
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "available RAM (/proc/meminfo)"
    raise OSError("cannot tell free memory: no psutil and no MemAvailable in /proc/meminfo")


def message(name: str, dtype: str, device: str, found: Estimate, free: int, what: str) -> str:
    """The error text when ``found`` does not fit in ``free`` bytes."""
    fixes = []
    if BYTES.get(dtype, 4) > 2:
        fixes.append("--refusal-dtype bfloat16 (halves the weights)")
    if device.startswith("cuda"):
        fixes.append("--refusal-device auto on a machine with several GPUs (spreads it "
                     "over all of them)")
    elif device != "auto":
        fixes.append("--refusal-device cuda on a GPU that has the room, or auto to spread "
                     "it over several GPUs")
    fixes.append("--refusal-remote (runs on NDIF; nothing is loaded here)")
    fixes.append(f"or set {SKIP_ENV}=1 to load anyway (e.g. with swap)")
    return (f"{name} will not fit: its weights take about {found.weight_bytes / GIB:.1f} GiB "
            f"in {dtype} ({found.how}), about {found.need_bytes / GIB:.1f} GiB with the "
            f"working memory of a run, but only {free / GIB:.1f} GiB of {what} is left. "
            f"Loading it would end in an out-of-memory kill. Options: {'; '.join(fixes)}.")


def check_fits(name: str, folder: Path | None, config: dict[str, Any], dtype: str,
               device: str, free: tuple[int, str] | None = None) -> Estimate | None:
    """Raise :class:`BackendError` before loading when the model cannot fit.

    Args:
        name: The model, for the message.
        folder: Local folder with the weight files, if any (for their sizes).
        config: The model's config.json as a dict.
        dtype: The dtype it will be loaded in.
        device: Where it will be loaded ("cpu", "cuda", "cuda:1", or "auto": several GPUs).
        free: (bytes, description) to use instead of asking the system (tests).

    Returns:
        The estimate, or None when it could not be made (the load then goes ahead: an
        unusual config is no reason to refuse a model).
    """
    if os.environ.get(SKIP_ENV, "").strip() not in ("", "0"):
        return None
    try:
        found = estimate(folder, config, dtype)
        available, what = free if free is not None else free_bytes(device)
    except (KeyError, ValueError, TypeError, OSError):
        return None
    if found.need_bytes > available:
        raise BackendError(message(name, dtype, device, found, available, what))
    return found


# Converting a GGUF file peaks at about 1.5 float32 copies of its weights plus a fixed
# part (Python, torch, the tokenizer, the GGUF's own tensors): measured peaks of 9.0 GB
# resident for qwen-coder-1.5b (1.54B parameters, 6.2 GB in float32) and 3.3 GB for
# gemma3-270m-base (0.27B, 1.1 GB; its 262k-token vocabulary makes the fixed part large),
# docs/models.md. 1.5 x the float32 weights + 2 GiB covers both (11.2 and 3.6 GB). The check
# is for the float32 copy the conversion writes, whatever dtype a run later loads it in.
CONVERSION_FACTOR = 1.5
CONVERSION_BYTES = 2 * GIB


def check_conversion(name: str, parameters: int,
                     free: tuple[int, str] | None = None) -> None:
    """Raise :class:`BackendError` before converting a GGUF file that would not fit."""
    if os.environ.get(SKIP_ENV, "").strip() not in ("", "0"):
        return
    try:
        available, what = free if free is not None else free_bytes("cpu")
    except OSError:
        return
    need = int(parameters * BYTES["float32"] * CONVERSION_FACTOR) + CONVERSION_BYTES
    if need > available:
        raise BackendError(
            f"converting {name} ({parameters / 1e9:.2f}B parameters) to float32 needs about "
            f"{need / GIB:.1f} GiB at its peak, but only {available / GIB:.1f} GiB of {what} "
            f"is left; it would end in an out-of-memory kill. Close other programs and run "
            f"it again, or set {SKIP_ENV}=1 to try anyway (e.g. with swap).")


def check_hub(name: str, repo_id: str, revision: str | None, dtype: str, device: str,
              local_only: bool) -> Estimate | None:
    """:func:`check_fits` for a hub model: its config (a few kB) and, when the hub's local
    cache has it, the safetensors index; never the weights."""
    try:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(repo_id, "config.json", revision=revision,
                                    local_files_only=local_only))
        config = json.loads(path.read_text())
    except Exception:  # noqa: BLE001 - no config yet: from_pretrained reports it properly
        return None
    return check_fits(name, path.parent, config, dtype, device)
