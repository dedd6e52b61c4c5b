"""python -m refusal_checks claims: the pytest command line it builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from refusal_checks.suite import runner

REPO = Path(__file__).resolve().parents[2]


def test_in_this_checkout_the_claims_are_the_repositorys_and_its_conftest_registers_fixtures(
        tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    args = runner.pytest_args(["--model", "x"], cwd=tmp_path)
    assert runner.claims_folder() == REPO / "claims"
    # conftest.py beside claims/ registers the fixtures; -p would register them twice.
    assert "-p" not in args
    assert args == ["--rootdir", str(tmp_path), str(REPO / "claims"), "--model", "x"]


def test_an_installed_suite_registers_its_fixtures(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    installed = tmp_path / "site" / "refusal_checks" / "suite" / "claims"
    installed.mkdir(parents=True)
    monkeypatch.setattr(runner, "claims_folder", lambda: installed)
    args = runner.pytest_args([], cwd=tmp_path)
    assert args[:2] == ["-p", runner.FIXTURES] and args[-1] == str(installed)


def test_the_rootdir_is_the_nearest_project_above_the_working_folder(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    assert runner.project_root(deep) == tmp_path
    assert runner.pytest_args([], cwd=deep)[:2] == ["--rootdir", str(tmp_path)]


def test_a_rootdir_the_user_gives_is_kept(tmp_path: Path) -> None:
    for given in (["--rootdir", "elsewhere"], ["--rootdir=elsewhere"]):
        args = runner.pytest_args(given, cwd=tmp_path)
        assert args.count("--rootdir") + sum(a.startswith("--rootdir=") for a in args) == 1
        assert args[-len(given):] == given


def test_no_project_marker_means_the_working_folder(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A marker no folder has: the search climbs to the filesystem root and finds nothing.
    monkeypatch.setattr(runner, "ROOT_MARKERS", ("no-project-has-this-marker.toml",))
    lonely = tmp_path / "a" / "b"
    lonely.mkdir(parents=True)
    assert runner.project_root(lonely) == lonely
    (tmp_path / "a" / "no-project-has-this-marker.toml").write_text("")
    assert runner.project_root(lonely) == tmp_path / "a"


def test_every_package_of_refusal_checks_is_in_the_wheels_list() -> None:
    """pyproject.toml lists the packages by hand (two are mapped from claims/ and fixtures/),
    so a new sub-package left out of the list would be missing from an installed wheel."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(init.parent.relative_to(REPO).parts)
             for init in (REPO / "refusal_checks").rglob("__init__.py")}
    found |= {"refusal_checks.suite.claims", "refusal_checks.suite.fixtures"}
    assert found == listed
