"""Arditi's selection on a planted world: the filters and the choice are as documented."""

from __future__ import annotations

import pytest

from refusal_checks.errors import RefusalChecksError
from refusal_checks.prompt_sets import PromptSet
from refusal_checks.selection import select_direction
from refusal_checks.synthetic import SyntheticBackend


def _sets(n: int = 24):
    harmful = PromptSet("a/refuse", "a", "refuse", tuple(f"harm {i}" for i in range(n)), "t")
    harmless = PromptSet("benign", "benign", "benign", tuple(f"ok {i}" for i in range(n)), "t")
    return harmful, harmless


def test_selection_picks_a_direction_that_bypasses_and_keeps_every_candidate():
    backend = SyntheticBackend.from_spec("shared,layers=8")
    harmful, harmless = _sets()
    chosen = select_direction(backend, harmful, harmless, positions=(-1,))
    assert len(chosen.candidates) == 7  # layers 0..6: the last 20% of 8 layers excluded
    assert chosen.layer < 7
    kept = [c for c in chosen.candidates if c.kept]
    assert min(c.bypass for c in kept) == pytest.approx(
        next(c.bypass for c in kept if c.layer == chosen.layer))
    # Ablating the chosen direction lowers the planted refusal score on harmful prompts.
    base = backend.decision_scores(harmful).mean()
    from refusal_checks.interventions import Ablate

    assert backend.decision_scores(harmful, Ablate(chosen.direction)).mean() < base
    assert chosen.direction.shape == (backend.d_model,)


def test_no_surviving_candidate_is_a_clear_error(monkeypatch):
    import refusal_checks.selection as selection

    backend = SyntheticBackend.from_spec("null,layers=8")
    harmful, harmless = _sets(12)
    monkeypatch.setattr(selection, "MAX_KL", -1.0)  # a filter nothing can pass
    with pytest.raises(RefusalChecksError, match="no candidate direction"):
        select_direction(backend, harmful, harmless, positions=(-1,))
