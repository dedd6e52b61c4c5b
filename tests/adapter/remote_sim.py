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
