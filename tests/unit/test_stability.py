"""Bootstrap of the split-half cosine (refusal_checks.stats.stability)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.stats.reliability import split_half_cosines
from refusal_checks.stats.stability import cluster_half_weights, bootstrap_split_half
from refusal_checks.stats.intervals import recentred_interval


def _world(rng: np.random.Generator, n: int, d: int, signal: float) -> tuple[np.ndarray, np.ndarray]:
    direction = np.zeros(d)
    direction[0] = signal
    refuse = rng.standard_normal((n, d)) + direction
    benign = rng.standard_normal((2 * n, d))
    return refuse, benign


@settings(max_examples=30, deadline=None)
@given(n=st.integers(4, 40), seed=st.integers(0, 2**31 - 1))
def test_halves_are_disjoint_in_original_prompts_and_average_the_drawn_copies(n: int,
                                                                              seed: int) -> None:
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=3).astype(float)
    w_a, w_b = cluster_half_weights(counts, rng, 8)
    assert not np.any((w_a > 0) & (w_b > 0))  # no prompt's copies in both halves
    for w in (w_a, w_b):
        sums = w.sum(axis=-1)
        assert np.all(np.isclose(sums, 1.0) | (sums == 0.0))
        # Within a half, weights are proportional to the drawn counts.
        for b in range(3):
            for row in w[b][sums[b] > 0]:
                used = row > 0
                ratio = row[used] / counts[b, used]
                assert np.allclose(ratio, ratio[0])


def test_replicates_have_one_column_per_category_and_lie_in_minus_one_to_one() -> None:
    rng = np.random.default_rng(0)
    sets = [_world(rng, 16, 12, 2.0)[0] for _ in range(3)]
    pool = rng.standard_normal((32, 12))
    boot = bootstrap_split_half(sets, pool, rng, n_boot=20, n_splits=4)
    assert boot.shape == (20, 3)
    assert np.all((boot >= -1) & (boot <= 1))


def test_the_recentred_interval_covers_the_expected_split_half_cosine() -> None:
    # The quantity the claim speaks of is the split-half cosine expected for a category
    # (the mean over datasets drawn from it). Estimate it from 200 independent datasets,
    # then count how often one dataset's interval misses it in 40 fresh datasets. Measured
    # over 200 datasets: 6.5% misses (13); the plain percentile interval missed 54% (108).
    # With a 6.5% miss rate, 9 or more misses in 40 has probability ~0.1%, and the
    # generator is seeded, so the test fails only for a broken interval.
    rng = np.random.default_rng(1)
    n, d, signal = 32, 48, 1.6
    truth = np.mean([split_half_cosines(*_world(rng, n, d, signal), rng, 64).mean()
                     for _ in range(200)])
    misses = 0
    for _ in range(40):
        refuse, benign = _world(rng, n, d, signal)
        estimate = float(split_half_cosines(refuse, benign, rng, 64).mean())
        boot = bootstrap_split_half([refuse], benign, rng, n_boot=100, n_splits=16)[:, 0]
        lo, hi = recentred_interval(boot, estimate)
        misses += not lo <= truth <= hi
    assert misses < 9, (misses, truth)
