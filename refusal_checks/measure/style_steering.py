"""Steered replies for the style claims: probes, rate-matched strength search, control halves.

Every category direction steers the replies to one shared probe set at a strength that
gives it the same judged refusal rate (:func:`rate_matched_replies`, stepping with
:func:`next_strength`); strengths are searched on one probe and replies compared on
another (:func:`style_probes`, :func:`held_out_matched_replies`). The negative control
steers two random-half directions of a category (:func:`random_half_directions`) at its
category's strength (:func:`control_halves`, :func:`fixed_strength_replies`). The result
is a :class:`SteeredReplies`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Declared tolerance for "the same refusal rate": no direction's judged rate on the shared
# probe may be further than 0.15 from the mean over directions (about the sampling error
# of one rate from ~24 prompts, ~0.1, plus what strength calibration cannot remove).
RATE_TOLERANCE = 0.15
# Target refusal rate on the shared probe (harmful and benign prompts together). Halfway
# between "refuses the harmful prompts only" and "refuses everything" leaves room to miss
# in both directions and gives every direction enough refusals to classify.
TARGET_RATE = 0.6
# A direction needs this many refusals to enter the style test.
MIN_REFUSALS = 4


def next_strength(points: Sequence[tuple[float, float]], target: float, *,
                  lowest: float, highest: float) -> float:
    """The next steering strength to try so that the refusal rate reaches ``target``.

    ``points`` are ``(strength, rate)`` pairs already measured (strength 0 is the unsteered
    rate). Between the last point under the target and the first above it (by strength),
    interpolate linearly; with the target not yet bracketed, step outwards by half the
    distance to the bound (or double the largest strength). The result is clipped to
    ``[lowest, highest]``.
    """
    if not points:
        raise ValueError("next_strength needs at least one measured (strength, rate) point.")
    pts = sorted(points)
    below_target = [p for p in pts if p[1] < target]
    above_target = [p for p in pts if p[1] >= target]
    if below_target and above_target:
        lo = max(below_target)  # the largest strength still under the target
        higher = [p for p in above_target if p[0] > lo[0]]
        if higher:
            hi = min(higher)
            t = (target - lo[1]) / (hi[1] - lo[1]) if hi[1] != lo[1] else 0.5
            return float(np.clip(lo[0] + t * (hi[0] - lo[0]), lowest, highest))
    if not above_target:  # everything is under the target: push harder
        strongest = pts[-1][0]
        step = max(strongest, lowest)
        return float(min(highest, strongest + step))
    weakest = min(p[0] for p in above_target if p[0] > 0) if any(
        p[0] > 0 for p in above_target) else highest
    return float(max(lowest, weakest / 2.0))


@dataclass(frozen=True)
class SteeredReplies:
    """Judged replies to one shared probe set, per steering direction.

    Attributes:
        directions: Direction names, in order.
        prompts: The shared probe's prompt texts, in order.
        replies: direction -> one reply per prompt.
        refused: direction -> the judge's refused? per prompt.
        strengths: direction -> the relative strength the replies were generated at.
        tried: direction -> every ``(strength, rate)`` measured while calibrating.
    """

    directions: list[str]
    prompts: list[str]
    replies: Mapping[str, Sequence[str]]
    refused: Mapping[str, np.ndarray]
    strengths: Mapping[str, float]
    tried: Mapping[str, Sequence[tuple[float, float]]] = field(default_factory=dict)

    def rates(self) -> dict[str, dict[str, int]]:
        return {d: {"refused": int(np.sum(self.refused[d])), "n": len(self.refused[d])}
                for d in self.directions}

    def refusals(self, min_refusals: int = MIN_REFUSALS) -> tuple[list[str], list[str], list[int]]:
        """(texts, direction labels, prompt indices) of every refusal, for directions with
        at least ``min_refusals`` refusals."""
        texts, labels, groups = [], [], []
        for d in self.directions:
            refused = np.asarray(self.refused[d], bool)
            if refused.sum() < min_refusals:
                continue
            for i in np.flatnonzero(refused):
                texts.append(self.replies[d][i])
                labels.append(d)
                groups.append(int(i))
        return texts, labels, groups


# The shared probe and the strength search (fixtures/style.py and calibration use these):
# 8 harmful + 16 benign prompts, 24 replies per strength and direction. The benign side is
# larger because steering-induced refusals of benign prompts are the direction's own doing;
# harmful prompts are mostly refused already.
STYLE_BENIGN = 16
# The harmful side of the compared probe: the first 8 held-out prompts of one category.
STYLE_HARMFUL = 8


def style_probes(harmful_test: Any, benign_test: Any) -> tuple[list[Any], list[Any]]:
    """(search probe, compared probe), each ``[harmful PromptSet, benign PromptSet]``.

    Strengths are searched on one set of held-out prompts and the rates and styles are
    compared on another (the next prompts of the same test halves), so that "the
    directions refuse at the same rate" is a finding on fresh prompts, not true by
    construction of the search.
    """
    compare = [harmful_test.head(STYLE_HARMFUL), benign_test.head(STYLE_BENIGN)]
    search = [harmful_test.head(2 * STYLE_HARMFUL).without(compare[0]),
              benign_test.head(2 * STYLE_BENIGN).without(compare[1])]
    return search, compare


# Strength search: start in the middle of the knob sweep's grid, at most 3 tries per
# direction, inside [0.05, 1.0] times the mean residual norm at the layer.
FIRST_STRENGTH = 0.35
MAX_TRIES = 3
STRENGTH_BOUNDS = (0.05, 1.0)

Answer = Callable[[Any], tuple[np.ndarray, Sequence[str]]]


def rate_matched_replies(answer: Answer, directions: Mapping[str, np.ndarray],
                         make_intervention: Callable[[np.ndarray, float, str], Any], *,
                         prompts: Sequence[str], target: float = TARGET_RATE,
                         tolerance: float = RATE_TOLERANCE, first: float = FIRST_STRENGTH,
                         max_tries: int = MAX_TRIES,
                         bounds: tuple[float, float] = STRENGTH_BOUNDS,
                         advance: Callable[[], None] | None = None) -> SteeredReplies:
    """Steered replies of every direction at a strength searched so that the judged refusal
    rate on the shared probe reaches ``target``.

    Args:
        answer: ``answer(intervention) -> (refused? per prompt, reply texts)`` on the shared
            probe; ``answer(None)`` is the unsteered probe.
        directions: name -> vector, searched in this order.
        make_intervention: ``(vector, strength, name) -> intervention`` (the fixtures pass
            ``steer(vector, strength, layer, reference_norm, name)``).
        prompts: The shared probe's prompt texts, in answer order.
        advance: Called after each direction (a progress bar).

    Each direction starts at ``first``; after each try, while the rate is further than
    ``tolerance / 2`` from ``target``, :func:`next_strength` proposes the next strength
    (rounded to 4 decimals; a strength already tried ends the search), at most
    ``max_tries`` tries. The try whose rate is nearest the target (the weaker strength on
    a tie) is kept.
    """
    base = float(np.asarray(answer(None)[0], bool).mean())
    replies, refused, strengths, tried = {}, {}, {}, {}
    for name, direction in directions.items():
        points, answers = [(0.0, base)], {}
        strength = first
        for _ in range(max_tries):
            answers[strength] = answer(make_intervention(direction, strength, name))
            rate = float(np.asarray(answers[strength][0], bool).mean())
            points.append((strength, rate))
            if abs(rate - target) <= tolerance / 2:
                break
            following = round(next_strength(points, target, lowest=bounds[0],
                                            highest=bounds[1]), 4)
            if following in answers:
                break
            strength = following
        best = min(answers, key=lambda s: (abs(float(np.asarray(answers[s][0], bool).mean())
                                                - target), s))
        refused[name], replies[name] = answers[best]
        strengths[name] = best
        tried[name] = [(round(s, 4), round(r, 4)) for s, r in points]
        if advance is not None:
            advance()
    return SteeredReplies(list(directions), list(prompts), replies, refused, strengths, tried)


# The negative control splits this many categories (those with the most steered refusals)
# into two random-half directions each: one category gave ~33 refusals on qwen-coder-0.5b,
# too few to show a gain below STYLE_MARGIN; four give ~130.
CONTROL_CATEGORIES = 4


def control_categories(steered: SteeredReplies, k: int = CONTROL_CATEGORIES) -> list[str]:
    """The negative control's categories: the ``k`` directions with the most steered
    refusals (the earlier one on a tie), in the steered order."""
    counts = {d: int(np.sum(steered.refused[d])) for d in steered.directions}
    chosen = sorted(counts, key=lambda d: (-counts[d], steered.directions.index(d)))[:k]
    return [d for d in steered.directions if d in chosen]


def held_out_matched_replies(search: Answer, compare: Answer,
                             directions: Mapping[str, np.ndarray],
                             make_intervention: Callable[[np.ndarray, float, str], Any], *,
                             search_prompts: Sequence[str], prompts: Sequence[str],
                             advance: Callable[[], None] | None = None) -> SteeredReplies:
    """Strengths searched on the ``search`` probe (:func:`rate_matched_replies`), replies
    generated at those strengths on the ``compare`` probe (:func:`fixed_strength_replies`).

    The result's ``tried`` keeps the search's tries; its rates are the compared probe's.
    """
    searched = rate_matched_replies(search, directions, make_intervention,
                                    prompts=search_prompts, advance=advance)
    compared = fixed_strength_replies(compare, directions, searched.strengths,
                                      make_intervention, prompts=prompts, advance=advance)
    return SteeredReplies(compared.directions, compared.prompts, compared.replies,
                          compared.refused, compared.strengths, searched.tried)


def fixed_strength_replies(answer: Answer, directions: Mapping[str, np.ndarray],
                           strengths: Mapping[str, float],
                           make_intervention: Callable[[np.ndarray, float, str], Any], *,
                           prompts: Sequence[str],
                           advance: Callable[[], None] | None = None) -> SteeredReplies:
    """Steered replies of every direction at a given strength (no search): the negative
    control steers each half-direction at its whole category's calibrated strength."""
    replies, refused, tried = {}, {}, {}
    for name, direction in directions.items():
        refused[name], replies[name] = answer(make_intervention(direction, strengths[name],
                                                                name))
        tried[name] = [(round(strengths[name], 4),
                        round(float(np.asarray(refused[name], bool).mean()), 4))]
        if advance is not None:
            advance()
    return SteeredReplies(list(directions), list(prompts), replies, refused,
                          dict(strengths), tried)


def random_half_directions(category: str, refuse: np.ndarray, refuse_rows: np.ndarray,
                           benign: np.ndarray, benign_rows: np.ndarray, *, seed: int
                           ) -> dict[str, np.ndarray]:
    """Two directions of one category, each from a random half of its train prompts and of
    the benign pool's: ``{"<category>/a": vector, "<category>/b": vector}``.

    Args:
        refuse: ``(prompt, d_model)`` activations of the category's refused prompts.
        refuse_rows: Rows of its train half.
        benign: ``(prompt, d_model)`` activations of the benign pool.
        benign_rows: Rows of the pool's train half.
        seed: ``--refusal-seed``; the same seed gives the same halves.
    """
    from refusal_checks.stats.geometry import diff_in_means

    rng = np.random.default_rng(seed)
    rows, pool = rng.permutation(refuse_rows), rng.permutation(benign_rows)
    return {f"{category}/{part}": diff_in_means(refuse[np.sort(rows[take])],
                                                 benign[np.sort(pool[take])])
            for part, take in (("a", slice(0, None, 2)), ("b", slice(1, None, 2)))}


def control_halves(steered: SteeredReplies, categories: Sequence[str],
                   refuse: Mapping[str, np.ndarray], refuse_rows: Mapping[str, np.ndarray],
                   benign: np.ndarray, benign_rows: np.ndarray, *, seed: int
                   ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The negative control's half-directions of each category (:func:`random_half_directions`,
    seeded ``seed + i`` for the i-th category) and the strength each is steered at: its
    category's calibrated strength in ``steered``."""
    halves: dict[str, np.ndarray] = {}
    for i, category in enumerate(categories):
        halves.update(random_half_directions(category, refuse[category], refuse_rows[category],
                                             benign, benign_rows, seed=seed + i))
    strengths = {name: float(steered.strengths[name.rsplit("/", 1)[0]]) for name in halves}
    return halves, strengths
