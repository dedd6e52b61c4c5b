"""Dense copies of GGUF files: converted once to safetensors, reused on every later load.

A copy is a folder named by the GGUF's sha256 with a marker file that records each of
its files' size and sha256, so a truncated or damaged copy is caught (cheaply by size on
every load, by sha256 after a load failed) and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from refusal_checks.models.nnsight.devices import import_torch, quiet_transformers

_DENSE_MARKER = "refusal_checks_dense.json"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def _marker(folder: Path) -> dict[str, Any]:
    try:
        marker = json.loads((folder / _DENSE_MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def dense_problem(folder: Path, digest: str) -> str | None:
    """Why ``folder`` is not a finished dense copy of the GGUF with this sha256, or None.

    Cheap (no file is read): the marker names the GGUF's sha256 and, since markers record
    them, every file of the copy with its size, so a truncated or missing file is caught.
    The reason names the file and the sizes, for the warning that the copy is rebuilt.
    """
    if not folder.is_dir():
        return "there is no copy"
    marker = _marker(folder)
    if not marker:
        return f"{_DENSE_MARKER} is missing or unreadable, so no file of it can be trusted"
    if marker.get("sha256") != digest:
        return f"{_DENSE_MARKER} is for another GGUF file (sha256 {marker.get('sha256')})"
    sizes = marker.get("files")
    if sizes is None:  # a marker written before sizes were recorded
        return None
    if not isinstance(sizes, dict):
        return f"{_DENSE_MARKER} lists no files"
    for name, size in sizes.items():
        try:
            actual = (folder / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} is {actual} bytes, but it was {size} bytes when converted"
    return None


def dense_ok(folder: Path, digest: str) -> bool:
    """Whether ``folder`` is a finished dense copy of the GGUF with this sha256
    (:func:`dense_problem` finds nothing)."""
    return dense_problem(folder, digest) is None


def dense_intact(folder: Path) -> bool | None:
    """Whether every file of a dense copy still has the sha256 taken at conversion.

    Reads every file (~2 GB for qwen-coder-0.5b in float32), so it runs only after a load
    failed. None when the marker holds no sums (an older copy) or cannot be read.
    """
    sums = _marker(folder).get("file_sha256")
    if not isinstance(sums, dict) or not sums:
        return None
    try:
        return all(_file_sha256(folder / name) == value for name, value in sums.items())
    except OSError:
        return False


def discard_dense(folder: Path) -> None:
    """Mark a dense copy as unusable, so the next :func:`dense_copy` replaces it."""
    (folder / _DENSE_MARKER).unlink(missing_ok=True)


def _write_marker(folder: Path, digest: str, gguf_path: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    names = [p.relative_to(folder).as_posix() for p in files]
    marker = {"sha256": digest, "gguf": str(gguf_path),
              "files": {n: p.stat().st_size for n, p in zip(names, files)},
              "file_sha256": {n: _file_sha256(p) for n, p in zip(names, files)}}
    (folder / _DENSE_MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True))


def gguf_parameters(gguf_path: Path) -> int:
    """Parameters stored in a GGUF file, from its tensor table (memory-mapped, not read)."""
    from gguf import GGUFReader

    return int(sum(int(t.n_elements) for t in GGUFReader(str(gguf_path)).tensors))


def check_conversion_fits(gguf_path: Path, models_dir: Path,
                          free: tuple[int, str] | None = None) -> None:
    """Refuse a conversion that would not fit in memory or on disk, before it starts.

    Raises:
        BackendError: the message gives the sizes and the fix.
    """
    from refusal_checks.errors import BackendError
    from refusal_checks.models import memory
    from refusal_checks.models.install import disk_problem

    try:
        params = gguf_parameters(gguf_path)
    except Exception:  # noqa: BLE001 - an unreadable table: from_pretrained says why
        return
    dense = params * 4  # float32
    problem = disk_problem(models_dir, dense)
    if problem:
        raise BackendError(f"cannot convert {gguf_path.name} ({params / 1e9:.2f}B "
                           f"parameters, {dense / memory.GIB:.1f} GiB in float32): {problem}")
    memory.check_conversion(gguf_path.name, params, free)


def dense_copy(gguf_path: Path, digest: str, models_dir: Path) -> Path:
    """Convert a GGUF file once into a dense safetensors folder; later loads take ~1 s.

    The folder is named by the GGUF's sha256, written under a temporary name and
    renamed into place, so a half-written conversion is never used. Its marker records
    each file's size and sha256 (:func:`dense_ok`, :func:`dense_intact`).
    """
    from refusal_checks.core.files import remove_stale
    from refusal_checks.models.registry import STALE_AFTER_S

    target = models_dir / f"dense-{digest[:24]}"
    if dense_ok(target, digest):
        return target
    check_conversion_fits(gguf_path, models_dir)
    torch = import_torch()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()
    models_dir.mkdir(parents=True, exist_ok=True)
    for pattern in (".dense-*", ".stale-*"):  # left by killed conversions
        remove_stale(models_dir, pattern, STALE_AFTER_S)
    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-quantised model until the quantizer is cleared
    # (../shared/MODELS.md); the weights are already dequantised to float32.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=".dense-", dir=models_dir))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        _write_marker(tmp, digest, gguf_path)
        try:
            os.replace(tmp, target)
        except OSError:
            # Either another process finished first (use theirs), or a folder without a
            # valid marker is in the way (a deleted marker, an interrupted rm -r): move
            # that aside, never load it.
            if not dense_ok(target, digest):
                aside = Path(tempfile.mkdtemp(prefix=".stale-", dir=models_dir))
                try:
                    os.replace(target, aside / "old")
                    os.replace(tmp, target)
                except OSError:  # a concurrent writer got there first
                    pass
                shutil.rmtree(aside, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target

