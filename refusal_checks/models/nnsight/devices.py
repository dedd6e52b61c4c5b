"""Devices and dtypes for the nnsight backend: where a model loads and computes.

Resolves ``--refusal-device`` / ``--refusal-dtype``, builds ``from_pretrained``'s placement
arguments (a device map over several GPUs) and finds where each block of a loaded model
computes. torch and transformers are imported on first use, not with this module.
"""

from __future__ import annotations

import os
from typing import Any

from refusal_checks.models import memory
from refusal_checks.errors import BackendError

DTYPES = ("float32", "bfloat16", "float16")


def import_torch() -> Any:
    """torch, imported on first use (importing the nnsight modules stays light)."""
    import torch

    return torch


def cuda_count() -> int:
    """CUDA devices torch can use here (0 without a CUDA build or a driver)."""
    torch = import_torch()
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def resolve_device(device: str) -> str:
    """Where a model loads: ``cpu``, ``cuda``, ``cuda:N``, or ``auto`` for several GPUs.

    ``auto`` stays ``auto`` when torch sees several CUDA devices (the model is then spread
    over all of them with accelerate's device map, :func:`load_kwargs`), becomes ``cuda``
    with one and ``cpu`` with none. ``cuda`` and ``cuda:N`` are one GPU, checked here.
    """
    torch = import_torch()
    if device == "auto":
        count = cuda_count()
        return "auto" if count > 1 else "cuda" if count == 1 else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendError(
            f"--refusal-device {device!r} was asked for but torch sees no CUDA device "
            f"(torch {torch.__version__}). Install a CUDA build of torch (see README, 'GPU') "
            "or use --refusal-device cpu."
        )
    if device.startswith("cuda:"):
        count = cuda_count()
        index = device.partition(":")[2]
        if not index.isdigit() or int(index) >= count:
            raise BackendError(
                f"--refusal-device {device!r} names no CUDA device: torch sees {count} "
                f"(cuda:0 to cuda:{count - 1}). Pick one of them, or --refusal-device auto "
                "to spread the model over all of them.")
    return device


def default_dtype(device: str) -> str:
    """The dtype when ``--refusal-dtype`` is not given: bfloat16 on CUDA (``cuda``,
    ``cuda:N``, ``auto`` with a GPU), float32 elsewhere (the README's CPU reference)."""
    if device == "auto":
        return "bfloat16" if cuda_count() else "float32"
    return "bfloat16" if device.startswith("cuda") else "float32"


def resolve_dtype(dtype: str | None, device: str) -> str:
    """``dtype`` as given, else :func:`default_dtype` for ``device``."""
    return dtype if dtype is not None else default_dtype(device)


def load_kwargs(dtype: str, device: str, found: memory.Estimate | None) -> dict[str, Any]:
    """``from_pretrained``'s placement arguments for a resolved device and dtype.

    ``auto`` (several GPUs) loads with ``device_map="auto"``: accelerate puts whole blocks
    on each GPU and moves activations between them. ``max_memory`` caps each GPU at its
    free memory less its share of a run's working memory (:func:`memory.max_memory`), and
    names no CPU, so a model that does not fit is refused instead of running slowly with
    blocks offloaded to the CPU. Other devices load on the CPU and are moved with ``.to``.
    """
    kwargs: dict[str, Any] = {"dtype": _dtype(dtype)}
    if device == "auto":
        kwargs["device_map"] = "auto"
        budgets = memory.max_memory(found) if found is not None else None
        if budgets:
            kwargs["max_memory"] = budgets
    return kwargs


def execution_device(module: Any, fallback: Any) -> Any:
    """The torch device ``module`` computes on: accelerate's hook's execution device when
    the model was dispatched with a device map, else its first parameter's device (meta
    parameters, as in a skeleton for NDIF, do not count), else ``fallback``."""
    torch = import_torch()
    hook = module.__dict__.get("_hf_hook")
    for each in getattr(hook, "hooks", (hook,)):  # accelerate's SequentialHook holds several
        where = getattr(each, "execution_device", None)
        if where is not None:  # accelerate writes GPU i as the bare integer i
            return torch.device("cuda", where) if isinstance(where, int) else torch.device(where)
    for parameter in module.parameters():
        if parameter.device.type != "meta":
            return parameter.device
    return torch.device(fallback)


def block_devices(model: Any, fallback: Any) -> tuple[Any, list[Any]]:
    """(device of the embeddings, device of each block) of a transformers causal LM.

    On one device every entry is that device. Under a device map a block's input arrives
    on the device of the module before it (the embeddings for block 0), since nnsight
    hands over ``.input`` before accelerate moves it to the block's own device.
    """
    embed = execution_device(model.get_input_embeddings(), fallback)
    return embed, [execution_device(block, fallback) for block in model.model.layers]


def device_summary(embed: Any, blocks: list[Any]) -> str:
    """``embeddings cuda:0; blocks 0-13 cuda:0, 14-27 cuda:1``: where a device map put things."""
    runs: list[list[Any]] = []
    for i, where in enumerate(blocks):
        if runs and runs[-1][2] == where:
            runs[-1][1] = i
        else:
            runs.append([i, i, where])
    parts = [f"{a}-{b} {w}" if a != b else f"{a} {w}" for a, b, w in runs]
    return f"embeddings {embed}; blocks {', '.join(parts)}"


def quiet_transformers() -> None:
    """Silence transformers' warnings and progress bars, and the tokenizers' fork warning."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _dtype(name: str) -> Any:
    torch = import_torch()
    if name not in DTYPES:
        raise BackendError(f"dtype {name!r} is not supported. Use one of: {', '.join(DTYPES)}.")
    return getattr(torch, name)

