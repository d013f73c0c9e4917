"""The report's figures, drawn with matplotlib's object API (no pyplot state) and saved as PNG.

Each function takes already computed statistics (:class:`rlopt.stats.Band`, :class:`rlopt.stats.Interval`)
and writes one file; nothing here computes a statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.typing import ColorType

from rlopt import atomic
from rlopt.stats import Band, Interval

DPI = 110


def colours(labels: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """A stable colour per arm label: tab10 without its grey (grey marks context lines), then tab20."""
    from matplotlib import colormaps

    if len(labels) <= 9:
        cmap = colormaps["tab10"]
        return {label: tuple(cmap(i if i < 7 else i + 1)) for i, label in enumerate(labels)}
    cmap = colormaps["tab20"]
    return {label: tuple(cmap(i % cmap.N)) for i, label in enumerate(labels)}


def _steps_axis(ax: Axes, x: np.ndarray) -> None:
    """An x axis of env steps (values from 10,000) as ``50k``, ``1M`` at a few ticks: full numbers
    overlap in small panels. Fractions and scores (τ) keep matplotlib's ticks."""
    from matplotlib.ticker import EngFormatter, MaxNLocator

    if x.size and float(np.nanmax(np.abs(x))) >= 1e4:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]))
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    atomic.save_figure(fig, path, dpi=DPI)
    return path


BAND_ALPHA = 0.18
"""Opacity of a confidence band."""

MAX_BANDS_PER_PANEL = 4
"""A curve figure puts up to this many arms (with their bands) in one panel; more arms get a panel each."""

MAX_COLUMNS = 4
"""Panels per row of a small-multiples curve figure."""


SHARED_BAND_ALPHA = 0.08
"""Opacity of each band when more than two share a panel: their overlap stays light; edges outline each."""


def _band(ax: Axes, band: Band, label: str, colour: tuple[float, ...], shared: bool = False) -> None:
    """The curve and its band; ``shared`` (3+ bands in one panel): a fainter fill outlined by thin dashes."""
    ax.plot(band.x, band.estimate, label=label, color=colour, lw=1.7, zorder=3)
    if np.all(np.isfinite(band.low)) and np.all(np.isfinite(band.high)):
        alpha = SHARED_BAND_ALPHA if shared else BAND_ALPHA
        ax.fill_between(band.x, band.low, band.high, color=colour, alpha=alpha, lw=0, zorder=2)
        if shared:
            for edge in (band.low, band.high):
                ax.plot(band.x, edge, color=colour, lw=0.7, ls=(0, (3, 2)), alpha=0.7, zorder=2)


def panel_groups(
    labels: Sequence[str], groups: Mapping[str, Sequence[str]] | None = None
) -> dict[str, list[str]]:
    """The groups of a small-multiples curve figure, ``{title: arms}``: each panel's arm is drawn over
    the rest of its group in grey.

    ``groups`` (e.g. one per optimizer) keeps each group, in the group's order. Groups of one arm (e.g.
    five optimizers at one setting each) join the arms in no group in one last group titled ``""``: a
    group per arm would stack one-panel rows and leave each panel nothing to compare with.
    """
    wanted = list(labels)
    kept = {t: [x for x in members if x in wanted] for t, members in (groups or {"": wanted}).items()}
    singles = [m[0] for m in kept.values() if len(m) == 1]
    out = {t: m for t, m in kept.items() if len(m) > 1}
    leftover = singles + [x for x in wanted if x not in singles and not any(x in m for m in out.values())]
    if leftover:
        out[""] = leftover
    return out


def panel_rows(groups: Mapping[str, Sequence[str]]) -> list[tuple[str, list[str]]]:
    """The rows of the figure, ``(group title, arms)``: a row per group of :func:`panel_groups`, a group
    of more than :data:`MAX_COLUMNS` arms wrapping onto further rows."""
    return [(title, list(members[i : i + MAX_COLUMNS])) for title, members in groups.items()
            for i in range(0, len(members), MAX_COLUMNS)]


def curves(
    bands: Mapping[str, Band],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    palette: Mapping[str, tuple[float, ...]],
    groups: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """IQM curves of several arms with their bootstrap bands (one task, or the aggregate).

    Up to :data:`MAX_BANDS_PER_PANEL` arms share one panel, coloured by ``palette``. More arms are
    small multiples with shared axes: one panel per arm, a row per group (``groups``, e.g. per
    optimizer, so the columns of a β grid are its β values), each panel with its arm's curve and band
    in colour over the other arms of its group as thin grey lines. The k-th panel of every group takes
    the k-th colour (for a β grid: one colour per β); arms alone in their group share rows
    (:func:`panel_groups`) in their ``palette`` colours, each panel showing the others in grey.
    """
    labels = list(bands)
    if len(labels) <= MAX_BANDS_PER_PANEL:
        fig = Figure(figsize=(7.0, 4.2))
        ax = fig.add_subplot()
        for label in labels:
            _band(ax, bands[label], label, palette[label], shared=len(labels) > 2)
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        _steps_axis(ax, np.concatenate([np.asarray(b.x, dtype=float) for b in bands.values()]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        return _save(fig, path)
    grouped = panel_groups(labels, groups)
    rows = panel_rows(grouped)
    cols = max(len(members) for _, members in rows)
    fig = Figure(figsize=(0.8 + 3.1 * cols, 1.0 + 2.5 * len(rows)))
    axes = fig.subplots(len(rows), cols, squeeze=False, sharex=True, sharey=True)
    for r, (row_title, members) in enumerate(rows):
        group = grouped[row_title]  # a panel's grey lines: the rest of its group, on whichever row
        # a group: the k-th colour for its k-th setting (a β's colour in every optimizer's row); the
        # shared rows of single arms keep each arm's own colour (as in the other figures)
        shades = colours(group) if row_title else {m: palette[m] for m in group}
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(members):
                ax.set_visible(False)
                continue
            label = members[c]
            for other in group:
                if other != label:
                    ax.plot(bands[other].x, bands[other].estimate, color="0.7", lw=0.8, zorder=1)
            _band(ax, bands[label], label, shades[label])
            ax.set_title(label, fontsize=9, color=shades[label])
            _steps_axis(ax, np.asarray(bands[label].x, dtype=float))
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=8)
            if c == 0:
                ax.set_ylabel(ylabel, fontsize=8)
            if r == len(rows) - 1 or (r + 1 < len(rows) and c >= len(rows[r + 1][1])):
                ax.set_xlabel(xlabel, fontsize=8)
                ax.xaxis.set_tick_params(labelbottom=True)
    titled = [bool(group_title) for group_title in grouped]
    context = ("of its optimizer entry" if all(titled) else
               "of its optimizer entry, or the other entries of one setting" if any(titled) else
               "of the figure")
    fig.suptitle(f"{title}   (grey: the other settings {context})", fontsize=11)
    return _save(fig, path)


def aggregate(
    intervals: Mapping[str, Interval],
    path: Path,
    *,
    title: str,
    xlabel: str,
    palette: Mapping[str, tuple[float, ...]] | None = None,
) -> Path:
    """Point estimates with horizontal interval bars, one row per arm (best at the top).

    ``palette`` colours each arm's point, bar and tick label as in the curve figures (default: all blue).
    """
    labels = list(intervals)
    fig = Figure(figsize=(7.0, 0.8 + 0.32 * len(labels)))
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    est = np.array([intervals[k].estimate for k in labels])
    low = np.array([intervals[k].low for k in labels])
    high = np.array([intervals[k].high for k in labels])
    err = np.vstack(
        [np.where(np.isfinite(low), est - low, 0.0), np.where(np.isfinite(high), high - est, 0.0)]
    )
    for k, label in enumerate(labels):
        colour = cast(ColorType, palette[label] if palette and label in palette else "tab:blue")
        ax.errorbar(est[k], y[k], xerr=err[:, k : k + 1], fmt="o", color=colour, ecolor=colour, capsize=3)
    ax.set_yticks(y, labels, fontsize=8)
    if palette:
        for tick, label in zip(ax.get_yticklabels(), labels, strict=True):
            tick.set_color(cast(ColorType, palette.get(label, "black")))
    ax.set(title=title, xlabel=xlabel)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


DIAGONAL_GREY = "0.88"
"""Fill of the POI matrix's diagonal and of pairs with no common task (no value)."""


def poi_matrix(
    labels: Sequence[str],
    matrix: np.ndarray,
    path: Path,
    *,
    title: str = "P(candidate > baseline), averaged over tasks",
) -> Path:
    """``matrix[i, j]`` = P(arm i > arm j) as a heat map with the values written in the cells.

    Rows are the candidates and columns the baselines, and the axes say so; a cell is the probability
    that a run of the row's setting beats a run of the column's (0.5: neither is better).
    """
    n = len(labels)
    size = 2.2 + 0.7 * n
    fig = Figure(figsize=(size + 1.4, size))
    ax = fig.add_subplot()
    cmap = colormaps["RdBu"].with_extremes(bad=DIAGONAL_GREY)
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    for i in range(n):
        for j in range(n):
            if i == j:  # a setting against itself: grey with a dash, unlike a 0.50 cell (near white)
                ax.text(j, i, "—", ha="center", va="center", fontsize=9, color="0.45")
            elif math.isfinite(matrix[i, j]):
                value = matrix[i, j]
                shade = "white" if abs(value - 0.5) > 0.35 else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=9, color=shade)
    ax.set_title(title, fontsize=11, pad=10)
    ax.set_xlabel("baseline (column)")
    ax.set_ylabel("candidate (row)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="P(row setting > column setting)")
    return _save(fig, path)


@dataclass(frozen=True)
class Heatmap:
    """One panel: ``values[i, j]`` at ``rows[i]`` × ``columns[j]``."""

    title: str
    row_label: str
    column_label: str
    rows: Sequence[str]
    columns: Sequence[str]
    values: np.ndarray


def heatmaps(panels: Sequence[Heatmap], path: Path, *, colorbar_label: str) -> Path:
    """Side-by-side heat maps sharing one colour scale, values written in the cells."""
    finite = np.concatenate([p.values[np.isfinite(p.values)] for p in panels] or [np.zeros(1)])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    width = sum(1.8 + 0.6 * len(p.columns) for p in panels)
    height = 1.8 + 0.45 * max(len(p.rows) for p in panels)
    fig = Figure(figsize=(width + 1.0, height))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    image = None
    for ax, panel in zip(axes, panels, strict=True):
        image = ax.imshow(
            np.ma.masked_invalid(panel.values), cmap="viridis", vmin=vmin, vmax=vmax, origin="lower"
        )
        ax.set_xticks(range(len(panel.columns)), panel.columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(panel.rows)), panel.rows, fontsize=8)
        ax.set(title=panel.title, xlabel=panel.column_label, ylabel=panel.row_label)
        for i in range(len(panel.rows)):
            for j in range(len(panel.columns)):
                value = panel.values[i, j]
                if math.isfinite(value):
                    shade = "black" if value > (vmin + vmax) / 2 else "white"
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=shade)
    if image is not None:
        fig.colorbar(image, ax=list(axes), label=colorbar_label, fraction=0.046, pad=0.04)
    atomic.save_figure(fig, path, dpi=DPI, bbox_inches="tight")
    return path


@dataclass(frozen=True)
class BetaSweep:
    """One optimizer's score at each value of one beta: ``intervals[k]`` at ``betas[k]``."""

    label: str
    betas: Sequence[float]
    intervals: Sequence[Interval]


def beta_sweeps(
    panels: Mapping[str, Sequence[BetaSweep]],
    path: Path,
    *,
    beta_name: str,
    title: str,
) -> Path:
    """Score against one beta, a line with interval bars per optimizer, one panel per metric.

    The x axis is ``1 − β`` on a log scale, reversed, so β grows to the right in even steps for a grid
    such as 0.9, 0.99, 0.999, 0.9999 (ticks are labelled with β itself). The optimizers' points are
    nudged apart sideways so their bars do not hide each other. ``panels`` maps a y-axis label (the
    metric) to its sweeps; a sweep of a single β (an optimizer run at one setting) is a diamond.
    """
    labels = sorted({s.label for sweeps in panels.values() for s in sweeps})
    palette = colours(labels)
    betas = sorted({b for sweeps in panels.values() for s in sweeps for b in s.betas})
    fig = Figure(figsize=(1.0 + 4.6 * len(panels), 4.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (ylabel, sweeps) in zip(axes, panels.items(), strict=True):
        for sweep in sweeps:
            k = labels.index(sweep.label)
            order = np.argsort(sweep.betas)
            one_minus = 1.0 - np.asarray(sweep.betas, dtype=float)[order]
            x = one_minus * 10 ** (0.06 * (k - (len(labels) - 1) / 2))  # nudged sideways per optimizer
            est = np.array([sweep.intervals[i].estimate for i in order])
            low = np.array([sweep.intervals[i].low for i in order])
            high = np.array([sweep.intervals[i].high for i in order])
            err = np.vstack(
                [np.where(np.isfinite(low), est - low, 0.0), np.where(np.isfinite(high), high - est, 0.0)]
            )
            single = len(set(sweep.betas)) == 1  # an optimizer at one setting: a diamond, no line
            ax.errorbar(x, est, yerr=err, fmt="D" if single else "o-", color=palette[sweep.label],
                        capsize=3, lw=1.6, ms=7 if single else 6, label=sweep.label)
        ax.set_xscale("log")
        ticks = [1.0 - b for b in betas if b < 1.0]
        ax.set_xticks(ticks, [f"{b:g}" for b in betas if b < 1.0])
        ax.minorticks_off()
        if ticks:
            ax.set_xlim(max(ticks) * 10 ** 0.3, min(ticks) / 10 ** 0.3)  # reversed: β grows to the right
        ax.set(xlabel=f"{beta_name} (log scale of 1 − {beta_name})", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=12)
    return _save(fig, path)


def run_lines(
    panels: Mapping[str, Sequence[tuple[str, np.ndarray, np.ndarray]]],
    path: Path,
    *,
    title: str,
    ylabel: str,
) -> Path:
    """One panel per task, one line per run ``(label, steps, returns)``, a colour per label."""
    labels = sorted({label for runs in panels.values() for label, _, _ in runs})
    palette = colours(labels)
    fig = Figure(figsize=(0.8 + 4.6 * min(len(panels), 3), 1.0 + 3.2 * math.ceil(len(panels) / 3)))
    axes = fig.subplots(math.ceil(len(panels) / 3), min(len(panels), 3), squeeze=False)
    for ax, (task, runs) in zip(axes.flat, panels.items(), strict=False):
        named: set[str] = set()
        for label, steps, returns in runs:
            ax.plot(steps, returns, color=palette[label], lw=1.2, marker=".", ms=3,
                    label=None if label in named else label)
            named.add(label)
        ax.set(title=task, xlabel="environment steps", ylabel=ylabel)
        _steps_axis(ax, np.concatenate([np.zeros(0), *(np.asarray(x, dtype=float) for _, x, _ in runs)]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)
