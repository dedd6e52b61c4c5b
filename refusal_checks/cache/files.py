"""The on-disk cache's building blocks: format version, canonical JSON, hashing, files.

:data:`CACHE_FORMAT` versions the layout and is part of every key; values are checked to be
plain JSON data (:func:`check_jsonable`) and serialised canonically
(:func:`canonical_json`); arrays are hashed without copying (:func:`array_sha256`);
every file is written to a temporary name and moved into place atomically
(:func:`write_atomic`); a file version is identified by device, inode and mtime
(:func:`identity_of`), so a reader can tell whether a writer replaced it meanwhile.
:mod:`refusal_checks.cache.keys` and :mod:`refusal_checks.cache.store` build on these.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

import numpy as np

CACHE_FORMAT = 1
"""Version of the on-disk layout; bump it when the layout changes. Part of every key."""

JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]


def check_jsonable(value: object, where: str) -> None:
    """Raise TypeError unless ``value`` is plain JSON data (tuples allowed)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_jsonable(item, f"{where}[{index}]")
        return
    if isinstance(value, dict):
        for name, item in value.items():
            if not isinstance(name, str):
                raise TypeError(
                    f"{where} has a dict key {name!r} of type {type(name).__name__}; "
                    "only str keys are allowed (JSON would turn it into a string)."
                )
            check_jsonable(item, f"{where}[{name!r}]")
        return
    raise TypeError(
        f"{where} is {value!r} of type {type(value).__name__}; allowed: str, int, float, "
        "bool, None, and lists, tuples or str-keyed dicts of those. Convert it first "
        "(int(x), float(x), array.tolist(), str(path))."
    )


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def dtype_record(dtype: np.dtype) -> JsonValue:
    """The dtype as the .npy header spells it ("<f4"; a list for structured dtypes), as JSON data."""
    return json.loads(canonical_json(np.lib.format.dtype_to_descr(dtype)))


def array_sha256(array: np.ndarray) -> str:
    """sha256 of ``array.tobytes()`` (C order) without copying contiguous arrays."""
    try:
        view = memoryview(array.reshape(-1).view(np.uint8))
    except (TypeError, ValueError):  # dtypes the buffer protocol rejects (datetime, ...)
        view = memoryview(array.tobytes())
    return hashlib.sha256(view).hexdigest()


Identity = tuple[int, int, int]


def identity_of(stat: os.stat_result) -> Identity:
    """Which file version this is: os.replace gives every write a new inode."""
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns)


def current_identity(path: Path) -> Identity | None:
    try:
        return identity_of(os.stat(path))
    except OSError:
        return None


def key_of(path: Path) -> str:
    """The cache key a cache file belongs to (its name up to the first dot)."""
    return path.name.split(".", 1)[0]


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_atomic(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write to a temporary file next to ``target`` and move it into place.

    No fsync: readers only need the rename to be atomic, and a file torn by a
    power cut fails its sha256 check and is recomputed.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def unstored_message(directory: Path, error: OSError) -> str:
    """The warning for an entry the disk refused: the same text for every entry a full
    disk or a read-only mount refuses (no key, no temporary file name), so a warnings
    summary shows it once per place, not once per entry of a long run."""
    reason = f"[Errno {error.errno}] {error.strerror}" if error.strerror else str(error)
    return (f"could not store a cache entry in {directory}: {reason}. The value is used but "
            "not cached. Free disk space, make the directory writable, or set "
            "REFUSAL_CHECKS_CACHE (--refusal-cache-dir in pytest) to another directory.")


def entries_in(directory: Path) -> set[str]:
    found: set[str] = set()
    if not directory.is_dir():
        return found
    for shard in directory.iterdir():
        if shard.is_dir():
            found.update(f.name.split(".", 1)[0] for f in shard.iterdir() if not f.name.startswith("."))
    return found


def clear_directory(directory: Path) -> int:
    before = entries_in(directory)
    shutil.rmtree(directory, ignore_errors=True)
    return len(before - entries_in(directory))
