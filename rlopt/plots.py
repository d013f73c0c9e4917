"""The report's figures, drawn with matplotlib's object API (no pyplot state) and saved as PNG.

Each function takes already computed statistics (:class:`rlopt.stats.Band`, :class:`rlopt.stats.Interval`)
and writes one file; nothing here computes a statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rlopt import atomic
from rlopt.stats import Band, Interval

DPI = 110


def colours(labels: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """A stable colour per arm label (tab10, then tab20 for more arms)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {label: tuple(cmap(i % cmap.N)) for i, label in enumerate(labels)}


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    atomic.save_figure(fig, path, dpi=DPI)
    return path


def _band(ax: Axes, band: Band, label: str, colour: tuple[float, ...]) -> None:
    ax.plot(band.x, band.estimate, label=label, color=colour, lw=1.6)
    if np.all(np.isfinite(band.low)) and np.all(np.isfinite(band.high)):
        ax.fill_between(band.x, band.low, band.high, color=colour, alpha=0.2, lw=0)


def curves(
    bands: Mapping[str, Band],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    palette: Mapping[str, tuple[float, ...]],
) -> Path:
    """IQM curves of several arms with their bootstrap bands (one task, or the aggregate)."""
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot()
    for label, band in bands.items():
        _band(ax, band, label, palette[label])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path)


def aggregate(intervals: Mapping[str, Interval], path: Path, *, title: str, xlabel: str) -> Path:
    """Point estimates with horizontal interval bars, one row per arm (best at the top)."""
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
    ax.errorbar(est, y, xerr=err, fmt="o", color="tab:blue", ecolor="tab:blue", capsize=3)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set(title=title, xlabel=xlabel)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def poi_matrix(labels: Sequence[str], matrix: np.ndarray, path: Path) -> Path:
    """``matrix[i, j]`` = P(arm i > arm j) as a heat map with the values written in the cells."""
    n = len(labels)
    size = 1.6 + 0.55 * n
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap="RdBu", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    for i in range(n):
        for j in range(n):
            if i != j and math.isfinite(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set(title="P(row > column), averaged over tasks", xlabel="Y", ylabel="X")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
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
