"""A stricter ``remote="local"``: the simulated server cannot import refusal_checks.

nnsight's LocalSimulationBackend hides the user's modules while it deserialises a block,
to mimic NDIF, where only torch, transformers, nnsight and friends are installed. Here
refusal_checks is also installed (editable), so an import of it could still succeed in
the simulation and fail on NDIF. This context manager blocks every import of
refusal_checks during the simulated deserialisation, so a passing test means the payload
carries what it needs by value.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _NoRefusalChecks(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.blocked: list[str] = []

    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name.split(".")[0] == "refusal_checks":
            self.blocked.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (as on an NDIF server)")
        return None


@contextmanager
def server_without_refusal_checks() -> Iterator[_NoRefusalChecks]:
    """Patch LocalSimulationBackend so deserialisation cannot import refusal_checks."""
    from nnsight.intervention.backends.local import LocalSimulationBackend

    finder = _NoRefusalChecks()
    hide, restore = LocalSimulationBackend._hide_local_modules, LocalSimulationBackend._restore

    def hide_all(self: Any) -> dict:
        hidden = hide(self)
        sys.meta_path.insert(0, finder)
        return hidden

    def restore_all(self: Any, hidden: dict) -> None:
        sys.meta_path.remove(finder)
        restore(self, hidden)

    LocalSimulationBackend._hide_local_modules = hide_all  # type: ignore[method-assign]
    LocalSimulationBackend._restore = restore_all  # type: ignore[method-assign]
    try:
        yield finder
    finally:
        LocalSimulationBackend._hide_local_modules = hide  # type: ignore[method-assign]
        LocalSimulationBackend._restore = restore  # type: ignore[method-assign]


@contextmanager
def fake_ndif(server_lm: Any, drop_after: int | None = None) -> Iterator[list[int]]:
    """Answer ``remote=True`` requests the way an NDIF server would, in a forked process.

    nnsight's RemoteBackend serialises the block for real; instead of a websocket, a
    forked child (its own process, as a server is: unpickling by-value classes there
    cannot touch this process's) deserialises the payload against ``server_lm`` (a loaded
    model with the same module tree) with refusal_checks unimportable, runs it, and sends
    back only the variables the block marked with ``save``, through ``torch.save``, as
    NDIF's result does. Unlike ``remote="local"``, nothing the block does to the caller's
    own objects (a dict defined outside it) can leak back. Yields the payload sizes.
    With ``drop_after``, the connection resets on every request after that many.
    """
    import io
    import os
    import traceback

    import torch
    from nnsight.intervention.backends.remote import RemoteBackend
    from nnsight.schema.request import RequestModel
    from nnsight.tracing.tracer import _saves

    sizes: list[int] = []
    original = RemoteBackend.request

    def serve(blob: bytes, compress: bool) -> bytes:
        for name in [n for n in sys.modules if n.split(".")[0] == "refusal_checks"]:
            del sys.modules[name]
        sys.meta_path.insert(0, _NoRefusalChecks())
        restored = RequestModel.deserialize(blob, server_lm._remoteable_persistent_objects(),
                                            compress=compress)
        restored.execute(restored.info.code)  # pushes the saved variables into its frame
        saves = _saves()
        result = {k: v for k, v in restored.info.frame.f_locals.items() if id(v) in saves}
        buffer = io.BytesIO()
        torch.save(result, buffer)
        return buffer.getvalue()

    def request(self: Any, request: Any, tracer: Any) -> dict[str, Any]:
        blob = self._serialize(tracer)
        if drop_after is not None and len(sizes) >= drop_after:
            raise ConnectionResetError(104, "Connection reset by peer")
        sizes.append(len(blob))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the server
            # The parent's OpenMP pool does not survive fork: a forked child that uses it
            # can hang in a matmul. One thread runs every op inline.
            torch.set_num_threads(1)
            os.close(read)
            try:
                answer = b"ok" + serve(blob, self.compress)
            except BaseException:  # noqa: BLE001 - reported to the client below
                answer = b"no" + traceback.format_exc().encode()
            with os.fdopen(write, "wb") as out:
                out.write(answer)
            os._exit(0)
        os.close(write)
        with os.fdopen(read, "rb") as incoming:
            answer = incoming.read()
        os.waitpid(pid, 0)
        if answer[:2] != b"ok":
            raise RuntimeError("the fake NDIF server failed:\n" + answer[2:].decode())
        return torch.load(io.BytesIO(answer[2:]), weights_only=False)

    RemoteBackend.request = request  # type: ignore[method-assign]
    try:
        yield sizes
    finally:
        RemoteBackend.request = original  # type: ignore[method-assign]
