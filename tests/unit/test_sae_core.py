"""sae-shared-core's count of latents active for every category (verdicts/sae_core.py) and
the vectorised Newcombe bounds behind it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refusal_checks.stats.intervals import newcombe_bounds, newcombe_interval, normal_quantile
from refusal_checks.verdicts.sae_core import ACTIVE_RATE_GAP, TAIL, core_counts

FEW = settings(max_examples=60, deadline=None, derandomize=True)


@FEW
@given(n1=st.integers(1, 200), n2=st.integers(1, 200), data=st.data(),
       level=st.floats(0.5, 0.999999))
def test_newcombe_bounds_are_the_scalar_interval_elementwise(n1, n2, data, level):
    k1, k2 = data.draw(st.integers(0, n1)), data.draw(st.integers(0, n2))
    lo, hi = newcombe_bounds([k1], [n1], [k2], [n2], normal_quantile(0.5 + level / 2))
    # The same formula in float64 on both sides: agreement to rounding.
    assert (lo[0], hi[0]) == pytest.approx(newcombe_interval(k1, n1, k2, n2, level), abs=1e-12)


def test_newcombe_bounds_refuse_bad_counts_with_the_rule():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        newcombe_bounds([5], [4], [0], [4], 1.96)
    with pytest.raises(ValueError, match="positive normal quantile"):
        newcombe_bounds([1], [4], [0], [4], 0.0)


@FEW
@given(k=st.integers(3, 11), d=st.integers(20, 300), n=st.integers(8, 300),
       seed=st.integers(0, 2**31 - 1))
def test_the_count_lies_inside_its_bounds(k, d, n, seed):
    rng = np.random.default_rng(seed)
    p_r, p_m = rng.uniform(0, 1, (k, d)), rng.uniform(0, 0.3, (k, d))
    out = core_counts(rng.binomial(n, p_r), np.full(k, n), rng.binomial(n, p_m),
                      np.full(k, n))
    assert out["lower"] <= out["count"] <= out["upper"] <= d
    assert set(out["core"].tolist()) <= set(out["possible"].tolist())
    assert sum(out["active_in_j"].values()) <= d and out["active_in_j"][k] == out["count"]


def test_strong_core_latents_are_counted_and_silent_ones_excluded_with_many_prompts():
    k, d, n = 11, 500, 2000
    rng = np.random.default_rng(0)
    p_r, p_m = np.full((k, d), 0.05), np.full((k, d), 0.05)
    p_r[:, :7] = 0.8  # a core of 7 latents
    out = core_counts(rng.binomial(n, p_r), np.full(k, n), rng.binomial(n, p_m), np.full(k, n))
    assert (out["lower"], out["count"], out["upper"]) == (7, 7, 7)
    assert out["core"].tolist() == list(range(7))


def test_at_64_prompts_a_category_alone_cannot_show_a_silent_latent_inactive():
    # The docstring's arithmetic: Wilson's upper bound of 0/64 at the upper count's z.
    k, d = 11, 3584
    z = normal_quantile(1 - TAIL / (d * k))
    assert z * z / (64 + z * z) > ACTIVE_RATE_GAP
    silent = np.zeros((k, d), int)
    unpooled = core_counts(silent, np.full(k, 64), silent, np.full(k, 63))
    assert (unpooled["lower"], unpooled["count"], unpooled["upper"]) == (0, 0, d)
    pooled = core_counts(silent, np.full(k, 64), silent, np.full(k, 64))
    assert pooled["upper"] == 0  # 0 of 704 prompts fire: shown inactive on average


def test_a_latent_of_one_category_cannot_be_excluded_at_64_prompts():
    """Own latents (0.8 vs 0.05 in one category, 0.05 elsewhere) keep the upper count up:
    why a world without a core reads INCONCLUSIVE, not REFUTED, at the bundled sizes."""
    k, n = 11, 64
    rng = np.random.default_rng(3)
    p_r, p_m = np.full((k, k), 0.05), np.full((k, k), 0.05)
    p_r[np.arange(k), np.arange(k)] = 0.8
    out = core_counts(rng.binomial(n, p_r), np.full(k, n), rng.binomial(n, p_m), np.full(k, n))
    # Pooled, an own latent's difference is ~0.75 / 11 = 0.07: near the margin, so most
    # stay possible (the seed is fixed: 10 of 11 here).
    assert out["lower"] == out["count"] == 0 and out["upper"] >= k // 2


def test_pooling_is_used_only_when_each_category_has_as_many_twins_as_refused_prompts():
    k, d = 3, 50
    fired = np.zeros((k, d), int)
    equal = core_counts(fired, [64] * k, fired, [64] * k)
    unequal = core_counts(fired, [64] * k, fired, [63] * k)
    # Pooled over 192 prompts a silent latent is shown inactive (Wilson bound 0.06 at
    # z 3.5); per category of 64 it is not (0.17 at z 3.6).
    assert equal["upper"] == 0 and unequal["upper"] == d


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31 - 1), core=st.integers(0, 6))
def test_the_lower_count_rarely_exceeds_a_planted_core_at_the_margin(seed, core):
    """Latents planted exactly at the margin (truth: inactive) beside a strong core: the
    lower count never includes them (Bonferroni over the dictionary)."""
    k, d, n = 11, 200, 64
    rng = np.random.default_rng(seed)
    p_r, p_m = np.full((k, d), 0.05), np.full((k, d), 0.05)
    p_r[:, :core] = 0.9
    p_r[:, core:core + 30] = 0.05 + ACTIVE_RATE_GAP
    out = core_counts(rng.binomial(n, p_r), np.full(k, n), rng.binomial(n, p_m), np.full(k, n))
    assert out["lower"] <= core
