"""Tests for the on-disk cache (refusal_checks.cache.keys, cache_store, cache_files): round trips,
corruption, failures, concurrency."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import tempfile
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import refusal_checks
from refusal_checks.cache import keys as cache_module
from refusal_checks.cache import files as cache_files
from refusal_checks.cache.keys import cache_key, clear_cache, default_cache_dir
from refusal_checks.cache.files import CACHE_FORMAT
from refusal_checks.cache.store import ArrayCache, CacheWarning
from tests.faults.plant import Fault, plant

# Keep hypothesis from writing .hypothesis/ into the repo while these tests run.
SETTINGS = settings(database=None, deadline=None, max_examples=60)

KEY = cache_key(model="tiny", layer=3)


@pytest.fixture
def cache(tmp_path: Path) -> ArrayCache:
    return ArrayCache(tmp_path / "cache")


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality, so NaN payloads and -0.0 count."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def files_of(cache: ArrayCache, key: str) -> tuple[Path, Path]:
    shard = cache.directory / key[:2]
    return shard / f"{key}.npy", shard / f"{key}.json"


# -- cache_key --------------------------------------------------------------------

json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
parts_strategy = st.dictionaries(
    st.text(alphabet="abcdefghij_", min_size=1, max_size=6).filter(lambda s: s not in ("format", "library")),
    json_values,
    min_size=1,
    max_size=5,
)


def test_cache_key_is_sha256_hex() -> None:
    key = cache_key(model="tiny")
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key)


@SETTINGS
@given(parts=parts_strategy)
def test_cache_key_ignores_dict_order(parts: dict[str, Any]) -> None:
    reordered = dict(reversed(list(parts.items())))
    assert cache_key(**parts) == cache_key(**reordered)


@SETTINGS
@given(parts=parts_strategy, data=st.data())
def test_cache_key_depends_on_every_part(parts: dict[str, Any], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(parts)))
    changed = {**parts, name: [parts[name]]}  # wrapping in a list always changes the JSON
    assert cache_key(**parts) != cache_key(**changed)
    dropped = {k: v for k, v in parts.items() if k != name}
    assert cache_key(**parts) != cache_key(**dropped)


def test_cache_key_distinguishes_types_and_nesting() -> None:
    assert cache_key(a=1) != cache_key(a=1.0) != cache_key(a=True)
    assert cache_key(a="1") != cache_key(a=1)
    assert cache_key(a={"b": 1}) != cache_key(a={"b": 2})
    assert cache_key(a=(1, 2)) == cache_key(a=[1, 2])  # documented: tuples hash like lists


def test_cache_key_depends_on_format_and_version(monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache_key(model="tiny")
    monkeypatch.setattr(cache_module, "CACHE_FORMAT", CACHE_FORMAT + 1)
    after_format = cache_key(model="tiny")
    # raising=False: a stale editable install can import the package as a namespace
    # package, without __init__.py's __version__ (cache_key then uses "0").
    monkeypatch.setattr(refusal_checks, "__version__", "999.0", raising=False)
    after_version = cache_key(model="tiny")
    assert len({before, after_format, after_version}) == 3


@pytest.mark.parametrize(
    ("parts", "named"),
    [
        ({"model": object()}, "'model'"),
        ({"layers": np.arange(3)}, "'layers'"),
        ({"cfg": {"seed": np.int64(3)}}, "'cfg'"),
        ({"cfg": {1: "a"}}, "'cfg'"),
        ({"path": Path("x")}, "'path'"),
        ({"items": [1, {2}]}, "'items'"),
    ],
)
def test_cache_key_rejects_unsupported_values_naming_the_part(parts: dict[str, Any], named: str) -> None:
    with pytest.raises(TypeError, match=named):
        cache_key(**parts)


def test_cache_key_rejects_reserved_part_names() -> None:
    with pytest.raises(ValueError, match="reserved"):
        cache_key(format=2)


# -- round trips --------------------------------------------------------------------


def test_miss_returns_none_without_warning(cache: ArrayCache) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load(KEY) is None
        assert cache.load_json(KEY) is None


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4),
        np.linspace(-1, 1, 24, dtype=np.float64).reshape(2, 3, 4),
        np.array(3.5),
        np.zeros((0, 5), dtype=np.int16),
        np.array([True, False]),
        np.arange(6, dtype=">i4"),
        np.array([1 + 2j, -3j], dtype=np.complex64),
        np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        np.arange(20.0).reshape(4, 5)[:, ::2],
        np.array([(1.5, [1, 2, 3]), (2.5, [4, 5, 6])], dtype=[("x", "<f4"), ("y", "<i2", (3,))]),
        np.array(["refuse", "comply"]),
        np.array(["2026-01-01", "NaT"], dtype="datetime64[ns]"),
    ],
    ids=[
        "f32", "f64-3d", "0d", "empty", "bool", "big-endian", "complex", "fortran", "strided",
        "structured", "unicode", "datetime",
    ],
)
def test_round_trip(cache: ArrayCache, array: np.ndarray) -> None:
    cache.store(KEY, array, {"layer": 3})
    loaded = cache.load(KEY, expected_shape=array.shape, expected_dtype=array.dtype)
    assert loaded is not None
    assert same_array(loaded, np.ascontiguousarray(array).reshape(array.shape))
    meta = json.loads(files_of(cache, KEY)[1].read_text())
    assert meta["key"] == KEY and meta["shape"] == list(array.shape) and meta["meta"] == {"layer": 3}
    assert meta["finite"] is True and meta["format"] == CACHE_FORMAT and meta["created"]


@SETTINGS
@given(
    array=hnp.arrays(
        dtype=st.one_of(
            hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.floating_dtypes(),
            hnp.complex_number_dtypes(), hnp.boolean_dtypes(),
        ),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
    )
)
def test_round_trip_any_array(array: np.ndarray) -> None:
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("error")
        cache = ArrayCache(Path(tmp))
        cache.store(KEY, array, {})
        loaded = cache.load(KEY, expected_shape=array.shape, expected_dtype=str(array.dtype))
        assert loaded is not None and same_array(loaded, array)


def test_non_finite_arrays_are_stored_and_flagged(cache: ArrayCache) -> None:
    array = np.array([1.0, np.nan, np.inf, -np.inf])
    cache.store(KEY, array, {})
    loaded = cache.load(KEY)
    assert loaded is not None and same_array(loaded, array)
    assert json.loads(files_of(cache, KEY)[1].read_text())["finite"] is False


def test_store_rejects_object_arrays_and_bad_meta(cache: ArrayCache) -> None:
    with pytest.raises(TypeError, match="Python objects"):
        cache.store(KEY, np.array([{}, 1], dtype=object), {})
    with pytest.raises(TypeError, match="meta"):
        cache.store(KEY, np.zeros(2), {"when": object()})
    assert cache.entries() == []


@pytest.mark.parametrize("key", ["", "../x", "a.b", "a/b", "ab cd"])
def test_invalid_keys_and_namespaces_are_rejected(cache: ArrayCache, key: str) -> None:
    with pytest.raises(ValueError, match="cache key"):
        cache.load(key)
    with pytest.raises(ValueError, match="namespace"):
        ArrayCache(cache.root, namespace=key)


def test_json_round_trip(cache: ArrayCache) -> None:
    result = {"rate": 0.25, "n": 40, "labels": ("a", "b"), "nested": {"x": None, "ok": True}}
    cache.store_json(KEY, result)
    assert cache.load_json(KEY) == {**result, "labels": ["a", "b"]}
    cache.store_json(KEY, [1, 2.5, "x"])
    assert cache.load_json(KEY) == [1, 2.5, "x"]
    with pytest.raises(TypeError):
        cache.store_json(KEY, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="store_json"):
        cache.store_json(KEY, {"a": np.float32(1)})


def test_arrays_and_json_of_one_key_live_side_by_side(cache: ArrayCache) -> None:
    cache.store(KEY, np.ones(3), {})
    cache.store_json(KEY, {"a": 1})
    loaded = cache.load(KEY)
    assert loaded is not None and same_array(loaded, np.ones(3))
    assert cache.load_json(KEY) == {"a": 1}
    assert cache.entries() == [KEY]


# -- corruption: warn, delete, recompute -------------------------------------------


def _truncate(npy: Path, meta: Path) -> None:
    npy.write_bytes(npy.read_bytes()[:-40])


def _garbage_npy(npy: Path, meta: Path) -> None:
    npy.write_bytes(b"this is not an npy file at all" * 4)


def _delete_npy(npy: Path, meta: Path) -> None:
    npy.unlink()


def _garbage_json(npy: Path, meta: Path) -> None:
    meta.write_bytes(b"{not json\xff")


def _json_list(npy: Path, meta: Path) -> None:
    meta.write_text("[1, 2]")


def _edit_meta(**changes: object) -> Callable[[Path, Path], None]:
    def edit(npy: Path, meta: Path) -> None:
        doc = json.loads(meta.read_text())
        doc.update(changes)
        meta.write_text(json.dumps(doc))

    return edit


def _flip_a_byte(npy: Path, meta: Path) -> None:
    raw = bytearray(npy.read_bytes())
    raw[-1] ^= 0xFF
    npy.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    ("corrupt", "says"),
    [
        (_truncate, "cannot be read"),
        (_garbage_npy, "cannot be read"),
        (_delete_npy, "missing"),
        (_garbage_json, "not valid JSON"),
        (_json_list, "expected a JSON object"),
        (_edit_meta(shape=[99]), "(99,)"),
        (_edit_meta(dtype="<i8"), "'<i8'"),
        (_edit_meta(sha256="0" * 64), "sha256 " + "0" * 64),
        (_edit_meta(shape="nonsense"), "valid shape"),
        (_edit_meta(key="someone-else"), "someone-else"),
        (_edit_meta(format=CACHE_FORMAT + 1), "format"),
        (_flip_a_byte, "sha256"),
    ],
    ids=[
        "truncated-npy", "garbage-npy", "deleted-npy", "garbage-json", "json-not-object",
        "wrong-shape", "wrong-dtype", "wrong-sha", "malformed-shape", "key-mismatch",
        "wrong-format", "flipped-byte",
    ],
)
def test_corrupt_entry_warns_deletes_and_misses(
    cache: ArrayCache, corrupt: Callable[[Path, Path], None], says: str
) -> None:
    cache.store(KEY, np.arange(64, dtype=np.float64).reshape(8, 8), {})
    npy, meta = files_of(cache, KEY)
    corrupt(npy, meta)
    with pytest.warns(CacheWarning) as record:
        assert cache.load(KEY) is None
    message = str(record[0].message)
    assert says in message and KEY in message and "recomputed" in message
    assert not npy.exists() and not meta.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load(KEY) is None  # now a plain miss


def test_entry_copied_under_another_key_is_rejected(cache: ArrayCache) -> None:
    other = cache_key(model="other")
    cache.store(KEY, np.ones(4), {})
    for source, target in zip(files_of(cache, KEY), files_of(cache, other)):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    with pytest.warns(CacheWarning, match=f"is for key '{KEY}'"):
        assert cache.load(other) is None
    loaded = cache.load(KEY)
    assert loaded is not None and same_array(loaded, np.ones(4))


def test_expected_shape_mismatch_names_both_shapes(cache: ArrayCache) -> None:
    cache.store(KEY, np.zeros((3, 4)), {})
    with pytest.warns(CacheWarning) as record:
        assert cache.load(KEY, expected_shape=(5,)) is None
    message = str(record[0].message)
    assert "(5,)" in message and "(3, 4)" in message
    assert cache.entries() == []


def test_expected_dtype_mismatch_names_both_dtypes(cache: ArrayCache) -> None:
    cache.store(KEY, np.zeros(3, dtype=np.float32), {})
    with pytest.warns(CacheWarning, match="float16.*float32"):
        assert cache.load(KEY, expected_dtype="float16") is None


def test_array_without_metadata_is_a_quiet_miss(cache: ArrayCache) -> None:
    """A lone .npy is what a store in progress looks like, so it is not an error."""
    cache.store(KEY, np.ones(2), {})
    files_of(cache, KEY)[1].unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load(KEY) is None


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda p: p.write_text("nope"),
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "payload": {"rate": 0.9}})),
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "key": "x"})),
    ],
    ids=["garbage", "tampered-payload", "key-mismatch"],
)
def test_corrupt_json_result_warns_and_deletes(cache: ArrayCache, corrupt: Callable[[Path], None]) -> None:
    cache.store_json(KEY, {"rate": 0.5})
    path = cache.directory / KEY[:2] / f"{KEY}.result.json"
    corrupt(path)
    with pytest.warns(CacheWarning, match="recomputed"):
        assert cache.load_json(KEY) is None
    assert not path.exists()


def test_metadata_and_array_from_different_writers_are_detected(cache: ArrayCache) -> None:
    """The state two racing writers can leave: json from writer A, npy from writer B."""
    cache.store(KEY, np.zeros((4, 4)), {"writer": "A"})
    json_from_a = files_of(cache, KEY)[1].read_bytes()
    cache.store(KEY, np.ones((4, 4)), {"writer": "B"})
    files_of(cache, KEY)[1].write_bytes(json_from_a)
    with pytest.warns(CacheWarning, match="sha256"):
        assert cache.load(KEY) is None


def test_store_writes_npy_then_json_through_atomic_replace(
    cache: ArrayCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    replaced: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def recording_replace(source: str, target: Path) -> None:
        replaced.append((Path(source), Path(target)))
        real_replace(source, target)

    monkeypatch.setattr(cache_files.os, "replace", recording_replace)
    cache.store(KEY, np.ones(3), {})
    npy, meta = files_of(cache, KEY)
    assert [target for _, target in replaced] == [cache.root / ".gitignore", npy, meta]
    for source, target in replaced:
        assert source.parent == target.parent and source.name.startswith(".")


def test_bad_entry_rewritten_meanwhile_is_not_deleted(
    cache: ArrayCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader must not delete what a concurrent writer just put in place."""
    cache.store(KEY, np.zeros(3), {})
    real_read = np.lib.format.read_array

    def read_while_another_process_stores(*args: Any, **kwargs: Any) -> np.ndarray:
        monkeypatch.setattr(np.lib.format, "read_array", real_read)
        cache.store(KEY, np.full(3, 7.0), {})
        raise ValueError("torn read")

    monkeypatch.setattr(np.lib.format, "read_array", read_while_another_process_stores)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the overlap is not a bad entry: no warning
        loaded = cache.load(KEY)
    assert loaded is not None and same_array(loaded, np.full(3, 7.0))  # read again


def test_entry_discarded_by_another_process_mid_read_is_a_quiet_miss(
    cache: ArrayCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished run removes its resume parts while another worker reads one (CI saw the
    warning this used to give, on two pytest-xdist workers filling one cache)."""
    cache.store(KEY, np.zeros(3), {})
    real_read = ArrayCache._read_json

    def read_then_another_process_discards(path: Path, seen: dict) -> Any:
        doc = real_read(path, seen)
        cache.discard(KEY)
        return doc

    monkeypatch.setattr(ArrayCache, "_read_json", staticmethod(read_then_another_process_discards))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load(KEY) is None


def test_a_bad_entry_nobody_rewrites_still_warns_and_is_deleted(cache: ArrayCache) -> None:
    cache.store(KEY, np.zeros(3), {})
    npy, _ = files_of(cache, KEY)
    npy.write_bytes(b"not an array")
    with pytest.warns(CacheWarning, match="Deleted it"):
        assert cache.load(KEY) is None
    assert not npy.exists()


# -- get_or_compute -----------------------------------------------------------------


def test_get_or_compute_computes_once_then_serves(cache: ArrayCache) -> None:
    calls: list[int] = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.arange(6.0).reshape(2, 3)

    first, hit_first = cache.get_or_compute(KEY, compute, {"why": "test"}, expected_shape=(2, 3))
    second, hit_second = cache.get_or_compute(KEY, compute, {"why": "test"}, expected_shape=(2, 3))
    assert (hit_first, hit_second) == (False, True)
    assert len(calls) == 1 and same_array(first, second)


def test_get_or_compute_stores_nothing_when_compute_raises(cache: ArrayCache) -> None:
    def compute() -> np.ndarray:
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        cache.get_or_compute(KEY, compute, {})
    assert cache.entries() == [] and cache.load(KEY) is None


def test_get_or_compute_rejects_a_result_of_the_wrong_shape(cache: ArrayCache) -> None:
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        cache.get_or_compute(KEY, lambda: np.zeros(3), {}, expected_shape=(4,))
    assert cache.entries() == []


def test_get_or_compute_recomputes_a_corrupt_entry(cache: ArrayCache) -> None:
    cache.store(KEY, np.ones(3), {})
    _garbage_npy(*files_of(cache, KEY))
    with pytest.warns(CacheWarning):
        array, hit = cache.get_or_compute(KEY, lambda: np.full(3, 2.0), {})
    assert not hit and same_array(array, np.full(3, 2.0))
    loaded = cache.load(KEY)
    assert loaded is not None and same_array(loaded, np.full(3, 2.0))


# -- write failures are warnings --------------------------------------------------


def test_store_into_read_only_directory_warns(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # What a read-only mount answers, planted: chmod does not stop root, and CI runs as root.
    root = tmp_path / "cache"
    cache = ArrayCache(root)
    cache.store(KEY, np.ones(2), {})
    plant(monkeypatch, Fault(str(root), "EROFS", ["mkdir", "create", "replace"]))
    with pytest.warns(CacheWarning, match="could not store .*Read-only file system"):
        cache.store(KEY, np.zeros(2), {})  # same shard: the temporary file fails
    with pytest.warns(CacheWarning, match="could not store"):
        cache.store(cache_key(other=1), np.zeros(2), {})  # new shard: mkdir fails
    with pytest.warns(CacheWarning, match="could not store"):
        cache.store_json(KEY, {"a": 1})
    loaded = cache.load(KEY)
    assert loaded is not None and same_array(loaded, np.ones(2))
    monkeypatch.undo()
    assert [p for p in root.rglob(".*") if p.name != ".gitignore"] == []


@pytest.mark.parametrize("failing", ["replace", "mkstemp"])
def test_disk_errors_warn_and_leave_no_temp_files(
    cache: ArrayCache, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Runs as any user, unlike the chmod test: simulate a full disk."""
    cache.store(KEY, np.ones(2), {})

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    target = cache_files.os if failing == "replace" else cache_files.tempfile
    monkeypatch.setattr(target, failing, full)
    with pytest.warns(CacheWarning, match="No space left on device"):
        cache.store(cache_key(other=1), np.zeros(2), {})
    with pytest.warns(CacheWarning, match="REFUSAL_CHECKS_CACHE"):
        cache.store_json(KEY, {"a": 1})
    monkeypatch.undo()
    leftovers = [p for p in cache.root.rglob(".*") if p.name != ".gitignore"]
    assert leftovers == []
    loaded = cache.load(KEY)
    assert loaded is not None and same_array(loaded, np.ones(2))


def test_root_that_is_a_file_warns(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.write_text("not a directory")
    with pytest.warns(CacheWarning, match="could not store"):
        ArrayCache(root).store(KEY, np.ones(2), {})


# -- housekeeping -------------------------------------------------------------------


def test_gitignore_written_on_first_write(cache: ArrayCache) -> None:
    assert not cache.root.exists()
    cache.store(KEY, np.ones(2), {})
    text = (cache.root / ".gitignore").read_text()
    assert "*\n" in text.splitlines(keepends=True)
    assert text.startswith("#") and "refusal_checks" in text


def test_existing_directory_gets_no_gitignore(tmp_path: Path) -> None:
    """Pointing the cache at an existing folder must not hide that folder from git."""
    ArrayCache(tmp_path).store(KEY, np.ones(2), {})
    assert not (tmp_path / ".gitignore").exists()


def test_entries_clear_and_size(cache: ArrayCache) -> None:
    keys = [cache_key(i=i) for i in range(3)]
    for key in keys:
        cache.store(key, np.ones(100), {})
    cache.store_json(cache_key(i="result"), {"a": 1})
    assert cache.entries() == sorted([*keys, cache_key(i="result")])
    assert cache.size_bytes() >= 3 * 800
    assert cache.clear() == 4
    assert cache.entries() == [] and cache.size_bytes() == 0
    assert cache.clear() == 0
    assert (cache.root / ".gitignore").exists()


def test_clear_cache_removes_every_namespace(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    ArrayCache(root, "activations").store(KEY, np.ones(2), {})
    ArrayCache(root, "activations").store(cache_key(x=1), np.ones(2), {})
    ArrayCache(root, "judgements").store_json(KEY, {"refused": True})
    assert clear_cache(root) == 3
    assert sorted(p.name for p in root.iterdir()) == [".gitignore"]
    assert clear_cache(root) == 0
    assert clear_cache(tmp_path / "absent") == 0


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REFUSAL_CHECKS_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.setenv("REFUSAL_CHECKS_CACHE", "")
    assert default_cache_dir() == tmp_path / "xdg" / "refusal_checks"
    monkeypatch.delenv("REFUSAL_CHECKS_CACHE")
    assert default_cache_dir() == tmp_path / "xdg" / "refusal_checks"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec says: ignore
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "refusal_checks"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "refusal_checks"
    monkeypatch.setenv("REFUSAL_CHECKS_CACHE", "~/c")
    assert default_cache_dir() == tmp_path / "home" / "c"


# -- concurrency --------------------------------------------------------------------

N_WRITERS = 4
N_STORES = 20
SHARED_KEY = "shared-key"


def _writer_array(index: int) -> np.ndarray:
    """Arrays that differ everywhere, so any mix of two would not match either."""
    return np.random.default_rng(index).standard_normal((32, 64)).astype(np.float32)


def _writer(root: str, index: int, barrier: Any, results: Any) -> None:
    try:
        cache = ArrayCache(Path(root))
        array = _writer_array(index)
        barrier.wait()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for n in range(N_STORES):
                cache.store(SHARED_KEY, array, {"writer": index, "n": n})
        results.put(("writer", index, [str(w.message) for w in caught]))
    except BaseException:
        results.put(("error", index, traceback.format_exc()))


def _reader(root: str, barrier: Any, done: Any, results: Any) -> None:
    try:
        cache = ArrayCache(Path(root))
        expected = [_writer_array(i) for i in range(N_WRITERS)]
        counts = {"hit": 0, "miss": 0, "wrong": 0, "warned": 0}
        barrier.wait()
        extra = 0
        while extra < 50:
            extra += done.is_set()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                loaded = cache.load(SHARED_KEY, expected_shape=(32, 64), expected_dtype="float32")
            counts["warned"] += len(caught)
            if loaded is None:
                counts["miss"] += 1
            elif any(same_array(loaded, e) for e in expected):
                counts["hit"] += 1
            else:
                counts["wrong"] += 1
        results.put(("reader", -1, counts))
    except BaseException:
        results.put(("error", -1, traceback.format_exc()))


def test_concurrent_writers_of_one_key_never_yield_a_mix(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(N_WRITERS + 1)
    done = context.Event()
    results = context.Queue()
    root = str(tmp_path / "cache")
    writers = [context.Process(target=_writer, args=(root, i, barrier, results)) for i in range(N_WRITERS)]
    reader = context.Process(target=_reader, args=(root, barrier, done, results))
    for process in [*writers, reader]:
        process.start()
    reports = [results.get(timeout=60) for _ in writers]
    done.set()
    reports.append(results.get(timeout=60))
    for process in [*writers, reader]:
        process.join(timeout=30)
        assert process.exitcode == 0
    errors = [text for kind, _, text in reports if kind == "error"]
    assert errors == [], "\n".join(errors)
    for kind, index, caught in reports:
        if kind == "writer":
            assert caught == [], f"writer {index} warned: {caught}"
    (counts,) = [payload for kind, _, payload in reports if kind == "reader"]
    assert counts["wrong"] == 0, counts
    assert counts["hit"] > 0, counts
    # Whatever the writers left behind is one writer's array or a detected mismatch.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)
        final = ArrayCache(Path(root)).load(SHARED_KEY)
    assert final is None or any(same_array(final, _writer_array(i)) for i in range(N_WRITERS))


def test_clear_results_keeps_converted_models(tmp_path):
    from refusal_checks.cache.keys import RESULT_NAMESPACES, clear_results

    for namespace in RESULT_NAMESPACES:
        ArrayCache(tmp_path, namespace).store(f"k{namespace}", np.zeros(2), {})
    model = tmp_path / "models" / "dense-abc" / "model.safetensors"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights")
    assert clear_results(tmp_path) == len(RESULT_NAMESPACES)
    assert model.read_bytes() == b"weights"
    assert all(not ArrayCache(tmp_path, ns).entries() for ns in RESULT_NAMESPACES)


# Two pytest-xdist workers filling one empty cache compute the same entries at once, each
# through resume.chunked_array, which stores batch parts and removes them when the whole
# entry is stored. Whatever the interleaving, neither may warn: both store the same bytes,
# and a part removed under a reader is a miss, not a bad entry.
RESUME_ROUNDS = 150


def _resume_worker(root: str, barrier: Any, results: Any) -> None:
    try:
        from refusal_checks.prompts.sets import PromptSet
        from refusal_checks.cache.resume import chunked_array

        prompts = PromptSet("x/refuse", "x", "refuse", tuple(f"p{i}" for i in range(12)), "test")
        cache = ArrayCache(Path(root))
        barrier.wait()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for round_ in range(RESUME_ROUNDS):
                key = f"round{round_:03d}"

                def compute(subset: Any, _progress: Any, base: int = round_) -> np.ndarray:
                    return np.array([[base, len(t)] for t in subset.texts], dtype=np.float32)

                whole = chunked_array(cache, key, prompts, 1, compute)
                assert whole.shape == (12, 2) and (whole[:, 0] == round_).all()
        results.put(("worker", [str(w.message) for w in caught]))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def test_two_workers_resuming_the_same_entries_never_warn(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    root = str(tmp_path / "cache")
    workers = [context.Process(target=_resume_worker, args=(root, barrier, results)) for _ in range(2)]
    for process in workers:
        process.start()
    reports = [results.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(timeout=30)
    assert [kind for kind, _ in reports] == ["worker", "worker"], reports
    assert [caught for _, caught in reports] == [[], []]
