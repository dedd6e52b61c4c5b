"""Writability is checked by trying, before any model work, and holds for root.

``os.access`` answers yes to root for every folder, so a report path on /proc, on a
read-only mount or on a full disk used to pass the start-up check, and the run failed only
when it wrote the report, after all its model work. Now the folder each report and the
cache go into gets a probe file written and removed, and whatever the kernel answers is a
usage error with the fix. /proc is real; the read-only mount and the full disk are the
kernel's answers planted at the probe's calls (tests/faults/plant.py), since CI cannot
mount anything. These tests run as root in CI and do not skip there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from refusal_checks.plugin import hooks as plugin
from refusal_checks.plugin.session import CACHE_FOLDERS
from tests.faults.plant import Fault
from tests.faults.runs import Run, make_suite, run
from tests.plugin.test_plugin import assert_no_traceback

READ_ONLY = ("EROFS", ["mkdir", "create"], "is on a read-only file system")
FULL = ("ENOSPC", ["write"], "is on a full disk (no space left on the device)")


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    make_suite(tmp_path)
    (tmp_path / "mnt").mkdir()  # where a fault is planted: a mount of its own
    return tmp_path


def assert_usage_error_before_model_work(result: Run, cache: Path, line: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.text
    assert f"ERROR: {line}" in result.err.splitlines(), result.err
    assert_no_traceback(pytest.RunResult(result.ret, result.out.splitlines(),
                                         result.err.splitlines(), 0))
    assert not cache.exists(), "nothing runs after a usage error"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
@pytest.mark.parametrize("option", [plugin.JSON_REPORT, plugin.HTML_REPORT])
def test_a_report_under_proc_is_a_usage_error_before_model_work(suite: Path,
                                                                option: str) -> None:
    """The issue's command, as root: /proc refuses new folders and files."""
    result = run(suite, suite / "cache", option, "/proc/nope/r.json", report=None)

    assert_usage_error_before_model_work(result, suite / "cache", (
        f"{option} /proc/nope/r.json: cannot write the report there (creating the folder "
        "/proc/nope failed (No such file or directory)). Pass a file path in a folder you "
        "can write to."))


@pytest.mark.parametrize(("error", "ops", "reason"), [READ_ONLY, FULL],
                         ids=["read-only-mount", "full-disk"])
@pytest.mark.parametrize("option", [plugin.JSON_REPORT, plugin.HTML_REPORT])
def test_a_report_path_the_disk_refuses_is_a_usage_error_before_model_work(
        suite: Path, option: str, error: str, ops: list[str], reason: str) -> None:
    fault = Fault(str(suite / "mnt"), error, ops)

    result = run(suite, suite / "cache", option, "mnt/out/r.json", report=None, fault=fault)

    # A read-only mount refuses the folder for the report; a full disk, the file in it.
    folder = suite / "mnt" / "out" if error == "ENOSPC" else suite / "mnt"

    assert_usage_error_before_model_work(result, suite / "cache", (
        f"{option} mnt/out/r.json: cannot write the report there ({folder} {reason}). "
        "Pass a file path in a folder you can write to."))
    assert list((suite / "mnt").iterdir()) == []  # the probe left nothing behind


@pytest.mark.parametrize(("error", "ops", "reason"), [READ_ONLY, FULL],
                         ids=["read-only-mount", "full-disk"])
@pytest.mark.parametrize("where", ["option", "default"])
def test_a_cache_the_disk_refuses_is_a_usage_error_before_model_work(
        suite: Path, where: str, error: str, ops: list[str], reason: str) -> None:
    """Refused rather than run in memory: a run that cannot keep its cache entries
    loses all its model work when it is killed, and every rerun repeats it."""
    mount = suite / "mnt"
    cache = mount / "refusal_checks"  # also the default cache under XDG_CACHE_HOME=mnt
    result = run(suite, cache if where == "option" else None, report=None,
                 fault=Fault(str(mount), error, ops), env={"XDG_CACHE_HOME": str(mount)})

    source = plugin.CACHE_DIR if where == "option" else (
        "the default location; REFUSAL_CHECKS_CACHE, XDG_CACHE_HOME and HOME choose it")
    # A full disk refuses the probe file in the cache folder; a read-only mount, the folder.
    folder = cache if error == "ENOSPC" else mount
    assert_usage_error_before_model_work(result, cache, (
        f"the refusal_checks cache {cache} (from {source}) cannot be written ({folder} "
        f"{reason}). Pass {plugin.CACHE_DIR} DIR, or set REFUSAL_CHECKS_CACHE, to a "
        "folder you can write to."))
    assert list(mount.iterdir()) == []


@pytest.mark.parametrize("folder", CACHE_FOLDERS)
def test_a_cache_folder_mounted_read_only_inside_a_writable_cache_is_refused(
        suite: Path, folder: str) -> None:
    """A namespace that is a link to another mount is tried too, not only the root."""
    cache = suite / "cache"
    (cache / folder).mkdir(parents=True)
    fault = Fault(str(cache / folder), "EROFS", ["create"])

    result = run(suite, cache, fault=fault, report=None)

    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.text
    assert (f"ERROR: the refusal_checks cache {cache} (from {plugin.CACHE_DIR}) cannot be "
            f"written ({cache / folder} is on a read-only file system). Pass "
            f"{plugin.CACHE_DIR} DIR") in result.err, result.err
    assert sorted(p.name for p in cache.iterdir()) == [folder]  # no model work was cached


def test_the_cache_folders_tried_are_the_ones_runs_write() -> None:
    from refusal_checks.cache.keys import RESULT_NAMESPACES

    assert set(CACHE_FOLDERS) == {*RESULT_NAMESPACES, "models"}
