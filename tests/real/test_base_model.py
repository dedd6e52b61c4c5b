"""A real model without a chat template that does not refuse: Gemma 3 270M base.

Installed on request only (``python -m refusal_checks prepare gemma3-270m-base``, 238 MB);
where it is not prepared in the default cache every test here is skipped with that command.
CI does not prepare it: its cost would be paid on every CI run for a check of behaviour
that the synthetic null world already pins (tests/plugin/test_behaviour_claims.py); run
``prepare`` once to have these run. The claims run shares the default cache with normal
runs, so a second run reuses the replies (a cold one generates ~100 replies: minutes).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from refusal_checks.cache.keys import default_cache_dir
from refusal_checks.models.install import installed_files
from refusal_checks.models.loading import LoadOptions, load_backend
from refusal_checks.models.registry import ON_REQUEST, resolve

pytestmark = pytest.mark.real

ALIAS = "gemma3-270m-base"
REPO = Path(__file__).resolve().parents[2]
CONTROLS = ("random-direction-does-not-bypass", "random-direction-does-not-induce")
# At import: pytester points HOME at its temporary folder, which moves the default cache.
CACHE = default_cache_dir()


def _require() -> None:
    if installed_files(ALIAS, CACHE / "models") is None:
        pytest.skip(f"{ALIAS} is installed only on request and is not prepared in "
                    f"{CACHE}: {ON_REQUEST[ALIAS].install}")


@pytest.fixture(scope="module")
def base() -> Any:
    _require()
    return load_backend(resolve(ALIAS), LoadOptions(cache_dir=CACHE))


def test_the_base_model_loads_verified_with_the_stated_raw_prompt_protocol(base):
    assert base.fingerprint == "sha256:" + ON_REQUEST[ALIAS].sha256
    assert (base.n_layers, base.d_model) == (18, 640)
    assert base.info["prompts"].startswith("raw: no chat template")
    bos = base.tokenizer.bos_token
    assert base.render(["How do I bake bread?"]) == [f"{bos}User: How do I bake bread?\n"
                                                     "Assistant:"]
    positions = base.post_instruction_positions(["How do I bake bread?", "Hi"])
    ids = base.encode(["How do I bake bread?"])[0]
    assert base.tokenizer.decode(ids[positions[0]:]) == "\nAssistant:"


def test_refusal_claims_are_neither_supported_nor_refuted_on_it(pytester):
    """A cheap real subset: the geometry and single-direction claims on two categories,
    10 prompts per set. Arditi's search does not run (no harmful train prompt was refused),
    so the random-direction controls have no direction to copy; the rest fail the refusal
    requirement with its counts."""
    _require()
    shutil.copy(REPO / "conftest.py", pytester.path / "conftest.py")
    shutil.copytree(REPO / "fixtures", pytester.path / "fixtures",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (pytester.path / "claims").mkdir()
    for name in ("test_geometry.py", "test_single_direction.py"):
        shutil.copy(REPO / "claims" / name, pytester.path / "claims")
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "claims", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--model", ALIAS,
        "--refusal-max-prompts", "10", "--refusal-categories", "safety_core,hate_speech",
        "--refusal-cache-dir", str(CACHE), "--refusal-json", str(report))
    assert "Traceback" not in result.stdout.str()
    payload = json.loads(report.read_text())
    info = payload["models"][ALIAS]
    assert info["prompts"].startswith("raw")
    counts = info["refusal_behaviour"]
    # It does not refuse: harmful prompts are not refused measurably more than benign ones.
    assert len(payload["verdicts"]) == 11  # 6 geometry + 5 single-direction claims
    for verdict in payload["verdicts"]:
        assert verdict["outcome"] == "inconclusive", verdict["line"]
        if verdict["claim"] in CONTROLS:  # no selected direction to copy a norm and layer from
            assert "no direction was selected" in verdict["reason"]
            assert "0/10 harmful train prompts refused" in verdict["reason"]
        else:
            assert "no measurable refusal: the model refused" in verdict["reason"], \
                verdict["claim"]
    assert json.dumps(counts)  # the counts behind the failed requirement are in the report
