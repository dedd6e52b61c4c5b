"""Behaviour-matched category directions: refused minus answered prompts of one category.

The paper contrasts each category with one general benign pool, so each direction also
carries its category's genre (PAPER.md, Paper A, "Known weakness"); hand-written matched
twins fix that for the bundled prompts, but a user's prompt file rarely has them. Any
prompt file supports this control instead: within one category, the prompts the model
itself refused and the prompts it answered come from the same source and genre, so the
difference of their means cancels the genre and keeps what changes when the model refuses
(Joad et al. build their oracle from harmful-refused vs benign-complied; this is the
within-category version).

:func:`behaviour_directions` splits each category's should-refuse activations by the
judge's verdict on the model's own unsteered greedy replies and hands the two sides to
:func:`~refusal_checks.measure.study.study_directions` as per-category controls: the same
split-half reliability, noise correction and bootstrap over prompts as the other geometry
claims. The ``behaviour_directions`` fixture and calibration (:mod:`refusal_checks.calibration.geometry`)
both call it, so the claim and its known-answer worlds share one implementation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from refusal_checks.measure.study import DirectionStudy, study_directions

CONTROL = "behaviour-matched (refused vs answered)"

# Reply length for judging. Refusals of chat models open the reply ("I'm sorry, but I
# can't ...", "As an AI language model, ..."): the substring judge's phrases sit in the
# first few tokens, and 16 tokens hold the opening sentence. Halving the 32 tokens of the
# behavioural probes halves the cold cost, which matters here because every should-refuse
# prompt is asked (704 on the bundled set), not a probe of 8 per category.
REPLY_TOKENS = 16

# Fewest refused AND fewest answered prompts a category needs. The split-half reliability
# behind the noise correction splits each side in two halves, and a half-direction from
# one or two prompts per side is a single prompt pair's difference: 8 per side leaves 4 per
# half. Below that a category is listed with its counts and left out; the reliability
# floor (geometry_claims.MIN_RELIABILITY) still judges whether the rest are informative.
MIN_PER_SIDE = 8


@dataclass(frozen=True)
class BehaviourDirections:
    """Per-category refused/answered counts and, when possible, the direction study.

    Attributes:
        counts: category -> (refused, answered) among its should-refuse prompts.
        usable: Categories with at least ``min_per_side`` prompts on each side, in order.
        study: The study of the usable categories, or None with fewer than two.
        seed: Seed of the study (``--refusal-seed``), recorded also without a study.
        min_per_side: The minimum applied.
        judge: Name of the refusal judge.
        reply_tokens: Length of the judged greedy replies.
    """

    counts: dict[str, tuple[int, int]]
    usable: list[str]
    study: DirectionStudy | None
    seed: int
    min_per_side: int
    judge: str
    reply_tokens: int

    @property
    def left_out(self) -> list[str]:
        return [c for c in self.counts if c not in self.usable]

    def counts_text(self) -> str:
        """``"a 40/24, b 60/4 (left out)"``: refused/answered per category."""
        return ", ".join(f"{c} {r}/{a}" + ("" if c in self.usable else " (left out)")
                         for c, (r, a) in self.counts.items())

    def buildable(self) -> tuple[bool, str]:
        """(ok, reason): at least two categories have enough refused and answered prompts."""
        ok = self.study is not None
        return ok, (
            f"{len(self.usable)} of {len(self.counts)} categories have >= {self.min_per_side} "
            f"refused and >= {self.min_per_side} answered should-refuse prompts (need 2); "
            f"refused/answered: {self.counts_text()}; judge: {self.judge}, "
            f"{self.reply_tokens}-token greedy replies")

    def summary(self) -> dict[str, object]:
        """Counts for the report, merged with the study's numbers when there is a study."""
        out: dict[str, object] = {
            "behaviour_counts": {c: {"refused": r, "answered": a}
                                 for c, (r, a) in self.counts.items()},
            "left_out": self.left_out, "min_per_side": self.min_per_side,
            "judge": self.judge, "reply_tokens": self.reply_tokens, "control": CONTROL}
        if self.study is not None:
            out = {**self.study.summary(), **out}
        return out


def behaviour_directions(
    refuse: Mapping[str, np.ndarray],
    refused: Mapping[str, np.ndarray],
    *,
    layer: int,
    seed: int,
    n_boot: int = 500,
    min_per_side: int = MIN_PER_SIDE,
    judge: str = "",
    reply_tokens: int = REPLY_TOKENS,
) -> BehaviourDirections:
    """Refused-minus-answered directions per category, studied like the other controls.

    Args:
        refuse: category -> ``(n_i, d_model)`` activations of its should-refuse prompts.
        refused: category -> ``(n_i,)`` bool, the judge's verdict on each prompt's reply,
            in the same order as ``refuse``.
        layer: Layer the activations come from, for reports.
        seed: Seed of the study's splits and bootstrap.
        n_boot: Bootstrap replicates.
        min_per_side: Fewest refused and fewest answered prompts a category needs.
        judge: Name of the judge, for reports.
        reply_tokens: Length of the judged replies, for reports.

    Raises:
        ValueError: A category's verdicts do not match its activations in number.
    """
    counts: dict[str, tuple[int, int]] = {}
    sides: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, acts in refuse.items():
        flags = np.asarray(refused[name], bool).ravel() if name in refused else None
        if flags is None or len(flags) != len(acts):
            raise ValueError(
                f"category {name!r} has {len(acts)} activation rows but "
                f"{'no' if flags is None else len(flags)} refusal verdicts: judge the reply "
                "of every should-refuse prompt, in the order of its activations.")
        counts[name] = (int(flags.sum()), int((~flags).sum()))
        sides[name] = (np.asarray(acts)[flags], np.asarray(acts)[~flags])
    usable = [c for c, (r, a) in counts.items() if min(r, a) >= min_per_side]
    study = None
    if len(usable) >= 2:
        study = study_directions({c: sides[c][0] for c in usable},
                                 {c: sides[c][1] for c in usable}, control=CONTROL,
                                 layer=layer, seed=seed, n_boot=n_boot)
    return BehaviourDirections(counts, usable, study, seed, min_per_side, judge, reply_tokens)
