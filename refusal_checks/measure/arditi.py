"""Arditi et al.'s protocol around the candidate search: which prompts build and select the
direction, and what the single-direction claims say when no candidate passes.

Prompts (PAPER.md, Paper B, "Data"): the harmful side is the train halves
(:meth:`PromptSet.split`) of the harmful categories, kept where the model refused them
(its unsteered 16-token replies, the ones the behaviour control and the oracle read); the
harmless side is the benign pool's train half, kept where the ``refusal_behaviour`` probe
judged the model to answer (its replies: no new generation, so benign train prompts that
probe did not ask are left out). From each filtered side VALIDATION_PER_SIDE prompts
(lowest sha256 of ``"arditi-validation|" + text``) select the direction, the rest build it.
The claims are judged on the test halves, so build, validation and judged prompts are
pairwise disjoint.

Why 16 + 16 validation prompts, not Arditi's 32 + 32: a full search costs three forward
passes over them per candidate (ablated harmful, steered harmless, ablated harmless), about
95 candidates on a 24-layer model with a 5-token template, so 16 + 16 halved a cold search
on two CPU cores (~50 min instead of ~100; the filter order now skips most ablated passes,
:mod:`refusal_checks.measure.selection`); and the benign train half holds 64 prompts of
which the ``refusal_behaviour`` probe judges about 48, so 32 for validation would leave ~16
to build.
The sizes are in every protocol string.

When no candidate passes the filters the claims are never judged on another direction.
:func:`no_direction` reads the candidates' own validation scores instead (see its
docstring and claims/test_single_direction.py for why each claim ends where it does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from refusal_checks.prompts.load import PromptCollection, PromptSet
from refusal_checks.measure.selection import Selection, SelectionPrompts, select_direction

VALIDATION_PER_SIDE = 16
# Fewest prompts on any side of build or validation: a difference in means of fewer is a
# handful of prompts, and a validation mean of fewer says little (the behaviour control's
# MIN_PER_SIDE, for the same reason).
MIN_SIDE = 8
ARDITI_CLAIMS = ("ablation-bypasses-refusal", "addition-induces-refusal",
                 "ablation-keeps-harmless-behaviour", "random-direction-does-not-bypass",
                 "random-direction-does-not-induce")


def _rank(text: str) -> str:
    return hashlib.sha256(f"arditi-validation|{text}".encode()).hexdigest()


def _subset(prompts: PromptSet, texts: set[str], part: str) -> PromptSet:
    keep = tuple(t for t in prompts.texts if t in texts)
    return PromptSet(f"{prompts.name}/arditi-{part}", prompts.category, prompts.side, keep,
                     prompts.source)


def _carve(n: int, per_side: int) -> int:
    """Validation size: ``per_side``, less where the build side would drop below MIN_SIDE."""
    return max(0, min(per_side, n - MIN_SIDE))


def selection_prompts(harmful: Mapping[str, PromptSet], refused: Mapping[str, Any],
                      benign: PromptSet, benign_judged: Sequence[tuple[str, bool]], *,
                      per_side: int = VALIDATION_PER_SIDE) -> SelectionPrompts:
    """Build and validation prompts, filtered by the model's own unsteered behaviour.

    Args:
        harmful: category -> its whole should-refuse set.
        refused: category -> refused? per prompt of that set (judged replies).
        benign: The whole benign pool.
        benign_judged: ``(prompt, refused?)`` pairs (``RefusalBehaviour.benign_prompts``).
    """
    counts = {"harmful_train": 0, "harmful_train_refused": 0}
    kept: list[str] = []
    trains = {}
    for name, prompts in harmful.items():
        flags = dict(zip(prompts.texts, np.asarray(refused[name], bool).tolist()))
        trains[name] = train = prompts.split("train")
        counts["harmful_train"] += len(train)
        kept += [t for t in train.texts if flags[t]]
    counts["harmful_train_refused"] = len(kept)
    val_h = set(sorted(kept, key=_rank)[:_carve(len(kept), per_side)])
    train_b = benign.split("train")
    judged = dict(benign_judged)
    answered = [t for t in train_b.texts if t in judged and not judged[t]]
    counts.update(harmless_train=len(train_b),
                  harmless_train_judged=sum(t in judged for t in train_b.texts),
                  harmless_train_answered=len(answered))
    val_b = set(sorted(answered, key=_rank)[:_carve(len(answered), per_side)])

    def sets(part: str, chosen: set[str], pool: list[str], sources: dict[str, PromptSet]
             ) -> tuple[PromptSet, ...]:
        wanted = chosen if part == "validate" else set(pool) - chosen
        out = tuple(_subset(p, wanted, part) for p in sources.values())
        return tuple(s for s in out if len(s))

    return SelectionPrompts(sets("build", val_h, kept, trains),
                            sets("build", val_b, answered, {"benign": train_b}),
                            sets("validate", val_h, kept, trains),
                            sets("validate", val_b, answered, {"benign": train_b}), counts)


def _not_run(reason: str, prompts: SelectionPrompts) -> Selection:
    """A Selection that never searched (too few prompts): no direction, the reason."""
    return Selection(None, None, None, sizes=prompts.sizes(), counts=dict(prompts.counts),
                     not_run=reason)


def run_selection(backend: Any, collection: PromptCollection, harmful_categories: Sequence[str],
                  refused: Mapping[str, Any], benign_judged: Sequence[tuple[str, bool]], *,
                  layers: Sequence[int] | None = None, positions: Sequence[int] | None = None,
                  cache: Any = None, batch_size: int = 16,
                  progress: Callable[[int, int], None] | None = None,
                  order: str = "filter") -> Selection:
    """The single-direction claims' direction: what the ``arditi_selection`` fixture and
    calibration (:class:`refusal_checks.calibration.measurements.BehaviourMeasurements`) both
    run."""
    prompts = selection_prompts({c: collection.categories[c].refuse for c in harmful_categories},
                                refused, collection.benign, benign_judged)
    sizes, c = prompts.sizes(), prompts.counts
    if min(sizes.values()) < MIN_SIDE:
        return _not_run(
            f"too few prompts to build and select a direction (need >= {MIN_SIDE} on every "
            f"side): build {sizes['build_harmful']}+{sizes['build_harmless']}, validate "
            f"{sizes['val_harmful']}+{sizes['val_harmless']} from "
            f"{c['harmful_train_refused']}/{c['harmful_train']} harmful train prompts refused "
            f"and {c['harmless_train_answered']}/{c['harmless_train_judged']} judged harmless "
            "train prompts answered", prompts)
    return select_direction(backend, prompts, layers=layers, positions=positions, cache=cache,
                            batch_size=batch_size, progress=progress, order=order)
