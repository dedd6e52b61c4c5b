"""Remote execution on NDIF (the National Deep Inference Fabric) through nnsight.

``--refusal-remote`` sends every trace and generation to NDIF with nnsight's
``remote=True``; ``--refusal-remote-local`` uses ``remote="local"``, nnsight's local
simulation of that path (the block is serialised exactly as for NDIF, deserialised with
the user's own modules hidden, and run on the local model): the way to test remote
support offline.

What travels: the model is named by its hub id and never loaded here (a meta-device
skeleton from the config stands in, so ``--model llama`` needs no 16 GB of RAM); the
traced block travels as source, with refusal_checks registered for pickling by value
(NDIF does not have it installed). Only what the claims read is saved and sent back.

Results go to the same content-keyed cache as local runs. The key names the weights
(hub id and commit), the dtype and exactly what the model reads, not where it ran: a
remote and a local run of the same weights in the same dtype compute the same function,
and differ only by kernel and accumulation order, the same kind of float noise as two
batch shapes, which the key already ignores. Keying by place would make a run that
lost NDIF half-way unable to reuse its own work on a GPU box, or vice versa, for no
gain in correctness. The dtype is different: NDIF serves its models in the dtype the
checkpoint names (bfloat16 for the paper's models), so a remote backend reports that
dtype, and its entries never mix with a float32 local run's.

This module imports only the standard library at import time; torch, nnsight and
httpx are imported where they are used.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from refusal_checks.errors import BackendError

MODES = ("ndif", "local")
# NDIF runs one request per trace: few, large traces amortise the queue and the
# round trip. Larger than the local default of 16; values do not depend on it
# (positions come from the attention mask).
REMOTE_BATCH_SIZE = 64
KEY_HELP = ("Get a key at https://login.ndif.us, then run `nnsight login` (stores it in "
            "~/.config/nnsight/config.yaml) or export NDIF_API_KEY=<key>.")
RESUME_HELP = ("Everything finished before the failure is in the cache: rerun the same "
               "command to resume from there.")
# Package name for cloudpickle's by-value registry: NDIF has no refusal_checks installed.
_PACKAGE = "refusal_checks"


class RemoteExecutionError(BackendError):
    """NDIF could not run a request; the message says why and what to do."""


def nnsight_config() -> Any:
    """nnsight's CONFIG (defaults < ~/.config/nnsight/config.yaml < NDIF_* environment)."""
    from nnsight.schema.config import CONFIG

    return CONFIG


def api_key() -> str | None:
    """The NDIF key: ``NDIF_API_KEY`` if set, else the one ``nnsight login`` stored.

    nnsight reads both when it is imported; the environment is read again here so a key
    exported after import (a notebook, a test) still counts.
    """
    return os.environ.get("NDIF_API_KEY") or nnsight_config().API.APIKEY or None


def host() -> str:
    """NDIF's address: ``NDIF_HOST`` (a self-hosted deployment) or nnsight's configured host."""
    return (os.environ.get("NDIF_HOST") or nnsight_config().API.HOST).rstrip("/")


def require_key() -> str:
    """The key, or a :class:`RemoteExecutionError` that says how to get one."""
    key = api_key()
    if not key:
        raise RemoteExecutionError(
            f"--refusal-remote needs an NDIF API key and none is set. {KEY_HELP}")
    return key


def fetch_status(url: str, key: str) -> dict[str, Any]:
    """GET ``{url}/status``: NDIF's deployments. The one network call of the pre-flight."""
    import httpx

    response = httpx.get(f"{url}/status", headers={"ndif-api-key": key},
                         timeout=httpx.Timeout(10.0, read=30.0))
    response.raise_for_status()
    return response.json()


def served_models(status: dict[str, Any]) -> dict[str, str]:
    """repo id -> state of each model NDIF has deployed (HOT or WARM), from ``/status``."""
    served: dict[str, str] = {}
    for name, value in (status.get("deployments") or {}).items():
        if not isinstance(value, dict) or value.get("deployment_level") not in ("HOT", "WARM"):
            continue
        repo = str(value.get("repo_id") or name)
        state = str(value.get("application_state") or "UNKNOWN")
        if served.get(repo) != "RUNNING":  # one running replica is enough
            served[repo] = state
    return served


def check_served(repo_id: str) -> None:
    """Refuse before any work when NDIF does not serve ``repo_id``; list what it serves."""
    key = require_key()
    where = host()
    try:
        status = fetch_status(where, key)
    except Exception as error:  # noqa: BLE001 - DNS, refused, timeout, TLS, HTTP 5xx: one fix
        raise explain(error, repo_id) from None
    served = served_models(status)
    state = served.get(repo_id)
    if state == "RUNNING":
        return
    listing = ", ".join(sorted(r for r, s in served.items() if s == "RUNNING")) or "none"
    if state is not None:
        raise RemoteExecutionError(
            f"NDIF ({where}) has {repo_id} deployed but not running (state {state}). Try "
            "again in a few minutes; https://nnsight.net/status shows when it is up.")
    raise RemoteExecutionError(
        f"NDIF ({where}) does not serve {repo_id}. Models running there now: {listing}. "
        "Pick one of them with --model <hub id>, or run this model locally / on your GPU "
        "without --refusal-remote.")


def check_spec(kind: str, name: str) -> None:
    """NDIF runs models it hosts, named by hub id: refuse local folders and files."""
    if kind != "hub":
        raise RemoteExecutionError(
            f"--refusal-remote runs models on NDIF, which knows them by hub id, but --model "
            f"{name} is a {kind} model that exists only on this machine. Pass a hub id "
            "(e.g. --model llama or --model meta-llama/Llama-3.1-8B-Instruct), or drop "
            "--refusal-remote (--refusal-remote-local tests the remote path on any model).")


def explain(error: BaseException, model: str) -> RemoteExecutionError:
    """Translate what nnsight, httpx or the websocket raised into an error with its fix."""
    text = f"{type(error).__name__}: {error}"
    low = text.lower()
    where = host()
    if any(s in low for s in ("401", "403", "unauthori", "forbidden", "api key", "api-key",
                              "apikey", "invalid key")):
        return RemoteExecutionError(
            f"NDIF ({where}) refused the API key ({text[:300]}). Check it with `nnsight "
            f"whoami`. {KEY_HELP}")
    if any(s in low for s in ("429", "rate limit", "rate-limit", "quota", "too many requests")):
        return RemoteExecutionError(
            f"NDIF ({where}) is rate-limiting this key or its quota is used up ({text[:300]}). "
            f"Wait and rerun, or use fewer prompts (--refusal-max-prompts). {RESUME_HELP}")
    if any(s in low for s in ("out of memory", "outofmemory", "cuda oom")):
        return RemoteExecutionError(
            f"NDIF ran out of GPU memory on {model} ({text[:300]}). Use a smaller "
            f"--refusal-batch-size (remote default {REMOTE_BATCH_SIZE}). {RESUME_HELP}")
    if any(s in low for s in ("not deployed", "not running", "not found", "404",
                              "no deployment", "unknown model")):
        return RemoteExecutionError(
            f"NDIF ({where}) does not serve {model} ({text[:300]}). `python -c \"import "
            "nnsight; print(nnsight.status())\"` lists the models it runs.")
    if _network_error(error):
        return RemoteExecutionError(
            f"lost the connection to NDIF ({where}) while running {model}: {text[:300]}. "
            f"Check the network (and NDIF_HOST if you set it). {RESUME_HELP}")
    return RemoteExecutionError(
        f"NDIF ({where}) could not run a request for {model}: {text[:400]}. {RESUME_HELP}")


def _network_error(error: BaseException) -> bool:
    if isinstance(error, (OSError, ConnectionError, TimeoutError)):
        return True
    module = type(error).__module__ or ""
    return module.startswith(("httpx", "httpcore", "websocket", "ssl", "socket"))


@contextlib.contextmanager
def remote_scope(mode: bool | str, model: str) -> Iterator[None]:
    """Around one remote trace: ship refusal_checks by value, translate failures.

    NDIF has no refusal_checks installed, and a traced block that calls a method of the
    backend (``self._edit``) pickles the backend's class; registering the package by value
    makes cloudpickle send its source instead of an import path. The registration is
    undone afterwards so other pickling in the process (pytest-xdist, multiprocessing)
    is untouched. ``mode`` False: nothing happens.
    """
    if not mode:
        yield
        return
    from cloudpickle.cloudpickle import _PICKLE_BY_VALUE_MODULES

    added = _PACKAGE not in _PICKLE_BY_VALUE_MODULES
    _PICKLE_BY_VALUE_MODULES.add(_PACKAGE)
    try:
        yield
    except RemoteExecutionError:
        raise
    except (KeyboardInterrupt, SystemExit, BackendError):
        raise
    except Exception as error:  # nnsight's RemoteError, httpx, websocket, OSError
        if mode == "local":
            raise  # nothing remote happened: a bug in the block, keep its own traceback
        raise explain(error, model) from error
    finally:
        if added:
            _PICKLE_BY_VALUE_MODULES.discard(_PACKAGE)
