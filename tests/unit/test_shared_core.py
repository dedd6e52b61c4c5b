"""The shared-core statistics (refusal_checks/verdicts/shared_core.py): maths and planted worlds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from refusal_checks.calibration import known_answers

from refusal_checks.verdicts import shared_core
from refusal_checks.verdicts.shared_core import core_loadings, remainder_split_half
from refusal_checks.verdicts.geometry import every_category_above
from refusal_checks.stats.verdict import Outcome
from refusal_checks.calibration.worlds import Design, PlantedBackend
from refusal_checks.models.synthetic import World


def _cosines(loadings: np.ndarray) -> np.ndarray:
    m = np.outer(loadings, loadings)
    np.fill_diagonal(m, 1.0)
    return m


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.3, 0.99), min_size=3, max_size=12))
@example([0.984375, 0.3046875, 0.3046875])  # the slowest to settle hypothesis found
def test_one_factor_fit_recovers_planted_loadings(values: list[float]) -> None:
    planted = np.array(values)
    # A rank-one off-diagonal pins the loadings down for k >= 3; 1e-3 leaves room for the
    # capped principal-axis iterations on weak loadings (slow convergence near 0.3).
    assert core_loadings(_cosines(planted)) == pytest.approx(planted, abs=1e-3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.3, 0.99), min_size=3, max_size=8), st.permutations(range(8)))
def test_loadings_follow_a_relabelling_of_the_categories(values: list[float],
                                                         order: list[int]) -> None:
    m = _cosines(np.array(values))
    perm = [i for i in order if i < len(values)]
    assert core_loadings(m[np.ix_(perm, perm)]) == pytest.approx(core_loadings(m)[perm],
                                                                 abs=1e-6)


def test_unrelated_directions_load_nothing_and_nan_stays_nan() -> None:
    assert core_loadings(np.eye(5)) == pytest.approx(np.zeros(5), abs=1e-9)
    batch = np.stack([np.eye(4), np.full((4, 4), np.nan)])
    out = core_loadings(batch)
    assert np.all(np.isfinite(out[0])) and np.all(np.isnan(out[1]))
    with pytest.raises(ValueError, match="k >= 3"):
        core_loadings(np.eye(2))


def _planted(core: float, specific: float, *, k: int = 6, n: int = 64, d: int = 48,
             seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """k categories: core * c + specific * own_i plus unit noise, each against its own
    benign set (mean 0)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((d, k + 1)))
    refuse = [core * basis[:, 0] + specific * basis[:, i + 1] + rng.standard_normal((n, d))
              for i in range(k)]
    benign = [rng.standard_normal((n, d)) for _ in range(k)]
    return refuse, benign


def test_remainders_of_a_pure_core_are_noise_and_planted_parts_are_stable() -> None:
    rng = np.random.default_rng(1)
    noise_only = remainder_split_half(*_planted(5.0, 0.0), rng, n_splits=100)
    parts = remainder_split_half(*_planted(5.0, 5.0), rng, n_splits=100)
    # Half noise |n|^2 ~ 48 (1/32 + 1/32) = 3: pure noise remainders have cosine ~0 (+-0.2
    # with 48 dimensions); planted parts of norm 5 give ~25 / 28 = 0.89.
    assert np.all(np.abs(noise_only) < 0.25)
    assert np.all(parts > 0.75)


def test_remainder_bootstrap_brackets_the_estimate() -> None:
    refuse, benign = _planted(5.0, 3.0)
    rng = np.random.default_rng(2)
    estimate = remainder_split_half(refuse, benign, rng)
    boot = shared_core.bootstrap_remainder_split_half(refuse, benign, rng, n_boot=60)
    assert boot.shape == (60, 6) and not np.isnan(boot).any()
    # Replicates are noisier than the data (fewer distinct prompts), so they sit lower,
    # but within the spread of a split-half cosine at this size.
    assert np.all(np.abs(np.median(boot, axis=0) - estimate) < 0.2)


@pytest.mark.parametrize(("scenario", "core", "specific"), [
    ("core-and-parts", "supported", "supported"),
    ("shared", "supported", "not supported"),
    ("no-core", "not supported", "supported"),
])
def test_quick_calibration_subset(scenario: str, core: str, specific: str) -> None:
    """Three worlds of each planted scenario (calibration/README.md has 100 each)."""
    claims = (known_answers.CORE, known_answers.SPECIFIC)
    for seed in (1, 2, 3):
        result = known_answers.judge_world(scenario, seed, claims, n_boot=200)
        for claim, expected in zip(claims, (core, specific)):
            outcome = result[claim][0]
            assert (outcome == "supported") == (expected == "supported"), \
                (scenario, seed, claim, result[claim])


def test_a_model_that_never_refuses_gets_no_shared_core_verdict() -> None:
    claims = (known_answers.CORE, known_answers.SPECIFIC)
    result = known_answers.judge_world("never-refuses", 1, claims, n_boot=100)
    assert {result[c][0] for c in claims} == {"inconclusive"}, result


def test_a_category_without_a_value_is_left_out_and_too_few_block_supported() -> None:
    categories = [f"c{i}" for i in range(4)]
    values = np.array([0.9, 0.92, np.nan, np.nan])
    reps = values + 0.01 * np.random.default_rng(0).standard_normal((200, 4))
    kwargs = dict(n=4, paper="", seed=0, details={}, requires=[])
    verdict = every_category_above("s", values, reps, categories, 0.5, **kwargs)
    assert verdict.outcome is Outcome.SUPPORTED  # two of four measured: half
    assert verdict.details["iut"]["measured"] == 2
    verdict = every_category_above("s", values[[0, 2, 3]], reps[:, [0, 2, 3]],
                                   categories[:3], 0.5, **kwargs)
    assert verdict.outcome is Outcome.INCONCLUSIVE  # one of three: not "every category"
    assert "only 1 of 3 categories" in verdict.reason
    verdict = every_category_above("s", np.full(3, np.nan), np.full((5, 3), np.nan),
                                   categories[:3], 0.5, **kwargs)
    assert verdict.outcome is Outcome.INCONCLUSIVE and np.isnan(verdict.estimate)


def test_first_core_plants_one_weaker_loading_exactly() -> None:
    backend = PlantedBackend(Design(World(cos=0.55, seed=3), first_core=0.48))
    d = backend.directions[:11]
    assert np.linalg.norm(d, axis=1) == pytest.approx(np.ones(11))
    planted = np.r_[0.48, np.full(10, np.sqrt(0.55))]
    assert core_loadings(d @ d.T) == pytest.approx(planted, abs=1e-6)
    with pytest.raises(ValueError, match="first_core must lie in"):
        PlantedBackend(Design(World(cos=0.55), first_core=1.5))
