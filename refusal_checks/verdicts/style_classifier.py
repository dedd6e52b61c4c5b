"""The style classifier and its null: which label produced each item?

A nearest-centroid classifier, cross-validated leave-one-prompt-out
(:func:`nearest_centroid_lopo`), predicts the label (steering direction) of each item
(refusal). Chance is the mean accuracy when labels are permuted *within* each prompt
(:func:`permute_within`), so the prompts are kept and only the link between label and
wording is destroyed. :func:`style_test` runs both; the interval of the gain over the null
(:func:`gain_interval`) adds the null's variance to the cluster bootstrap's
(:func:`cluster_bootstrap`, which resamples whole prompts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from refusal_checks.stats.intervals import normal_quantile, permutation_pvalue


def class_codes(values: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    names = list(dict.fromkeys(values))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[v] for v in values], dtype=int), names


def nearest_centroid_lopo(features: np.ndarray, labels: np.ndarray,
                          groups: np.ndarray) -> np.ndarray:
    """Leave-one-group-out predictions of a nearest-centroid classifier, ``(item,)``.

    For each group (prompt), class centroids are computed from the other groups only, and
    each held-out item is assigned to the nearest centroid (Euclidean). A class with no
    training items left cannot be predicted. ``labels`` and ``groups`` are integer codes
    ``0..k-1`` and ``0..g-1``. Vectorised over groups: per-group class sums are
    subtracted from the totals, so a permutation null of hundreds of fits stays cheap.
    """
    x = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    k, g = int(labels.max()) + 1, int(groups.max()) + 1
    group_sums = np.zeros((g, k, x.shape[1]))
    np.add.at(group_sums, (groups, labels), x)
    group_counts = np.zeros((g, k))
    np.add.at(group_counts, (groups, labels), 1.0)
    sums = group_sums.sum(axis=0) - group_sums[groups]  # (item, k, d): other groups only
    counts = group_counts.sum(axis=0) - group_counts[groups]  # (item, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        centroids = sums / counts[:, :, None]
    distance = ((x[:, None, :] - centroids) ** 2).sum(axis=2)
    distance[counts == 0] = np.inf
    return distance.argmin(axis=1)


def permute_within(labels: np.ndarray, groups: np.ndarray, rng: np.random.Generator
                   ) -> np.ndarray:
    """Labels shuffled among the items of each group (the within-prompt null)."""
    out = np.array(labels, copy=True)
    for g in np.unique(groups):
        index = np.flatnonzero(groups == g)
        out[index] = out[rng.permutation(index)]
    return out


def cluster_bootstrap(values: np.ndarray, groups: np.ndarray, rng: np.random.Generator,
                      n_boot: int, statistic: Callable[[np.ndarray], float] = np.mean
                      ) -> np.ndarray:
    """Replicates of ``statistic(values)`` over resampled groups (prompts), ``(n_boot,)``.

    Items that share a prompt are not independent (they answer the same text), so whole
    prompts are resampled, as PAPER.md's methodology notes ask ("resample prompts").
    """
    values = np.asarray(values)
    unique = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in unique]
    out = np.empty(n_boot)
    for b in range(n_boot):
        chosen = rng.integers(0, len(unique), len(unique))
        index = np.concatenate([members[i] for i in chosen])
        out[b] = statistic(values[index])
    return out


@dataclass(frozen=True)
class StyleResult:
    """A classifier test: which label produced each item, against a within-group null.

    Attributes:
        labels: Label names, in code order.
        accuracy: Cross-validated accuracy.
        chance: Mean accuracy under the within-group permutation null.
        null: ``(n_perm,)`` null accuracies.
        p_value: Permutation p-value of ``accuracy``.
        interval: Interval of ``accuracy - chance`` (:func:`gain_interval`: cluster
            bootstrap and permutation-null variance).
        confusion: ``(label, label)`` counts; rows true, columns predicted.
        n: Items classified.
        groups: Groups (prompts) behind them.
    """

    labels: list[Any]
    accuracy: float
    chance: float
    null: np.ndarray
    p_value: float
    interval: tuple[float, float]
    confusion: np.ndarray
    n: int
    groups: int

    @property
    def gain(self) -> float:
        """Accuracy above the permutation null's mean."""
        return self.accuracy - self.chance

    def summary(self) -> dict[str, Any]:
        return {"labels": [str(x) for x in self.labels], "accuracy": round(self.accuracy, 4),
                "chance": round(self.chance, 4), "permutation_p": self.p_value,
                "null_95th": round(float(np.quantile(self.null, 0.95)), 4),
                "confusion": self.confusion.tolist(), "n": self.n, "prompts": self.groups}


def style_test(features: np.ndarray, labels: Sequence[Any], groups: Sequence[Any], *,
               seed: int, n_perm: int = 500, n_boot: int = 500, level: float = 0.95,
               strata: Sequence[Any] | None = None) -> StyleResult:
    """Can a label (steering direction) be told from the features of its items?

    Args:
        features: ``(item, feature)``.
        labels: The label of each item (e.g. the direction that produced the refusal).
        groups: The group of each item (the prompt it answers): the unit of
            cross-validation, permutation and bootstrap.
        seed: Seeds the permutations and the bootstrap.
        strata: Optional stratum of each item: the classifier is fitted and labels are
            permuted within each stratum only, and accuracy pools over strata (the negative
            control's categories, each with its own two half-directions).
    """
    codes, names = class_codes(labels)
    group_codes, _ = class_codes(groups)
    strata_codes = np.zeros(len(codes), dtype=int) if strata is None else class_codes(strata)[0]
    if len(names) < 2:
        raise ValueError(f"the style test needs at least 2 labels, got {names}.")
    x = np.asarray(features, np.float64)
    parts = [np.flatnonzero(strata_codes == s) for s in np.unique(strata_codes)]

    def predict(label_codes: np.ndarray) -> np.ndarray:
        out = np.empty(len(label_codes), dtype=int)
        for index in parts:
            local, local_codes = np.unique(label_codes[index], return_inverse=True)
            _, local_groups = np.unique(group_codes[index], return_inverse=True)
            out[index] = local[nearest_centroid_lopo(x[index], local_codes, local_groups)]
        return out

    cells = strata_codes * (int(group_codes.max()) + 1) + group_codes
    rng = np.random.default_rng(seed)
    predicted = predict(codes)
    correct = predicted == codes
    null = np.empty(n_perm)
    for i in range(n_perm):
        shuffled = permute_within(codes, cells, rng)
        null[i] = np.mean(predict(shuffled) == shuffled)
    chance = float(null.mean())
    boot = cluster_bootstrap(correct.astype(np.float64), group_codes, rng, n_boot)
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (codes, predicted), 1)
    accuracy = float(correct.mean())
    return StyleResult(labels=names, accuracy=accuracy, chance=chance, null=null,
                       p_value=permutation_pvalue(accuracy, null),
                       interval=gain_interval(accuracy - chance, boot, null, level),
                       confusion=confusion, n=len(codes), groups=len(np.unique(group_codes)))


def gain_interval(gain: float, boot: np.ndarray, null: np.ndarray, level: float = 0.95
                  ) -> tuple[float, float]:
    """Normal interval of the accuracy gain, ``gain +- z sqrt(var(boot) + var(null))``.

    The cluster bootstrap resamples prompts but keeps each refusal's cross-validated
    prediction, so it misses how much the fitted classifier and the chance level move
    with the sample; calibration measured its standard error at 0.021-0.032 where the gain
    itself varied by 0.038-0.043 across fresh prompt samples of one planted world, and
    the style claim said SUPPORTED in 9% of worlds at the margin (calibration/README.md).
    The permutation null's variance is the accuracy's sampling variance when labels carry
    no style; added to the bootstrap's it brings the standard error to 0.031-0.039.
    """
    z = normal_quantile(0.5 + level / 2.0)
    se = math.sqrt(float(np.var(boot)) + float(np.var(null)))
    return gain - z * se, gain + z * se
