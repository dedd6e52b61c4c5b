"""Features of a refusal for the style test: lexical markers, length, sentence embedding.

:data:`LEXICAL_FEATURES` are interpretable markers of refusal style (PAPER.md, claim 4);
:func:`style_features` puts a sentence embedding beside them, each block scaled to the
same weight (:func:`combine_features`). :func:`span_coordinates` rewrites features in a
basis of their row span, which leaves the classifier's distances unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

# Interpretable markers of refusal style, after PAPER.md's descriptions of claim 4.
LEXICAL_FEATURES: dict[str, str] = {
    "ai_identity": r"\b(as an ai|i am an ai|i'm an ai|ai (language )?model|language model|"
                   r"as an assistant|virtual assistant|text-based|i am just an?|i'm just an?|"
                   r"i (do not|don't) have (a |any )?(body|feelings|emotions|personal|"
                   r"physical|consciousness))",
    "apology": r"\b(sorry|apologi[sz]e|unfortunately|regret)",
    "inability": r"\b(i can't|i cannot|i can not|i'm unable|i am unable|i'm not able|"
                 r"i am not able|i won't|i will not)",
    "moral_legal": r"\b(illegal|unethical|ethical|immoral|harmful|against the law|laws?\b|"
                   r"legal|dangerous|inappropriate|offensive|discriminat\w*|violen\w*|"
                   r"crim\w*|respect\w*|not appropriate|safety)",
    "disclaimer": r"\b(not a (doctor|lawyer|medical|legal|financial|licensed|qualified)|"
                  r"consult\w*|professional|qualified|expert)",
    "clarification": r"\b(clarify|more (context|details|information)|could you (please )?"
                     r"(provide|specify|explain|tell)|what do you mean|not sure what|"
                     r"which one|can you specify)",
    "crisis": r"\b(hotline|helpline|crisis|emergency|suicide|reach out|seek help|"
              r"support (line|services)|mental health)",
    "limitation": r"\b(real-time|access to|browse|internet|knowledge cutoff|up-to-date|"
                  r"predict the future|cannot (see|hear|view)|can't (see|hear|view)|"
                  r"no way to know|impossible to (know|predict))",
}
_COMPILED = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in LEXICAL_FEATURES.items()}
# Words beyond this count add nothing to the length feature (replies are cut anyway).
LENGTH_SCALE = 40.0


def lexical_features(texts: Sequence[str]) -> np.ndarray:
    """``(text, len(LEXICAL_FEATURES) + 1)``: 0/1 per marker, then length / LENGTH_SCALE."""
    out = np.zeros((len(texts), len(_COMPILED) + 1))
    for i, text in enumerate(texts):
        for j, pattern in enumerate(_COMPILED.values()):
            out[i, j] = 1.0 if pattern.search(text) else 0.0
        out[i, -1] = min(len(text.split()), LENGTH_SCALE) / LENGTH_SCALE
    return out


def combine_features(embeddings: np.ndarray | None, lexical: np.ndarray) -> np.ndarray:
    """Embedding (unit rows) beside standardised lexical features of the same total weight.

    Each block is scaled to unit mean squared row norm, so neither the 384 embedding
    dimensions nor the 9 lexical ones dominate the distances of the classifier.
    """
    blocks = []
    for block in (embeddings, lexical):
        if block is None or block.size == 0:
            continue
        block = np.asarray(block, np.float64)
        centred = block - block.mean(axis=0)
        scale = math.sqrt(float((centred ** 2).sum(axis=1).mean())) or 1.0
        blocks.append(centred / scale)
    if not blocks:
        raise ValueError("no features: give embeddings, lexical features, or both.")
    return np.concatenate(blocks, axis=1)


# Sentence-embedding budget of a refusal (tokens, with [CLS] and [SEP]).
EMBED_TOKENS = 64


def style_features(encoder: Any, texts: Sequence[str]) -> np.ndarray:
    """Features of refusals: sentence embedding (``encoder.encode(texts, max_tokens=64)``)
    beside the lexical markers, combined by :func:`combine_features`."""
    return combine_features(encoder.encode(texts, max_tokens=EMBED_TOKENS),
                            lexical_features(texts))


def span_coordinates(features: np.ndarray) -> np.ndarray:
    """``features`` in an orthonormal basis of their row span, ``(item, rank)``.

    Distances between items, and between items and any mean of items (the classifier's
    centroids), are those of the original features up to rounding, so nearest-centroid
    predictions are unchanged except at ties within rounding error. With few distinct
    texts (planted worlds repeat a few dozen) the rank is small and the style test's
    permutation null many times faster.
    """
    x = np.asarray(features, np.float64)
    if x.size == 0:
        return x
    _, sv, vt = np.linalg.svd(x, full_matrices=False)
    rank = int(np.sum(sv > sv[0] * 1e-10)) if sv[0] > 0 else 1
    return x @ vt[:rank].T
