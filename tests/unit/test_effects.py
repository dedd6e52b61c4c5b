"""Scoring and sweep maths: refusal score, KL, the shared-knob path deviation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from refusal_checks.stats.rates import KnobSweep, Rate
from refusal_checks.measure.effects import mean_norm
from refusal_checks.models.scoring import agreement, kl_divergence, refusal_probability, refusal_score


def _logsoftmax(x: np.ndarray) -> np.ndarray:
    return x - np.logaddexp.reduce(x, axis=1, keepdims=True)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (3, 6), elements=st.floats(-8, 8)))
def test_refusal_score_is_the_log_odds_of_the_refusal_mass(logits):
    logprobs = _logsoftmax(logits)
    p = np.exp(logprobs[:, [0, 2]]).sum(axis=1)
    assert np.allclose(refusal_probability(logprobs, [2, 0, 0]), p)
    expected = np.log(np.clip(p, 1e-13, 1 - 1e-13)) - np.log1p(-np.clip(p, 1e-13, 1 - 1e-13))
    assert np.allclose(refusal_score(logprobs, [0, 2]), np.clip(expected, -30, 30))


def test_refusal_score_needs_tokens():
    with pytest.raises(ValueError, match="no refusal tokens"):
        refusal_score(np.zeros((1, 3)), [])


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (2, 5), elements=st.floats(-6, 6)),
       arrays(np.float64, (2, 5), elements=st.floats(-6, 6)))
def test_kl_is_non_negative_and_zero_on_identical_distributions(a, b):
    p, q = _logsoftmax(a), _logsoftmax(b)
    assert (kl_divergence(p, q) >= 0).all()
    assert np.allclose(kl_divergence(p, p), 0.0, atol=1e-12)


def _sweep(rr: np.ndarray, orr: np.ndarray, n: int = 40) -> KnobSweep:
    """Planted rates: prompt i refuses when i < rate * n (deterministic, exact rates)."""
    idx = np.arange(n)
    harmful = idx[None, None, :] < np.round(rr[..., None] * n)
    benign = idx[None, None, :] < np.round(orr[..., None] * n)
    k, s = rr.shape
    return KnobSweep([f"d{i}" for i in range(k)], list(np.linspace(0.1, 0.4, s)),
                     np.ones((k, s)), harmful, benign)


def test_identical_paths_have_no_deviation_even_at_different_speeds():
    # Direction 1 moves half as fast along the same RR = f(ORR) path (PAPER.md A.3).
    orr = np.array([[0.1, 0.3, 0.5, 0.7], [0.05, 0.15, 0.3, 0.5], [0.1, 0.3, 0.5, 0.7]])
    rr = 0.5 + 0.5 * orr
    sweep = _sweep(rr, orr)
    assert sweep.path_deviation() == pytest.approx(0.0, abs=0.03)
    speeds = sweep.speeds()
    assert speeds["d1"] < speeds["d0"] == pytest.approx(speeds["d2"])


def test_a_different_path_is_measured():
    orr = np.tile([0.1, 0.3, 0.5, 0.7], (3, 1))
    rr = np.stack([0.5 + 0.5 * orr[0], 0.5 + 0.5 * orr[1], 0.1 + 0.2 * orr[2]])
    sweep = _sweep(rr, orr)
    assert sweep.path_deviation() > 0.4
    estimate, (lo, hi) = sweep.bootstrap_deviation(np.random.default_rng(0), 100)
    assert lo <= estimate <= hi + 1e-9 and lo > 0.2


def test_rates_and_helpers():
    assert Rate.of(np.array([True, False, True, True])).value == 0.75
    assert Rate(0, 0).interval() == (0.0, 1.0)
    assert agreement(np.array([1, 0, 1]), np.array([1, 1, 1]))["agreement"] == pytest.approx(2 / 3)
    assert mean_norm(np.array([[3.0, 4.0], [0.0, 1.0]])) == 3.0


def test_path_deviation_can_test_some_directions_against_the_others():
    # d0, d1: one path; d2 (another path) is only tested, never part of the reference.
    orr = np.tile([0.1, 0.3, 0.5, 0.7], (3, 1))
    rr = np.stack([0.5 + 0.5 * orr[0], 0.5 + 0.5 * orr[1], 0.1 + 0.2 * orr[2]])
    sweep = _sweep(rr, orr)
    assert sweep.path_deviation(tested=[1], reference=[0]) == pytest.approx(0.0, abs=0.03)
    assert sweep.path_deviation(tested=[2], reference=[0, 1]) > 0.4
    assert sweep.path_deviation(tested=[0, 1, 2], reference=[0, 1, 2]) == sweep.path_deviation()
    estimate, (lo, hi) = sweep.bootstrap_deviation(np.random.default_rng(0), 50, tested=[1],
                                                   reference=[0])
    assert estimate == pytest.approx(0.0, abs=0.03) and hi < 0.15


def test_sweeps_join_when_their_strengths_agree():
    orr = np.tile([0.1, 0.3, 0.5, 0.7], (2, 1))
    a, b = _sweep(orr, orr), _sweep(orr[:1], orr[:1])
    joined = a.joined(b)
    assert joined.directions == ["d0", "d1", "d0"] and joined.harmful.shape[0] == 3
    with pytest.raises(ValueError, match="different strengths"):
        a.joined(KnobSweep(["x"], [1.0], np.ones((1, 1)), a.harmful[:1, :1],
                           a.benign[:1, :1]))
