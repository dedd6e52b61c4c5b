"""Calibration of the style claims: the library measures what the fixtures measure, its
parts do what they say, and a quick known-answer run goes the right way.

The full study (200 worlds per scenario, calibration/README.md) takes about 15 minutes;
here a few worlds per clear-cut scenario.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.plugin import hooks as plugin

from refusal_checks.calibration import style as style_calibration
from refusal_checks.prompts.load import bundled
from refusal_checks.measure.style_features import span_coordinates
from refusal_checks.measure.style_steering import (
    FIRST_STRENGTH,
    MAX_TRIES,
    RATE_TOLERANCE,
    STRENGTH_BOUNDS,
    TARGET_RATE,
    SteeredReplies,
    control_categories,
    control_halves,
    random_half_directions,
    rate_matched_replies,
)
from refusal_checks.models.synthetic import SyntheticBackend
from refusal_checks.stats.verdict import Verdict
from refusal_checks.calibration.worlds import PlantedBackend

REPO = Path(__file__).resolve().parents[2]
QUICK_WORLDS = 3


def _run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", COLUMNS="200")
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def encoder():
    from refusal_checks.judges.embedding import MiniLMEncoder, model_folder

    return MiniLMEncoder(model_folder())


# --- the shared implementation ----------------------------------------------------------

class _Tried:
    """A planted answer: refusal rate grows linearly with the strength, capped at 1."""

    def __init__(self, base: float, slope: dict[str, float], n: int = 24) -> None:
        self.base, self.slope, self.n = base, slope, n
        self.calls: list[tuple[str, float] | None] = []

    def make(self, vector: np.ndarray, strength: float, name: str) -> tuple[str, float]:
        return name, strength

    def __call__(self, intervention: tuple[str, float] | None):
        self.calls.append(intervention)
        rate = self.base if intervention is None else \
            min(1.0, self.base + self.slope[intervention[0]] * intervention[1])
        refused = np.arange(self.n) < round(rate * self.n)
        return refused, [f"reply {i} {intervention}" for i in range(self.n)]


def test_rate_matched_replies_searches_in_the_fixture_order_and_keeps_the_nearest():
    answer = _Tried(0.25, {"steep": 2.0, "flat": 0.0})
    steered = rate_matched_replies(answer, {"steep": np.ones(3), "flat": np.ones(3)},
                                   answer.make, prompts=[f"p{i}" for i in range(24)])
    # unsteered first, then each direction from FIRST_STRENGTH, at most MAX_TRIES tries
    assert answer.calls[0] is None
    assert answer.calls[1] == ("steep", FIRST_STRENGTH)
    flat = [c for c in answer.calls[1:] if c[0] == "flat"]
    assert len(flat) <= MAX_TRIES and flat[0] == ("flat", FIRST_STRENGTH)
    assert all(STRENGTH_BOUNDS[0] <= s <= STRENGTH_BOUNDS[1] for _, s in flat)
    # steep: 0.25 + 2 * 0.35 = 0.96 is too high; interpolation lands near 0.175
    assert abs(float(np.mean(steered.refused["steep"])) - TARGET_RATE) \
        <= RATE_TOLERANCE / 2
    assert steered.tried["steep"][0] == (0.0, 0.25)
    for name in ("steep", "flat"):
        rates = {s: r for s, r in steered.tried[name][1:]}
        best = min(abs(r - TARGET_RATE) for r in rates.values())
        assert abs(rates[round(steered.strengths[name], 4)] - TARGET_RATE) == best
        assert steered.replies[name][0] == f"reply 0 {(name, steered.strengths[name])}"
    assert steered.prompts == [f"p{i}" for i in range(24)]


def test_random_half_directions_split_the_train_rows_into_two_disjoint_halves():
    # Row i of the activations is 1 at coordinate i only: a mean reveals its rows.
    refuse, benign = np.eye(20), np.eye(20)
    rows, pool = np.arange(0, 20, 2), np.arange(1, 20, 2)
    halves = random_half_directions("x", refuse, rows, benign, pool, seed=3)
    a, b = halves["x/a"], halves["x/b"]
    used = {name: (set(np.flatnonzero(v > 0)), set(np.flatnonzero(v < 0)))
            for name, v in (("a", a), ("b", b))}
    assert used["a"][0] | used["b"][0] == set(rows) and not used["a"][0] & used["b"][0]
    assert used["a"][1] | used["b"][1] == set(pool) and not used["a"][1] & used["b"][1]
    again = random_half_directions("x", refuse, rows, benign, pool, seed=3)
    assert all(np.array_equal(halves[k], again[k]) for k in halves)


def test_control_categories_are_the_directions_with_most_refusals_earlier_on_a_tie():
    refused = {"a": np.array([1, 0, 1], bool), "b": np.array([1, 1, 0], bool),
               "c": np.array([0, 0, 1], bool), "d": np.array([1, 1, 1], bool)}
    steered = SteeredReplies(["a", "b", "c", "d"], ["p"] * 3, {}, refused,
                             {"a": 0.2, "b": 0.3, "c": 0.4, "d": 0.5})
    assert control_categories(steered, k=1) == ["d"]
    assert control_categories(steered, k=3) == ["a", "b", "d"]
    halves, strengths = control_halves(
        steered, ["a", "d"], {"a": np.eye(8), "d": np.eye(8)},
        {"a": np.arange(8), "d": np.arange(8)}, np.eye(8), np.arange(8), seed=0)
    assert sorted(halves) == ["a/a", "a/b", "d/a", "d/b"]
    assert strengths == {"a/a": 0.2, "a/b": 0.2, "d/a": 0.5, "d/b": 0.5}


@settings(max_examples=40, deadline=None)
@given(st.integers(4, 40), st.integers(2, 6), st.integers(0, 2**31 - 1))
def test_span_coordinates_keep_every_distance_and_every_prediction(n, distinct, seed):
    rng = np.random.default_rng(seed)
    # few distinct rows in many dimensions, like planted refusals: rank <= distinct
    rows = rng.standard_normal((distinct, 50))
    x = rows[rng.integers(0, distinct, n)] + 1e-3 * rng.standard_normal((n, 1)) * rows[0]
    y = span_coordinates(x)
    assert y.shape[1] <= min(n, distinct + 1)
    dx = ((x[:, None] - x[None]) ** 2).sum(-1)
    dy = ((y[:, None] - y[None]) ** 2).sum(-1)
    assert np.allclose(dx, dy, atol=1e-9 * max(1.0, dx.max()))
    labels, groups = rng.integers(0, 3, n), rng.integers(0, 4, n)
    if len(set(labels)) > 1 and len(set(groups)) > 1:
        labels = np.unique(labels, return_inverse=True)[1]
        groups = np.unique(groups, return_inverse=True)[1]
        centroids = np.array([x[labels == k].mean(0) for k in range(labels.max() + 1)])
        projected = np.array([y[labels == k].mean(0) for k in range(labels.max() + 1)])
        assert np.allclose(((x[:, None] - centroids) ** 2).sum(-1),
                           ((y[:, None] - projected) ** 2).sum(-1), atol=1e-9)


def test_memo_encoder_encodes_each_text_once():
    class Counting:
        def __init__(self):
            self.seen: list[str] = []

        def encode(self, texts, max_tokens):
            self.seen += list(texts)
            return np.array([[len(t), max_tokens] for t in texts], np.float32)

    inner = Counting()
    memo = style_calibration.MemoEncoder(inner)
    first = memo.encode(["ab", "c", "ab"], max_tokens=64)
    second = memo.encode(["c", "dddd"], max_tokens=64)
    assert inner.seen == ["ab", "c", "dddd"] and len(memo) == 3
    assert first.tolist() == [[2, 64], [1, 64], [2, 64]]
    assert second.tolist() == [[1, 64], [4, 64]]


# --- planted worlds -------------------------------------------------------------------

def test_unreachable_directions_are_orthogonal_to_the_readouts_and_names_are_checked():
    design = style_calibration.style_design(unreachable=("humanizing",))
    backend = PlantedBackend(design.with_seed(5))
    names = design.category_names()
    lost = backend.directions[names.index("humanizing")]
    assert abs(float(lost @ backend.directions[0])) < 1e-12
    assert abs(float(lost @ backend.benign_readout)) < 1e-12
    assert float(np.linalg.norm(lost)) == pytest.approx(1.0)
    others = [backend.directions[names.index(n)] @ backend.directions[0]
              for n in names if n not in ("humanizing", names[0])]
    assert np.allclose(others, 0.5, atol=1e-9)  # the rest keep cos 0.5
    with pytest.raises(ValueError, match="unreachable categories \\['nope'\\]"):
        PlantedBackend(style_calibration.style_design(unreachable=("nope",)))


def test_swapped_markers_replace_the_paper_families():
    backend = PlantedBackend(style_calibration.STYLE_SCENARIOS["swapped-families"].design)
    marker = dict(style_calibration.SWAPPED_MARKERS)
    assert backend._marker(backend.slot("humanizing")) == marker["humanizing"]
    assert backend._marker(backend.slot("safety_core")) == marker["safety_core"]
    plain = PlantedBackend(style_calibration.style_design())
    assert plain._marker(plain.slot("humanizing")) == SyntheticBackend.PAPER_MARKERS["humanizing"]


# --- the library equals the claims --------------------------------------------------------

def test_style_calibration_verdicts_equal_the_claims_verdicts(tmp_path: Path, encoder) -> None:
    """claims/test_style.py under pytest on a planted world, then through the library."""
    spec, categories = "distinct,style=1", ["safety_core", "humanizing", "crime_assistance",
                                            "unsupported"]
    report = tmp_path / "report.json"
    done = _run(["-m", "pytest", "claims/test_style.py", plugin.MODEL, f"synthetic:{spec}",
                 plugin.CATEGORIES, ",".join(categories), plugin.JSON_REPORT, str(report),
                 "--refusal-cache-dir", str(tmp_path / "cache"), "-p", "no:cacheprovider",
                 "-p", "no:hypothesispytest", "-q"])
    assert report.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    recorded = {v["claim"]: Verdict.from_dict(v)
                for v in json.loads(report.read_text())["verdicts"]}
    measured = style_calibration.StyleMeasurements(
        SyntheticBackend.from_spec(spec), bundled().only(categories), encoder, compact=False)
    computed = style_calibration.style_verdicts(measured)
    assert set(recorded) == set(style_calibration.STYLE_CLAIM_IDS)
    for claim, verdict in computed.items():
        theirs = recorded[claim]
        assert (verdict.outcome, verdict.statistic, verdict.n, verdict.threshold,
                verdict.reason) == (theirs.outcome, theirs.statistic, theirs.n,
                                    theirs.threshold, theirs.reason), claim
        assert verdict.estimate == pytest.approx(theirs.estimate, rel=1e-9, abs=1e-12), claim
        assert verdict.interval == pytest.approx(theirs.interval, rel=1e-9, abs=1e-12), claim
    assert recorded["style-differs-by-direction"].outcome.value == "supported"
    assert recorded["style-families"].outcome.value == "supported"


# Rates compared on fresh prompts (strengths searched on others) rarely bound an 11-way
# rate gap under 0.15 with 24 probe prompts: power well under 90% (calibration/README.md),
# so a few worlds cannot demand it; their nulls are still checked.
LOW_POWER = ("style-rate-matched", "style-not-rate")


def test_quick_style_run_supports_planted_effects_and_never_a_null(encoder) -> None:
    # Clear-cut scenarios only: the boundary null says SUPPORTED in a few percent of worlds
    # by design, too often for an exact count on a few worlds.
    scenarios = ["styled", "plain", "swapped-families", "one-unreachable", "never-refuses"]
    results = style_calibration.run_style(scenarios, QUICK_WORLDS,
                                          encoder=style_calibration.MemoEncoder(encoder))
    roles = 0
    for name in scenarios:
        scenario = style_calibration.STYLE_SCENARIOS[name]
        for claim, tally in results[name].items():
            assert tally.n == QUICK_WORLDS
            supported = tally.counts["supported"]
            role = scenario.role(claim)
            roles += role is not None
            if role == "null":
                assert supported == 0, (name, claim, tally)
            elif role == "effect" and claim not in LOW_POWER:
                assert supported >= QUICK_WORLDS - 1, (name, claim, tally)
    assert roles >= 15
    table = "\n".join(style_calibration.style_table_lines(results))
    assert "style-families               null   swapped-families     3" in table


def test_style_run_rejects_bad_options_with_a_message() -> None:
    done = _run(["calibration/run.py", "--style", "--style-scenarios", "stiled"])
    assert done.returncode == 2
    assert "unknown style scenarios ['stiled']. Known: styled," in done.stderr
    done = _run(["calibration/run.py", "--style", "--behaviour", "--worlds", "1"])
    assert done.returncode == 2 and "give one of them" in done.stderr
    assert "Traceback" not in done.stderr


def test_style_verdicts_reject_unknown_claim_ids() -> None:
    with pytest.raises(ValueError, match="Known: style-differs-by-direction"):
        style_calibration.style_verdicts(None, ["style"])  # type: ignore[arg-type]
