"""``python -m refusal_checks claims``: the paper's claims, run from any repository.

pytest is started on the installed claims (``refusal_checks.suite.claims``) with the claim
fixtures registered, from the current folder: the rootdir, and with it the
``[tool.refusal_checks.models]`` aliases and the ``[tool.refusal_checks.gate]`` policy, are
those of the repository the command runs in, exactly as in ``pytest claims/`` here.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

CLAIMS = "refusal_checks.suite.claims"
FIXTURES = "refusal_checks.suite.fixtures"


def claims_folder() -> Path:
    """Where the installed claims live (this repository's claims/ in an editable install).

    A checkout used through PYTHONPATH, without installing it, has them beside the package.

    Raises:
        SystemExit: Neither is there (an install that predates the shipped suite).
    """
    try:
        package = importlib.import_module(CLAIMS)
    except ModuleNotFoundError:
        checkout = Path(__file__).resolve().parents[2] / "claims"
        if checkout.is_dir():
            return checkout
        raise SystemExit(f"error: {CLAIMS} is not installed; reinstall refusal_checks "
                         "(pip install --force-reinstall refusal_checks) to get its claims "
                         "suite.") from None
    return Path(next(iter(package.__path__)))


# What makes a folder a project's root, nearest first (pytest's own rootdir markers).
ROOT_MARKERS = ("pyproject.toml", "pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", ".git")


def project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` with a root marker; ``start`` if none."""
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in ROOT_MARKERS):
            return folder
    return start


def pytest_args(extra: list[str], cwd: Path | None = None) -> list[str]:
    """The pytest command line for the installed claims plus the user's own options.

    pytest would take the rootdir from the claims' folder (inside the installed package)
    and miss the user's pyproject.toml, so the rootdir is the project the command runs in,
    unless the user gives one. In a source checkout the claims' folder has the checkout's
    conftest.py beside it, which pytest loads and which registers the same fixtures (as
    ``fixtures``): registering them a second time under the package name would define every
    fixture twice.
    """
    folder = claims_folder()
    plugins = [] if (folder.parent / "conftest.py").is_file() else ["-p", FIXTURES]
    given = any(arg == "--rootdir" or arg.startswith("--rootdir=") for arg in extra)
    root = [] if given else ["--rootdir", str(project_root((cwd or Path.cwd()).resolve()))]
    return [*plugins, *root, str(folder), *extra]


def main(extra: list[str]) -> int:
    """Run pytest on the installed claims; its exit status is the command's (the gate's).

    pytest runs as a fresh ``python -m pytest``: in this process refusal_checks is already
    imported, and pytest would warn that it cannot rewrite the asserts of its own plugin.
    """
    command = [sys.executable, "-m", "pytest", *pytest_args(extra)]
    if os.name == "posix":
        os.execv(sys.executable, command)  # signals and exit status go straight to pytest
    return subprocess.call(command)
