"""Directions in activation space: diff-in-means, projections, cosines.

Everything here takes and returns numpy arrays (float64) so the maths is testable in
milliseconds. Activations are ``(prompt, d_model)``; a set of category directions is
``(category, d_model)``. Randomness is always an explicit ``np.random.Generator``.

Sampling noise shrinks cosines (PAPER.md, "Methodology notes"); measuring and undoing
that shrinkage (split-half reliability, disattenuation, the prompt bootstrap) is in
:mod:`refusal_checks.stats.reliability`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def _acts(x: ArrayLike, name: str) -> FloatArray:
    """Activations as a float64 ``(prompt, d_model)`` array with at least one prompt."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"{name} must be a non-empty (prompt, d_model) array, got shape {arr.shape}. "
            "Pass one row of activations per prompt."
        )
    return arr


def category_sets(
    refuse: Sequence[ArrayLike], benign: ArrayLike | Sequence[ArrayLike], min_rows: int = 1
) -> tuple[list[FloatArray], list[FloatArray], list[int]]:
    """Validate per-category refuse sets and a shared or per-category benign set.

    Benign arrays are grouped into pools: a single array is one pool shared by every
    category; in a list, arrays with identical contents (the paper's nine splits that all
    use WildGuardMix benign) are recognised as one shared pool.

    Returns:
        ``(refuse_sets, pools, pool_of)``: the refuse arrays, the distinct benign pools,
        and for each category the index of its pool.
    """
    sets = [_acts(r, f"refuse[{i}]") for i, r in enumerate(refuse)]
    if not sets:
        raise ValueError("refuse is empty: pass one (prompt, d_model) array per category.")
    if not isinstance(benign, (list, tuple)):
        named = [("benign", _acts(benign, "benign"))]
        pools, pool_of = [named[0][1]], [0] * len(sets)
    else:
        named = [(f"benign[{i}]", _acts(b, f"benign[{i}]")) for i, b in enumerate(benign)]
        if len(named) != len(sets):
            raise ValueError(
                f"benign has {len(named)} arrays but refuse has {len(sets)} categories. "
                "Pass one benign array per category, or a single shared array."
            )
        pools, pool_of = [], []
        for _, arr in named:
            same = [j for j, p in enumerate(pools) if p is arr or np.array_equal(p, arr)]
            if not same:
                pools.append(arr)
            pool_of.append(same[0] if same else len(pools) - 1)
    width = sets[0].shape[1]
    for name, arr in [(f"refuse[{i}]", a) for i, a in enumerate(sets)] + named:
        if arr.shape[1] != width:
            raise ValueError(
                f"{name} has d_model={arr.shape[1]} but refuse[0] has {width}: all "
                "activations must come from the same layer of the same model."
            )
        if arr.shape[0] < min_rows:
            raise ValueError(
                f"{name} has {arr.shape[0]} prompts; splitting it in halves needs at "
                f"least {min_rows}."
            )
    return sets, pools, pool_of


def diff_in_means(acts_refuse: ArrayLike, acts_benign: ArrayLike) -> FloatArray:
    """Difference-in-means direction ``mean(acts_refuse) - mean(acts_benign)``.

    Args:
        acts_refuse: ``(n1, d_model)`` activations on prompts the model should refuse.
        acts_benign: ``(n2, d_model)`` activations on benign prompts.

    Returns:
        ``(d_model,)`` un-normalised direction.

    Raises:
        ValueError: If a set is empty or not 2-D, or the widths differ.
    """
    ref = _acts(acts_refuse, "acts_refuse")
    ben = _acts(acts_benign, "acts_benign")
    if ref.shape[1] != ben.shape[1]:
        raise ValueError(
            f"acts_refuse has shape {ref.shape} but acts_benign has shape {ben.shape}: "
            "d_model must match (same layer, same model)."
        )
    return ref.mean(axis=0) - ben.mean(axis=0)


def unit(v: ArrayLike, axis: int = -1) -> FloatArray:
    """Normalise to unit length along ``axis``: ``v / |v|``.

    Raises:
        ValueError: If any norm is zero or not finite (no direction to speak of).
    """
    arr = np.asarray(v, dtype=np.float64)
    norm = np.linalg.norm(arr, axis=axis, keepdims=True)
    if not np.all(np.isfinite(norm)) or np.any(norm == 0):
        raise ValueError(
            f"cannot normalise: norms along axis {axis} include {norm.min():.3g} or a "
            "non-finite value. A direction must be a non-zero, finite vector."
        )
    return arr / norm


def project_out(x: ArrayLike, direction: ArrayLike) -> FloatArray:
    """Remove the component along ``direction``: ``x - (x . r_hat) r_hat``.

    Args:
        x: ``(..., d_model)`` activations.
        direction: ``(d_model,)`` direction ``r``; only its orientation matters.

    Returns:
        ``(..., d_model)`` activations orthogonal to ``r``.
    """
    arr = np.asarray(x, dtype=np.float64)
    r_hat = unit(direction)
    if r_hat.ndim != 1 or arr.shape[-1] != r_hat.shape[0]:
        raise ValueError(
            f"x has shape {arr.shape} and direction {r_hat.shape}; expected "
            "x (..., d_model) and direction (d_model,)."
        )
    return arr - (arr @ r_hat)[..., None] * r_hat


def cosine(a: ArrayLike, b: ArrayLike) -> float:
    """Cosine similarity ``a_hat . b_hat`` of two ``(d_model,)`` vectors, in [-1, 1]."""
    return float(np.clip(unit(a) @ unit(b), -1.0, 1.0))


def cosine_matrix(directions: ArrayLike) -> FloatArray:
    """Pairwise cosines: ``C_ij = r_hat_i . r_hat_j``.

    Args:
        directions: ``(..., k, d_model)``; leading axes are batch axes.

    Returns:
        ``(..., k, k)`` symmetric, unit diagonal, values in [-1, 1].
    """
    u = unit(directions)
    m = np.clip(u @ np.swapaxes(u, -1, -2), -1.0, 1.0)
    idx = np.arange(m.shape[-1])
    m[..., idx, idx] = 1.0
    return m


def off_diagonal(m: ArrayLike) -> FloatArray:
    """Upper-triangle values of ``(..., k, k)`` in row order -> ``(..., k(k-1)/2)``."""
    arr = np.asarray(m, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] != arr.shape[-2]:
        raise ValueError(f"expected a square (..., k, k) matrix, got shape {arr.shape}")
    rows, cols = np.triu_indices(arr.shape[-1], k=1)
    return arr[..., rows, cols]


def clip_unit(m: ArrayLike) -> FloatArray:
    """Clip values to the cosine range [-1, 1] (for display; see :func:`disattenuate`)."""
    return np.clip(np.asarray(m, dtype=np.float64), -1.0, 1.0)


def participation_ratio(m: ArrayLike) -> float:
    """Effective number of dimensions of a symmetric ``(k, k)`` matrix.

    ``PR = (sum_i l_i)^2 / sum_i l_i^2`` over the eigenvalues ``l_i`` clipped at 0. It is 1
    for a rank-1 matrix (one shared direction), ``k`` for the identity (k orthogonal
    directions), scale invariant, and lies in [1, k]. NaN if no eigenvalue is positive.
    """
    arr = np.asarray(m, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"expected a square (k, k) matrix, got shape {arr.shape}")
    if not np.allclose(arr, arr.T, rtol=1e-6, atol=1e-9):
        raise ValueError("participation_ratio needs a symmetric matrix (e.g. cosines).")
    eig = np.clip(np.linalg.eigvalsh((arr + arr.T) / 2.0), 0.0, None)
    total_sq = float(np.sum(eig**2))
    return float(np.sum(eig) ** 2 / total_sq) if total_sq > 0 else float("nan")


def category_directions(
    refuse: Sequence[ArrayLike], benign: ArrayLike | Sequence[ArrayLike]
) -> FloatArray:
    """Diff-in-means direction per category -> ``(k, d_model)``.

    Args:
        refuse: ``k`` arrays ``(n_i, d_model)``.
        benign: One shared ``(m, d_model)`` array, or ``k`` arrays ``(m_i, d_model)``
            (a list or tuple), one per category.
    """
    sets, pools, pool_of = category_sets(refuse, benign)
    return np.stack([r.mean(axis=0) - pools[j].mean(axis=0) for r, j in zip(sets, pool_of)])
