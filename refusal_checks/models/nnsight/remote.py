"""A backend whose weights stay on NDIF: a meta-device skeleton here, every pass remote.

Only the config, the tokenizer and the generation config are read (from the hub or its
local cache); the model is built on torch's meta device, so ``--model llama
--refusal-remote`` runs on a laptop. nnsight names the model to NDIF by hub id and
revision; the traced blocks run there against NDIF's copy.
"""

from __future__ import annotations

from typing import Any

from refusal_checks.errors import BackendError
from refusal_checks.models.nnsight.backend import NnsightBackend
from refusal_checks.models.nnsight.devices import quiet_transformers
from refusal_checks.models.remote import host


def served_dtype(config: Any) -> str:
    """The dtype NDIF holds a checkpoint in: the one its config names (bfloat16 if none).

    NDIF loads the weights as published; what --refusal-dtype says cannot change that,
    and the cache key must name the dtype the numbers were computed in.
    """
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    name = str(value or "bfloat16").removeprefix("torch.")
    return name if name in ("float32", "bfloat16", "float16") else "bfloat16"


class RemoteNnsightBackend(NnsightBackend):
    """:class:`NnsightBackend` with ``remote=True`` and no weights on this machine.

    ``device`` is read where the code runs: here the skeleton sits on ``meta`` and inputs
    are built on the CPU (nnsight moves them to the model's device on the server); inside
    a traced block, which runs on NDIF, it is the device of NDIF's copy, so tensors built
    there (a steering vector) land next to the activations they edit.
    """

    @property
    def device(self) -> Any:  # type: ignore[override]
        where = self.model.device
        return "cpu" if where.type == "meta" else where

    @device.setter
    def device(self, value: Any) -> None:
        self._device_name = value  # the constructor's value; inputs always start on the CPU

    def orthogonalised(self, direction: Any) -> Any:
        raise BackendError(
            f"{self.name} runs on NDIF: its weights are not on this machine, so an "
            "orthogonalised copy cannot be made here. Load the model locally (without "
            "--refusal-remote) to export edited weights.")


def load_remote(repo_id: str, revision: str | None, *, name: str,
                mode: bool | str = True) -> RemoteNnsightBackend:
    """A backend for ``repo_id`` on NDIF: config and tokenizer here, weights there.

    Raises:
        BackendError: The config or tokenizer cannot be read (offline without a cached
            copy, a gated model without a hub login); the message says how to fix it.
    """
    import torch
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    quiet_transformers()
    try:
        config = AutoConfig.from_pretrained(repo_id, revision=revision)
        tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=revision)
    except Exception as error:  # hub errors come in many classes; all end the same way
        first = (str(error).splitlines() or [""])[0][:200]
        raise BackendError(
            f"could not read the config and tokenizer of {repo_id} ({type(error).__name__}: "
            f"{first}). A remote run needs them here (a few MB, not the weights): on an "
            "offline machine, download them elsewhere with `hf download "
            f"{repo_id} --include '*.json' '*.jinja' 'tokenizer*'`; for a gated model "
            "(llama, gemma) accept its licence on the hub and run `hf auth login`.") from None
    from nnsight.modeling.transformers import TransformersModel

    dtype = served_dtype(config)
    # nnsight builds the skeleton on the meta device from the config, and names the
    # model to NDIF by this repo id, revision and task.
    lm = TransformersModel(repo_id, revision=revision, tokenizer=tokenizer,
                           task="text-generation", dtype=getattr(torch, dtype))
    model = lm._module
    try:  # the end tokens a chat model stops at live here (Llama 3.1 has three)
        model.generation_config = GenerationConfig.from_pretrained(repo_id, revision=revision)
    except Exception:  # noqa: BLE001 - optional file; the config's own tokens remain
        pass
    commit = getattr(config, "_commit_hash", None) or revision or "unknown"
    return RemoteNnsightBackend(
        model, tokenizer, name=name, fingerprint=f"hub:{repo_id}@{commit}", dtype=dtype,
        device="cpu", remote=mode, lm=lm,
        info={"source": f"hub:{repo_id}", "revision": str(commit),
              "execution": f"ndif:{host()}"},
    )
