"""How a model refuses, measured: which steering direction produced a refusal?

Joad et al. (PAPER.md, Paper A, claim 4) say the choice of refusal direction changes HOW a
model refuses, not WHETHER, and show one generation per category. Here the claim is a test:

1. Steer along each category direction at a strength that gives every direction the same
   refusal rate on one shared probe set
   (:func:`refusal_checks.measure.style_steering.rate_matched_replies`, stepping with
   :func:`refusal_checks.measure.style_steering.next_strength`).
2. Represent each refusal by a sentence embedding and by interpretable lexical features
   (:data:`refusal_checks.measure.style_features.LEXICAL_FEATURES`).
3. A nearest-centroid classifier, cross-validated leave-one-prompt-out, predicts which
   direction produced each refusal (:func:`refusal_checks.verdicts.style_classifier.style_test`).
4. Chance is not ``1/k``: every direction answers the same prompts, and which prompts a
   direction refuses could give it away. The null permutes direction labels *within*
   each prompt, so it keeps the prompts and destroys only the link between direction and
   wording. Accuracy above that null is style; its interval
   (:func:`refusal_checks.verdicts.style_classifier.gain_interval`) adds the null's variance to
   the cluster bootstrap's, as calibration showed it must.

A negative control runs the same test on two directions of one category, each built from a
random half of its prompts; it must not find a difference
(:func:`refusal_checks.verdicts.style_verdicts.negative_control`).

This module runs steps 2-4 on steered replies (:func:`style_data`, and
:func:`style_control` for the negative control); the report text lives in
:mod:`refusal_checks.verdicts.style_text` and the claims' verdicts in
:mod:`refusal_checks.verdicts.style_verdicts`. Everything is numpy on plain arrays, so planted
texts test the pipeline without a model (tests/unit/test_style.py) and the claims
(claims/test_style.py) call the same verdict functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from refusal_checks.verdicts.style_classifier import style_test
from refusal_checks.measure.style_features import span_coordinates, style_features
from refusal_checks.measure.style_steering import SteeredReplies
from refusal_checks.verdicts.style_text import style_summary


def style_data(steered: SteeredReplies, encoder: Any, *, seed: int,
               compact: bool = False) -> dict[str, Any]:
    """Refusals of rate-matched replies, their features and the style test on them.

    ``result`` and ``summary`` are None when fewer than 2 directions have
    :data:`MIN_REFUSALS` refusals. ``compact`` runs the test on
    :func:`span_coordinates` of the features (calibration, for speed; the claims do not).
    """
    texts, labels, groups = steered.refusals()
    data: dict[str, Any] = {"texts": texts, "labels": labels, "groups": groups, "seed": seed,
                            "result": None, "summary": None}
    if len(set(labels)) < 2:
        return data
    features = style_features(encoder, texts)
    if compact:
        features = span_coordinates(features)
    data["features"] = features
    data["result"] = style_test(features, labels, groups, seed=seed)
    data["summary"] = style_summary(steered, data["result"], features, texts, labels)
    return data


def style_control(half: SteeredReplies, categories: Sequence[str], encoder: Any, *,
                  seed: int, compact: bool = False) -> dict[str, Any] | None:
    """The style test on the random-half directions (``"<category>/a"``, ``"<category>/b"``)
    of each of ``categories``, within each category, pooled; None when fewer than two
    half-directions gave enough refusals (``compact``: as in :func:`style_data`)."""
    texts, labels, groups = half.refusals()
    strata = [label.rsplit("/", 1)[0] for label in labels]
    usable = {c for c in strata if strata.count(c) > 0 and
              len({lab for lab, st in zip(labels, strata) if st == c}) == 2}
    keep = [i for i, c in enumerate(strata) if c in usable]
    if not keep:
        return None
    texts, labels, groups = ([seq[i] for i in keep] for seq in (texts, labels, groups))
    strata = [strata[i] for i in keep]
    identical = {c: float(np.mean([x == y for x, y in zip(half.replies[f"{c}/a"],
                                                           half.replies[f"{c}/b"])]))
                 for c in categories}
    features = style_features(encoder, texts)
    if compact:
        features = span_coordinates(features)
    result = style_test(features, labels, groups, seed=seed, strata=strata)
    return {"categories": sorted(usable, key=list(categories).index), "identical": identical,
            "result": result, "seed": seed, "rates": half.rates(),
            "strengths": dict(half.strengths)}
