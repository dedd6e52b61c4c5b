"""Behaviour-matched directions: refused minus answered prompts within each category.

Planted arrays check the direction building (the refused/answered split recovers a planted
direction, a category's genre cancels), the counts rule and the verdict; planted worlds
(refusal_checks.calibration.worlds with a per-prompt refusal strength) check the claim end to end,
through the same code calibration/run.py runs.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refusal_checks.calibration import geometry as calibration

from refusal_checks.verdicts import geometry as geometry_claims

from refusal_checks.stats import geometry
from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.measure.behaviour_control import (CONTROL, MIN_PER_SIDE, REPLY_TOKENS,
                                              behaviour_directions)
from refusal_checks.prompts.load import bundled, load_prompts
from refusal_checks.models.synthetic import World
from refusal_checks.stats.verdict import Outcome
from refusal_checks.calibration.worlds import Design, evidence, refusals

N_BOOT = 100
REFUSES = RefusalBehaviour("planted", 40, 64, 0, 16)
FEW = settings(max_examples=8, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


def planted(rng: np.random.Generator, directions: np.ndarray, *, n: int = 64, genre: float = 6.0,
            spread: float = 3.0, noise: float = 1.0) -> tuple[dict, dict, np.ndarray]:
    """Categories whose prompts carry a per-prompt refusal strength along their direction,
    a large per-category genre offset, and noise; refused = strength + noise > 0."""
    k, d = directions.shape
    # Genre offsets orthogonal to every planted direction, so that any genre left in a
    # direction shows as a cosine with the genre, not as the planted part's chance overlap.
    span, _ = np.linalg.qr(directions.T)
    genres = rng.standard_normal((k, d))
    genres = genre * geometry.unit(genres - genres @ span @ span.T)
    acts, refused = {}, {}
    for i in range(k):
        z = rng.standard_normal(n)
        acts[f"c{i}"] = genres[i] + np.outer(spread * z, directions[i]) \
            + noise * rng.standard_normal((n, d))
        refused[f"c{i}"] = spread * z + rng.standard_normal(n) > 0
    return acts, refused, genres


@FEW
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(16, 96))
def test_refused_minus_answered_recovers_the_planted_direction_and_cancels_genre(seed, d):
    rng = np.random.default_rng(seed)
    directions = geometry.unit(rng.standard_normal((3, d)))
    acts, refused, genres = planted(rng, directions)
    control = behaviour_directions(acts, refused, layer=5, seed=0, n_boot=N_BOOT)
    assert control.usable == ["c0", "c1", "c2"]
    for i in range(3):
        flags = refused[f"c{i}"]
        direction = geometry.diff_in_means(acts[f"c{i}"][flags], acts[f"c{i}"][~flags])
        # The planted gap along the direction is ~2 * 0.76 * 3 = 4.6 against a noise norm
        # of ~sqrt(d * (1/32 + 1/32)) <= 2.5 at d = 96: cosine >= 0.7 on any machine.
        assert geometry.cosine(direction, directions[i]) > 0.7
        # The genre offset (norm 6) is shared by both sides and cancels: what is left along
        # it is noise, std ~sqrt(1/32 + 1/32) = 0.25 against a direction norm ~4.6, so
        # |cos| < 0.3 is a 5-sigma bound on any machine.
        assert abs(geometry.cosine(direction, genres[i])) < 0.3
    assert control.study is not None and control.study.control == CONTROL
    assert control.counts["c0"] == (int(refused["c0"].sum()), int((~refused["c0"]).sum()))


def test_one_shared_direction_behind_different_genres_is_not_distinct():
    rng = np.random.default_rng(7)
    shared = geometry.unit(rng.standard_normal(64))
    acts, refused, _ = planted(rng, np.tile(shared, (4, 1)), genre=12.0)
    control = behaviour_directions(acts, refused, layer=0, seed=0, n_boot=N_BOOT)
    verdict = geometry_claims.distinct_under_behaviour_control(control, REFUSES)
    assert verdict.outcome is not Outcome.SUPPORTED, verdict.line()
    assert verdict.estimate > 0.9
    # The same prompts against one general pool: genre reads as distinctness; the claim,
    # decided by the control, is not SUPPORTED.
    pool = rng.standard_normal((128, 64))
    general = calibration.study({"refuse": acts, "benign": pool}, calibration.GENERAL,
                                n_boot=N_BOOT)
    paper = geometry_claims.distinct_directions_paper_design(general, REFUSES)
    assert paper.outcome is Outcome.SUPPORTED
    claim = geometry_claims.distinct_directions(general, None, control, REFUSES)
    assert claim.outcome is verdict.outcome and claim.outcome is not Outcome.SUPPORTED


def test_orthogonal_planted_directions_are_distinct():
    rng = np.random.default_rng(11)
    basis, _ = np.linalg.qr(rng.standard_normal((64, 4)))
    acts, refused, _ = planted(rng, basis.T)
    control = behaviour_directions(acts, refused, layer=0, seed=0, n_boot=N_BOOT)
    verdict = geometry_claims.distinct_under_behaviour_control(control, REFUSES)
    assert verdict.outcome is Outcome.SUPPORTED, verdict.line()
    assert verdict.details["behaviour_counts"]["c1"]["refused"] == int(refused["c1"].sum())


def test_categories_below_the_minimum_are_listed_and_left_out():
    rng = np.random.default_rng(3)
    acts = {c: rng.standard_normal((20, 8)) for c in ("a", "b", "c")}
    flags = np.arange(20) < 10
    # c: one answered prompt short of the minimum (13 refused, 7 answered).
    refused = {"a": flags, "b": flags, "c": np.arange(20) < 20 - (MIN_PER_SIDE - 1)}
    control = behaviour_directions(acts, refused, layer=0, seed=0, n_boot=N_BOOT)
    assert control.usable == ["a", "b"] and control.left_out == ["c"]
    assert control.counts == {"a": (10, 10), "b": (10, 10), "c": (13, 7)}
    assert control.study is not None and control.study.categories == ["a", "b"]
    assert "c 13/7 (left out)" in control.counts_text()


def test_fewer_than_two_usable_categories_is_inconclusive_with_the_counts():
    rng = np.random.default_rng(4)
    acts = {c: rng.standard_normal((30, 8)) for c in ("a", "b")}
    refused = {"a": np.arange(30) < 15, "b": np.arange(30) < 28}
    control = behaviour_directions(acts, refused, layer=0, seed=0, n_boot=N_BOOT)
    assert control.study is None
    verdict = geometry_claims.distinct_under_behaviour_control(control, REFUSES)
    assert verdict.outcome is Outcome.INCONCLUSIVE and verdict.n == 0
    assert math.isnan(verdict.estimate)
    assert (f"1 of 2 categories have >= {MIN_PER_SIDE} refused and >= {MIN_PER_SIDE} answered"
            in verdict.reason)
    assert "a 15/15, b 28/2 (left out)" in verdict.reason
    assert f"{REPLY_TOKENS}-token greedy replies" in verdict.reason
    assert verdict.details["behaviour_counts"]["b"] == {"refused": 28, "answered": 2}
    # A model that does not refuse: that reason comes first, the counts still follow.
    silent = RefusalBehaviour("planted", 0, 64, 0, 16)
    reason = geometry_claims.distinct_under_behaviour_control(control, silent).reason
    assert reason.startswith("no measurable refusal") and "b 28/2" in reason


def test_verdicts_must_match_the_activations():
    with pytest.raises(ValueError, match="has 5 activation rows but 4 refusal verdicts"):
        behaviour_directions({"a": np.zeros((5, 3))}, {"a": np.ones(4, bool)}, layer=0, seed=0)
    with pytest.raises(ValueError, match="but no refusal verdicts"):
        behaviour_directions({"a": np.zeros((5, 3))}, {}, layer=0, seed=0)


def test_the_paper_design_always_carries_the_genre_caveat():
    rng = np.random.default_rng(5)
    acts = {c: rng.standard_normal((20, 8)) + 3 * np.eye(8)[i] for i, c in enumerate("ab")}
    general = calibration.study({"refuse": acts, "benign": rng.standard_normal((40, 8))},
                                calibration.GENERAL, n_boot=N_BOOT)
    verdict = geometry_claims.distinct_directions_paper_design(general, REFUSES)
    assert verdict.details["caveat"] == geometry_claims.GENRE_CAVEAT
    assert verdict.reason.endswith(geometry_claims.GENRE_CAVEAT)
    assert "this result may reflect genre, not refusal" in verdict.line()
    assert "the claim's verdict is distinct-directions" in verdict.reason


# --- planted worlds, as calibration/run.py judges them --------------------------------------

def _world(cos: float, seed: int, **extra) -> tuple:
    design = Design(World(cos=cos, signal=2.0, spread=3.0, seed=seed), categories=5,
                    n_refuse=64, n_matched=0, n_benign=96, **extra)
    acts, behaviour = evidence(design)
    return acts, behaviour, refusals(design)


@pytest.mark.parametrize("seed", [1, 2])
def test_planted_worlds_shared_is_not_distinct_and_distinct_is(seed):
    acts, behaviour, refused = _world(1.0, seed)
    claims = ["distinct-directions", "distinct-directions-paper-design",
              "distinct-under-behaviour-control"]
    shared = calibration.claim_verdicts(acts, behaviour, claims, n_boot=N_BOOT, refused=refused)
    assert shared["distinct-under-behaviour-control"].outcome is Outcome.REFUTED
    # The paper's design calls the same world distinct; the claim follows the control.
    assert shared["distinct-directions-paper-design"].outcome is Outcome.SUPPORTED
    assert shared["distinct-directions"].outcome is Outcome.REFUTED
    assert shared["distinct-directions"].details["decided_by"] == \
        "distinct-under-behaviour-control"
    acts, behaviour, refused = _world(0.0, seed)
    distinct = calibration.distinct_under_behaviour_control(acts, behaviour, refused,
                                                            n_boot=N_BOOT)
    assert distinct.outcome is Outcome.SUPPORTED, distinct.line()
    assert calibration.distinct_directions(acts, behaviour, refused, n_boot=N_BOOT).outcome \
        is Outcome.SUPPORTED


def test_a_world_whose_model_refuses_everything_leaves_the_claim_undecided():
    design = Design(World(cos=1.0, signal=6.0, seed=3), categories=4, n_refuse=32,
                    n_matched=0, n_benign=64)
    acts, behaviour = evidence(design)
    verdicts = calibration.claim_verdicts(acts, behaviour, n_boot=N_BOOT,
                                          refused=refusals(design))
    assert verdicts["distinct-directions-paper-design"].outcome is Outcome.SUPPORTED
    claim = verdicts["distinct-directions"]
    assert claim.outcome is Outcome.INCONCLUSIVE
    assert claim.reason.startswith("no genre control decides")
    assert "distinct-under-matched-control: not measured: fewer than two categories" \
        in claim.reason
    assert "0 of 4 categories have >= 8 refused" in claim.reason
    assert "cannot decide alone" in claim.reason
    assert verdicts["distinct-under-behaviour-control"].outcome is Outcome.INCONCLUSIVE


def test_the_behaviour_claim_needs_the_replies():
    acts, behaviour, _ = _world(1.0, 1)
    with pytest.raises(ValueError, match="needs refused="):
        calibration.claim_verdicts(acts, behaviour, ["distinct-under-behaviour-control"])
    # By default, every claim whose inputs are given: without replies, not this one.
    acts, behaviour = evidence(Design(categories=3, n_refuse=24, n_matched=24, n_benign=48))
    defaults = calibration.claim_verdicts(acts, behaviour, n_boot=N_BOOT)
    assert set(defaults) == set(calibration.CLAIM_IDS) - {"distinct-under-behaviour-control"}


# --- the real-data known-answer files (README: "A real-data check of the three designs") --

SHARED = Path(os.environ.get("REFUSAL_CHECKS_SHARED")
              or Path(__file__).resolve().parents[2].parent / "shared")


@pytest.mark.skipif(not (SHARED / "datasets").is_dir(),
                    reason=f"shared datasets folder {SHARED / 'datasets'} is absent; set "
                    "REFUSAL_CHECKS_SHARED to the folder holding datasets/coconot and xstest")
def test_genre_known_answer_files_load_as_two_categories_with_twins(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "genre_known_answers", Path(__file__).resolve().parents[2] / "tools" /
        "genre_known_answers.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    paths = tool.build(SHARED / "datasets", tmp_path)
    split = load_prompts([paths["split"]], benign_fallback=bundled().benign)
    sources = load_prompts([paths["sources"]], benign_fallback=bundled().benign)
    assert list(split.categories) == ["half_a", "half_b"]
    assert list(sources.categories) == ["ccn_safety", "xst_unsafe"]
    for collection in (split, sources):
        for category in collection.categories.values():
            assert len(category.refuse) == len(category.matched) == tool.PER_SET
    # The random halves share no prompt; the two-source file's XSTest set is half_a.
    a, b = (set(split.categories[c].refuse.texts) for c in ("half_a", "half_b"))
    assert not a & b
    assert set(sources.categories["xst_unsafe"].refuse.texts) == a
    assert tool.build(SHARED / "datasets", tmp_path / "again")["split"].read_text() == \
        paths["split"].read_text()  # deterministic
