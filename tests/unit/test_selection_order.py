"""Arditi et al.'s search in filter order (issue #24): induce for every candidate, bypass and KL
only where they can matter. It must select what the full search selects, to the bit; keep the
no-direction verdicts' outcomes; record what it skipped as not computed; and share a cache with
the full search without serving one as the other."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from refusal_checks.cache.keys import cache_key
from refusal_checks.cache.store import ArrayCache
from refusal_checks.core.cost import CostLedger
from refusal_checks.measure import arditi
from refusal_checks.measure.candidates import build_activations
from refusal_checks.measure.selection import (BYPASS_SHARE, MAX_KL, ORDERS, Candidate,
                                              Selection, ablation_sites, select_direction)
from refusal_checks.models.interventions import Ablate, Steer
from refusal_checks.stats.verdict import Outcome
from refusal_checks.verdicts import arditi as arditi_verdicts
from refusal_checks.verdicts import single_direction
from tests.unit.test_selection import _selection_world, _world

READINGS = ("ablation-bypasses-refusal", "addition-induces-refusal",
            "ablation-keeps-harmless-behaviour")
ROWS = ("bypass_scores", "induce_scores", "kl_values")
PASS_OF = {"bypass_scores": "bypass", "induce_scores": "induce", "kl_values": "kl"}


def _both(extras: dict, nearest: int = 5, seed: int = 1):
    backend, _, chosen = _selection_world(seed, **extras)
    return (select_direction(backend, chosen, order="full"),
            select_direction(backend, chosen, order="filter", nearest=nearest))


def _assert_same_selection_and_rows(full: Selection, filt: Selection) -> None:
    """The selected site and direction bitwise, and every row the filter order computed."""
    assert (filt.layer, filt.position) == (full.layer, full.position)
    assert (filt.direction is None) == (full.direction is None)
    if full.direction is not None:
        assert filt.direction.tobytes() == full.direction.tobytes()
        assert filt.reference_norm == full.reference_norm
    assert filt.baseline == full.baseline
    assert [c.kept for c in filt.candidates] == [c.kept for c in full.candidates]
    for name in ROWS:
        ours, theirs = getattr(filt, name), getattr(full, name)
        computed = np.array([PASS_OF[name] not in c.skipped for c in filt.candidates])
        assert np.array_equal(ours[computed], theirs[computed], equal_nan=True), name
        assert np.isnan(ours[~computed]).all(), name  # not computed: NaN, never 0
    for ours, theirs in zip(filt.candidates, full.candidates):
        assert ours.induce == theirs.induce or np.isnan(ours.induce) and np.isnan(theirs.induce)
        if not ours.skipped:
            assert ours == theirs


def test_thresholds_the_search_settles_on_are_the_verdicts_and_the_options():
    from refusal_checks.plugin import hooks

    assert BYPASS_SHARE == single_direction.BYPASS_THRESHOLD
    assert MAX_KL == single_direction.KL_THRESHOLD
    assert ORDERS == hooks.SELECTION_ORDERS


def test_bypass_and_kl_go_where_induce_passes_and_to_the_nearest_failures():
    induce = {(0, 0): -3.0, (1, 0): 0.5, (0, 1): -1.0, (1, 1): -1.0, (2, 0): float("nan"),
              (2, 1): -0.2}
    layers, positions = [4, 5, 6], [-2, -1]
    assert ablation_sites(induce, layers, positions, 0) == [(1, 0)]
    # -0.2 is nearest; the tie at -1.0 goes to the more negative position (-2 first: j=0),
    # then the earlier layer; NaN is never "near".
    assert ablation_sites(induce, layers, positions, 2) == [(1, 0), (0, 1), (2, 1)]
    tied = {(0, 1): -1.0, (1, 0): -1.0, (0, 0): -1.0}
    assert ablation_sites(tied, layers, positions, 1) == [(0, 0)]
    assert ablation_sites(induce, layers, positions, 9) == [s for s in induce if s != (2, 0)]


@pytest.mark.parametrize("extras, kept", [(dict(steer_offset=3.0), 10), ({}, 6),
                                          (dict(planted_site=(2, -2), benign_shift=2.0), 1)])
def test_where_candidates_pass_the_filter_order_selects_the_full_searchs_direction(extras, kept):
    full, filt = _both(extras)
    assert sum(c.kept for c in full.candidates) == kept and full.found
    _assert_same_selection_and_rows(full, filt)
    passing = sum(c.induce >= 0 for c in full.candidates)
    assert filt.computed("bypass") == filt.computed("kl") == min(12, passing + 5)
    assert filt.computed("induce") == 12 and filt.completed == ()


def test_skipped_candidates_are_recorded_as_not_computed_with_the_reason():
    full, filt = _both(dict(steer_reach=0.0))
    assert not filt.found and filt.computed("bypass") == 5
    skipped = [c for c in filt.candidates if c.skipped]
    assert len(skipped) == 7 and all(c.skipped == ("bypass", "kl") for c in skipped)
    assert all(np.isnan(c.bypass) and np.isnan(c.kl) and not c.kept for c in skipped)
    assert "nearer to passing it" in skipped[0].skip_reason
    assert "bypass not computed" in skipped[0].text() and "KL not computed" in skipped[0].text()
    assert "KL" not in skipped[0].why  # a KL never measured is not a failed filter
    record = filt.record()
    row = next(r for r in record["candidates"] if r["not_computed"])
    assert row["bypass"] is None and row["kl"] is None and row["not_computed_why"]
    assert record["order"] == "filter" and record["computed"] == {"bypass": 5, "induce": 12,
                                                                  "kl": 5}
    assert "filter order: induce for all 12, bypass for 5, KL for 5" in filt.protocol()
    # The nearest candidates the reports name all have their three scores.
    assert all(not c.skipped for c in filt.nearest(3))
    assert full.record()["computed"] == {"bypass": 12, "induce": 12, "kl": 12}
    assert "filter order" not in full.protocol()


@pytest.mark.parametrize("extras, completed", [
    (dict(steer_reach=0.0, ablation_reach=0.0), ("bypass",)),  # no-linear-direction
    (dict(steer_reach=0.0, ablation_offset=3.0), ("bypass", "kl")),
    (dict(steer_reach=0.0), ()),  # a near candidate bypasses and keeps KL: nothing to add
])
def test_a_pass_no_computed_candidate_settles_is_computed_for_every_candidate(extras, completed):
    full, filt = _both(extras)
    assert not full.found and filt.completed == completed
    for which in completed:
        assert filt.computed(which) == 12
    _, _, behaviour, _ = _world(1, **extras)
    for claim in READINGS:
        ours = arditi_verdicts.no_direction(claim, filt, behaviour, 0)
        theirs = arditi_verdicts.no_direction(claim, full, behaviour, 0)
        assert ours.outcome is theirs.outcome, (claim, ours.line(), theirs.line())
        which = {"ablation-bypasses-refusal": "bypass",
                 "ablation-keeps-harmless-behaviour": "kl"}.get(claim, "induce")
        if filt.computed(which) == 12:  # everything computed: the same statistic, exactly
            assert ((ours.statistic, ours.estimate, ours.interval)
                    == (theirs.statistic, theirs.estimate, theirs.interval))
        else:
            assert f"computed for {filt.computed(which)} of 12 candidates" in ours.statistic


designs = st.fixed_dictionaries({
    "signal": st.sampled_from([2.0, 3.0, 4.0]),
    "steer_reach": st.sampled_from([0.0, 0.5, 1.0]),
    "steer_offset": st.sampled_from([0.0, 1.0, 3.0]),
    "ablation_reach": st.sampled_from([0.0, 0.54, 1.0]),
    "ablation_offset": st.sampled_from([0.0, 1.0, 3.0]),
    "benign_shift": st.sampled_from([0.0, 0.5, 2.0]),
    "planted_site": st.sampled_from([None, (2, -2), (4, -1)]),
})
# Worlds where most candidates pass (refusal ramps up at every site, any steer adds to the
# decision): the filter order then skips little, and the choice among many kept ones must
# still be the full search's.
passing = st.fixed_dictionaries({
    "signal": st.sampled_from([3.0, 4.0]),
    "steer_offset": st.sampled_from([1.0, 3.0]),
    "ablation_reach": st.sampled_from([0.54, 1.0]),
    "benign_shift": st.sampled_from([0.0, 0.5]),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(designs, passing), st.integers(1, 10_000), st.integers(0, 12))
def test_full_and_filter_order_select_the_same_direction_bitwise(extras, seed, nearest):
    full, filt = _both(extras, nearest=nearest, seed=seed)
    kept = sum(c.kept for c in full.candidates)
    event("many kept (>= 4)" if kept >= 4 else "some kept" if kept else "none kept")
    note(f"kept {kept} of {len(full.candidates)}; "
         f"filter order computed {filt.record()['computed']}, completed {filt.completed}")
    _assert_same_selection_and_rows(full, filt)
    if full.found or full.not_run:
        return
    # Nothing selected: each no-direction verdict's outcome is the full search's.
    _, _, behaviour, _ = _world(seed, **extras)
    for claim in READINGS:
        ours = arditi_verdicts.no_direction(claim, filt, behaviour, seed)
        theirs = arditi_verdicts.no_direction(claim, full, behaviour, seed)
        assert ours.outcome is theirs.outcome, (claim, ours.line(), theirs.line())


def test_a_refutation_is_never_read_off_part_of_the_candidates():
    # Two of four candidates' ablations computed, neither bypasses (every harmful prompt
    # stays refused): on those two the statistic lies wholly above 0.5, but the two not
    # computed might bypass, so the verdict must not say REFUTED.
    _, _, behaviour, _ = _world(1)
    n = 16
    refused = np.full((4, n), 2.0)
    refused[2:] = np.nan

    def candidate(layer, skipped):
        return Candidate(layer, -1, 2.0 if not skipped else float("nan"), -1.0,
                         0.01 if not skipped else float("nan"), False, "induce -1.00 < 0",
                         skipped, "induce fails and 2 candidates are nearer to passing it")

    candidates = [candidate(0, ()), candidate(1, ()), candidate(2, ("bypass", "kl")),
                  candidate(3, ("bypass", "kl"))]
    partial = Selection(None, None, None, candidates, (0, 1, 2, 3), (-1,),
                        sizes={"val_harmful": n, "val_harmless": n}, bypass_scores=refused,
                        induce_scores=np.full((4, n), -1.0), kl_values=np.full((4, n), 0.01),
                        order="filter", nearest_k=2)
    verdict = arditi_verdicts.no_direction("ablation-bypasses-refusal", partial, behaviour, 0)
    assert verdict.outcome is Outcome.INCONCLUSIVE, verdict.line()
    assert "computed for 2 of 4 candidates" in verdict.statistic
    assert "bypass was computed for 2 of 4 candidates only" in verdict.reason
    assert "--refusal-selection-order full" in verdict.reason
    assert "would read REFUTED" in verdict.reason
    whole = Selection(None, None, None, [candidate(i, ()) for i in range(4)], (0, 1, 2, 3),
                      (-1,), sizes={"val_harmful": n, "val_harmless": n},
                      bypass_scores=np.full((4, n), 2.0), induce_scores=np.full((4, n), -1.0),
                      kl_values=np.full((4, n), 0.01))
    verdict = arditi_verdicts.no_direction("ablation-bypasses-refusal", whole, behaviour, 0)
    assert verdict.outcome is Outcome.REFUTED, verdict.line()
    assert "computed for" not in verdict.statistic


def _legacy_entries(backend, chosen, cache, full: Selection) -> int:
    """Write the cache the full search wrote before the filter order: one entry per
    candidate, its bypass, induce and KL values in one array (kind arditi_candidate)."""
    layers, positions = list(full.layers), list(full.positions)
    means = (build_activations(backend, chosen.build_harmful, layers, positions, None, 16)
             .astype(np.float64).mean(axis=0)
             - build_activations(backend, chosen.build_harmless, layers, positions, None, 16)
             .astype(np.float64).mean(axis=0))
    inputs = [backend.input_digest(s) for s in chosen.val_harmful + chosen.val_harmless]
    for k, c in enumerate(full.candidates):
        direction = means[layers.index(c.layer), positions.index(c.position)]
        label = f"Arditi candidate L{c.layer}"
        key = cache_key(kind="arditi_candidate", model=backend.fingerprint, dtype=backend.dtype,
                        inputs=inputs, layer=c.layer, ablate=Ablate(direction, label).key(),
                        steer=Steer(c.layer, direction, alpha=1.0, label=label).key(),
                        tokens=sorted(backend.refusal_token_ids()))
        cache.store(key, np.concatenate([full.bypass_scores[k], full.induce_scores[k],
                                         full.kl_values[k]]))
    return len(full.candidates)


def _counting(backend) -> list:
    calls: list = []
    original = backend.last_logprobs

    def counting(prompts, **kwargs):
        calls.append(kwargs.get("intervention"))
        return original(prompts, **kwargs)

    backend.last_logprobs = counting
    return calls


@pytest.mark.parametrize("order", ORDERS)
def test_a_cache_the_full_search_wrote_before_the_filter_order_is_served_whole(tmp_path, order):
    backend, _, chosen = _selection_world(1, steer_reach=0.0)
    fresh = select_direction(backend, chosen, order=order)
    cache = ArrayCache(tmp_path, "scores")
    _legacy_entries(backend, chosen, cache, select_direction(backend, chosen, order="full"))
    calls = _counting(backend)
    served = select_direction(backend, chosen, cache=cache, order=order)
    assert [c for c in calls if c is not None] == []  # no candidate pass computed
    # What the cache happened to hold changes nothing: the filter order still leaves out
    # (and says so) the passes it would not have computed.
    assert served.record() == fresh.record()
    for name in ROWS:
        assert np.array_equal(getattr(served, name), getattr(fresh, name), equal_nan=True)


def test_a_filter_order_cache_is_never_served_as_a_full_search(tmp_path):
    backend, _, chosen = _selection_world(1, steer_reach=0.0)
    cache = ArrayCache(tmp_path, "scores")
    filt = select_direction(backend, chosen, cache=cache)
    calls = _counting(backend)
    full = select_direction(backend, chosen, cache=cache, order="full")
    edited = [c for c in calls if c is not None]
    # The full search computes exactly the passes the filter order skipped: no steer (every
    # induce is cached), one ablated pass per validation set for each skipped bypass and KL.
    skipped = [c for c in filt.candidates if c.skipped]
    assert not any(isinstance(c, Steer) for c in edited)
    assert len(edited) == len(skipped) * (len(chosen.val_harmful) + len(chosen.val_harmless))
    reference = select_direction(backend, chosen, order="full")
    assert full.record() == reference.record()
    # ... and then the filter order is served whole from what both wrote.
    calls.clear()
    assert select_direction(backend, chosen, cache=cache).record() == filt.record()
    assert [c for c in calls if c is not None] == []


def test_the_cost_profile_counts_the_skipped_prompt_passes():
    backend, _, chosen = _selection_world(1, steer_reach=0.0)
    ledger = CostLedger()
    with ledger.phase("filter"):
        filt = select_direction(backend, chosen)
    with ledger.phase("full"):
        select_direction(backend, chosen, order="full")
    n_h, n_b = filt.sizes["val_harmful"], filt.sizes["val_harmless"]
    skipped = sum(1 for c in filt.candidates if c.skipped)
    assert ledger.phases["filter"].prompts_skipped == skipped * (n_h + n_b) > 0
    assert ledger.phases["full"].prompts_skipped == 0
    assert (ledger.phases["full"].prompts - ledger.phases["filter"].prompts
            == skipped * (n_h + n_b))


def test_an_unknown_order_says_which_exist():
    from refusal_checks.errors import RefusalChecksError

    backend, _, chosen = _selection_world(1)
    with pytest.raises(RefusalChecksError, match="'fast' with 5 nearest is not known; use "
                                                 "one of filter, full and nearest >= 0"):
        select_direction(backend, chosen, order="fast")
    with pytest.raises(RefusalChecksError, match="-1 nearest"):
        select_direction(backend, chosen, nearest=-1)


def test_run_selection_passes_the_order_on():
    backend, prompts, behaviour, refused = _world(1, steer_reach=0.0)
    runs = {order: arditi.run_selection(backend, prompts, list(refused), refused,
                                        behaviour.benign_prompts, order=order)
            for order in ORDERS}
    assert runs["full"].order == "full" and runs["filter"].order == "filter"
    assert runs["filter"].computed("bypass") < runs["full"].computed("bypass")
