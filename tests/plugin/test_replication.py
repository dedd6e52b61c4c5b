"""The replication table under pytest: every claim x every model in the terminal, the JSON
report and the HTML page, with a planted model's published values beside ours."""

from __future__ import annotations

import json

import pytest

from tests.plugin.test_plugin import copy_suite, text_of

PLANTED = "synthetic:shared,genre=0"
CONTROL = "synthetic:null"

# The planted model's published values, set in the run's own conftest (the run is a
# subprocess): one that no rate's interval can hold (-1), one read from the JSON.
PLANT = '''
from refusal_checks.models.synthetic import SyntheticBackend as _Synthetic
from refusal_checks.reports import published as _published

_info = _Synthetic.from_spec("shared,genre=0", name="planted").info
_published.PUBLISHED[_published.identity(_info)] = _published.PublishedModel(
    "planted", (
        _published.Published("addition-induces-refusal", -1.0, "planted: impossible rate",
                             "planted: measured otherwise"),
        _published.Published("ablation-bypasses-refusal", 0.0, "planted: none kept"),
    ), (3, 6, -2), "planted selection")
'''


def _run(pytester: pytest.Pytester, *models: str) -> tuple[dict, str, str]:
    copy_suite(pytester.path, per_category=48, claim_files=("test_single_direction.py",))
    with open(pytester.path / "conftest.py", "a") as handle:
        handle.write(PLANT)
    report, page = pytester.path / "report.json", pytester.path / "report.html"
    args = ["claims", "-p", "no:hypothesispytest", "-p", "no:cacheprovider",
            "--refusal-prompts", "prompts.jsonl", "--refusal-cache-dir",
            str(pytester.path / "cache"), "--refusal-json", str(report), "--refusal-html",
            str(page), "--refusal-bootstrap", "100", "-k", "bypass or induce"]
    for model in models:
        args += ["--model", model]
    result = pytester.runpytest_subprocess(*args)
    text = text_of(result)
    assert "Traceback" not in text
    return json.loads(report.read_text()), text, page.read_text()


def test_published_values_stand_beside_ours_with_an_inside_mark(pytester):
    payload, text, page = _run(pytester, PLANTED, CONTROL)
    grid = payload["replication"]
    assert grid["models"] == [PLANTED, CONTROL]
    assert "addition-induces-refusal" in grid["claims"]
    for claim in grid["claims"]:
        assert set(grid["cells"][claim]) == {PLANTED, CONTROL}  # every claim x every model
    induce = grid["cells"]["addition-induces-refusal"]
    assert induce[PLANTED]["published"]["value"] == -1.0
    assert induce[PLANTED]["published"]["inside"] is False
    assert "published" not in induce[CONTROL]  # no published value for the control
    bypass = grid["cells"]["ablation-bypasses-refusal"][PLANTED]
    lo, hi = bypass["interval"]
    assert bypass["published"]["inside"] is (lo <= 0.0 <= hi)
    # Arditi's selection: ours from the verdict's details, the planted one beside it.
    verdict = next(v for v in payload["verdicts"] if v["model"] == PLANTED
                   and v["claim"] == "ablation-bypasses-refusal")
    selected = verdict["details"]["selection"]["selected"]
    pair = grid["selection"][PLANTED]
    assert (pair["ours"]["layer"], pair["ours"]["position"]) == (selected["layer"],
                                                                 selected["position"])
    assert pair["published"] == {"layer": 3, "n_layers": 6, "position": -2,
                                 "source": "planted selection"}
    # The terminal section, then the HTML page.
    assert "refusal_checks replication" in text
    assert "(published -1.00: OUTSIDE)" in text
    assert "published: layer 3 of 6, position -2" in text
    assert "addition-induces-refusal: planted: measured otherwise" in text
    assert '<h2 id="replication">Replication</h2>' in page
    assert f"{PLANTED}: published" in page and "OUTSIDE</b> our interval" in page
    assert "measured differently: planted: measured otherwise" in page


def test_one_model_without_published_values_gets_no_replication_section(pytester):
    payload, text, page = _run(pytester, CONTROL)
    assert "refusal_checks replication" not in text
    assert 'id="replication"' not in page
    assert payload["replication"]["models"] == [CONTROL]  # the JSON keeps the grid anyway
