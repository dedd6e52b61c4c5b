"""The replication table (refusal_checks.reports.replication) and the published values it
sets beside ours (refusal_checks.reports.published)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.__main__ import main
from refusal_checks.models.registry import HUB_ALIASES
from refusal_checks.reports.published import PUBLISHED, identity, inside, published_for
from refusal_checks.reports.replication import render_markdown, render_text, replication, wanted
from refusal_checks.reports.schema import SCHEMA
from refusal_checks.verdicts.thresholds import BY_CLAIM

GEMMA = "hub:google/gemma-2b-it"


def record(claim: str, model: str, estimate: float, lo: float, hi: float,
           outcome: str = "supported", selected: dict | None = None) -> dict:
    details = {}
    if selected is not None:
        details["selection"] = {"selected": selected or None, "protocol": "Arditi selection"}
    return {"claim": claim, "model": model, "test": f"t::{claim}[{model}]", "outcome": outcome,
            "estimate": estimate, "interval": [lo, hi], "statistic": "s", "threshold": 0.5,
            "comparison": ">", "n": 10, "line": "x", "details": details}


def payload() -> dict:
    return {"schema": SCHEMA, "models": {
        "gemma-2b-it": {"source": GEMMA, "n_layers": 18},
        "qwen-coder-0.5b": {"source": "embedded:qwen-coder-0.5b", "n_layers": 24}},
        "verdicts": [
            record("addition-induces-refusal", "gemma-2b-it", 0.97, 0.9, 0.99,
                   selected={"layer": 9, "position": -2}),
            record("ablation-bypasses-refusal", "gemma-2b-it", 0.2, 0.1, 0.3),
            record("addition-induces-refusal", "qwen-coder-0.5b", float("nan"), float("nan"),
                   float("nan"), "inconclusive", selected={}),
            record("distinct-directions", "qwen-coder-0.5b", 0.3, 0.2, 0.4)]}


def test_the_grid_holds_every_claim_for_every_model_and_published_values_only_where_measured():
    grid = replication(payload())
    assert grid["models"] == ["gemma-2b-it", "qwen-coder-0.5b"]
    assert grid["claims"] == ["addition-induces-refusal", "ablation-bypasses-refusal",
                              "distinct-directions"]
    induce = grid["cells"]["addition-induces-refusal"]
    assert induce["gemma-2b-it"]["published"]["value"] == 1.0  # Arditi: 100% induced
    assert induce["gemma-2b-it"]["published"]["inside"] is False  # 1.0 > 0.99
    assert "published" not in induce["qwen-coder-0.5b"]
    bypass = grid["cells"]["ablation-bypasses-refusal"]["gemma-2b-it"]["published"]
    assert bypass["value"] == 0.0 and bypass["inside"] is False
    assert "substring" in bypass["differs"]  # theirs is substring-judged, over all prompts
    assert grid["selection"]["gemma-2b-it"] == {
        "ours": {"layer": 9, "position": -2, "n_layers": 18, "outcome": "Arditi selection",
                 "not_run": None},
        "published": {"layer": 10, "n_layers": 18, "position": -2,
                      "source": PUBLISHED[GEMMA].site_source}}
    assert grid["selection"]["qwen-coder-0.5b"]["ours"]["layer"] is None
    assert wanted(grid)


def test_the_renderings_show_the_published_column_and_the_mark():
    grid = replication(payload())
    text = render_text(grid)
    assert "  gemma-2b-it      SUPPORTED 0.97 [0.90, 0.99]  (published 1.00: OUTSIDE)" in text
    assert "  qwen-coder-0.5b  not run" in text  # ablation-bypasses-refusal on Qwen
    assert "ours: layer 9 of 18, position -2; published: layer 10 of 18, position -2" in text
    assert "ours: no direction selected" in text
    table = render_markdown(grid)
    assert table.splitlines()[0] == ("| claim | gemma-2b-it | gemma-2b-it: published | "
                                     "qwen-coder-0.5b |")
    assert "| addition-induces-refusal | SUPPORTED 0.97 [0.90, 0.99] | 1.00: OUTSIDE | " \
           "INCONCLUSIVE not measured |" in table


def test_a_search_that_did_not_run_says_so():
    one = payload()
    one["verdicts"][2]["details"]["selection"]["not_run"] = "the model never refuses"
    text = render_text(replication(one))
    assert "ours: search not run (the model never refuses)" in text


def test_one_model_without_published_values_is_not_a_replication():
    one = payload()
    one["verdicts"] = [v for v in one["verdicts"] if v["model"] == "qwen-coder-0.5b"]
    one["models"].pop("gemma-2b-it")
    grid = replication(one)
    assert not wanted(grid)


@settings(deadline=None)
@given(st.floats(-2, 2), st.floats(-2, 2), st.floats(-2, 2))
def test_inside_is_the_closed_interval(value, a, b):
    lo, hi = min(a, b), max(a, b)
    assert inside(value, (lo, hi)) is (lo <= value <= hi)
    assert inside(value, (float("nan"), hi)) is None
    assert inside(value, None) is None


def test_published_values_are_of_registered_claims_and_reachable_by_a_hub_alias():
    hub_sources = {f"hub:{repo}" for repo in HUB_ALIASES.values()}
    for key, model in PUBLISHED.items():
        assert key in hub_sources, key  # every published model has an alias
        assert key == f"hub:{model.model}"
        for value in model.values:
            assert value.claim in BY_CLAIM and value.source and value.differs
        if model.site is not None:
            layer, n_layers, _ = model.site
            assert 0 <= layer < n_layers


def test_a_planted_world_is_told_apart_from_another():
    a = {"source": "synthetic", "world": '{"genre": 0.0}'}
    b = {"source": "synthetic", "world": '{"genre": 4.0}'}
    assert identity(a) != identity(b)
    assert published_for({"source": GEMMA}) is PUBLISHED[GEMMA]
    assert published_for({"source": "embedded:qwen-coder-0.5b"}) is None


def test_the_table_command_prints_the_grid(tmp_path, capsys):
    path = tmp_path / "report.json"
    path.write_text(json.dumps(payload()))
    assert main(["table", str(path), "--replication"]) == 0
    out = capsys.readouterr().out
    assert out == render_markdown(replication(payload()))
