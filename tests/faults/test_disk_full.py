"""A disk that fills up during a run: while a cache entry is written, and at the report.

The disk is full from some write on (ENOSPC, half of the bytes landing first, as a real
full disk does; tests/faults/plant.py), after the start-up check found room. A cache entry
that cannot be written is a warning naming the fix, and the run goes on from memory; no
half-written entry is ever served, and the entries finished before are kept and served
to the next run. A report that cannot be written is one message with the fix and exit
status 4 (no traceback); the old report stays, and the rerun costs no model work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from refusal_checks.cache.keys import cache_key
from refusal_checks.cache.store import ArrayCache, CacheWarning
from refusal_checks.prompts.sets import PromptSet
from refusal_checks.cache.resume import ChunkStats, chunked_array
from tests.faults.conftest import Reference
from tests.faults.plant import Fault, plant
from tests.faults.runs import entries, make_suite, run, temporary_files
from tests.plugin.test_plugin import assert_no_traceback

FIX = "Free disk space, make the directory writable, or set REFUSAL_CHECKS_CACHE"


def test_a_batch_entry_the_full_disk_cut_short_is_never_served_and_the_finished_ones_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The library's view: a prompt set of four batches, the disk full from the third."""
    cache = ArrayCache(tmp_path / "cache")
    prompts = PromptSet("a/refuse", "a", "refuse", tuple(f"p{i}" for i in range(8)), "test")
    key = cache_key(kind="test", set=prompts.name)
    computed: list[tuple[str, ...]] = []

    def compute(sub: PromptSet, progress: object) -> np.ndarray:
        computed.append(sub.texts)
        return np.array([[float(t[1:])] * 3 for t in sub.texts], dtype=np.float32)

    # The cache's .gitignore and two batches (an .npy and a .json each) are written, then
    # every file meets ENOSPC.
    plant(monkeypatch, Fault(str(tmp_path / "cache"), "ENOSPC", ["write"], after=5))
    with pytest.warns(CacheWarning) as caught:
        whole = chunked_array(cache, key, prompts, 2, compute)
    monkeypatch.undo()

    messages = {str(w.message) for w in caught}
    assert messages == {f"could not store a cache entry in {cache.directory}: [Errno 28] No "
                        f"space left on device. The value is used but not cached. {FIX} "
                        "(--refusal-cache-dir in pytest) to another directory."}
    assert whole[:, 0].tolist() == list(range(8))  # the run goes on with the values
    assert temporary_files(tmp_path / "cache") == []  # the half-written files are gone
    assert cache.load(key) is None  # the whole set was never stored

    computed.clear()
    stats = ChunkStats()
    again = chunked_array(cache, key, prompts, 2, compute, stats=stats)  # space freed
    assert (stats.batches_cached, stats.batches_computed) == (2, 2)
    assert computed == [("p4", "p5"), ("p6", "p7")]  # the finished batches were kept
    assert again.tobytes() == whole.tobytes()


def test_a_disk_that_fills_up_mid_run_costs_the_cache_not_the_run(
        tmp_path: Path, reference: Reference) -> None:
    make_suite(tmp_path)
    cache = tmp_path / "cache"
    fault = Fault(str(cache), "ENOSPC", ["write"], after=20, armed="tests")

    full = run(tmp_path, cache, fault=fault)

    assert full.ret == reference.result.ret, full.text
    assert full.verdicts() == reference.result.verdicts()
    assert full.report is not None and full.report["complete"]
    assert "CacheWarning: could not store a cache entry in" in full.out
    assert "No space left on device" in full.out and FIX in full.out
    assert_no_traceback(pytest.RunResult(full.ret, full.out.splitlines(), [], 0))
    assert temporary_files(cache) == []
    kept = entries(cache)  # raises on any half-written entry
    assert 0 < sum(len(k) for k in kept.values()) < sum(
        len(k) for k in entries(reference.cache).values())

    rerun = run(tmp_path, cache)  # space freed: what was kept is served

    assert rerun.verdicts() == reference.result.verdicts()
    activations = rerun.report["models"]["synthetic:distinct"]["activation_cache"]
    assert activations["hits"] + activations["batches_resumed"] > 0
    assert "CacheWarning" not in rerun.text


@pytest.mark.parametrize("option", ["--refusal-json", "--refusal-html"])
def test_a_report_the_full_disk_refuses_is_one_message_with_the_fix_and_exit_4(
        tmp_path: Path, reference: Reference, option: str) -> None:
    make_suite(tmp_path)
    cache = tmp_path / "cache"
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.out").write_text("the previous report")
    fault = Fault(str(out), "ENOSPC", ["write"], armed="tests")  # room at the start

    result = run(tmp_path, cache, option, "out/r.out", fault=fault, report=None)

    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.text
    assert (f"ERROR: {option} out/r.out: could not write the report (No space left on "
            "device, ENOSPC). Free space on that disk, or pass a path on another disk, then "
            f"run the same command again: the measurements this run cached in {cache} are "
            "reused, so the rerun costs no model work.") in result.out.splitlines()
    assert_no_traceback(pytest.RunResult(result.ret, result.out.splitlines(),
                                         result.err.splitlines(), 0))
    assert [p.name for p in out.iterdir()] == ["r.out"]  # no temporary file left
    assert (out / "r.out").read_text() == "the previous report"

    rerun = run(tmp_path, cache)  # the rerun the message promises: no model work

    activations = rerun.report["models"]["synthetic:distinct"]["activation_cache"]
    assert (activations["misses"], activations["prompts_computed"]) == (0, 0)
    assert rerun.verdicts() == reference.result.verdicts()
