"""Writing files safely: unique temporary names, atomic replace, checks before a long run.

Stdlib only, so the plugin can use it at start-up without importing anything heavy.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder, then rename.

    The temporary name is unique (``tempfile.mkstemp``), so two runs writing the same
    report never share it, and it is removed when writing fails or is interrupted; a
    reader sees the old file or the new one, never half of one.

    Returns:
        ``path`` as a Path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``/`` always does)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


# Written into the probe file: an empty file needs no data block, so only a write finds a
# full disk (ext4, tmpfs, xfs refuse it at write(); NFS at close or fsync).
_PROBE_BYTES = b"\0" * 4096

_WHY = {
    errno.EROFS: "is on a read-only file system",
    errno.ENOSPC: "is on a full disk (no space left on the device)",
    errno.EDQUOT: "is on a disk where this user's quota is used up",
    errno.EACCES: "refuses new files to this user (no write permission)",
    errno.EPERM: "refuses new files (operation not permitted)",
}


def _failed(error: OSError, where: Path, action: str, *, inside: Path | None = None) -> str:
    """The reason: what ``action`` on ``where`` met. A known cause names the folder it
    concerns (``inside``: the existing folder a new one was to go in), never the probe
    file, which is gone by then."""
    why = _WHY.get(error.errno or 0)
    if why:
        return f"{inside or where} {why}"
    return f"{action} {where} failed ({error.strerror or error})"


def _probe(folder: Path) -> str | None:
    """Create ``folder`` (with missing parents), write a file in it, then remove all that.

    Trying is the only answer that holds for root (``os.access`` grants root every folder),
    read-only mounts, full disks, quotas and file systems that refuse new files (/proc).
    Leaves nothing behind: the probe file is removed, and so are the folders it made.
    """
    made: list[Path] = []
    try:
        for missing in reversed([p for p in (folder, *folder.parents) if not os.path.lexists(p)]):
            try:
                os.mkdir(missing)
            except FileExistsError:  # another process made it meanwhile: not ours to remove
                continue
            except OSError as error:
                return _failed(error, missing, "creating the folder", inside=missing.parent)
            made.append(missing)
        probe = folder / f".refusal_checks-probe-{os.getpid()}-{time.monotonic_ns()}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            return _failed(error, folder, "creating a file in")
        try:
            try:
                os.write(fd, _PROBE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as error:
            return _failed(error, folder, "writing a file in")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(probe)
        return None
    finally:
        for folder_made in reversed(made):
            with contextlib.suppress(OSError):  # not empty: another process uses it now
                os.rmdir(folder_made)


def unwritable(path: str | Path, *, folder: bool = False) -> str | None:
    """Why ``path`` could not be written, or None when it can; leaves nothing behind.

    Checked by trying, the way the write will go: the folder that the file (or, with
    ``folder``, the files) will go into is created if missing, a small file is written
    and fsynced in it, and all of that is removed again (:func:`_probe`).

    Args:
        path: The file or folder that a later step will write.
        folder: Whether ``path`` is a folder (the cache) rather than a file (a report).

    Returns:
        A short reason ("... is a file, not a folder", "... is on a read-only file
        system"), or None.
    """
    target = Path(path).expanduser().absolute()
    if target.is_dir() and not folder:
        return f"{target} is a folder, not a file"
    if os.path.lexists(target) and not target.is_dir() and folder:
        return f"{target} is a file, not a folder"
    where = target if folder else target.parent
    existing = _nearest_existing(where)
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    return _probe(where)


def remove_stale(folder: Path, pattern: str, older_than_s: float) -> list[Path]:
    """Delete files or folders matching ``pattern`` in ``folder`` not modified for a while.

    For temporary files that a crashed or killed run left behind. A writer that is still
    working keeps touching its file, so anything untouched for ``older_than_s`` seconds
    belongs to a run that ended; younger ones may be another process's work in progress.

    Returns:
        The paths removed.
    """
    import shutil

    removed = []
    now = time.time()
    try:
        candidates = list(folder.glob(pattern))
    except OSError:
        return removed
    for candidate in candidates:
        try:
            if now - candidate.lstat().st_mtime < older_than_s:
                continue
            if candidate.is_dir() and not candidate.is_symlink():
                shutil.rmtree(candidate)
            else:
                candidate.unlink()
            removed.append(candidate)
        except OSError:  # gone already, or not ours to delete: leave it
            continue
    return removed
