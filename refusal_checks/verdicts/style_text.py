"""What the style report shows: distinguishing phrases, exemplars and marker rates.

:func:`style_summary` is ``details["style"]`` of the style verdicts, the shape the HTML
report draws: per direction, the phrases most typical of its refusals
(:func:`distinguishing_phrases`), its most characteristic refusals (:func:`exemplars`)
and the share showing each lexical marker (:func:`marker_rates`).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from refusal_checks.verdicts.style_classifier import StyleResult, class_codes
from refusal_checks.measure.style_features import LEXICAL_FEATURES, lexical_features
from refusal_checks.measure.style_steering import SteeredReplies

PRIOR_WEIGHT = 100.0


def distinguishing_phrases(texts: Sequence[str], labels: Sequence[Any], *, top: int = 5,
                           min_z: float = 1.96) -> dict[str, list[str]]:
    """Words and word pairs most typical of each label: log-odds with a Dirichlet prior.

    Monroe, Colaresi and Quinn (2008), "Fightin' Words": the log-odds ratio of a phrase in
    one label's texts against all others, with the pooled counts as an informative prior,
    divided by its standard error. Phrases with z >= ``min_z``, best first. The prior
    carries PRIOR_WEIGHT pseudo-counts in all, spread like the pooled counts, so a phrase
    seen in one label only still needs a few occurrences to stand out.
    """
    def grams(text: str) -> list[str]:
        words = re.findall(r"[a-z']+", text.lower())
        return words + [f"{a} {b}" for a, b in zip(words, words[1:])]

    codes, names = class_codes(labels)
    counts = [Counter() for _ in names]
    for text, c in zip(texts, codes):
        counts[c].update(set(grams(text)))  # presence per reply: one long reply counts once
    pooled = sum(counts, Counter())
    prior_total = float(sum(pooled.values())) or 1.0
    out: dict[str, list[str]] = {}
    for c, name in enumerate(names):
        own = counts[c]
        rest = pooled - own
        n_own, n_rest = float(sum(own.values())), float(sum(rest.values()))
        scored = []
        for phrase, total in pooled.items():
            a = total / prior_total * PRIOR_WEIGHT
            y1, y2 = own.get(phrase, 0), rest.get(phrase, 0)
            if y1 < 2:
                continue
            delta = (math.log((y1 + a) / (n_own + PRIOR_WEIGHT - y1 - a))
                     - math.log((y2 + a) / (n_rest + PRIOR_WEIGHT - y2 - a)))
            z = delta / math.sqrt(1.0 / (y1 + a) + 1.0 / (y2 + a))
            if z >= min_z:
                scored.append((z, phrase))
        out[str(name)] = [p for _, p in sorted(scored, reverse=True)[:top]]
    return out


def exemplars(features: np.ndarray, texts: Sequence[str], labels: Sequence[Any],
              k: int = 2) -> dict[str, list[str]]:
    """The ``k`` most characteristic texts of each label (the analogue of PAPER.md's one
    generation per split): largest margin between the distance to the nearest other
    label's centroid and the distance to the label's own centroid. A refusal every
    direction gives ("I'm sorry, but I can't assist with that.") has no margin; one only
    this direction gives has a large one. Distinct texts only."""
    codes, names = class_codes(labels)
    x = np.asarray(features, np.float64)
    centroids = np.array([x[codes == c].mean(axis=0) for c in range(len(names))])
    distance = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    out = {}
    for c, name in enumerate(names):
        index = np.flatnonzero(codes == c)
        others = np.delete(distance[index], c, axis=1)
        margin = (others.min(axis=1) if others.shape[1] else np.zeros(len(index))) \
            - distance[index, c]
        chosen, seen = [], set()
        for i in index[np.argsort(-margin, kind="stable")]:
            if texts[i] not in seen:
                chosen.append(texts[i])
                seen.add(texts[i])
            if len(chosen) == k:
                break
        out[str(name)] = chosen
    return out


def style_summary(steered: SteeredReplies, result: StyleResult, features: np.ndarray,
                  texts: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """``details["style"]`` of the style verdicts, the shape the HTML report draws."""
    return {
        "directions": [str(x) for x in result.labels],
        "confusion": result.confusion.tolist(),
        "accuracy": round(result.accuracy, 4),
        "chance": round(result.chance, 4),
        "permutation_p": result.p_value,
        "rates": steered.rates(),
        "strengths": {d: round(float(s), 4) for d, s in steered.strengths.items()},
        "phrases": distinguishing_phrases(texts, labels),
        "exemplars": exemplars(features, texts, labels),
        "markers": marker_rates(texts, labels),
    }


def marker_rates(texts: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """direction -> share of its refusals showing each lexical marker."""
    lexical = lexical_features(texts)
    labels_arr = np.asarray(labels)
    return {str(d): {name: round(float(lexical[labels_arr == d, j].mean()), 3)
                     for j, name in enumerate(LEXICAL_FEATURES)}
            for d in dict.fromkeys(labels)}
