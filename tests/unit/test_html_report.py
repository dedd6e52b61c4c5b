"""The HTML report, its figures, the paper's summary figures and the terminal heatmap.

The payload is fabricated but shaped like a real ``--refusal-json`` report (built by the
real :func:`refusal_checks.reports.summary.json_report` and passed through JSON): one verdict per
claim id found in ``claims/`` per model, with the details each claim records. The browser
test (tests/browser/) renders the same payload in headless Chromium.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.reports.html import heatmaps as figures_heatmaps

from refusal_checks.reports.html import rates as figures_rates
from refusal_checks.__main__ import main
from refusal_checks.core.cost import CostLedger, PhaseCost
from refusal_checks.reports.html.page import render_html, write_html
from refusal_checks.reports.paper import (COCONOT_NON_SAFETY, PAPER_COSINES, SAFETY_LIKE,
                                  cosine_summary)
from refusal_checks.reports.summary import json_report, render_heatmap
from refusal_checks.reports.schema import (SCHEMA, ReportFileError, check_payload,
                                          load_report)

REPO = Path(__file__).resolve().parents[2]
CATEGORIES = ["safety_core", "over_refusal", "humanizing", "incomplete", "indeterminate",
              "safety_concerns", "unsupported", "hate_speech", "crime_assistance",
              "inappropriate_topics", "unqualified_advice"]
GEOMETRY = {"stable-within-category": "general benign pool",
            "distinct-directions-paper-design": "general benign pool",
            "more-than-one-direction": "genre-matched benign",
            "distinct-under-matched-control": "genre-matched benign"}


def claim_ids() -> list[str]:
    """Every claim id declared in claims/ (``@pytest.mark.claim("id", ...)``)."""
    ids = []
    for path in sorted((REPO / "claims").glob("test_*.py")):
        ids += re.findall(r"""mark\.claim\(\s*["']([^"']+)["']""", path.read_text())
    assert ids, "no claim ids found in claims/"
    return list(dict.fromkeys(ids))


def _cosines(rng: np.random.Generator, k: int, scale: float = 1.0) -> list[list[float]]:
    x = rng.normal(size=(k, 6)) + 1.2
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    m = np.clip(x @ x.T * scale, -1.5, 1.5)
    np.fill_diagonal(m, 1.0)
    return np.round(m, 4).tolist()


def _style(rng: np.random.Generator) -> dict[str, Any]:
    directions = ["humanizing", "safety_core", "unqualified_advice"]
    confusion = (np.eye(3, dtype=int) * 9 + rng.integers(0, 3, size=(3, 3))).tolist()
    return {"directions": directions, "confusion": confusion, "accuracy": 0.71, "chance": 0.33,
            "permutation_p": 0.002,
            "rates": {d: {"refused": 12, "n": 16} for d in directions},
            "strengths": {d: 0.35 for d in directions},
            "phrases": {"humanizing": ["as an AI", "no feelings"], "safety_core": ["harmful"],
                        "unqualified_advice": ["not a doctor"]},
            "exemplars": {"humanizing": ["I am an AI <and> I have no body."],
                          "safety_core": ["I can't help with that."],
                          "unqualified_advice": ["I'm not a doctor; please see one."]}}


def _details(claim: str, rng: np.random.Generator, *, counts: bool) -> dict[str, Any]:
    if claim in GEOMETRY:  # claims against the same control share one study (a fixed seed)
        rng = np.random.default_rng(sorted(set(GEOMETRY.values())).index(GEOMETRY[claim]))
        return {"categories": CATEGORIES, "control": GEOMETRY[claim], "layer": 11,
                "split_half_mean": {c: float(rng.uniform(0.2, 0.99)) for c in CATEGORIES},
                "raw_cosines": _cosines(rng, len(CATEGORIES)),
                "disattenuated_cosines": _cosines(rng, len(CATEGORIES), 1.2)}
    if claim == "shared-knob":
        strengths = [0.1, 0.2, 0.35, 0.5]
        rr = np.sort(rng.uniform(0, 1, size=(len(CATEGORIES), 4)), axis=1).round(3)
        orr = np.sort(rng.uniform(0, 1, size=(len(CATEGORIES), 4)), axis=1).round(3)
        details = {"directions": CATEGORIES, "strengths": strengths, "rr": rr.tolist(),
                   "orr": orr.tolist(), "alphas": [[s * 18 for s in strengths]] * len(CATEGORIES),
                   "orr_per_unit_strength": {c: float(rng.normal()) for c in CATEGORIES},
                   "score_agreement": {"agreement": 0.875, "n": 64}}
        if counts:
            details.update(n_harmful=32, n_benign=32)
        return details
    if claim == "ablation-lowers-category-refusal":
        per = {}
        for c in CATEGORIES:
            base = int(rng.integers(0, 9))
            per[c] = {"baseline": {"refused": base, "n": 8},
                      "kept": {"refused": int(rng.integers(0, base + 1)), "n": base}}
        return {"per_category": per, "keeps_refusing": CATEGORIES[:2],
                "too_few_baseline_refusals": CATEGORIES[5:7]}
    if claim in ("distinct-directions", "ablation-is-category-selective"):  # the genre rule
        designs = {f"{claim}-paper-design": {"outcome": "supported", "line": "<paper> line"},
                   "genre control": {"outcome": "not measured", "reason": "no <rows>"}}
        details = {"rule": "SUPPORTED when ...", "decided_by": None, "designs": designs}
        if claim == "ablation-is-category-selective":
            details["genre_matched"] = _details(f"{claim}-paper-design", rng, counts=counts)
            details["genre_matched"]["reading"] = "shared: genre-matched <one> pathway"
        return details
    if claim == "ablation-is-category-selective-paper-design":
        k = len(CATEGORIES)
        baseline = rng.integers(3, 9, size=k) / 8
        rates = np.tile(baseline, (k, 1)) - rng.integers(0, 3, size=(k, k)) / 8
        np.fill_diagonal(rates, 0.125)
        return {"categories": CATEGORIES, "ablated_rates": np.clip(rates, 0, 1).tolist(),
                "baseline_rates": dict(zip(CATEGORIES, baseline.tolist())),
                "reading": "selective: <own> 0.80, others 0.10", "mean_random_drop": 0.01}
    if "style" in claim:
        return {"style": _style(rng)}
    return {"baseline": {"refused": 14, "n": 32}, "judge": "substring (Arditi et al. 12 phrases)"}


def realistic_payload(models: tuple[str, ...] = ("qwen-coder-0.5b",), *, counts: bool = True,
                      claims: list[str] | None = None) -> dict[str, Any]:
    """A --refusal-json payload with every claim of claims/ on each model, through JSON."""
    rng = np.random.default_rng(0)
    verdicts = []
    outcomes = ("supported", "refuted", "inconclusive")
    for model in models:
        for index, claim in enumerate(claims or claim_ids()):
            estimate = float(rng.uniform(0, 1))
            verdicts.append({
                "claim": claim, "model": model, "outcome": outcomes[index % 3],
                "estimate": estimate, "interval": [estimate - 0.1, estimate + 0.1],
                "comparison": "<", "threshold": 0.9, "n": 55, "level": 0.95,
                "statistic": f"statistic of {claim}", "says": f"The sentence of {claim}.",
                "paper": f"PAPER.md figure for {claim}", "reason": "the interval straddles it",
                "seed": 0, "test": f"claims/test_x.py::test_{claim}[{model}]",
                "duration": 0.25, "details": _details(claim, rng, counts=counts)})
    info = {m: {"source": f"embedded:{m}", "description": f"{m} (GGUF)", "dtype": "float32",
                "device": "cpu", "fingerprint": "sha256:" + "ab" * 32, "n_layers": 24,
                "d_model": 896, "judge": "substring (Arditi et al. 12 phrases)",
                "revision": "3f2a9c1",
                "refusal_behaviour": {"refused": 49, "n": 88, "benign_refused": 1,
                                      "benign_n": 16},
                "cost_profile": CostLedger({
                    "activations": PhaseCost(seconds=412.5, computed=23, prompts=1504),
                    "sweep scores": PhaseCost(seconds=130.25, hits=40, computed=136,
                                              prompts=2816),
                    "claim ablation-bypasses-refusal": PhaseCost(seconds=95.0, computed=4,
                                                                 batches_resumed=2, replies=96),
                    "direction statistics": PhaseCost(seconds=3.5)}).profile()}
            for m in models}
    payload = json_report(verdicts, info, options={"seed": 0, "bootstrap": 500},
                          timings={"wall_seconds": 13.9}, argv=["pytest", "claims/"],
                          cwd="/work")
    return json.loads(json.dumps(payload, sort_keys=True))


class _Page(HTMLParser):
    """Collects images, links and the verdict table's rows."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.external: list[str] = []
        self.rows: list[list[str]] = []
        self.header: list[str] = []
        self._in_verdicts = False
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        for key in ("src", "href"):
            if (a.get(key) or "").startswith(("http:", "https:", "//", "file:")):
                self.external.append(a[key] or "")
        if tag in ("link", "iframe", "object", "embed"):
            self.external.append(tag)
        if tag == "table":
            self._in_verdicts = a.get("class") == "verdicts"
        if self._in_verdicts and tag == "tr":
            self._row = []
        if self._in_verdicts and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if self._in_verdicts and tag in ("td", "th") and self._cell is not None:
            assert self._row is not None
            self._row.append("".join(self._cell).strip())
            self._cell = None
        if self._in_verdicts and tag == "tr" and self._row is not None:
            if not self.header:
                self.header = self._row
            else:
                self.rows.append(self._row)
            self._row = None
        if tag == "table":
            self._in_verdicts = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def png_size(uri: str) -> tuple[int, int]:
    """(width, height) of a PNG data URI; fails unless it is one."""
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix), uri[:40]
    data = base64.b64decode(uri[len(prefix):], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def two_models() -> tuple[dict[str, Any], str]:
    payload = realistic_payload(("qwen-coder-0.5b", "smollm2-135m"))
    return payload, render_html(payload)


# -- the page --------------------------------------------------------------------------------

def test_verdict_table_has_every_claim_and_one_column_per_model(two_models) -> None:
    payload, page = two_models
    parsed = parse(page)
    assert parsed.header == ["claim", "paper", "needs", "qwen-coder-0.5b", "smollm2-135m"]
    assert [row[0].split("The sentence")[0] for row in parsed.rows] == claim_ids()
    outcome = {(v["claim"], v["model"]): v["outcome"].upper() for v in payload["verdicts"]}
    for claim, row in zip(claim_ids(), parsed.rows):
        assert len(row) == 5
        for model, cell in zip(parsed.header[3:], row[3:]):
            assert cell.startswith(outcome[claim, model]) and " n=55" in cell, cell
    for claim in claim_ids():
        assert f'id="claim-{claim}"' in page
        assert f"PAPER.md figure for {claim}" in page


def test_figures_are_embedded_pngs_and_nothing_is_fetched(two_models) -> None:
    _, page = two_models
    parsed = parse(page)
    assert not parsed.external
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # Per model: 2 cosine heatmaps, steering, ablation, 2 cross-ablations (the paper's and
    # the genre-matched directions), style confusion; 2 split-half charts.
    assert len(parsed.images) == 2 * 7 + 2
    for uri in parsed.images:
        width, height = png_size(uri)
        assert width > 100 and height > 100


def test_cosine_summary_is_shown_beside_the_papers(two_models) -> None:
    payload, page = two_models
    record = next(v for v in payload["verdicts"]
                  if v["claim"] == "distinct-directions-paper-design")
    ours = cosine_summary(CATEGORIES, record["details"]["disattenuated_cosines"])
    raw = cosine_summary(CATEGORIES, record["details"]["raw_cosines"])
    row = re.search(r"<tr><td>mean</td>(.*?)</tr>", page).group(1)
    cells = re.findall(r"<td>(.*?)</td>", row)
    assert cells[0] == f"{PAPER_COSINES.mean:.2f}"
    assert cells[1:3] == [f"{raw.mean:.2f}", f"{ours.mean:.2f}"]
    assert "0.956-0.99" in page  # the paper's split-half range beside ours


def test_every_string_from_the_report_is_escaped() -> None:
    payload = realistic_payload(claims=["distinct-directions", "style-not-rate"])
    payload["verdicts"][0]["says"] = "<script>alert('says')</script>"
    payload["verdicts"][0]["model"] = payload["verdicts"][1]["model"] = "<b>m&m</b>"
    payload["models"] = {}
    page = render_html(payload)
    assert "<script>alert" not in page and "<b>m&m</b>" not in page
    assert "&lt;script&gt;alert(&#x27;says&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;m&amp;m&lt;/b&gt;" in page
    assert "I am an AI &lt;and&gt; I have no body." in page  # a style exemplar
    assert page.count("<script>") == 1  # only the page's own image check


def test_style_record_gets_confusion_matrix_and_exemplar_table() -> None:
    page = render_html(realistic_payload(claims=["style-not-rate"]))
    assert 'id="style"' in page and "permutation p = 0.002" in page
    assert 'alt="style confusion matrix, qwen-coder-0.5b"' in page
    assert "not a doctor" in page and "&quot;I am not a lawyer/doctor&quot; disclaimer" in page


@pytest.mark.parametrize(("counts", "expected"), [
    (True, "Bands: Wilson 95% intervals from the prompt counts."),
    (False, "No bands: this report does not carry the prompt counts behind the rates."),
])
def test_steering_bands_only_when_the_counts_are_known(counts: bool, expected: str) -> None:
    page = render_html(realistic_payload(counts=counts, claims=["shared-knob"]))
    assert expected in page


def test_undrawable_details_become_a_note_not_a_crash() -> None:
    payload = realistic_payload(claims=["shared-knob", "distinct-directions-paper-design"])
    payload["verdicts"][0]["details"]["rr"] = [[0.1, 0.2]]  # wrong shape
    payload["verdicts"][1]["details"]["disattenuated_cosines"] = [[1.0]]
    page = render_html(payload)
    assert "steering trade-off, qwen-coder-0.5b: cannot draw" in page
    assert "cannot draw (need a 11 x 11 matrix" in page


@pytest.mark.parametrize(("claim", "key", "value"), [
    ("shared-knob", "rr", 1), ("shared-knob", "directions", 3),
    ("ablation-lowers-category-refusal", "too_few_baseline_refusals", 2),
    ("distinct-directions-paper-design", "categories", 0.5),
    ("ablation-is-category-selective", "genre_matched", [1]),
    ("style-differs-by-direction", "style", []),
])
def test_details_of_a_foreign_shape_leave_a_note_and_the_verdict_table(
        claim: str, key: str, value: Any) -> None:
    payload = realistic_payload(claims=[claim])
    payload["verdicts"][0]["details"][key] = value
    page = render_html(payload)
    assert len(parse(page).rows) == 1 and f'id="claim-{claim}"' in page
    assert "cannot be drawn from this report" in page or "cannot draw" in page or \
        key == "style"  # a non-dict style is simply not a style record


def test_environment_names_model_judge_accuracy_versions_and_timings(two_models) -> None:
    _, page = two_models
    assert "sha256:" + "ab" * 32 in page and "float32 / cpu" in page
    assert "revision <code>3f2a9c1</code>" in page
    assert "0.833 [0.796, 0.865] on XSTest v2" in page  # the substring judge, measured
    assert "49/88 should-not-comply, 1/16 benign" in page
    for text in ("numpy", "wall_seconds", "13.90", "claim durations"):
        assert text in page


def test_environment_shows_where_the_time_went_per_model(two_models) -> None:
    payload, page = two_models
    for model in ("qwen-coder-0.5b", "smollm2-135m"):
        assert f"<h3>where the time went: {model}</h3>" in page
    table = page[page.index("where the time went: qwen-coder-0.5b"):]
    table = table[:table.index("</table>")]
    phases = re.findall(r"<tr><td>([^<]+)</td>", table)
    assert phases == ["activations", "sweep scores", "claim ablation-bypasses-refusal",
                      "direction statistics", "total"]  # slowest first, every phase
    assert "<td>412.5</td><td>64%</td><td>0/23</td><td>0</td><td>1504</td>" in table
    assert "<td>2</td><td>0</td><td>96</td>" in table  # batches resumed, replies
    del payload["models"]["qwen-coder-0.5b"]["cost_profile"]  # a report from before
    assert "where the time went: qwen-coder-0.5b" not in render_html(payload)


def test_a_report_without_details_still_renders_every_claim() -> None:
    payload = realistic_payload(claims=claim_ids())
    for verdict in payload["verdicts"]:
        verdict["details"] = {}
    parsed = parse(render_html(payload))
    assert len(parsed.rows) == len(claim_ids()) and not parsed.images


# -- the report file: schema round trip, errors, the CLI --------------------------------------

def test_json_report_round_trips_through_the_file_and_renders_the_same(tmp_path: Path) -> None:
    payload = realistic_payload(claims=["ablation-lowers-category-refusal",
                                        "style-differs-by-direction"])
    path = tmp_path / "report.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True))
    loaded = load_report(path)
    assert loaded == payload and loaded["schema"] == SCHEMA
    assert render_html(loaded) == render_html(payload)  # deterministic, figures included


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file. Write one with pytest claims/ --refusal-json PATH."),
    ('{"schema": ', "not valid JSON (line 1, column 12"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('{"schema": "refusal_checks/report/2", "verdicts": []}',
     "schema is 'refusal_checks/report/2', expected 'refusal_checks/report/1'"),
    ('{"schema": "refusal_checks/report/1", "verdicts": {}}', "'verdicts' must be a list"),
    ('{"schema": "refusal_checks/report/1", "verdicts": [{"claim": "x"}]}',
     "verdict 0 lacks model, outcome, estimate, interval, comparison, threshold, n"),
    (json.dumps({"schema": SCHEMA, "verdicts": [
        {"claim": "x", "model": "m", "outcome": "supported", "estimate": 0.5, "interval": 0.5,
         "comparison": "<", "threshold": 0.9, "n": 3}]}),
     "verdict 0 has interval 0.5, expected [low, high]"),
])
def test_bad_report_files_are_named_with_the_fix(tmp_path: Path, content: str | None,
                                                message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ReportFileError, match=re.escape(message)):
        load_report(path)
    out = tmp_path / "out.html"
    assert main(["html", str(path), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and message in err and "Traceback" not in err
    assert not out.exists()


def test_cli_renders_a_saved_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(realistic_payload(claims=["ablation-lowers-category-refusal"])))
    out = tmp_path / "sub" / "report.html"
    assert main(["html", str(path), str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and 'id="ablation"' in page
    assert not list(out.parent.glob("*.tmp"))


def test_write_html_refuses_a_payload_of_another_schema(tmp_path: Path) -> None:
    with pytest.raises(ReportFileError, match="schema is None"):
        write_html({"verdicts": []}, tmp_path / "x.html")
    assert check_payload(realistic_payload(claims=["shared-knob"]))["schema"] == SCHEMA


# -- figures ---------------------------------------------------------------------------------

def test_figures_do_not_touch_pyplot_or_the_global_backend() -> None:
    code = ("import sys, matplotlib; before = matplotlib.get_backend.__module__; "
            "from refusal_checks.reports.html import heatmaps as figures_heatmaps; "
            "from refusal_checks.reports.html import rates as figures_rates; "
            "figures_heatmaps.cosine_heatmap(['a', 'b'], [[1, .5], [.5, 1]], title='t'); "
            "figures_heatmaps.confusion_chart(['a', 'b'], [[3, 1], [0, 4]], title='t'); "
            "figures_rates.split_half_chart({'m': {'a': .9}}, paper_range=(.9, 1), "
            "noise_floor=.5); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
            "assert matplotlib.rcParams._get_backend_or_none() is None, 'backend chosen'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_tradeoff_counts_broadcast_or_fail_with_the_shapes() -> None:
    rates = [[0.1, 0.5], [0.2, 0.6]]
    for counts in (16, [16, 8], [[16, 16], [8, 8]]):
        png = figures_rates.tradeoff_chart(["a", "b"], [0.1, 0.2], rates, rates,
                                           n_harmful=counts, n_benign=counts, title="t")
        assert png[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"n_harmful must be one count, one per direction"):
        figures_rates.tradeoff_chart(["a", "b"], [0.1, 0.2], rates, rates,
                                     n_harmful=[1, 2, 3], title="t")
    with pytest.raises(ValueError, match=r"rr and orr must be \(direction, strength\)"):
        figures_rates.tradeoff_chart(["a"], [0.1, 0.2], rates, rates, title="t")


# -- the paper's summary figures, computed on our matrices -----------------------------------

def _symmetric(k: int, values: list[float]) -> np.ndarray:
    m = np.eye(k)
    m[np.triu_indices(k, 1)] = values
    return np.triu(m, 1) + np.triu(m, 1).T + np.eye(k)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 11).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.floats(-1, 1), min_size=k * (k - 1) // 2,
                         max_size=k * (k - 1) // 2), st.permutations(range(k)))))
def test_cosine_summary_is_order_free_and_bounded(case: tuple[int, list[float], list[int]]) -> None:
    k, values, order = case
    names = CATEGORIES[:k]
    m = _symmetric(k, values)
    s = cosine_summary(names, m)
    p = cosine_summary([names[i] for i in order], m[np.ix_(order, order)])
    assert s.pairs == k * (k - 1) // 2
    assert s.low <= s.mean + 1e-12 and s.mean <= s.high + 1e-12
    assert np.isclose(s.mean, p.mean) and s.low == p.low and s.high == p.high
    assert s.below_0_3 == p.below_0_3 and s.above_0_8 == p.above_0_8
    for a, b in ((s.within_safety, p.within_safety), (s.within_coconot, p.within_coconot),
                 (s.across, p.across)):
        assert (a is None and b is None) or np.isclose(a, b)
    assert m[CATEGORIES.index(s.low_pair[0]), CATEGORIES.index(s.low_pair[1])] == s.low


@given(st.floats(-1, 1))
def test_cosine_summary_of_a_constant_matrix_is_that_constant(c: float) -> None:
    m = np.full((11, 11), c)
    np.fill_diagonal(m, 1.0)
    s = cosine_summary(CATEGORIES, m)
    for value in (s.mean, s.low, s.high, s.within_safety, s.within_coconot, s.across):
        assert np.isclose(value, c)


def test_block_means_use_the_papers_groups() -> None:
    assert set(SAFETY_LIKE) | set(COCONOT_NON_SAFETY) == set(CATEGORIES)
    m = np.zeros((11, 11))
    idx = {c: i for i, c in enumerate(CATEGORIES)}
    for a in SAFETY_LIKE:
        for b in SAFETY_LIKE:
            m[idx[a], idx[b]] = 0.7
    for a in COCONOT_NON_SAFETY:
        for b in COCONOT_NON_SAFETY:
            m[idx[a], idx[b]] = 0.6
    s = cosine_summary(CATEGORIES, m)
    assert np.allclose((s.within_safety, s.within_coconot, s.across), (0.7, 0.6, 0.0))
    assert np.isclose(s.mean, (21 * 0.7 + 6 * 0.6) / 55)
    only_two = cosine_summary(["safety_core", "humanizing"], [[1, 0.3], [0.3, 1]])
    assert only_two.within_safety is None and only_two.across == 0.3
    with pytest.raises(ValueError, match="need a k x k matrix for k = 3"):
        cosine_summary(CATEGORIES[:3], np.eye(2))


# -- the compact terminal heatmap ------------------------------------------------------------

def test_terminal_heatmap_fits_80_columns_plain_and_shows_the_first_decimal(two_models) -> None:
    payload, _ = two_models
    text = render_heatmap(payload["verdicts"], width=80)
    lines = text.splitlines()
    assert lines[:2] == ["", "Between-category cosines (noise-corrected)"]
    assert max(len(line) for line in lines) <= 80
    assert "\x1b" not in text and text.isascii()
    # Two models x two controls = four blocks, two per row at 80 columns.
    assert sum(line.startswith("a safety_core") for line in lines) == 2
    assert text.count("general benign pool, layer 11") == 2
    record = next(v for v in payload["verdicts"]
                  if v["claim"] == "distinct-directions-paper-design")
    m = record["details"]["disattenuated_cosines"]
    row = next(line for line in lines if line.startswith("b over_refusal"))
    cells = row[len("b over_refusal "):].split("  ")[0].split()
    expected = ["." if j == 1 else "-" if m[1][j] < 0 else "+" if m[1][j] >= 1
                else str(int(m[1][j] * 10)) for j in range(11)]
    assert cells == expected


def test_terminal_heatmap_stacks_on_narrow_terminals_and_is_absent_without_a_matrix(
        two_models) -> None:
    payload, _ = two_models
    narrow = render_heatmap(payload["verdicts"], width=40)
    assert max(len(line) for line in narrow.splitlines()) <= 40
    assert sum(line.startswith("a safety_core") for line in narrow.splitlines()) == 4
    others = [v for v in payload["verdicts"] if v["claim"] not in GEOMETRY]
    assert render_heatmap(others) == ""


def test_a_gated_run_shows_the_gate_outcome_and_each_rule() -> None:
    payload = realistic_payload()
    payload["gate"] = {"passed": False, "baseline": "last-release.json", "notes": ["<note>"],
                       "results": [
                           {"rule": "max_refusal_drop", "subject": "harmful refusal rate",
                            "model": "qwen-coder-0.5b", "status": "fail", "counts_as": "fail",
                            "change": -0.3, "interval": [-0.45, -0.12], "margin": 0.05,
                            "message": "dropped by 0.30"},
                           {"rule": "require_supported", "subject": "distinct-directions",
                            "model": "qwen-coder-0.5b", "status": "pass",
                            "counts_as": "pass", "message": "SUPPORTED"}]}
    page = render_html(payload)
    gate = page[page.index('id="gate"'):page.index('id="geometry"') if 'id="geometry"' in page
                else None]
    assert "FAILED" in gate and "last-release.json" in gate
    assert "max_refusal_drop" in gate and "-0.30 [-0.45, -0.12]" in gate
    assert "distinct-directions" in gate and "&lt;note&gt;" in gate
    assert 'id="gate"' not in render_html(realistic_payload())


def test_the_gate_section_lists_every_prompt_that_changed() -> None:
    payload = realistic_payload()
    changed = [{"digest": f"d{i:015d}", "text": f"<prompt {i}>", "before": True, "now": False}
               for i in range(7)] + [{"digest": "e" * 16, "text": "", "before": False,
                                      "now": True}]
    payload["gate"] = {"passed": False, "baseline": "base.json", "notes": [], "results": [
        {"rule": "max_refusal_drop", "subject": "harmful refusal rate", "model": "m",
         "status": "fail", "counts_as": "fail", "change": -6 / 88, "interval": [-0.12, -0.03],
         "margin": 0.05, "message": "dropped",
         "extra": {"method": "paired", "pairs": 88, "refused_before_not_now": 7,
                   "refused_now_not_before": 1, "why_unpaired": "", "changed": changed}},
        {"rule": "max_bypass_gain", "subject": "refusal kept under ablation", "model": "m",
         "status": "pass", "counts_as": "pass", "change": 0.0, "interval": [-0.2, 0.2],
         "margin": 0.3, "message": "kept",
         "extra": {"method": "unpaired", "pairs": 0, "why_unpaired": "old baseline",
                   "changed": []}}]}
    page = render_html(payload)
    start = page.index('id="gate"')
    gate = page[start:page.index("<h2", start)]
    # Every changed prompt (the terminal shows the first few), escaped, with its digest.
    assert all(f"&lt;prompt {i}&gt;" in gate and f"d{i:015d}" in gate for i in range(7))
    assert "(text not recorded)" in gate
    assert ("max_refusal_drop harmful refusal rate [m]: 7 refused before and not now, 1 now "
            "and not before (paired on 88 prompts)") in gate
    assert "-0.07 [-0.12, -0.03] paired on 88" in gate and "0.00 [-0.20, 0.20] unpaired" in gate
    assert gate.count("<h3>") == 1  # no list for a rule without changed prompts


def test_an_incomplete_run_says_so_at_the_top() -> None:
    payload = realistic_payload()
    assert "Incomplete run" not in render_html(payload)

    payload.update(complete=False, incomplete="stopped early: stopping after 1 failures")
    page = render_html(payload)

    head, _, _ = page.partition("</h1>")
    rest = page[len(head):]
    assert rest.startswith("</h1><p><strong>Incomplete run</strong> (stopped early: stopping "
                           "after 1 failures): the verdicts cover only the claims that ran")


def test_cross_ablation_records_get_their_heatmaps_and_readings() -> None:
    page = render_html(realistic_payload(claims=["ablation-is-category-selective-paper-design",
                                                 "ablation-is-category-selective"]))
    assert 'alt="cross-ablation drops, qwen-coder-0.5b, paper&#x27;s directions"' in page
    assert 'alt="cross-ablation drops, qwen-coder-0.5b, genre-matched directions"' in page
    assert "selective: &lt;own&gt; 0.80, others 0.10" in page  # the readings, escaped
    assert "shared: genre-matched &lt;one&gt; pathway" in page
    assert "(ablation-is-category-selective-paper-design)" in page
    # Only the paper's design in a report: its heatmap alone.
    alone = render_html(realistic_payload(
        claims=["ablation-is-category-selective-paper-design"]))
    assert 'alt="cross-ablation drops, qwen-coder-0.5b, paper' in alone
    assert 'alt="cross-ablation drops, qwen-coder-0.5b, genre-matched' not in alone
    with pytest.raises(ValueError, match="3 x 3 matrix"):
        figures_heatmaps.cross_ablation_heatmap(["a", "b", "c"], [[0.0]], [1.0, 1.0, 1.0],
                                                title="t")


# -- the damage axis and the cheap score per condition ---------------------------------------

def _damage_payload(direction: str = "safety_core") -> dict[str, Any]:
    """A report whose model carries damage and score_validation sections, built from
    observations as a run builds them."""
    from refusal_checks.measure import damage
    from refusal_checks.measure import score_validation
    from refusal_checks.cache.replies import reply_id
    from refusal_checks.measure.observations import Observations

    obs = Observations()
    for strength in (0.1, 0.2, 0.35, 0.5):
        condition = f"steered:{direction}@{strength:g}"
        obs.add_scored(condition=condition, prompt_set="h", side="refuse",
                       prompts=[f"h{i}" for i in range(8)], score=[i < 16 * strength
                                                                   for i in range(8)])
        obs.add_scored(condition=condition, prompt_set="benign", side="benign",
                       prompts=[f"b{i}" for i in range(8)], score=[i < 8 * strength
                                                                   for i in range(8)])
        obs.add_kl(condition=condition, prompt_set="benign",
                   prompts=[f"b{i}" for i in range(8)], values=[strength ** 2] * 8)
    prompts = [f"p{i}" for i in range(6)]
    for condition, broken in (("unsteered", [None] * 6),
                              ("ablated:refusal", ["repetition", None, None, "empty", None,
                                                   None]),
                              (f"steered:{direction}@0.7", ["script drift"] * 3 + [None] * 3)):
        obs.add_judged(fingerprint="fp", condition=condition, prompt_set="benign",
                       side="benign", prompts=prompts, max_new_tokens=32,
                       judge=[True, False] * 3, score=[True, True, False] * 2, broken=broken,
                       replies=[f"reply to {p}" for p in prompts])
    obs.add_kl(condition="ablated:refusal", prompt_set="benign", prompts=prompts,
               values=[0.01] * 6)
    labels = {reply_id("fp", "unsteered", "benign", p, 32, f"reply to {p}"):
              {"label": "refused"} for p in prompts}
    payload = realistic_payload(claims=["shared-knob"])
    info = payload["models"]["qwen-coder-0.5b"]
    info["damage"] = damage.summarise(obs)
    info["score_validation"] = score_validation.summarise(obs, bootstrap=20, labels=labels,
                                                          labels_source="labels.jsonl")
    return json.loads(json.dumps(payload, sort_keys=True))


def test_the_damage_figure_and_tables_are_drawn_from_the_models_sections() -> None:
    page = render_html(_damage_payload())
    assert 'id="damage"' in page
    assert 'alt="damage vs steering strength, qwen-coder-0.5b"' in page
    parsed = parse(page)
    assert len(parsed.images) == 2  # the steering trade-off and the damage figure
    width, height = png_size(parsed.images[-1])
    assert width > 300 and height > 150
    # The ablation beside the unsteered replies: broken share with its interval and reasons,
    # and the benign KL.
    row = re.search(r"<tr><td>ablated:refusal</td>(.*?)</tr>", page).group(1)
    assert "2/6 (0.33 [" in row and "repetition 1" in row and "0.01 (n=6" in row
    assert "<summary>every steered condition</summary>" in page
    assert "steered:safety_core@0.7" in page and "script drift 3" in page
    # The cheap score against the judge and the human labels, per condition.
    assert "score-validation" in page
    assert re.search(r"<td>human labels</td><td>unsteered</td><td>4/6", page)
    assert re.search(r"<td>judge</td><td>ablated:refusal</td><td>3/6", page)


def test_the_damage_section_escapes_names_and_survives_a_foreign_shape() -> None:
    page = render_html(_damage_payload("<i>x</i>"))
    assert "<i>x</i>" not in page and "&lt;i&gt;x&lt;/i&gt;" in page
    payload = _damage_payload()
    payload["models"]["qwen-coder-0.5b"]["damage"] = {"conditions": {"a": 1}, "steering": 3}
    page = render_html(payload)
    assert "cannot be drawn from this report" in page and 'id="claim-shared-knob"' in page


@settings(max_examples=8, deadline=None, derandomize=True)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5), st.integers(1, 6))
def test_damage_chart_draws_any_number_of_directions_and_gaps(values, k) -> None:
    curves = {f"d{i}": {"strengths": [0.1 * (j + 1) for j in range(len(values))],
                        "refusal": values, "refusal_source": ["judge"] * len(values),
                        "over_refusal": [float("nan")] * len(values),
                        "over_refusal_source": [""] * len(values),
                        "broken": values[::-1], "kl": [5 * v for v in values]}
              for i in range(k)}
    png = figures_rates.damage_chart(curves, title="t")
    assert png.startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="kl has"):
        figures_rates.damage_chart({"d": {**curves["d0"], "kl": []}}, title="t")


def test_the_corrected_rates_table_shows_judged_and_corrected_rates_and_the_notes() -> None:
    from refusal_checks.verdicts.corrected_conditions import corrected_by_condition
    from refusal_checks.measure.observations import Observations

    obs = Observations()
    for condition, k in (("unsteered", 12), ("ablated:refusal", 4)):
        obs.add_judged(fingerprint="fp", condition=condition, prompt_set="x/refuse",
                       side="refuse", prompts=[f"p{i}" for i in range(20)], max_new_tokens=8,
                       judge=[i < k for i in range(20)], score=[False] * 20,
                       broken=[None] * 20, replies=[f"r{i}" for i in range(20)])
    validation = {"judges": {"j": {"by_condition": {"unsteered": {
        "sensitivity": {"k": 9, "n": 10}, "specificity": {"k": 10, "n": 10}}}}}}
    payload = _damage_payload()
    payload["models"]["qwen-coder-0.5b"]["corrected_rates"] = corrected_by_condition(
        obs, validation, "j")
    page = render_html(json.loads(json.dumps(payload)))
    assert 'class="corrected-rates"' in page
    assert re.search(r"<tr><td>unsteered</td><td>12/20 -&gt; 0\.67 \[", page)
    assert re.search(r"<tr><td>ablated:refusal</td><td>4/20 as judged</td><td>-</td>"
                     r"<td>no labelled reply", page)
