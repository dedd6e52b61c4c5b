"""Cache entries flipped or truncated on disk (bit rot, a torn copy, a full disk in an
older version): detected, warned about, recomputed; never served, never a failed run.

One bit flipped keeps the file's size and, in a reply entry, keeps it valid JSON: only
the sha256 the entry carries tells it from the right one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from tests.faults.conftest import Reference
from tests.faults.runs import entries, make_suite, run


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # the array's last element: the .npy header stays valid
    path.write_bytes(bytes(data))


def _flip_a_letter(path: Path) -> None:
    """One bit (a letter's case) inside a reply's text: still valid JSON."""
    text = path.read_text()
    at = text.index('"payload":[') + len('"payload":["')
    while not text[at].isalpha():
        at += 1
    path.write_text(text[:at] + text[at].swapcase() + text[at + 1:])


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _replies(cache: Path) -> list[Path]:
    """Reply entries (lists of replies), not the label index records beside them."""
    found = []
    for path in sorted((cache / "replies").rglob("*.result.json")):
        if isinstance(json.loads(path.read_text())["payload"], list):
            found.append(path)
    return found


def _content(path: Path) -> str:
    """What an entry holds: an array's bytes, or a result's payload (its sha256 field;
    the file also records when it was written)."""
    if path.suffix == ".npy":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return str(json.loads(path.read_text())["sha256"])


def test_flipped_and_truncated_entries_are_detected_warned_about_and_recomputed(
        tmp_path: Path, reference: Reference) -> None:
    make_suite(tmp_path)
    cache = tmp_path / "cache"
    shutil.copytree(reference.cache, cache)
    arrays, replies = sorted((cache / "activations").rglob("*.npy")), _replies(cache)
    damaged = [  # the file, what is done to it, what the warning says was found
        (arrays[0], _flip_last_byte, "the metadata says sha256 "),
        (arrays[1], _truncate, "{key}.npy cannot be read ("),
        (replies[0], _flip_a_letter, "{key}.result.json says sha256 "),
        (replies[1], _truncate, "{key}.result.json is not valid JSON ("),
    ]
    good = {path: _content(path) for path, _, _ in damaged}
    for path, damage, _ in damaged:
        size = path.stat().st_size
        damage(path)
        assert path.stat().st_size == (size if damage is not _truncate else size // 2)

    result = run(tmp_path, cache)

    assert result.ret == reference.result.ret, result.text
    assert result.verdicts() == reference.result.verdicts()
    activations = result.report["models"]["synthetic:distinct"]["activation_cache"]
    assert (activations["misses"], activations["hits"]) == (2, 5)  # the two arrays
    out = " ".join(result.out.split())
    for path, _, found in damaged:
        key = path.name.split(".", 1)[0]
        warning = (f"CacheWarning: cache entry {key} in {path.parent.parent}: "
                   f"{found.format(key=key)}")
        assert warning in out, (warning, out)
        assert _content(path) == good[path]  # recomputed and stored again, the same
    assert out.count("Deleted it; the value will be recomputed.") == len(damaged)
    assert entries(cache) == entries(reference.cache)  # every entry sound again
