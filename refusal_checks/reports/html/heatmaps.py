"""The HTML report's annotated matrices: between-category cosines, a style classifier's
confusion matrix, cross-ablation drops, and Arditi et al.'s candidate grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from refusal_checks.reports.html.figures import FONT, new_figure, png_bytes


def _annotated_matrix(ax: Any, values: np.ndarray, categories: Sequence[str], cmap: str, *,
                      rows: Sequence[str] | None = None, limits: tuple[float, float] = (-1, 1),
                      rotation: int = 60, aspect: str | None = None,
                      missing: np.ndarray | None = None) -> Any:
    """A matrix with tick labels and each value written in its cell.

    By default ``(k, k)`` in [-1, 1] with the same ``categories`` on both axes; ``rows``
    gives other row labels (columns stay ``categories``) and ``limits`` another colour range.
    ``missing``: cells never measured, written "n/c" (not computed) on a hatched grey cell.
    """
    lo, hi = limits
    rows = list(categories) if rows is None else list(rows)
    image = ax.imshow(np.clip(values, lo, hi), cmap=cmap, vmin=lo, vmax=hi, aspect=aspect)
    ax.set_xticks(range(len(categories)), list(categories), rotation=rotation,
                  ha="right" if rotation else "center", fontsize=FONT)
    ax.set_yticks(range(len(rows)), rows, fontsize=FONT)
    strong = lo + 0.8 * (hi - lo), lo + 0.2 * (hi - lo)
    for i in range(len(rows)):
        for j in range(len(categories)):
            value = values[i, j]
            if missing is not None and missing[i, j]:
                from matplotlib.patches import Rectangle

                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.85",
                                       hatch="///", edgecolor="0.6", lw=0))
                ax.text(j, i, "n/c", ha="center", va="center", fontsize=FONT - 1.5)
                continue
            text = "nan" if not np.isfinite(value) else f"{value:.2f}"
            dark = np.isfinite(value) and (value > strong[0] or value < strong[1])
            ax.text(j, i, text, ha="center", va="center", fontsize=FONT - 1.5,
                    color="white" if dark else "black")
    return image


def cosine_heatmap(categories: Sequence[str], matrix: Sequence[Sequence[float]], *,
                   title: str) -> bytes:
    """A (category, category) cosine matrix as an annotated heatmap.

    Colours are clipped to [-1, 1]; noise-corrected values can exceed 1 and are printed
    as they are.
    """
    m = np.asarray(matrix, dtype=float)
    k = len(categories)
    if m.shape != (k, k):
        raise ValueError(f"need a {k} x {k} matrix for {k} categories, got shape {m.shape}")
    size = max(3.6, 1.6 + 0.5 * k)
    figure = new_figure(size + 0.9, size)
    ax = figure.add_subplot()
    image = _annotated_matrix(ax, m, categories, "RdBu_r")
    ax.set_title(title, fontsize=FONT + 1)
    figure.colorbar(image, ax=ax, shrink=0.7).ax.tick_params(labelsize=FONT)
    return png_bytes(figure)


def confusion_chart(directions: Sequence[str], confusion: Sequence[Sequence[int]], *,
                    title: str) -> bytes:
    """A style classifier's confusion matrix (rows: true direction, columns: predicted)."""
    m = np.asarray(confusion, dtype=float)
    k = len(directions)
    if m.shape != (k, k):
        raise ValueError(f"need a {k} x {k} confusion matrix, got shape {m.shape}")
    totals = m.sum(axis=1, keepdims=True)
    share = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    size = max(3.6, 1.6 + 0.42 * k)
    figure = new_figure(size + 0.9, size)
    ax = figure.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), list(directions), rotation=60, ha="right", fontsize=FONT)
    ax.set_yticks(range(k), list(directions), fontsize=FONT)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=FONT - 1,
                    color="white" if share[i, j] > 0.6 else "black")
    ax.set_xlabel("predicted direction", fontsize=FONT)
    ax.set_ylabel("steered direction", fontsize=FONT)
    ax.set_title(title, fontsize=FONT + 1)
    figure.colorbar(image, ax=ax, shrink=0.7, label="share of row").ax.tick_params(
        labelsize=FONT)
    return png_bytes(figure)


def cross_ablation_heatmap(categories: Sequence[str], rates: Sequence[Sequence[float]],
                           baseline: Sequence[float], *, title: str) -> bytes:
    """Cross-ablation as a heatmap of drops in refusal rate.

    Cell (i, j): refusal rate of category j's probes at baseline minus with category i's
    direction ablated (rows: ablated direction; columns: probe category). A selective
    ablation is a dark diagonal on a pale field; one shared pathway darkens whole rows.

    Args:
        categories: ``k`` names.
        rates: ``(k, k)`` refusal rates under ablation.
        baseline: ``(k,)`` refusal rates unedited.
    """
    m = np.asarray(rates, dtype=float)
    base = np.asarray(baseline, dtype=float)
    k = len(categories)
    if m.shape != (k, k) or base.shape != (k,):
        raise ValueError(f"need a {k} x {k} matrix and {k} baseline rates for {k} categories, "
                         f"got shapes {m.shape} and {base.shape}")
    drops = base[None, :] - m
    size = max(3.6, 1.6 + 0.5 * k)
    figure = new_figure(size + 0.9, size)
    ax = figure.add_subplot()
    image = _annotated_matrix(ax, drops, categories, "PuOr_r")
    ax.set_xlabel("probe category (refusal measured)", fontsize=FONT)
    ax.set_ylabel("ablated direction", fontsize=FONT)
    ax.set_title(title, fontsize=FONT + 1)
    figure.colorbar(image, ax=ax, shrink=0.7, label="drop in refusal rate").ax.tick_params(
        labelsize=FONT)
    return png_bytes(figure)


def selection_heatmaps(layers: Sequence[int], positions: Sequence[int],
                       panels: Mapping[str, Sequence[Sequence[float]]],
                       kept: Sequence[Sequence[bool]], chosen: tuple[int, int] | None, *,
                       title: str,
                       not_computed: Mapping[str, np.ndarray] | None = None) -> bytes:
    """Arditi et al.'s candidate table as annotated heatmaps, one panel per score.

    Each panel is ``(position, layer)``; candidates that passed the filters are outlined,
    the selected one boxed in red (Arditi et al., Figure: refusal score per layer and
    post-instruction position).

    Args:
        panels: name -> ``(position, layer)`` values (e.g. bypass, induce, KL); NaN: none.
        kept: ``(position, layer)``: passed the filters.
        chosen: ``(layer, position)`` selected, or None.
        not_computed: panel name -> ``(position, layer)`` True where the search skipped
            that score (filter order): drawn "n/c", never as a value.
    """
    from matplotlib.patches import Rectangle

    cols = [str(layer) for layer in layers]
    rows = [str(p) for p in positions]
    mask = np.asarray(kept, bool)
    width = max(4.0, 1.2 + 0.42 * len(cols))
    figure = new_figure(width, (0.9 + 0.32 * len(rows)) * len(panels) + 0.4)
    axes = figure.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (name, values) in zip(axes, panels.items()):
        m = np.asarray(values, dtype=float)
        if m.shape != mask.shape:
            raise ValueError(f"panel {name!r} has shape {m.shape}, the candidate grid is "
                             f"{mask.shape} (positions x layers)")
        finite = m[np.isfinite(m)]
        span = float(np.abs(finite).max()) if finite.size else 1.0
        limits = (0.0, max(span, 1e-9)) if name.lower().startswith("kl") else (-span, span)
        skipped = None if not_computed is None else not_computed.get(name)
        image = _annotated_matrix(ax, m, cols, "viridis" if limits[0] == 0 else "RdBu_r",
                                  rows=rows, limits=limits, rotation=0, aspect="auto",
                                  missing=None if skipped is None else np.asarray(skipped, bool))
        for i, j in zip(*np.nonzero(mask)):
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=0.8,
                                   edgecolor="black"))
        if chosen is not None and chosen[0] in layers and chosen[1] in positions:
            j, i = list(layers).index(chosen[0]), list(positions).index(chosen[1])
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.2,
                                   edgecolor="red"))
        ax.set_ylabel("position", fontsize=FONT)
        ax.set_title(name, fontsize=FONT + 0.5)
        figure.colorbar(image, ax=ax, shrink=0.8).ax.tick_params(labelsize=FONT)
    axes[-1].set_xlabel("layer", fontsize=FONT)
    figure.suptitle(title, fontsize=FONT + 1)
    return png_bytes(figure)
