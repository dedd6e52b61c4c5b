"""The on-disk store of arrays and small JSON results: :class:`ArrayCache`.

Any problem on disk is a :class:`CacheWarning` plus a recompute, never a failed run.

Layout under ``root``::

    .gitignore                          written when the cache creates root
    <namespace>/<key[:2]>/<key>.npy     the array, numpy's .npy format
    <namespace>/<key[:2]>/<key>.json    key, shape, dtype, sha256, created, finite, meta
    <namespace>/<key[:2]>/<key>.result.json   small JSON results (store_json)

Concurrent writers of one key are safe without locks: each file is replaced
atomically, the array file is written before its metadata, and a reader that
pairs metadata from one writer with an array from another sees a sha256
mismatch and recomputes instead of returning a mix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from refusal_checks.cache.files import (
    CACHE_FORMAT,
    JsonValue,
    array_sha256,
    canonical_json,
    check_jsonable,
    clear_directory,
    current_identity,
    dtype_record,
    entries_in,
    Identity,
    identity_of,
    key_of,
    utc_now,
    write_atomic,
    unstored_message,
)

_NAME = re.compile(r"[A-Za-z0-9_-]+")  # no dots: keys must not collide with our suffixes
_GITIGNORE = "# Cache written by refusal_checks (activations and results); safe to delete.\n*\n"


# Reads of an entry that another process keeps replacing, before it counts as a miss.
_READ_ATTEMPTS = 3


class CacheWarning(UserWarning):
    """A cache entry could not be read or written; the value is recomputed instead."""


class _BadEntry(Exception):
    """An entry on disk cannot be trusted; the message says why."""


class ArrayCache:
    """Arrays and small JSON results on disk, keyed by :func:`cache_key`.

    Args:
        root: Cache root, e.g. :func:`default_cache_dir`. Created on first write,
            with a ``.gitignore`` of ``*`` when the cache creates it.
        namespace: Subdirectory for this kind of value (letters, digits, ``_``, ``-``).

    Raises:
        ValueError: ``namespace`` is not a plain directory name.
    """

    def __init__(self, root: Path, namespace: str = "activations") -> None:
        if not _NAME.fullmatch(namespace):
            raise ValueError(
                f"cache namespace {namespace!r} must be letters, digits, '_' or '-' "
                "(it becomes a directory name)."
            )
        self.root = Path(root)
        self.namespace = namespace
        self.directory = self.root / namespace

    def __repr__(self) -> str:
        return f"ArrayCache({str(self.root)!r}, namespace={self.namespace!r})"

    # -- paths and housekeeping -------------------------------------------------

    def _shard(self, key: str) -> Path:
        if not isinstance(key, str) or not _NAME.fullmatch(key):
            raise ValueError(
                f"cache key {key!r} must be letters, digits, '_' or '-'; build keys with cache_key()."
            )
        return self.directory / key[:2]

    def _ensure_dirs(self, shard: Path) -> None:
        # Like hypothesis, write the .gitignore only into a root we create, so that
        # pointing the cache at an existing folder never hides its files from git.
        if not self.root.is_dir():
            self.root.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.root.mkdir()
            except FileExistsError:
                pass  # another process created it first, and writes the .gitignore
            else:
                write_atomic(self.root / ".gitignore", lambda f: f.write(_GITIGNORE.encode()))
        shard.mkdir(parents=True, exist_ok=True)

    def _warn(self, message: str) -> None:
        warnings.warn(CacheWarning(message), stacklevel=4)

    def _discard(self, key: str, problem: str, seen: dict[Path, Identity | None]) -> bool:
        """Warn about a bad entry and delete its files; return False, doing neither, when
        another process replaced or removed a file since it was read.

        A read that overlaps another process's store or discard of the same key (two
        pytest-xdist workers filling one cache, a finished run removing its resume parts)
        can see the metadata of one version and the array of another, or of none. That is
        not a bad entry: the caller reads again.
        """
        if any(ident is not None and current_identity(path) != ident for path, ident in seen.items()):
            return False
        for path in seen:
            with contextlib.suppress(OSError):
                path.unlink()
        self._warn(f"cache entry {key} in {self.directory}: {problem}. Deleted it; "
                   "the value will be recomputed.")
        return True

    @staticmethod
    def _read_json(path: Path, seen: dict[Path, Identity | None]) -> dict[str, object] | None:
        """Read a JSON object; None if absent, _BadEntry if unreadable or not an object."""
        try:
            with open(path, "rb") as handle:
                seen[path] = identity_of(os.fstat(handle.fileno()))
                raw = handle.read()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise _BadEntry(f"{path.name} cannot be read ({error})") from error
        try:
            doc = json.loads(raw)
        except ValueError as error:  # also UnicodeDecodeError
            raise _BadEntry(f"{path.name} is not valid JSON ({error})") from error
        if not isinstance(doc, dict):
            raise _BadEntry(f"{path.name} holds a {type(doc).__name__}, expected a JSON object")
        if doc.get("key") != key_of(path):
            raise _BadEntry(f"{path.name} is for key {doc.get('key')!r}, expected {key_of(path)!r}")
        if doc.get("format") != CACHE_FORMAT:
            raise _BadEntry(f"{path.name} has cache format {doc.get('format')!r}, expected {CACHE_FORMAT}")
        return doc

    # -- arrays ---------------------------------------------------------------

    def load(
        self,
        key: str,
        expected_shape: tuple[int, ...] | None = None,
        expected_dtype: str | np.dtype | None = None,
    ) -> np.ndarray | None:
        """Return the cached array, or None on a miss or a bad entry.

        A bad entry (unreadable or garbage files, a truncated array, a shape,
        dtype or sha256 that disagrees with the metadata or with what the caller
        expects) gives a :class:`CacheWarning` saying what was expected and what
        was found, and is deleted. An array file without metadata counts as a
        plain miss: it may be a store in progress. A read that another process's
        store or discard of the same key overlapped is read again, quietly: that
        entry is not bad, only busy.

        Args:
            key: From :func:`cache_key`.
            expected_shape: Shape the caller needs, e.g. ``(prompt, layer, d_model)``.
            expected_dtype: dtype the caller needs: a np.dtype or any string numpy accepts.

        Raises:
            ValueError: ``key`` is not a valid key.
            TypeError: ``expected_dtype`` is not a dtype numpy knows.
        """
        shard = self._shard(key)
        want_dtype = None if expected_dtype is None else np.dtype(expected_dtype)
        want_shape = None if expected_shape is None else tuple(int(n) for n in expected_shape)
        for _ in range(_READ_ATTEMPTS):
            seen: dict[Path, Identity | None] = {}
            try:
                return self._load_once(shard, key, want_shape, want_dtype, seen)
            except _BadEntry as bad:
                if self._discard(key, str(bad), seen):
                    return None
        return None  # rewritten under every read: a miss; the caller computes and stores

    def _load_once(self, shard: Path, key: str, want_shape: tuple[int, ...] | None,
                   want_dtype: np.dtype | None, seen: dict[Path, Identity | None]) -> np.ndarray | None:
        """One read of an array entry; raises _BadEntry for anything but a hit or a miss."""
        meta_path, npy_path = shard / f"{key}.json", shard / f"{key}.npy"
        seen.update({meta_path: None, npy_path: None})
        doc = self._read_json(meta_path, seen)
        if doc is None:
            return None
        try:
            shape = tuple(int(n) for n in doc["shape"])  # type: ignore[attr-defined]
            dtype = doc["dtype"]
            sha = str(doc["sha256"])
        except (KeyError, TypeError, ValueError) as error:
            raise _BadEntry(f"{meta_path.name} lacks a valid shape, dtype or sha256 ({error!r})") from error
        if want_shape is not None and shape != want_shape:
            raise _BadEntry(f"the caller expected shape {want_shape} but the entry has shape {shape}")
        try:
            with open(npy_path, "rb") as handle:
                seen[npy_path] = identity_of(os.fstat(handle.fileno()))
                array = np.lib.format.read_array(handle, allow_pickle=False)
        except FileNotFoundError as error:
            raise _BadEntry(f"its metadata exists but {npy_path.name} is missing") from error
        except Exception as error:  # numpy raises ValueError, OSError, EOFError...; all mean "bad"
            raise _BadEntry(f"{npy_path.name} cannot be read ({error})") from error
        if array.shape != shape or dtype_record(array.dtype) != dtype:
            raise _BadEntry(
                f"the metadata says shape {shape} dtype {dtype!r} but {npy_path.name} holds "
                f"shape {array.shape} dtype {dtype_record(array.dtype)!r}"
            )
        if want_dtype is not None and array.dtype != want_dtype:
            raise _BadEntry(f"the caller expected dtype {want_dtype} but the entry has dtype {array.dtype}")
        actual = array_sha256(array)
        if actual != sha:
            raise _BadEntry(f"the metadata says sha256 {sha} but the array's sha256 is {actual}")
        return array

    def store(self, key: str, array: np.ndarray, meta: Mapping[str, object] | None = None) -> bool:
        """Write ``array`` under ``key``; True once it is on disk. A disk problem (a full
        disk, a read-only folder) is a warning and False, not an error.

        The ``.npy`` is written before the ``.json`` (key, format, shape, dtype,
        sha256 of the C-order bytes, created, ``finite``, and ``meta``), each
        atomically. Arrays with NaN or inf are stored, with ``finite: false``.

        Args:
            key: From :func:`cache_key`.
            array: Any array without Python objects in it.
            meta: JSON data to keep next to the array (stored under ``"meta"``).

        Raises:
            ValueError: ``key`` is not a valid key.
            TypeError: ``array`` holds Python objects, or ``meta`` is not plain JSON data.
        """
        shard = self._shard(key)
        data = np.asarray(array)
        if data.dtype.hasobject:
            raise TypeError(
                f"cannot cache an array of dtype {data.dtype} under {key}: it holds Python "
                "objects, which .npy can only store with pickle. Convert it to a numeric dtype."
            )
        if not data.flags.c_contiguous:
            data = data.copy(order="C")
        user_meta = dict(meta or {})
        check_jsonable(user_meta, "store() meta")
        finite = bool(np.isfinite(data).all()) if data.dtype.kind in "fc" else True
        doc = {
            "key": key,
            "format": CACHE_FORMAT,
            "shape": list(data.shape),
            "dtype": dtype_record(data.dtype),
            "sha256": array_sha256(data),
            "finite": finite,
            "created": utc_now(),
            "meta": user_meta,
        }
        encoded = canonical_json(doc).encode("ascii")
        try:
            self._ensure_dirs(shard)
            write_atomic(shard / f"{key}.npy", lambda f: np.lib.format.write_array(f, data, allow_pickle=False))
            write_atomic(shard / f"{key}.json", lambda f: f.write(encoded))
        except OSError as error:
            self._warn(unstored_message(self.directory, error))
            return False
        return True

    def get_or_compute(
        self,
        key: str,
        compute: Callable[[], np.ndarray],
        meta: Mapping[str, object] | None = None,
        expected_shape: tuple[int, ...] | None = None,
        expected_dtype: str | np.dtype | None = None,
    ) -> tuple[np.ndarray, bool]:
        """Load ``key``, or compute, store and return it.

        Args:
            key: From :func:`cache_key`.
            compute: Called with no arguments on a miss; nothing is stored if it raises.
            meta: Passed to :meth:`store`.
            expected_shape: Passed to :meth:`load`; a computed array must match it too.
            expected_dtype: Passed to :meth:`load`.

        Returns:
            ``(array, hit)``, where ``hit`` says whether it came from disk.

        Raises:
            ValueError: The computed array's shape differs from ``expected_shape``
                (storing it would make every later load a miss).
        """
        cached = self.load(key, expected_shape, expected_dtype)
        if cached is not None:
            return cached, True
        array = np.asarray(compute())
        if expected_shape is not None and array.shape != tuple(expected_shape):
            raise ValueError(
                f"compute() for cache key {key} returned shape {array.shape}, but the caller "
                f"expects {tuple(expected_shape)}; fix expected_shape or the computation."
            )
        self.store(key, array, meta)
        return array, False

    # -- small JSON results ---------------------------------------------------

    def load_json(self, key: str) -> dict[str, JsonValue] | list[JsonValue] | None:
        """Return a result stored by :meth:`store_json`, or None on a miss or a bad entry.

        A bad entry (unreadable, not JSON, wrong key, sha256 mismatch) warns and is deleted.
        Tuples come back as lists.
        """
        path = self._shard(key) / f"{key}.result.json"
        seen: dict[Path, Identity | None] = {path: None}
        try:
            doc = self._read_json(path, seen)
            if doc is None:
                return None
            payload = doc.get("payload")
            actual = hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()
            if actual != doc.get("sha256"):
                raise _BadEntry(f"{path.name} says sha256 {doc.get('sha256')} but its payload hashes to {actual}")
            if not isinstance(payload, (dict, list)):
                raise _BadEntry(f"{path.name} holds a {type(payload).__name__}, expected a dict or list")
        except _BadEntry as bad:
            self._discard(key, str(bad), seen)
            return None
        return payload

    def store_json(self, key: str, obj: Mapping[str, object] | list[object] | tuple[object, ...]) -> bool:
        """Write a small JSON result atomically, with a sha256 of its canonical JSON; True
        once it is on disk, as :meth:`store`.

        Raises:
            ValueError: ``key`` is not a valid key.
            TypeError: ``obj`` is not a dict or list of plain JSON data.
        """
        shard = self._shard(key)
        if not isinstance(obj, (dict, list, tuple)):
            raise TypeError(f"store_json() takes a dict or list, got {type(obj).__name__}.")
        check_jsonable(obj, "store_json() value")
        payload = json.loads(canonical_json(obj))  # tuples -> lists, as they load back
        doc = {
            "key": key,
            "format": CACHE_FORMAT,
            "created": utc_now(),
            "sha256": hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest(),
            "payload": payload,
        }
        encoded = canonical_json(doc).encode("ascii")
        try:
            self._ensure_dirs(shard)
            write_atomic(shard / f"{key}.result.json", lambda f: f.write(encoded))
        except OSError as error:
            self._warn(unstored_message(self.directory, error))
            return False
        return True

    # -- inspection -------------------------------------------------------------

    def entries(self) -> list[str]:
        """Keys with any file in this namespace, sorted (arrays and JSON results alike)."""
        return sorted(entries_in(self.directory))

    def size_bytes(self) -> int:
        """Bytes used by this namespace's files, temporary files included."""
        total = 0
        if self.directory.is_dir():
            for path in self.directory.rglob("*"):
                with contextlib.suppress(OSError):
                    if path.is_file():
                        total += path.stat().st_size
        return total

    def discard(self, key: str) -> None:
        """Delete ``key``'s files (array, metadata, JSON result), if any; never raises for
        a file that is already gone (another process may have discarded it first)."""
        shard = self._shard(key)
        for suffix in (".json", ".npy", ".result.json"):  # metadata first: no half entries
            with contextlib.suppress(OSError):
                (shard / f"{key}{suffix}").unlink()

    def clear(self) -> int:
        """Remove this namespace's entries.

        Returns:
            How many entries (distinct keys) were removed.
        """
        return clear_directory(self.directory)
