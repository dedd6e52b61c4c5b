"""Loading a Hugging Face causal LM into an :class:`~refusal_checks.models.nnsight.backend.NnsightBackend`.

From a folder written by ``save_pretrained`` (a local model or a dense GGUF copy,
:mod:`refusal_checks.models.nnsight.dense`) or from the hub (its local cache first). Each load
checks first that the weights fit (:mod:`refusal_checks.models.memory`) and places the model on
its device (:mod:`refusal_checks.models.nnsight.devices`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from refusal_checks.models import memory
from refusal_checks.errors import BackendError
from refusal_checks.models.nnsight.backend import NnsightBackend
from refusal_checks.models.nnsight.devices import (load_kwargs, quiet_transformers, resolve_device,
                                            resolve_dtype)


def load_folder(
    folder: Path,
    *,
    name: str,
    fingerprint: str,
    dtype: str | None,
    device: str,
    info: dict[str, str] | None = None,
    template: str | None = None,
) -> NnsightBackend:
    """Load a model saved with ``save_pretrained`` (a local folder or a dense GGUF copy).

    ``dtype`` None is :func:`default_dtype` for the device; the backend records the dtype
    it resolved to, so caches and reports name the one the numbers were computed in.
    ``template``: a chat template that replaces the tokenizer's (a base model's stated
    raw-prompt protocol, :data:`refusal_checks.models.registry.RAW_TEMPLATE`).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    found = _check_fits_folder(name, folder, dtype, device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        if template is not None:
            tokenizer.chat_template = template
        model = AutoModelForCausalLM.from_pretrained(str(folder),
                                                     **load_kwargs(dtype, device, found))
    except (OSError, ValueError, KeyError) as error:
        raise BackendError(
            f"could not load the model in {folder} for {name}: {error}. The folder needs "
            "config.json, the weights and the tokenizer files (as written by save_pretrained)."
        ) from None
    _place(model, device)
    return NnsightBackend(model, tokenizer, name=name, fingerprint=fingerprint, dtype=dtype,
                          device=device, info=info)


def _place(model: Any, device: str) -> None:
    """Move a model loaded on the CPU to its one device; a device map placed it already."""
    if device != "auto":
        model.to(device)


def _check_fits_folder(name: str, folder: Path, dtype: str,
                       device: str) -> memory.Estimate | None:
    """Refuse, before loading, a model whose weights would not fit (refusal_checks.models.memory);
    the estimate, when one could be made."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None  # from_pretrained reports a missing or broken config with its own message
    return memory.check_fits(name, folder, config, dtype, device)


def _env_true(name: str) -> bool:
    """huggingface_hub's reading of a boolean environment variable."""
    return os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"}


def _hub_unreachable(repo_id: str, revision: str | None) -> str | None:
    """Why the hub cannot be reached (one request, no retries), or None if it answered.

    Any HTTP answer (404, 401 for a gated model, ...) counts as reachable: the real
    download then raises its own, specific error.
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError

    try:
        HfApi().model_info(repo_id, revision=revision, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except HfHubHTTPError:
        return None
    except Exception as error:  # DNS, refused connection, timeout, TLS, offline mode
        return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
    return None


def load_hub(
    repo_id: str,
    revision: str | None,
    *,
    name: str,
    dtype: str | None,
    device: str,
) -> NnsightBackend:
    """Load from the Hugging Face hub (or its local cache when the hub is out of reach)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    attempts: list[str] = []
    offline = _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")
    loaded = None
    for local_only in (True,) if offline else (True, False):
        if not local_only:
            # huggingface_hub retries a failed HEAD for ~23 s per file (1+2+4+8+8 s of
            # backoff), and from_pretrained asks for several files: ~50 s before an
            # offline machine gets its error. One request without retries tells first.
            unreachable = _hub_unreachable(repo_id, revision)
            if unreachable:
                attempts.append(f"hub: unreachable ({unreachable})")
                break
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                repo_id, revision=revision, local_files_only=local_only
            )
            found = memory.check_hub(name, repo_id, revision, dtype, device, local_only)
            model = AutoModelForCausalLM.from_pretrained(
                repo_id, revision=revision, local_files_only=local_only,
                **load_kwargs(dtype, device, found))
            loaded = model, tokenizer
            break
        except BackendError:  # it will not fit: say so, do not try the hub as well
            raise
        except Exception as error:  # hub errors come in many classes; all end the same way
            where = "local cache" if local_only else "hub"
            first_line = (str(error).splitlines() or [""])[0][:200]
            attempts.append(f"{where}: {type(error).__name__}: {first_line}")
    if loaded is None:
        raise BackendError(
            f"could not load {name} ({repo_id}{'@' + revision if revision else ''}) from the "
            f"Hugging Face hub or its local cache. Tried: {'; '.join(attempts)}. If this "
            "machine is offline, download the model elsewhere (hf download ...) and pass "
            "--model /path/to/folder; for a gated model (llama, gemma) accept its licence on "
            "the hub and run 'hf auth login'."
        )
    model, tokenizer = loaded
    _place(model, device)
    commit = getattr(model.config, "_commit_hash", None) or revision or "unknown"
    return NnsightBackend(
        model, tokenizer, name=name, fingerprint=f"hub:{repo_id}@{commit}", dtype=dtype,
        device=device, info={"source": f"hub:{repo_id}", "revision": str(commit)},
    )
