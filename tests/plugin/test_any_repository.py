"""refusal_checks installed into another repository runs the paper's claims there.

A wheel of this repository is built and installed into a folder of its own (``--target``),
which a team's project outside this repository puts first on PYTHONPATH: nothing of this
checkout (its conftest.py, claims/, fixtures/) is in reach. The project has only a
pyproject.toml with its own model alias and gate policy, and runs the one documented
command, ``python -m refusal_checks claims``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# One geometry claim is enough to show the suite, its fixtures, the alias and the policy
# working; the rest of the suite runs the same way.
CLAIM = "distinct-directions"
SELECT = "test_refusal_categories_have_distinct_directions"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """site-packages-like folder holding only refusal_checks, installed from a wheel."""
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("refusal_checks", "claims", "fixtures"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    wheels, site = tmp_path_factory.mktemp("wheels"), tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), "."], source)
    (wheel,) = wheels.glob("*.whl")
    _run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], source)
    return site


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _project(pytester: pytest.Pytester, world: str) -> None:
    pytester.makefile(".toml", pyproject=f"""
        [project]
        name = "team-model"
        version = "1"

        [tool.refusal_checks.models]
        ours = {{ source = "synthetic:{world}" }}

        [tool.refusal_checks.gate]
        require_supported = ["{CLAIM}"]
    """)


def _claims(pytester: pytest.Pytester, site: Path, monkeypatch: pytest.MonkeyPatch
            ) -> pytest.RunResult:
    monkeypatch.setenv("PYTHONPATH", str(site))
    return pytester.run(sys.executable, "-m", "refusal_checks", "claims", "--model", "ours",
                        "-k", SELECT, "--refusal-cache-dir", str(pytester.path / "cache"),
                        "--refusal-json", "report.json", "-p", "no:cacheprovider",
                        "-p", "no:hypothesispytest", timeout=600)


def test_the_suite_comes_from_the_installed_package(
        installed: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(installed))
    where = pytester.run(sys.executable, "-c", "import refusal_checks.suite.claims as c, "
                         "refusal_checks.suite.fixtures as f; print(*c.__path__, f.__file__)")
    assert where.ret == 0, where.stderr.str()
    assert where.outlines[0].startswith(str(installed / "refusal_checks" / "suite" / "claims"))
    assert REPO not in Path(pytester.path).parents


def test_the_teams_alias_and_policy_decide_a_passing_gate(
        installed: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    _project(pytester, "distinct,genre=0")
    result = _claims(pytester, installed, monkeypatch)
    text = result.stdout.str()
    assert result.ret == 0, text + result.stderr.str()
    assert f"rootdir: {pytester.path}" in text
    assert "PytestAssertRewriteWarning" not in text
    report = json.loads((pytester.path / "report.json").read_text())
    assert [(v["claim"], v["model"], v["outcome"]) for v in report["verdicts"]] == [
        (CLAIM, "ours", "supported")]
    assert report["gate"]["passed"] is True


def test_the_teams_policy_fails_the_gate_when_its_claim_is_refuted(
        installed: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    _project(pytester, "shared,genre=0")  # one planted direction: "distinct" is false
    result = _claims(pytester, installed, monkeypatch)
    text = result.stdout.str()
    assert result.ret == 1, text + result.stderr.str()
    assert f"require_supported {CLAIM} [ours]" in text and "came out REFUTED" in text
