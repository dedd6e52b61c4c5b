"""Content-keyed on-disk cache for activations and small results: keys, location, clearing.

Like hypothesis's example database, this is a cache you never need to
invalidate by hand: keys are hashes of everything that determines the value
(:func:`cache_key`), every file is written to a temporary name and moved into
place atomically, the metadata carries a sha256 of the data, and any problem
on disk is a :class:`~refusal_checks.cache.store.CacheWarning` plus a recompute, never a
failed run.

This module makes keys, says where the cache lives (:func:`default_cache_dir`) and
clears it (:func:`clear_results`, :func:`clear_cache`). The store itself, with its
layout on disk, is :class:`refusal_checks.cache.store.ArrayCache`; the format's building
blocks are in :mod:`refusal_checks.cache.files`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from refusal_checks.cache.files import (
    CACHE_FORMAT,
    canonical_json,
    check_jsonable,
    clear_directory,
)
from refusal_checks.cache.store import ArrayCache

_RESERVED_PARTS = ("format", "library")


def default_cache_dir() -> Path:
    """Where the cache lives unless a caller says otherwise.

    Returns:
        ``$REFUSAL_CHECKS_CACHE`` if set and non-empty, else
        ``$XDG_CACHE_HOME/refusal_checks`` if that is an absolute path (the XDG spec
        says to ignore relative ones), else ``~/.cache/refusal_checks``.
    """
    explicit = os.environ.get("REFUSAL_CHECKS_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "refusal_checks"
    return Path.home() / ".cache" / "refusal_checks"


def cache_key(**parts: object) -> str:
    """Hash everything that determines a cached value into a key.

    The key is ``sha256(canonical_json(parts | {"format": CACHE_FORMAT, "library": version}))``
    with sorted keys and no whitespace, so dict order does not matter and tuples
    hash like lists.

    Args:
        **parts: What the value depends on (model id, layer, prompt digest...).
            Values may be str, int, float, bool, None, or lists, tuples and
            str-keyed dicts of those.

    Returns:
        64 lowercase hex characters.

    Raises:
        TypeError: A value (or something nested in it) is of another type; the
            message names the part.
        ValueError: A part is named ``format`` or ``library``, which the key adds itself.
    """
    import refusal_checks

    for name in _RESERVED_PARTS:
        if name in parts:
            raise ValueError(
                f"cache_key part {name!r} is reserved: the key always includes the cache "
                f"format and library version. Rename the part (e.g. {name}_name=...)."
            )
    for name, value in parts.items():
        check_jsonable(value, f"cache_key part {name!r}")
    version = getattr(refusal_checks, "__version__", None) or "0"
    payload = {**parts, "format": CACHE_FORMAT, "library": version}
    return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()


# What a run computes and may recompute at will; converted models (root/models) are not
# results and are kept by the clearing commands.
RESULT_NAMESPACES: tuple[str, ...] = ("activations", "replies", "scores")


def clear_results(root: Path) -> int:
    """Remove cached activations, replies and scores under ``root``; keep converted models.

    Returns:
        How many entries were removed.
    """
    return sum(ArrayCache(Path(root), namespace).clear() for namespace in RESULT_NAMESPACES)


def clear_cache(root: Path) -> int:
    """Remove every namespace under ``root``, keeping ``root`` and its ``.gitignore``.

    Args:
        root: The cache root, as passed to :class:`ArrayCache`.

    Returns:
        How many entries (distinct keys, per namespace) were removed.
    """
    root = Path(root)
    if not root.is_dir():
        return 0
    return sum(
        clear_directory(child)
        for child in root.iterdir()
        if child.is_dir() and not child.is_symlink() and not child.name.startswith(".")
    )
