"""The HTML report's rate charts: split-half reliability per category, steering trade-off
curves, ablation per category, and the damage axis against steering strength.

Rates carry their n: when prompt counts are known, bands and error bars are Wilson 95%
intervals (:func:`refusal_checks.stats.intervals.wilson_interval`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from refusal_checks.reports.html.figures import FONT, new_figure, png_bytes
from refusal_checks.stats.intervals import wilson_interval


def split_half_chart(values: Mapping[str, Mapping[str, float]], *,
                     paper_range: tuple[float, float], noise_floor: float,
                     order: Sequence[str] = ()) -> bytes:
    """Per-category split-half cosine, one bar per model, with the paper's range shaded.

    Args:
        values: model -> {category: mean split-half cosine}.
        paper_range: The paper's within-category resample range, drawn as a band.
        noise_floor: Split-half cosine below which a direction counts as noise (a line).
        order: Categories in this order first (JSON reports sort dictionary keys).
    """
    models = list(values)
    categories = list(dict.fromkeys([*(c for c in order if any(c in per for per in
                                                                 values.values())),
                                     *(c for per in values.values() for c in per)]))
    figure = new_figure(6.4, 1.2 + 0.28 * len(categories) * max(1, len(models)) ** 0.5)
    ax = figure.add_subplot()
    height = 0.8 / max(1, len(models))
    y = np.arange(len(categories))
    for index, model in enumerate(models):
        row = [values[model].get(c, np.nan) for c in categories]
        ax.barh(y + (index - (len(models) - 1) / 2) * height, row, height=height, label=model)
    ax.axvspan(*paper_range, color="0.6", alpha=0.35,
               label=f"paper {paper_range[0]:.3f}-{paper_range[1]:.3f}")
    ax.axvline(noise_floor, color="tab:red", lw=1, ls="--", label=f"noise floor {noise_floor}")
    ax.set_yticks(y, categories, fontsize=FONT)
    ax.invert_yaxis()
    ax.set_xlim(min(0.0, float(np.nanmin([v for per in values.values() for v in per.values()]
                                         or [0.0]))), 1.0)
    ax.set_xlabel("mean split-half cosine (1,000 random 50/50 splits)", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=3,
                  fontsize=FONT - 1)
    return png_bytes(figure)


def _counts(value: int | Sequence[int] | Sequence[Sequence[int]] | None,
            shape: tuple[int, int], name: str) -> np.ndarray | None:
    """Prompt counts broadcast to (direction, strength): one n, one per direction, or a grid."""
    if value is None:
        return None
    counts = np.asarray(value, dtype=float)
    if counts.ndim == 1:
        counts = counts[:, None]
    try:
        counts = np.broadcast_to(counts, shape)
    except ValueError:
        raise ValueError(f"{name} must be one count, one per direction or one per "
                         f"(direction, strength); got shape {np.shape(value)} for rates of "
                         f"shape {shape}") from None
    return counts.astype(int)


def _wilson_band(rates: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.empty_like(rates), np.empty_like(rates)
    for index, (rate, n) in enumerate(zip(rates, counts)):
        k = int(round(rate * n))
        lo[index], hi[index] = wilson_interval(min(max(k, 0), int(n)), int(n))
    return lo, hi


def tradeoff_chart(directions: Sequence[str], strengths: Sequence[float],
                   rr: Sequence[Sequence[float]], orr: Sequence[Sequence[float]], *,
                   n_harmful: int | Sequence[int] | Sequence[Sequence[int]] | None = None,
                   n_benign: int | Sequence[int] | Sequence[Sequence[int]] | None = None,
                   title: str) -> bytes:
    """Refusal rate (RR) and over-refusal rate (ORR) under steering, per direction.

    Three panels: RR vs strength, ORR vs strength (Wilson 95% bands when the counts are
    given), and the RR-vs-ORR trade-off path (Wilson error bars when given).

    Args:
        rr, orr: (direction, strength) rates.
        n_harmful, n_benign: Prompts behind each RR / ORR value, or None when unknown.
    """
    rr_m, orr_m = np.asarray(rr, dtype=float), np.asarray(orr, dtype=float)
    shape = (len(directions), len(strengths))
    if rr_m.shape != shape or orr_m.shape != shape:
        raise ValueError(f"rr and orr must be (direction, strength) = {shape}, got "
                         f"{rr_m.shape} and {orr_m.shape}")
    nh, nb = _counts(n_harmful, shape, "n_harmful"), _counts(n_benign, shape, "n_benign")
    figure = new_figure(11.5, 3.6)
    axes = figure.subplots(1, 3)
    colours = [f"C{i % 10}" for i in range(len(directions))]
    styles = ["-", "--", ":"]
    x = np.asarray(strengths, dtype=float)
    for index, direction in enumerate(directions):
        style = dict(color=colours[index], ls=styles[(index // 10) % 3], marker="o", ms=3, lw=1.2)
        for ax, rates, counts in ((axes[0], rr_m, nh), (axes[1], orr_m, nb)):
            ax.plot(x, rates[index], label=direction, **style)
            if counts is not None:
                lo, hi = _wilson_band(rates[index], counts[index])
                ax.fill_between(x, lo, hi, color=colours[index], alpha=0.12, lw=0)
        xerr = yerr = None
        if nb is not None:
            lo, hi = _wilson_band(orr_m[index], nb[index])
            xerr = np.vstack([orr_m[index] - lo, hi - orr_m[index]]).clip(0)
        if nh is not None:
            lo, hi = _wilson_band(rr_m[index], nh[index])
            yerr = np.vstack([rr_m[index] - lo, hi - rr_m[index]]).clip(0)
        axes[2].errorbar(orr_m[index], rr_m[index], xerr=xerr, yerr=yerr, elinewidth=0.6,
                         capsize=0, **style)
    bands = "Wilson 95% bands" if nh is not None and nb is not None else "no bands: n unknown"
    labels = (("steering strength (x residual norm)", "refusal rate (harmful)"),
              ("steering strength (x residual norm)", "over-refusal rate (benign)"),
              ("over-refusal rate (benign)", "refusal rate (harmful)"))
    for ax, (xlabel, ylabel) in zip(axes, labels):
        ax.set_xlabel(xlabel, fontsize=FONT)
        ax.set_ylabel(ylabel, fontsize=FONT)
        ax.set_ylim(-0.03, 1.03)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3)
    axes[2].set_xlim(-0.03, 1.03)
    axes[2].set_title("trade-off path", fontsize=FONT)
    axes[0].set_title(f"RR vs strength ({bands})", fontsize=FONT)
    axes[1].set_title("ORR vs strength", fontsize=FONT)
    figure.suptitle(title, fontsize=FONT + 1)
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside right center",
                  fontsize=FONT - 1)
    return png_bytes(figure)


def ablation_chart(per_category: Mapping[str, Mapping[str, Mapping[str, int]]], *,
                   title: str) -> bytes:
    """Per category: refusal rate at baseline, and the share of those refusals kept under
    ablation of the category's own direction, with Wilson 95% error bars.

    Args:
        per_category: {category: {"baseline": {"refused", "n"}, "kept": {"refused", "n"}}}.
    """
    categories = list(per_category)
    figure = new_figure(6.4, 1.2 + 0.3 * len(categories))
    ax = figure.add_subplot()
    y = np.arange(len(categories))
    for offset, key, label, colour in ((-0.2, "baseline", "refused at baseline", "0.55"),
                                       (0.2, "kept", "still refusing under ablation "
                                        "(of those refused at baseline)", "tab:blue")):
        rates, low, high = [], [], []
        for category in categories:
            cell = per_category[category][key]
            n, k = int(cell["n"]), int(cell["refused"])
            lo, hi = wilson_interval(k, n)
            rate = k / n if n else np.nan
            rates.append(rate)
            low.append(0 if n == 0 else rate - lo)
            high.append(0 if n == 0 else hi - rate)
        ax.barh(y + offset, rates, height=0.38, color=colour, label=label,
                xerr=[low, high], error_kw={"elinewidth": 0.7, "capsize": 1.5})
    ax.set_yticks(y, categories, fontsize=FONT)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("rate (Wilson 95% interval; no bar: n = 0)", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=1,
                  fontsize=FONT - 1)
    ax.set_title(title, fontsize=FONT + 1)
    return png_bytes(figure)


def damage_chart(curves: Mapping[str, Mapping[str, Sequence[Any]]], *, title: str) -> bytes:
    """Refusal rate, broken share and benign KL against steering strength, one small panel
    per direction (the report's damage axis, :func:`refusal_checks.measure.damage.curves`).

    Left axis, [0, 1]: refusal rate on should-refuse prompts, over-refusal rate on benign
    ones (filled markers: judged replies; hollow: the cheap score), and the share of judged
    replies that are broken. Right axis: mean next-token KL on benign prompts against the
    unedited model (nats). A missing measurement is a gap.

    Args:
        curves: direction -> ``strengths``, ``refusal``, ``over_refusal``, their
            ``*_source`` (``judge`` / ``score`` per point), ``broken``, ``kl``.
    """
    directions = list(curves)
    if not directions:
        raise ValueError("no steered condition to draw")
    for name in directions:
        n = len(curves[name]["strengths"])
        for key in ("refusal", "over_refusal", "broken", "kl"):
            if len(curves[name][key]) != n:
                raise ValueError(f"{name}: {key} has {len(curves[name][key])} values for {n} "
                                 "strengths")
    columns = min(4, len(directions))
    rows = -(-len(directions) // columns)
    figure = new_figure(2.9 * columns + 0.6, 2.1 * rows + 0.8)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    kl_top = max([float(v) for c in curves.values() for v in c["kl"] if np.isfinite(v)] or [1.0])
    kl_top = kl_top if kl_top > 0 else 1.0
    # One strength axis for every panel, from 0: directions compare at a glance.
    xs = [float(v) for c in curves.values() for v in c["strengths"] if np.isfinite(v)] or [1.0]
    x_low, x_top = min(0.0, min(xs)), max(xs)
    x_top = x_top if x_top > x_low else x_low + 1.0
    handles: dict[str, Any] = {}
    for ax, name in zip(axes, directions):
        series = curves[name]
        x = np.asarray(series["strengths"], dtype=float)
        order = np.argsort(x, kind="stable")
        x = x[order]
        for key, label, colour in (("refusal", "refusal rate (should-refuse)", "tab:blue"),
                                   ("over_refusal", "over-refusal rate (benign)", "tab:orange")):
            y = np.asarray(series[key], dtype=float)[order]
            sources = [series.get(f"{key}_source", [""] * len(order))[i] for i in order]
            (line,) = ax.plot(x, y, color=colour, lw=1.1, label=label)
            handles.setdefault(label, line)
            judged = np.array([s == "judge" for s in sources])
            if judged.any():
                ax.plot(x[judged], y[judged], "o", color=colour, ms=3.5)
            if (~judged).any():
                ax.plot(x[~judged], y[~judged], "o", mfc="white", mec=colour, ms=3.5)
        broken = np.asarray(series["broken"], dtype=float)[order]
        (line,) = ax.plot(x, broken, color="tab:red", lw=1.1, marker="s", ms=3,
                          label="broken replies (share)")
        handles.setdefault("broken replies (share)", line)
        twin = ax.twinx()
        kl = np.asarray(series["kl"], dtype=float)[order]
        (line,) = twin.plot(x, kl, color="tab:purple", lw=1.1, ls="--", marker="^", ms=3,
                            label="mean KL, benign (right axis)")
        handles.setdefault("mean KL, benign (right axis)", line)
        twin.set_ylim(0, 1.05 * kl_top)
        twin.tick_params(labelsize=FONT - 1, colors="tab:purple")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlim(x_low, x_low + 1.08 * (x_top - x_low))
        ax.set_title(str(name), fontsize=FONT)
        ax.tick_params(labelsize=FONT - 1)
        ax.grid(alpha=0.3)
        ax.set_xlabel("strength (x residual norm)", fontsize=FONT - 1)
    for ax in axes[len(directions):]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D

    handles["judged"] = Line2D([], [], ls="", marker="o", color="0.3", ms=3.5,
                               label="filled: judged replies")
    handles["score"] = Line2D([], [], ls="", marker="o", mfc="white", mec="0.3", ms=3.5,
                              label="hollow: cheap score")
    figure.legend(list(handles.values()), [h.get_label() for h in handles.values()],
                  loc="outside lower center", ncols=3, fontsize=FONT - 1)
    figure.suptitle(title, fontsize=FONT + 1)
    return png_bytes(figure)
