"""The cache on a read-only mount.

At the start of a run it is refused with the fix (tests/faults/test_writable.py): a run
that cannot keep its entries loses all its model work when it is killed, and every rerun
repeats it, so it is better told before the first forward pass; the fix is one option
(--refusal-cache-dir on a writable disk, or a writable copy of a read-only cache).
A mount that turns read-only once the run is under way (a file system remounted
read-only after an error, a volume detached) costs the cache, not the run: what is
cached is served, the rest is computed in memory, with a warning naming the fix.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from refusal_checks.cache.store import ArrayCache
from tests.faults.conftest import Reference
from tests.faults.plant import Fault
from tests.faults.runs import make_suite, run


def _files(root: Path) -> dict[str, int]:
    """Each file under ``root`` with its inode: a replaced file gets a new one."""
    return {str(p.relative_to(root)): p.stat().st_ino for p in root.rglob("*") if p.is_file()}


def test_a_cache_mount_that_turns_read_only_mid_run_serves_what_it_holds_and_computes_the_rest(
        tmp_path: Path, reference: Reference) -> None:
    make_suite(tmp_path)
    cache = tmp_path / "cache"
    shutil.copytree(reference.cache, cache)
    removed = ArrayCache(cache, "replies").clear()  # the replies are not cached yet
    assert removed > 0
    before = _files(cache)
    fault = Fault(str(cache), "EROFS", ["mkdir", "create", "replace", "remove"],
                  armed="tests")

    result = run(tmp_path, cache, fault=fault)

    assert result.ret == reference.result.ret, result.text
    assert result.verdicts() == reference.result.verdicts()
    info = result.report["models"]["synthetic:distinct"]
    assert info["activation_cache"]["hits"] == 7 and info["activation_cache"]["misses"] == 0
    assert (f"CacheWarning: could not store a cache entry in {cache / 'replies'}: [Errno 30] "
            "Read-only file system. The value is used but not cached. Free disk space, make "
            "the directory writable, or set REFUSAL_CHECKS_CACHE") in result.out
    assert _files(cache) == before  # nothing written, nothing deleted
