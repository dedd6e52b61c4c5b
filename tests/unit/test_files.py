"""Temporary files: unique names, atomic replace, cleaned on failure; write checks up front."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from refusal_checks.core import files
from refusal_checks.models.loading import assemble
from refusal_checks.models.registry import STALE_AFTER_S
from tests.faults.plant import Fault, plant


def test_two_writers_of_one_report_use_different_temporary_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    real_replace = os.replace

    def replace(src: str, dst: str | Path) -> None:
        seen.append(src)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "out" / "report.json"
    files.write_text_atomic(target, "first")
    files.write_text_atomic(target, "second")

    assert len(set(seen)) == 2, seen
    assert {Path(s).parent for s in seen} == {target.parent}  # same folder: rename is atomic
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_a_failed_write_leaves_the_old_report_and_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")

    def broken(src: str, dst: str | Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="No space left"):
        files.write_text_atomic(target, "new")

    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_unwritable_finds_what_stops_root_too_and_creates_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")

    assert files.unwritable(tmp_path / "new" / "deeper" / "report.json") is None
    assert files.unwritable(tmp_path / "cache", folder=True) is None
    assert files.unwritable(blocker / "report.json") == f"{blocker} is a file, not a folder"
    assert files.unwritable(blocker / "x" / "cache", folder=True) == \
        f"{blocker} is a file, not a folder"
    assert files.unwritable(tmp_path) == f"{tmp_path} is a folder, not a file"
    assert files.unwritable(blocker, folder=True) == f"{blocker} is a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize(("error", "op", "reason"), [
    ("EACCES", "create", "refuses new files to this user (no write permission)"),
    ("EROFS", "create", "is on a read-only file system"),
    ("ENOSPC", "write", "is on a full disk (no space left on the device)"),
])
def test_unwritable_tries_a_write_so_it_holds_for_root_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: str, op: str,
        reason: str) -> None:
    # os.access grants root every folder; the answer the kernel gives a write is planted.
    target = tmp_path / "mount"
    target.mkdir()
    plant(monkeypatch, Fault(str(target), error, [op]))

    assert files.unwritable(target / "sub" / "report.json") == f"{target / 'sub'} {reason}"
    assert files.unwritable(target, folder=True) == f"{target} {reason}"
    monkeypatch.undo()
    assert list(target.iterdir()) == []  # the probe and the folder it made are gone


def _parts(tmp_path: Path) -> list[Path]:
    parts = []
    for i, payload in enumerate((b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5)):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(payload)
        parts.append(part)
    return parts


def test_assemble_concatenates_the_parts_under_the_digest_name(tmp_path: Path) -> None:
    parts = _parts(tmp_path)
    target = assemble(parts, "ab" * 32, tmp_path / "models")

    assert target == tmp_path / "models" / f"{'ab' * 12}.gguf"
    assert target.read_bytes() == b"".join(p.read_bytes() for p in parts)
    assert [p.name for p in target.parent.iterdir()] == [target.name]


@pytest.mark.parametrize("failure", [OSError, KeyboardInterrupt])
def test_an_interrupted_assembly_leaves_no_part_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: type[BaseException]) -> None:
    parts = _parts(tmp_path)
    models = tmp_path / "models"
    real_open = open

    def failing_open(path: object, *args: object, **kwargs: object) -> object:
        if path == parts[2]:  # after two parts were copied
            raise failure()
        return real_open(path, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(failure):
        assemble(parts, "cd" * 32, models)

    assert list(models.iterdir()) == []


def test_part_files_of_crashed_runs_are_removed_but_live_ones_kept(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    stale, live = models / ".old-crash.part", models / ".busy-writer.part"
    stale.write_bytes(b"x" * 100)
    live.write_bytes(b"y" * 100)
    long_ago = time.time() - STALE_AFTER_S - 60
    os.utime(stale, (long_ago, long_ago))

    target = assemble(_parts(tmp_path), "ef" * 32, models)

    assert not stale.exists()
    assert live.exists()  # another process may still be writing it
    assert sorted(p.name for p in models.iterdir()) == sorted([live.name, target.name])
