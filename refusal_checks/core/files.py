"""Writing files safely: unique temporary names, atomic replace, checks before a long run.

Stdlib only, so the plugin can use it at start-up without importing anything heavy.
"""

from __future__ import annotations

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


def unwritable(path: str | Path, *, folder: bool = False) -> str | None:
    """Why ``path`` could not be written, or None when it can; creates nothing.

    Checked the way the write will go: a file (or, with ``folder``, a folder that files
    go into) at ``path``, with any missing parent folders created on the way.

    Args:
        path: The file or folder that a later step will write.
        folder: Whether ``path`` is a folder (the cache) rather than a file (a report).

    Returns:
        A short reason ("... is a file, not a folder"), or None.
    """
    target = Path(path).expanduser().absolute()
    if target.is_dir() and not folder:
        return f"{target} is a folder, not a file"
    if os.path.lexists(target) and not target.is_dir() and folder:
        return f"{target} is a file, not a folder"
    if folder and target.is_dir():
        return None if os.access(target, os.W_OK | os.X_OK) else \
            f"there is no write permission on {target}"
    if os.path.lexists(target):  # an existing file is replaced: its folder must be writable
        existing = target.parent
    else:
        existing = _nearest_existing(target.parent)
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"there is no write permission on {existing}"
    return None


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
