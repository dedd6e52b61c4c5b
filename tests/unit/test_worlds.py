"""Known-answer worlds: what a claim may never conclude where its answer is planted.

Worlds are drawn by hypothesis (3-11 categories, 16-64 prompts per set, planted cosine,
signal, genre offsets, noise, width), read through the same code as the claim fixtures
(refusal_checks.calibration.worlds.evidence) and judged exactly as the claims judge
(refusal_checks.calibration.geometry). Few examples and n_boot=100 keep the file fast; the rates at
the claims' real sample sizes come from calibration/run.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refusal_checks.calibration import geometry as calibration

from refusal_checks.verdicts import geometry as geometry_claims
from refusal_checks.measure.activations import LayerView
from refusal_checks.measure.behaviour import RefusalBehaviour
from refusal_checks.models.synthetic import World
from refusal_checks.stats.verdict import Outcome
from refusal_checks.calibration.worlds import Design, designs, evidence, refusals

N_BOOT = 100
FEW = settings(max_examples=6, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


def _verdicts(design: Design, claims=calibration.CLAIM_IDS):
    acts, behaviour = evidence(design)
    return calibration.claim_verdicts(acts, behaviour, claims, n_boot=N_BOOT,
                                      refused=refusals(design)), acts, behaviour


@FEW
@given(designs(cos=1.0))
def test_a_shared_direction_is_neither_distinct_nor_multi_dimensional_under_matched_control(
        design):
    claims = ["distinct-under-matched-control", "more-than-one-direction"]
    verdicts, _, _ = _verdicts(design, claims)
    assert [v.outcome for v in verdicts.values()].count(Outcome.SUPPORTED) == 0, \
        [v.line() for v in verdicts.values()]


@FEW
@given(designs(cos=1.0, genre=0.0))
def test_without_genre_offsets_a_shared_direction_is_not_distinct_against_the_general_pool(
        design):
    verdicts, _, _ = _verdicts(design, ["distinct-directions",
                                        "distinct-directions-paper-design"])
    assert verdicts["distinct-directions-paper-design"].outcome is not Outcome.SUPPORTED
    assert verdicts["distinct-directions"].outcome is not Outcome.SUPPORTED


@FEW
@given(designs(signal=0.0))
def test_a_model_that_never_refuses_supports_no_claim(design):
    verdicts, _, behaviour = _verdicts(design)
    assert not behaviour.refuses()[0]
    assert all(v.outcome is Outcome.INCONCLUSIVE for v in verdicts.values())


@FEW
@given(designs(cos=0.0, n_prompts=(48, 64), signal=st.floats(4.0, 6.0),
               noise=st.floats(0.5, 1.0)))
def test_orthogonal_categories_with_enough_prompts_are_distinct_under_matched_control(design):
    verdicts, _, _ = _verdicts(design, ["distinct-under-matched-control"])
    assert verdicts["distinct-under-matched-control"].outcome is Outcome.SUPPORTED


def test_the_general_pool_confound_is_visible():
    """The paper's known weakness, planted: one refusal direction plus per-category genre
    offsets looks distinct and multi-dimensional against one general benign pool; the
    matched controls see one direction, and so does distinct-directions, which they decide
    (calibration/README.md has the rates)."""
    world = World(cos=1.0, genre=4.0, seed=3)
    acts, behaviour = evidence(Design(world, categories=5, n_refuse=48, n_matched=48,
                                      n_benign=96))
    verdicts = calibration.claim_verdicts(acts, behaviour, n_boot=N_BOOT)
    general = calibration.study(acts, calibration.GENERAL, n_boot=N_BOOT)
    assert verdicts["distinct-directions-paper-design"].outcome is Outcome.SUPPORTED
    assert verdicts["distinct-directions"].outcome is Outcome.REFUTED
    assert geometry_claims.more_than_one_direction(general, behaviour).outcome \
        is Outcome.SUPPORTED
    assert verdicts["more-than-one-direction"].outcome is Outcome.REFUTED
    assert verdicts["distinct-under-matched-control"].outcome is Outcome.REFUTED


def test_twins_off_their_category_fool_the_matched_control_and_the_paper_holds_it_back():
    """Design.twin_offset moves only the matched prompts, along an axis of their category's
    own, off every planted direction and genre. One refusal direction, no genre: the matched
    control reads distinct, the paper's design the same, so distinct-directions, which
    needs both for a SUPPORTED, is not SUPPORTED (refusal_checks/verdicts/genre.py)."""
    from refusal_checks.calibration.worlds import PlantedBackend

    design = Design(World(cos=1.0, genre=0.0, seed=4), categories=4, n_refuse=48,
                    n_matched=48, n_benign=96, twin_offset=4.0)
    backend = PlantedBackend(design)
    axes = np.array(list(backend.twin_axes.values()))
    assert np.allclose(np.linalg.norm(axes, axis=1), 1.0)
    assert np.abs(axes @ np.vstack([backend.directions, backend.genres]).T).max() < 1e-9
    plain, _ = evidence(Design(World(cos=1.0, genre=0.0, seed=4), categories=4, n_refuse=48,
                               n_matched=48, n_benign=96))
    acts, behaviour = evidence(design)
    assert np.array_equal(acts.refuse["category_00"], plain.refuse["category_00"])
    assert np.array_equal(acts.benign, plain.benign)
    shift = (acts.matched["category_00"] - plain.matched["category_00"]).mean(axis=0)
    assert np.allclose(shift, 4.0 * backend.twin_axes["category_00"], atol=1e-5)
    verdicts = calibration.claim_verdicts(acts, behaviour, n_boot=N_BOOT,
                                          refused=refusals(design))
    assert verdicts["distinct-under-matched-control"].outcome is Outcome.SUPPORTED
    assert verdicts["distinct-directions-paper-design"].outcome is Outcome.REFUTED
    claim = verdicts["distinct-directions"]
    assert claim.outcome is Outcome.INCONCLUSIVE and "the designs disagree" in claim.reason


def test_calibration_verdicts_take_plain_counts_and_mappings():
    design = Design(categories=4, n_refuse=24, n_matched=24, n_benign=48)
    acts, behaviour = evidence(design)
    plain = {"refuse": acts.refuse, "matched": acts.matched, "benign": acts.benign,
             "layer": acts.layer}
    counts = {"refused": behaviour.refused, "n": behaviour.n,
              "benign_refused": behaviour.benign_refused, "benign_n": behaviour.benign_n}
    a = calibration.distinct_under_matched_control(acts, behaviour, n_boot=N_BOOT)
    b = calibration.distinct_under_matched_control(plain, counts, n_boot=N_BOOT)
    assert (a.outcome, a.estimate, a.interval) == (b.outcome, b.estimate, b.interval)


def test_calibration_errors_say_what_to_pass():
    with pytest.raises(TypeError, match="benign_n"):
        calibration.stable_within_category({"refuse": {}, "benign": np.zeros((2, 2))},
                                           {"refused": 1, "n": 2})
    with pytest.raises(ValueError, match="Known: stable-within-category"):
        calibration.claim_verdicts({"refuse": {}, "benign": np.zeros((2, 2))},
                                   RefusalBehaviour("j", 1, 2, 0, 2), ["stable"])
    view = LayerView({"a": np.ones((4, 3)), "b": np.ones((4, 3))}, {"a": np.zeros((4, 3))},
                     np.zeros((4, 3)), 0)
    with pytest.raises(ValueError, match="fewer than two categories"):
        calibration.study(view, calibration.MATCHED)
