"""SIGKILL at random points of a run, repeated: what a CI time limit or the OOM killer does.

Hypothesis draws where each run dies: while a cache file is half written, after it is
written but before its rename, or right after the rename (between an array and its
metadata, between a whole entry and the deletion of its batch entries, between tests).
The kill is the process sending itself SIGKILL at that call (tests/faults/plant.py), so
no handler, ``finally`` or atexit runs. Each killed run starts where the previous one
left off, and the last one runs to the end. After every kill no entry on disk is torn,
and the next run rewrites none of the entries it found finished; the last run's verdicts
are those of a run never killed.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.faults.conftest import Reference
from tests.faults.plant import Fault, read_log
from tests.faults.runs import entries, make_suite, run

KILL_POINTS = ("write", "replace", "replaced")


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("killed")
    make_suite(directory)
    return directory


def _finished(cache: Path) -> set[str]:
    """``namespace/key`` of every entry that loads (and :func:`entries` fails on a torn one)."""
    return {f"{namespace}/{key}" for namespace, keys in entries(cache).items() for key in keys}


def _written(log: Path) -> set[str]:
    """``namespace/key`` of every cache file a run wrote (from the fault plugin's log)."""
    found = set()
    for record in read_log(log):
        parts = Path(record["path"]).parts
        if len(parts) == 3:  # <namespace>/<shard>/<key>.<suffix>; not the .gitignore
            found.add(f"{parts[0]}/{parts[2].split('.', 1)[0]}")
    return found


# Always tried, besides the drawn ones: a kill while the first metadata file is half
# written (the array before it is complete), then one right after a later rename.
FIRST_METADATA = 2


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kills=st.lists(st.tuples(st.sampled_from(KILL_POINTS), st.integers(0, 55)),
                      min_size=1, max_size=2))
@example(kills=[("write", FIRST_METADATA), ("replaced", 30)])
def test_runs_killed_at_random_points_lose_no_finished_work_and_end_with_the_same_verdicts(
        suite: Path, reference: Reference, kills: list[tuple[str, int]]) -> None:
    writes = [record["path"] for record in reference.writes]
    assert len(writes) == 56  # the range drawn from: every write of a cold run
    assert writes[FIRST_METADATA].endswith(".json") and writes[FIRST_METADATA - 1] == \
        writes[FIRST_METADATA].removesuffix(".json") + ".npy"
    work = Path(tempfile.mkdtemp(dir=suite))
    try:
        cache = work / "cache"
        finished: set[str] = set()
        for number, (point, after) in enumerate([*kills, ("none", 0)]):
            log = work / f"writes-{number}.jsonl"
            if point == "none":  # the last run, to the end
                fault = Fault(str(cache), ops=[], log=str(log))
            else:
                fault = Fault(str(cache), "SIGKILL", [point], after=after, armed="tests",
                              log=str(log))
            result = run(suite, cache, fault=fault)

            rewritten = finished & _written(log)
            assert not rewritten, f"run {number} recomputed finished entries: {rewritten}"
            if result.ret == -signal.SIGKILL:
                assert result.report is None
            else:  # killed after its last write, or never killed: it ran to the end
                assert result.ret == reference.result.ret, result.text
                assert result.verdicts() == reference.result.verdicts()
                assert "CacheWarning" not in result.text
            finished = _finished(cache)  # raises on a torn entry
        assert _finished(reference.cache) <= finished  # all a run never killed leaves
    finally:
        shutil.rmtree(work, ignore_errors=True)
