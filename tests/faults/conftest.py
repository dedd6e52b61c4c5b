"""The uninterrupted runs the faulted ones are compared with, made once per session."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.faults.plant import Fault, read_log
from tests.faults.runs import GEOMETRY, STEERING, Run, make_suite, run


@dataclass
class Reference:
    """A run of ``claims`` on an empty cache with no fault: its report, and every file it
    wrote into the cache (:func:`tests.faults.plant.read_log`)."""

    directory: Path
    claims: tuple[str, ...]
    result: Run
    writes: list[dict[str, Any]] = field(repr=False)

    @property
    def cache(self) -> Path:
        return self.directory / "cache"


def reference_run(directory: Path, claims: tuple[str, ...]) -> Reference:
    make_suite(directory)
    log = directory / "writes.jsonl"
    result = run(directory, directory / "cache", claims=claims,
                 fault=Fault(str(directory / "cache"), ops=[], log=str(log)))
    assert result.report is not None and result.report["complete"], result.text
    assert "CacheWarning" not in result.text, result.text
    return Reference(directory, claims, result, read_log(log))


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The geometry claims, the run most fault tests repeat."""
    return reference_run(tmp_path_factory.mktemp("reference"), (GEOMETRY,))


@pytest.fixture(scope="session")
def reference_both(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The geometry and the category-steering claims: more model work, replies included."""
    return reference_run(tmp_path_factory.mktemp("reference-both"), (GEOMETRY, STEERING))
