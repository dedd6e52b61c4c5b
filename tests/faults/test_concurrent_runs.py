"""Two independent runs on one cache at once (two CI jobs on one cache volume).

Not pytest-xdist workers of one run: two pytest processes, each with its own report, one
checking the geometry claims and the other those and the category-steering claims, so
their work overlaps (activations, baseline replies) and differs (steering replies). They
meet at a barrier before their first test, and each write into the cache waits a little,
so both compute the same entries at the same time on the cold cache. The cache has no
locks; each file is written under a unique temporary name and renamed into place. So an
entry may be computed by both, and then must be identical; no run may read half of one.
"""

from __future__ import annotations

import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.faults.conftest import Reference
from tests.faults.plant import Fault, read_log
from tests.faults.runs import (
    GEOMETRY,
    STEERING,
    command,
    entries,
    environment,
    finished,
    make_suite,
    temporary_files,
)


def test_two_runs_on_one_cold_cache_write_identical_entries_and_complete_reports(
        tmp_path: Path, reference: Reference, reference_both: Reference) -> None:
    make_suite(tmp_path)
    cache, log = tmp_path / "cache", tmp_path / "writes.jsonl"
    fault = Fault(str(cache), ops=[], log=str(log), delay=0.005,
                  barrier=str(tmp_path / "barrier"), parties=2)
    runs = {"a": (GEOMETRY,), "b": (GEOMETRY, STEERING)}
    start = time.monotonic()
    procs = {name: subprocess.Popen(command(cache, report=f"{name}.json", claims=claims),
                                    cwd=tmp_path, env=environment(fault), text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, claims in runs.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        results[name] = finished(tmp_path, f"{name}.json", proc.returncode, out, err,
                                 time.monotonic() - start)

    for name, alone in (("a", reference), ("b", reference_both)):
        result = results[name]
        assert result.ret == alone.result.ret, result.text
        assert result.report is not None and result.report["complete"], result.text
        assert result.verdicts() == alone.result.verdicts()  # as if each ran alone
        assert "CacheWarning" not in result.text  # no half-written or mixed entry was read

    writers: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for record in read_log(log):
        writers[record["path"]][record["pid"]].append(record["content"])
    for path, by_pid in writers.items():  # each run computed each entry at most once
        assert all(len(contents) == 1 for contents in by_pid.values()), (path, by_pid)
    both = {path: by_pid for path, by_pid in writers.items() if len(by_pid) == 2}
    assert both, "the two runs never wrote the same entry: they did not overlap"
    for path, by_pid in both.items():  # and where both computed it, identically
        assert len({c for contents in by_pid.values() for c in contents}) == 1, (path, by_pid)

    assert temporary_files(cache) == []
    stored = entries(cache)  # every entry on disk loads: none is torn
    assert stored == entries(reference_both.cache)
