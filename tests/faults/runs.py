"""Runs of the claims suite on a planted world, in subprocesses, with faults planted.

Each run is ``python -m pytest`` in a folder holding the claims suite as a user has it
(tests/plugin/test_plugin.py's :func:`copy_suite`: the geometry and category-steering
claims, 24 prompts per category) and the fault plugin of :mod:`tests.faults.plant`. A run
takes about a second on the planted world, so a fault can be met, and the run repeated,
several times in a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refusal_checks.cache.store import ArrayCache, CacheWarning
from tests.faults.plant import ENV, Fault, install
from tests.plugin.test_plugin import WIDE, comparable, copy_suite, suite_args

WORLD = "synthetic:distinct"
GEOMETRY = "claims/test_geometry.py"
STEERING = "claims/test_category_steering.py"
# 16 prompts a set: every claim computes its numbers (tests/plugin/test_bad_input.py).
BUDGET = ("--refusal-max-prompts", "16")
NAMESPACES = ("activations", "replies", "scores")


@dataclass
class Run:
    """What one run left: exit status, output, and its JSON report if it wrote one."""

    ret: int
    out: str = field(repr=False)
    err: str = field(repr=False)
    report: dict[str, Any] | None = field(repr=False)
    seconds: float

    @property
    def text(self) -> str:
        return self.out + "\n" + self.err

    def verdicts(self) -> list[dict[str, Any]]:
        assert self.report is not None, self.text
        return comparable(self.report["verdicts"])


def make_suite(directory: Path) -> list[str]:
    """The claims suite and the fault plugin in ``directory``; the plugin's arguments."""
    copy_suite(directory, per_category=24,
               claim_files=("test_geometry.py", "test_category_steering.py"))
    return install(directory)


def command(cache: Path | None, *args: str, report: str | None = "report.json",
            claims: tuple[str, ...] = (GEOMETRY,)) -> list[str]:
    """The pytest command line; ``cache`` None leaves the cache at its default location."""
    options = suite_args(cache or Path("unused"), WORLD)
    if cache is None:
        at = options.index("--refusal-cache-dir")
        del options[at:at + 2]
    extra = ["--refusal-json", report] if report else []
    return [sys.executable, "-m", "pytest", *claims, *options, *BUDGET, "-p", "fault_plant",
            "-rA", *extra, *args]


def environment(fault: Fault | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(COLUMNS=WIDE, PYTHONIOENCODING="utf-8")
    env.pop("REFUSAL_CHECKS_CACHE", None)
    env.pop(ENV, None)
    if fault is not None:
        env[ENV] = fault.to_env()
    return env


def run(directory: Path, cache: Path | None, *args: str, fault: Fault | None = None,
        report: str | None = "report.json", claims: tuple[str, ...] = (GEOMETRY,),
        env: dict[str, str] | None = None) -> Run:
    """One run of ``claims`` in ``directory`` on ``cache``, with ``fault`` planted."""
    if report and (directory / report).exists():
        (directory / report).unlink()
    start = time.monotonic()
    done = subprocess.run(command(cache, *args, report=report, claims=claims),
                          cwd=directory, env={**environment(fault), **(env or {})},
                          capture_output=True, text=True, timeout=300)
    return finished(directory, report, done.returncode, done.stdout, done.stderr,
                    time.monotonic() - start)


def finished(directory: Path, report: str | None, ret: int, out: str, err: str,
             seconds: float) -> Run:
    path = directory / report if report else None
    payload = json.loads(path.read_text()) if path is not None and path.exists() else None
    return Run(ret, out, err, payload, seconds)


def entries(cache: Path) -> dict[str, set[str]]:
    """Every entry in the cache that loads, by namespace; a torn entry fails the test.

    An entry is read as the library reads it: an array with its metadata, or a JSON
    result. Any :class:`CacheWarning` while reading means the cache held a bad entry.
    """
    found: dict[str, set[str]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        for namespace in NAMESPACES:
            store = ArrayCache(cache, namespace)
            good = set()
            for key in store.entries():
                shard = store.directory / key[:2]
                if (shard / f"{key}.json").exists() and store.load(key) is not None:
                    good.add(key)
                if (shard / f"{key}.result.json").exists() and \
                        store.load_json(key) is not None:
                    good.add(key)
            found[namespace] = good
    return found


def temporary_files(cache: Path) -> list[Path]:
    """Files a writer left under a temporary name (``.<name>.<random>.tmp``)."""
    return sorted(p for p in cache.rglob(".*") if p.name.endswith(".tmp"))
