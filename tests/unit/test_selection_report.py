"""Arditi et al.'s selection in the JSON and HTML reports: the heatmap and the table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refusal_checks.reports.html import heatmaps as figures_heatmaps

from refusal_checks.verdicts import arditi
from refusal_checks.reports.html.page import render_html
from refusal_checks.reports.summary import json_report
from refusal_checks.reports.html.selection import grids
from tests.unit.test_selection import _select


def _payload(selection, behaviour) -> dict:
    verdicts = []
    for claim in arditi.ARDITI_CLAIMS:
        # The no-direction verdict stands in for any verdict: the record is what matters.
        verdict = arditi.with_selection(arditi.no_direction(claim, selection, behaviour, 0),
                                        selection)
        data = verdict.to_dict()
        data.update(claim=claim, model="planted", says="", source="", test=f"t::{claim}",
                    protocol=selection.protocol(), duration=0.1)
        verdicts.append(data)
    payload = json_report(verdicts, {"planted": {"source": "synthetic"}}, options={},
                          timings={}, argv=[], cwd="/")
    return json.loads(json.dumps(payload, sort_keys=True))


@pytest.mark.parametrize("extras", [dict(steer_reach=0.0),
                                    dict(planted_site=(2, -2), benign_shift=2.0)])
def test_the_json_carries_the_candidate_table_and_the_page_shows_the_heatmap(extras):
    selection, behaviour = _select(**extras)
    payload = _payload(selection, behaviour)
    record = payload["verdicts"][0]["details"]["selection"]
    assert len(record["candidates"]) == 12
    assert set(record["candidates"][0]) == {"layer", "position", "bypass", "induce", "kl",
                                            "kept", "why", "not_computed", "not_computed_why"}
    assert record["selected"] == (None if not selection.found
                                  else {"layer": 2, "position": -2})
    assert record["protocol"].startswith("Arditi selection (")
    page = render_html(payload)
    assert 'alt="Arditi selection heatmap, planted"' in page
    assert "candidate table (12)" in page
    assert ("<td>selected</td>" in page) == selection.found
    values, kept, skipped = grids(record)
    assert values["bypass"].shape == kept.shape == skipped["kl"].shape == (2, 6)
    assert kept.sum() == sum(c["kept"] for c in record["candidates"])
    # The filter order's skipped scores are NaN in the grid and marked, never zeros.
    assert skipped["bypass"].sum() == sum("bypass" in c["not_computed"]
                                          for c in record["candidates"]) > 0
    assert np.isnan(values["bypass"][skipped["bypass"]]).all() and not skipped["induce"].any()
    assert "not computed" in page and "Filter order" in page


def test_a_search_that_never_ran_gets_a_note_not_a_figure():
    selection, behaviour = _select(signal=0.0)
    page = render_html(_payload(selection, behaviour))
    assert "too few prompts to build and select a direction" in page
    assert 'alt="Arditi selection heatmap' not in page


def test_heatmap_checks_its_shapes():
    with pytest.raises(ValueError, match="candidate grid is"):
        figures_heatmaps.selection_heatmaps([0, 1], [-1], {"bypass": [[0.0]]},
                                            [[True, False]], None, title="t")
    png = figures_heatmaps.selection_heatmaps([0, 1], [-2, -1],
                                              {"bypass": np.zeros((2, 2)),
                                               "KL": np.full((2, 2), np.nan)},
                                              np.eye(2, dtype=bool), (1, -1), title="t",
                                              not_computed={"KL": np.eye(2, dtype=bool)})
    assert png.startswith(b"\x89PNG")


def test_a_record_from_before_the_filter_order_still_draws():
    selection, behaviour = _select(planted_site=(2, -2), benign_shift=2.0)
    payload = _payload(selection, behaviour)
    for v in payload["verdicts"]:
        for c in v["details"]["selection"]["candidates"]:
            del c["not_computed"], c["not_computed_why"]
    record = payload["verdicts"][0]["details"]["selection"]
    _, _, skipped = grids(record)
    assert not any(m.any() for m in skipped.values())
    page = render_html(payload)
    assert 'alt="Arditi selection heatmap, planted"' in page and "not computed" not in page
