"""The plugin's start-up checks: bad input is a usage error (exit 4) before any model loads.

Each check takes the option values (and, for its message, the option's name: plugin.py owns
the names) and raises ``pytest.UsageError`` with what is wrong and the fix, once, instead
of the same error at the setup of every claim. The messages themselves mostly come from
refusal_checks.plugin.session. pytest and the standard library only at import; the library's
modules they consult are stdlib only too, so runs without claims pay nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest


def user_aliases(rootpath: Path) -> dict[str, Any]:
    """The [tool.refusal_checks.models] table of ``rootpath``'s pyproject.toml, checked."""
    pyproject = rootpath / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    import tomllib

    try:
        data = tomllib.loads(pyproject.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise pytest.UsageError(f"{pyproject} cannot be read: {error}") from None
    aliases = data.get("tool", {}).get("refusal_checks", {}).get("models", {})
    if not isinstance(aliases, dict):
        raise pytest.UsageError(
            f"[tool.refusal_checks.models] in {pyproject} must be a table of "
            'alias = "hub-id-or-path" entries.')
    from refusal_checks.plugin.session import alias_problem

    problem = alias_problem(aliases, pyproject)
    if problem:
        raise pytest.UsageError(problem)
    return aliases


def check_models(models: list[str], aliases: dict[str, Any]) -> None:
    """Every --model resolves (and a synthetic world's spec is one the claims can check)."""
    from refusal_checks.errors import UnknownModelError
    from refusal_checks.models.registry import resolve

    for name in models:
        try:
            spec = resolve(name, aliases)
        except UnknownModelError as error:
            raise pytest.UsageError(str(error)) from None
        if spec.kind == "synthetic":
            from refusal_checks.plugin.session import synthetic_problem

            problem = synthetic_problem(name, spec.source)
            if problem:
                raise pytest.UsageError(problem)


def check_prepared(models: list[str], aliases: dict[str, Any], cache_dir: Path) -> None:
    """An on-request model (``prepare ALIAS``) must be installed before a run that needs
    it: a usage error that names the command, before any model loads."""
    from refusal_checks.models.install import installed_files, not_prepared
    from refusal_checks.models.registry import resolve

    for name in models:
        spec = resolve(name, aliases)
        if spec.kind == "on-request" and installed_files(spec.source,
                                                         cache_dir / "models") is None:
            raise pytest.UsageError(f"--model {name}: "
                                    + not_prepared(spec.source, cache_dir / "models"))


def check_prompts(paths: list[str] | None, wanted: str | None, *, paths_option: str,
                  categories_option: str) -> None:
    """Read --refusal-prompts files and --refusal-categories now, before any model loads.

    A malformed file is a usage error that names the file, the line and the fix.
    refusal_checks.prompts.load is stdlib only, so this costs nothing in runs without claims.

    Args:
        paths: the prompt files, or None for the bundled sets.
        wanted: comma-separated categories, or None for all.
        paths_option: the name of the prompt files' option, for the message.
        categories_option: the name of the categories' option, for the message.
    """
    if not paths and not wanted:
        return
    from refusal_checks.prompts.load import PromptFileError, bundled, load_prompts

    option = paths_option if paths else categories_option
    try:
        if paths:
            try:  # the fixture falls back to the bundled benign pool the same way
                fallback = bundled().benign
            except PromptFileError:
                fallback = None
            collection = load_prompts(paths, benign_fallback=fallback)
        else:
            collection = bundled()
        if wanted:
            option = categories_option
            collection.only([c.strip() for c in wanted.split(",") if c.strip()])
    except (PromptFileError, ValueError) as error:
        raise pytest.UsageError(f"{option}: {error}") from None


def check_sae(value: str, layer: int | None) -> None:
    """--refusal-sae names an SAE the SAE claims can read at ``layer``."""
    from refusal_checks.measure.sae import option_problem

    problem = option_problem(value, layer)
    if problem:
        raise pytest.UsageError(problem)


def check_outputs(reports: dict[str, str | None], cache_dir: str | None,
                  cache_option: str) -> None:
    """Report paths and an explicitly chosen cache folder must be writable: checked now,
    not after the whole run (creates nothing).

    Args:
        reports: report option name -> its path (empty in a pytest-xdist worker: only the
            controller writes reports).
        cache_dir: the cache folder option's value, or None.
        cache_option: the cache folder option's name, for the message.
    """
    from refusal_checks.plugin.session import cache_problem, output_problem

    problems = [output_problem(option, path) for option, path in reports.items() if path]
    if cache_dir:
        problems.append(cache_problem(Path(cache_dir).expanduser(), cache_option))
    elif os.environ.get("REFUSAL_CHECKS_CACHE"):
        problems.append(cache_problem(Path(os.environ["REFUSAL_CHECKS_CACHE"]).expanduser(),
                                      "REFUSAL_CHECKS_CACHE"))
    for problem in problems:
        if problem:
            raise pytest.UsageError(problem)


def check_remote(remote: str | None, models: list[str], aliases: dict[str, Any]) -> None:
    """--refusal-remote needs hub ids and a key: say so now, before any loading."""
    if remote != "ndif":
        return
    from refusal_checks.models.registry import resolve
    from refusal_checks.models.remote import RemoteExecutionError, check_spec, require_key

    try:
        for name in models:
            check_spec(resolve(name, aliases).kind, name)
        require_key()
    except RemoteExecutionError as error:
        raise pytest.UsageError(str(error)) from None


def check_judge(name: str, option: str) -> None:
    """The refusal judge is one the library knows."""
    from refusal_checks.judges.registry import JUDGES

    if name not in JUDGES:
        raise pytest.UsageError(
            f"{option} {name!r} is not a known judge. Known: {', '.join(sorted(JUDGES))}.")


def check_labels(path: str | None, option: str) -> None:
    """A label file, if given, exists."""
    if path is not None and not Path(path).expanduser().is_file():
        raise pytest.UsageError(f"{option} {path!r} is not a file. Pass a label file written "
                                "by `python -m refusal_checks label` (guide: docs/labelling.md).")
