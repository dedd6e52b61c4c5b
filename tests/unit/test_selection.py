"""Arditi et al.'s selection: filters, ties, prompts, caching, and both outcomes in planted
worlds (a direction at one site; none that can be selected)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from refusal_checks.measure import arditi
from refusal_checks.verdicts import arditi as arditi_verdicts
from refusal_checks.calibration.behaviour import PLANTED_SITE, behaviour_design
from refusal_checks.measure.protocol import HARMFUL_CATEGORIES
from refusal_checks.errors import RefusalChecksError
from refusal_checks.measure.selection import (Candidate, candidate_layers, choose, judge_candidate,
                                      select_direction)
from refusal_checks.stats.verdict import Outcome


def _world(seed: int = 1, **extras):
    from refusal_checks.measure.behaviour import observe_refusals
    from refusal_checks.measure.behaviour_control import REPLY_TOKENS
    from refusal_checks.measure.effects import judged
    from refusal_checks.judges.base import SubstringJudge
    from refusal_checks.calibration.worlds import PlantedBackend, collection

    design = behaviour_design(**extras).with_seed(seed)
    backend, prompts = PlantedBackend(design), collection(design)
    behaviour = observe_refusals(backend, prompts, seed=0, cache=None)
    refused = {c: judged(backend, prompts.categories[c].refuse, SubstringJudge(), None, None,
                         max_new_tokens=REPLY_TOKENS)[0] for c in HARMFUL_CATEGORIES}
    return backend, prompts, behaviour, refused


def _selection_world(seed: int = 1, **extras):
    """A planted world and its Arditi selection prompts (train halves filtered by behaviour)."""
    backend, prompts, behaviour, refused = _world(seed, **extras)
    chosen = arditi.selection_prompts({c: prompts.categories[c].refuse
                                       for c in HARMFUL_CATEGORIES}, refused, prompts.benign,
                                      behaviour.benign_prompts)
    return backend, prompts, chosen


def _select(seed: int = 1, **extras):
    backend, prompts, behaviour, refused = _world(seed, **extras)
    return arditi.run_selection(backend, prompts, HARMFUL_CATEGORIES, refused,
                                behaviour.benign_prompts), behaviour


def test_layers_in_the_last_fifth_are_never_candidates():
    assert candidate_layers(24) == list(range(19))  # int(0.8 * 24) = 19, as Arditi's code
    assert candidate_layers(8) == list(range(6))


def test_filters_keep_their_boundaries_and_reject_nan():
    assert judge_candidate(3, -1, -2.0, 0.0, 0.1).kept  # induce 0 and KL 0.1 both pass
    low = judge_candidate(3, -1, -2.0, -0.01, 0.05)
    assert not low.kept and low.why == "induce -0.01 < 0"
    both = judge_candidate(3, -1, -2.0, -1.0, 0.2)
    assert both.why == "induce -1.00 < 0; KL 0.200 > 0.1"
    assert not judge_candidate(3, -1, -2.0, math.nan, 0.0).kept


def test_lowest_bypass_wins_and_ties_go_to_the_earlier_position_then_layer():
    def c(layer, position, bypass, kept=True):
        return Candidate(layer, position, bypass, 1.0, 0.0, kept, "" if kept else "x")

    assert choose([c(4, -1, -3.0), c(2, -1, -2.0), c(1, -2, -9.0, kept=False)]).layer == 4
    tied = [c(5, -1, -3.0), c(7, -2, -3.0), c(3, -2, -3.0)]
    assert (choose(tied).layer, choose(tied).position) == (3, -2)
    assert choose([c(1, -1, -1.0, kept=False)]) is None


def test_prompts_are_filtered_by_behaviour_and_disjoint_from_each_other_and_the_test_halves():
    backend, prompts, behaviour, refused = _world()
    chosen = arditi.selection_prompts({c: prompts.categories[c].refuse
                                       for c in HARMFUL_CATEGORIES}, refused, prompts.benign,
                                      behaviour.benign_prompts)
    sides = [chosen.build_harmful, chosen.build_harmless, chosen.val_harmful,
             chosen.val_harmless]
    texts = [{t for s in side for t in s.texts} for side in sides]
    assert sum(map(len, texts)) == len(set().union(*texts))  # pairwise disjoint
    test = {t for c in HARMFUL_CATEGORIES for t in prompts.categories[c].refuse.split(
        "test").texts} | set(prompts.benign.split("test").texts)
    assert not set().union(*texts) & test
    flags = {t: bool(r) for c in HARMFUL_CATEGORIES
             for t, r in zip(prompts.categories[c].refuse.texts, refused[c])}
    assert all(flags[t] for t in texts[0] | texts[2])  # only refused harmful prompts
    judged = dict(behaviour.benign_prompts)
    assert all(t in judged and not judged[t] for t in texts[1] | texts[3])  # answered only
    assert chosen.sizes()["val_harmful"] == chosen.sizes()["val_harmless"] == 16
    # Each harmful set keeps its category (a synthetic world's activations depend on it).
    assert {s.category for s in chosen.build_harmful} <= set(HARMFUL_CATEGORIES)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_direction_planted_at_one_site_is_found_and_every_claim_is_supported(seed):
    from refusal_checks.calibration.behaviour import judge_behaviour_world

    selection, _ = _select(seed, planted_site=PLANTED_SITE, benign_shift=2.0)
    assert (selection.layer, selection.position) == PLANTED_SITE
    assert selection.positions == (-2, -1) and selection.layers == tuple(range(6))
    assert len(selection.candidates) == 12
    assert [c for c in selection.candidates if c.kept] == [
        c for c in selection.candidates if (c.layer, c.position) == PLANTED_SITE]
    assert selection.protocol().startswith("Arditi selection (layers 0..5 x post-instruction "
                                           "positions -2,-1; build ")
    assert selection.protocol().endswith("selected layer 2, position -2")
    outcomes = judge_behaviour_world("planted-site", seed)
    assert {o for o, _ in outcomes.values()} == {"supported"}, outcomes


def test_no_steerable_direction_selects_nothing_and_addition_is_refuted():
    selection, behaviour = _select(steer_reach=0.0)
    assert not selection.found and selection.direction is None
    assert all("induce" in c.why for c in selection.candidates)
    record = selection.record()
    assert record["selected"] is None and len(record["candidates"]) == 12
    assert selection.protocol().endswith("no candidate of 12 passed the filters")
    verdicts = {c: arditi_verdicts.no_direction(c, selection, behaviour, 0) for c in arditi.ARDITI_CLAIMS}
    added = verdicts["addition-induces-refusal"]
    assert added.outcome is Outcome.REFUTED, added.line()
    assert "nearest: layer" in added.reason and "12 of 12 induce < 0" in added.reason
    # Some candidate's ablation bypasses: the missing direction is no evidence against it.
    assert verdicts["ablation-bypasses-refusal"].outcome is Outcome.INCONCLUSIVE
    for claim in ("random-direction-does-not-bypass", "random-direction-does-not-induce"):
        assert verdicts[claim].outcome is Outcome.INCONCLUSIVE
        assert "no direction was selected" in verdicts[claim].reason


def test_a_model_that_never_refuses_runs_no_search_and_says_why():
    selection, behaviour = _select(signal=0.0)
    assert selection.not_run.startswith("too few prompts to build and select a direction")
    assert selection.candidates == [] and selection.record()["not_run"]
    for claim in arditi.ARDITI_CLAIMS:
        verdict = arditi_verdicts.no_direction(claim, selection, behaviour, 0)
        assert verdict.outcome is Outcome.INCONCLUSIVE, (claim, verdict.line())


def test_restricted_search_is_named_and_the_last_fifth_refused():
    backend, prompts, chosen = _selection_world()
    selection = select_direction(backend, chosen, layers=[3, 4], positions=[-1])
    assert len(selection.candidates) == 2 and selection.restricted
    assert selection.protocol().startswith("Arditi selection (restricted search, layers 3,4 x "
                                           "post-instruction positions -1;")
    with pytest.raises(RefusalChecksError, match="last 20% of layers; use layers in 0..5"):
        select_direction(backend, chosen, layers=[6])


@pytest.mark.parametrize("order", ["full", "filter"])
def test_an_interrupted_search_resumes_without_recomputing_finished_candidates(tmp_path, order):
    from refusal_checks.cache.store import ArrayCache

    backend, prompts, chosen = _selection_world()
    cache = ArrayCache(tmp_path, "scores")

    def stop_after(k):
        def progress(done, total):
            if done == k:
                raise KeyboardInterrupt

        return progress

    with pytest.raises(KeyboardInterrupt):
        select_direction(backend, chosen, cache=cache, progress=stop_after(5), order=order)
    calls = []
    original = backend.last_logprobs

    def counting(prompts, **kwargs):
        calls.append(kwargs.get("intervention"))
        return original(prompts, **kwargs)

    backend.last_logprobs = counting
    resumed = select_direction(backend, chosen, cache=cache, order=order)
    edited = [c for c in calls if c is not None]
    fresh = select_direction(backend, chosen, order=order)
    harmful, harmless = len(chosen.val_harmful), len(chosen.val_harmless)
    if order == "full":
        # 12 candidates, 5 finished: 7 x (ablated harmful per category + steered + ablated
        # harmless); nothing for the first 5.
        assert len(edited) == 7 * (harmful + 2 * harmless)
    else:
        # Induce first: 5 of 12 steers finished, then bypass and KL of the candidates the
        # filter order picks (none of them were reached before the interruption).
        ablated = fresh.computed("bypass")
        assert len(edited) == 7 * harmless + ablated * (harmful + harmless)
    assert (resumed.layer, resumed.position) == (fresh.layer, fresh.position)
    # The cache writes and reads the computed arrays exactly, and the fresh search repeats
    # the same numpy computation on the same batch shapes in this process, so the two agree
    # to the bit; 1e-6 leaves room only for a reordered float32 sum (~1e-7 relative).
    np.testing.assert_allclose(resumed.bypass_scores, fresh.bypass_scores, rtol=1e-6)


def test_a_finished_search_is_served_whole_from_the_cache(tmp_path):
    from refusal_checks.cache.store import ArrayCache
    from refusal_checks.core.cost import CostLedger

    backend, prompts, chosen = _selection_world()
    cache = ArrayCache(tmp_path, "scores")
    ledger = CostLedger()
    with ledger.phase("cold"):
        first = select_direction(backend, chosen, cache=cache)
    with ledger.phase("warm"):
        again = select_direction(backend, chosen, cache=cache)
    cold, warm = ledger.phases["cold"], ledger.phases["warm"]
    # Cold: the two build sets' activations and every candidate's scores are computed;
    # warm: all of them are whole entries in the cache (no batch is recomputed).
    assert cold.computed > 2 and cold.hits == 0
    assert (warm.hits, warm.computed, warm.prompts) == (cold.computed, 0, 0)
    assert (again.layer, again.position) == (first.layer, first.position)
