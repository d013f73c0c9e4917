"""A study's report: ``report.md``, ``report.html`` (images embedded) and the PNG figures, in one folder.

The report states its budget from the data (tasks, seeds, timesteps, runs per cell), the command that
made the study when it was recorded, and whether the data are partial (runs still running); pruned,
stopped and failed runs are counted and left out of every statistic (see :mod:`rlopt.analysis.scores`). It
shows, per arm (a run's ``setting`` label): IQM curves per task and aggregate sample-efficiency curves
with bootstrap bands (up to four settings in one panel; more as small multiples, one panel per
setting and a row per optimizer entry of the study, shared axes), aggregate IQMs with intervals, the
probability-of-improvement matrix (candidate rows, baseline columns), performance profiles, the score
against β per optimizer when an optimizer's grid varies one beta (on a log(1−β) axis) and β heat maps
when it varies two (betas that the square-root rule derived at κ ≠ 1 are no grid point, and left out),
a stability table, the curves so far of runs still training, and one verdict per
claim (:mod:`rlopt.analysis.verdict`) computed from the intervals.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlopt import atomic, stats
from rlopt.analysis import plots
from rlopt.analysis.scores import (
    USABLE_STATES,
    Normaliser,
    RunCensus,
    RunLike,
    arm_label,
    by_task,
    common_grid,
    curve_matrix,
    is_usable,
    mark_duplicates,
    run_state,
    scores,
    stability_values,
)
from rlopt.analysis.verdict_table import judge, markdown_table, verdicts_markdown
from rlopt.config.claims import Claim, record_value
from rlopt.paths import safe_name
from rlopt.run.folder import read_json
from rlopt.run.metrics import DIVERGED_RULE

MAX_ARMS_IN_FIGURES = 12
"""Curves and the POI matrix show at most this many arms (the best by aggregate IQM); tables show all."""


def _number_range(values: Sequence[float]) -> str:
    values = sorted(set(values))
    if not values:
        return "none"
    lo, hi = values[0], values[-1]
    return f"{lo:,.0f}" if lo == hi else f"{lo:,.0f}–{hi:,.0f}"


@dataclass(frozen=True)
class _SettingRuns:
    """A report's "arm": the runs sharing a setting label (:func:`rlopt.analysis.scores.arm_label`), one
    row of its tables and one curve of its figures; a study's optimizer entry may have many."""

    label: str
    runs: list[RunLike]
    tasks: dict[str, list[RunLike]]
    excluded: int
    entry: str
    """The study entry the runs come from (its ``label``, recorded as ``params["arm"]``), else their
    optimizer: a row of the curve figures."""


def _runs_by_setting(records: Sequence[RunLike]) -> dict[str, _SettingRuns]:
    labels = sorted({arm_label(r) for r in records}, key=lambda s: s.lower())
    out = {}
    for label in labels:
        runs = [r for r in records if arm_label(r) == label]
        finished = [r for r in runs if is_usable(r)]
        excluded = len(runs) - len(finished)
        entry = (runs[0].params or {}).get("arm") or runs[0].optimizer
        out[label] = _SettingRuns(label, finished, by_task(finished), excluded, str(entry))
    return out


def _groups(arms: Mapping[str, _SettingRuns]) -> dict[str, list[str]]:
    """The arms of each study entry (the rows of a curve figure with many arms): e.g. one row per
    optimizer, or per scaling rule where one optimizer has an entry per rule (its κ values side by side,
    each panel showing the others in grey)."""
    out: dict[str, list[str]] = {}
    for label, arm in arms.items():
        out.setdefault(arm.entry, []).append(label)
    return out


def _planned_timesteps(record: RunLike) -> float | None:
    """The run's training budget from its config.json (None when absent or unreadable)."""
    try:
        value = json.loads((Path(record.run_dir) / "config.json").read_text()).get("timesteps")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _last_evaluation(record: RunLike) -> float | None:
    steps = np.asarray(record.timesteps, dtype=float)
    steps = steps[np.isfinite(steps)]
    return float(steps.max()) if steps.size else None


class _Writer:
    """Collects markdown and figure files; figures are written as they are added."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.parts: list[str] = []
        self.figures: list[Path] = []

    def add(self, text: str) -> None:
        self.parts.append(text.rstrip() + "\n")

    def figure(self, path: Path, caption: str) -> None:
        self.figures.append(path)
        self.add(f"![{caption}]({path.name})\n\n*{caption}*")

    def markdown(self) -> str:
        return "\n".join(self.parts)


def write_report(
    records: Sequence[RunLike],
    claims: Claim | Sequence[Claim] | None,
    out_dir: str | Path,
    partial: bool | None = None,
    *,
    normaliser: Normaliser | None = None,
    title: str | None = None,
    command: str | None = None,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    planned_runs: int | None = None,
    note: str | None = None,
    final_claims: Sequence[str] = (),
) -> Path:
    """Write ``report.md``, ``report.html`` and the figures of a study into ``out_dir``.

    Args:
        records: Every run of the study, in any state (``rlopt.analysis.load.load_runs``).
        claims: The claims to give a verdict on (one, several, or none).
        out_dir: Folder to write (created if missing).
        partial: Whether the study is still running; default: when some runs are still running, or
            fewer than ``planned_runs`` runs are usable.
        normaliser: Per-task reference scores; default: min–max over the study's own evaluations.
        title: Report title; default from the study name.
        command: The command that produced the study, when recorded.
        n_resamples: Bootstrap resamples for every interval.
        seed: Bootstrap seed (same data and seed give the same report).
        confidence: Confidence level of the intervals in the tables and figures.
        planned_runs: Runs the study asks for (the report says partial while fewer are usable).
        note: A line on how the study was run, shown under the title (e.g. its sequential looks).
        final_claims: Statements of the claims whose verdict a partial study can no longer change
            (their own runs all in: :func:`rlopt.analysis.progress.claim_progress`), named under the title.

    Returns:
        The path of ``report.md``.
    """
    claim_list: list[Claim] = (
        [] if claims is None else [claims] if isinstance(claims, Claim) else list(claims)
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = mark_duplicates(records)
    census = RunCensus.of(records)
    short = planned_runs is not None and census.usable < planned_runs
    partial = (census.partial or short) if partial is None else partial
    normaliser = normaliser or Normaliser.from_runs(records)
    boot = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    study = records[0].study if records else "(no runs)"
    w = _Writer(out)
    _header(w, title or f"rlopt report: {study}", census, partial, planned_runs, final_claims)
    if note:
        w.add(f"> {note}.")
    verdicts = judge(claim_list, records, normaliser=normaliser, n_resamples=n_resamples, seed=seed)
    usable = [r for r in records if is_usable(r)]
    arms = _runs_by_setting(records)
    _budget(w, records, usable, arms, census, normaliser, command, boot)
    w.add(verdicts_markdown(verdicts))
    if usable:
        _results(w, arms, usable, normaliser, boot)
    _in_progress(w, records)
    _excluded_runs(w, records)
    md_path = out / "report.md"
    atomic.write_text(md_path, w.markdown())
    atomic.write_text(out / "report.html", _html(w.markdown(), out, title or f"rlopt report: {study}"))
    return md_path


def _header(w: _Writer, title: str, census: RunCensus, partial: bool, planned_runs: int | None,
            final_claims: Sequence[str]) -> None:
    """The title, and what the reader must know before any number: partial data (and which verdicts
    are final all the same), runs left out."""
    w.add(f"# {title}")
    if partial:
        of_planned = f"partial: {census.usable} of {planned_runs} runs" if planned_runs is not None else ""
        one = len(final_claims) == 1
        final = (f"; {'this verdict is' if one else 'these verdicts are'} final all the same, every run "
                 f"{'it compares' if one else 'they compare'} counting already: "
                 + "; ".join(f"*{c}*" for c in final_claims) if final_claims else "")
        w.add(
            f"> **Partial data{' (' + of_planned + ')' if of_planned else ''}: the study is still running.** "
            f"{census.describe()}. Every number below uses only the {census.usable} runs that count "
            f"(finished, in a complete trial) and will change{final}."
        )
    excluded = sum(census.counts[s] for s in ("pruned", "stopped", "failed", "duplicate"))
    if excluded:
        w.add(
            f'> {excluded} run(s) are left out of every statistic and listed under "Runs left out": '
            "only runs that finished in a complete trial count, one per (setting, task, seed). Pruning "
            "removes poor runs, so an arm that lost runs to it may look better than it is."
        )


def _results(
    w: _Writer,
    arms: Mapping[str, _SettingRuns],
    usable: Sequence[RunLike],
    normaliser: Normaliser,
    boot: Mapping[str, Any],
) -> None:
    """The figures and tables of the finished runs; figures show the best MAX_ARMS_IN_FIGURES arms."""
    aggregates = _aggregate(w, arms, normaliser, boot)
    shown = sorted(arms, key=lambda a: -_finite_or(aggregates.get(a), -math.inf))[:MAX_ARMS_IN_FIGURES]
    shown = [a for a in arms if a in shown]
    palette = plots.colours(list(arms))
    _sample_efficiency(w, arms, shown, normaliser, palette, boot)
    _per_task(w, arms, shown, palette, boot)
    _poi_and_profiles(w, arms, shown, normaliser, palette, boot)
    _beta_grid(w, usable, normaliser, boot)
    _stability(w, arms, normaliser, boot)


def _finite_or(interval: stats.Interval | None, default: float) -> float:
    return interval.estimate if interval is not None and math.isfinite(interval.estimate) else default


def _budget(
    w: _Writer,
    records: Sequence[RunLike],
    usable: Sequence[RunLike],
    arms: Mapping[str, _SettingRuns],
    census: RunCensus,
    normaliser: Normaliser,
    command: str | None,
    boot: Mapping[str, Any],
) -> None:
    tasks = sorted({r.task for r in records})
    seeds = sorted({r.seed for r in records})
    planned = [t for t in (_planned_timesteps(r) for r in records) if t is not None]
    reached = [t for t in (_last_evaluation(r) for r in usable) if t is not None]
    cells = [len(runs) for arm in arms.values() for runs in arm.tasks.values()]
    optimizers = sorted({r.optimizer for r in records})
    lines = [
        "## Budget",
        f"- runs: {census.describe()}",
        f"- tasks ({len(tasks)}): {', '.join(tasks) or 'none'}",
        f"- seeds ({len(seeds)}): {', '.join(map(str, seeds)) or 'none'}",
        f"- settings ({len(arms)}) of {len(optimizers)} optimizer(s): {', '.join(optimizers) or 'none'}",
        f"- timesteps per run: {_number_range(planned) + ' (run configs)' if planned else 'not recorded'}; "
        + (
            f"last evaluation of the finished runs at {_number_range(reached)} steps"
            if reached
            else "no run has finished yet"
        ),
        f"- finished runs per cell (setting × task): {_number_range(cells) if cells else 'none'}",
        f"- command: `{command}`" if command else "- command: not recorded",
        f"- normalised scores: {normaliser.source}",
        f"- statistics: IQM (25% trimmed mean of the runs pooled over tasks) with {boot['confidence']:.0%} "
        f"percentile stratified-bootstrap intervals ({boot['n_resamples']} resamples within each task, "
        f"seed {boot['seed']}); probability of improvement = Mann–Whitney U/(n·m) averaged over tasks "
        "(Agarwal et al., NeurIPS 2021). Verdicts use t intervals (rlopt.analysis.verdict). "
        "A diverged run counts: "
        f"{DIVERGED_RULE}.",
    ]
    w.add("\n".join(lines))


def _score_strata(arm: _SettingRuns, metric: str, normaliser: Normaliser | None) -> list[np.ndarray]:
    strata = [scores(runs, metric, normaliser) for runs in arm.tasks.values()]
    return [s for s in strata if s.size]


def _aggregate(
    w: _Writer, arms: Mapping[str, _SettingRuns], normaliser: Normaliser, boot: Mapping[str, Any]
) -> dict[str, stats.Interval]:
    w.add("## Aggregate scores")
    finals: dict[str, stats.Interval] = {}
    rows = []
    for label, arm in arms.items():
        final_strata = _score_strata(arm, "final_return", normaliser)
        auc_strata = _score_strata(arm, "auc", normaliser)
        final = stats.iqm_interval(final_strata, **boot) if final_strata else None
        auc = stats.iqm_interval(auc_strata, **boot) if auc_strata else None
        if final is not None:
            finals[label] = final
        diverged = sum(run_state(r) == "diverged" for r in arm.runs)
        rows.append(
            [
                label,
                len(arm.tasks),
                len(arm.runs),
                diverged,
                arm.excluded,
                final.format() if final else "n/a",
                auc.format() if auc else "n/a",
            ]
        )
    w.add(
        markdown_table(
            [
                "setting",
                "tasks",
                "finished runs",
                "diverged",
                "excluded (pruned/failed/running)",
                "IQM normalised final return",
                "IQM normalised AUC",
            ],
            rows,
        )
    )
    if finals:
        ordered = dict(sorted(finals.items(), key=lambda kv: -kv[1].estimate))
        path = plots.aggregate(
            ordered,
            w.out_dir / "aggregate_iqm.png",
            title="Aggregate IQM of the normalised final return",
            xlabel=f"IQM normalised final return ({next(iter(finals.values())).confidence:.0%} CI)",
            palette=plots.colours(list(arms)),  # the curve figures' colours (write_report's palette)
        )
        w.figure(
            path,
            "Aggregate IQM of the normalised final return over tasks, with stratified-bootstrap intervals.",
        )
    return finals


def _task_curves(
    runs_by_task: Mapping[str, Sequence[RunLike]], normaliser: Normaliser | None
) -> tuple[np.ndarray, list[np.ndarray], str] | None:
    """Curves of several tasks on one x axis: absolute steps when the tasks share a grid, else fraction
    of each task's budget."""
    grids = {task: common_grid(runs) for task, runs in runs_by_task.items()}
    grids = {t: g for t, g in grids.items() if len(g) >= 2}
    if not grids:
        return None
    first = next(iter(grids.values()))
    if all(len(g) == len(first) and np.allclose(g, first) for g in grids.values()):
        mats = [curve_matrix(runs_by_task[t], g, normaliser) for t, g in grids.items()]
        return first, [m for m in mats if len(m)], "environment steps"
    frac = np.linspace(0.0, 1.0, 51)
    mats = [curve_matrix(runs_by_task[t], frac * g[-1], normaliser) for t, g in grids.items()]
    return frac, [m for m in mats if len(m)], "fraction of each task's budget"


def _sample_efficiency(
    w: _Writer,
    arms: Mapping[str, _SettingRuns],
    shown: Sequence[str],
    normaliser: Normaliser,
    palette: Mapping[str, tuple[float, ...]],
    boot: Mapping[str, Any],
) -> None:
    bands, xlabel = {}, "environment steps"
    for label in shown:
        curves = _task_curves(arms[label].tasks, normaliser)
        if curves is None or not curves[1]:
            continue
        x, mats, xlabel = curves
        bands[label] = stats.iqm_curve(x, mats, **boot)
    if not bands:
        return
    w.add("## Sample efficiency")
    path = plots.curves(
        bands,
        w.out_dir / "sample_efficiency.png",
        title="IQM normalised return over all tasks",
        xlabel=xlabel,
        ylabel="IQM normalised return",
        palette=palette,
        groups=_groups(arms),
    )
    w.figure(
        path,
        _shown_caption("IQM of the normalised eval return against steps, pooled over tasks", arms, shown),
    )


def _shown_caption(
    text: str, arms: Mapping[str, _SettingRuns], shown: Sequence[str], curves: bool = True
) -> str:
    if len(shown) < len(arms):
        text += f"; the {len(shown)} best of {len(arms)} settings by aggregate IQM"
    if not curves:
        return text + "."
    if len(shown) > plots.MAX_BANDS_PER_PANEL:
        text += "; one panel per setting, a row per optimizer entry of the study, shared axes"
    return text + "; bands: pointwise stratified-bootstrap intervals."


def _per_task(
    w: _Writer,
    arms: Mapping[str, _SettingRuns],
    shown: Sequence[str],
    palette: Mapping[str, tuple[float, ...]],
    boot: Mapping[str, Any],
) -> None:
    w.add("## Per task")
    tasks = sorted({t for arm in arms.values() for t in arm.tasks})
    rows = []
    for label, arm in arms.items():
        row: list[Any] = [label]
        for task in tasks:
            runs = arm.tasks.get(task, [])
            values = scores(runs, "final_return", None)
            row.append(
                f"{stats.iqm_interval([values], **boot).format(1)} (n={len(values)})" if values.size else "—"
            )
        rows.append(row)
    w.add("IQM of the raw final return per task, with intervals (n = finished runs):")
    w.add(markdown_table(["setting", *tasks], rows))
    for task in tasks:
        bands = {}
        for label in shown:
            runs = arms[label].tasks.get(task, [])
            grid = common_grid(runs)
            if len(grid) < 2:
                continue
            mat = curve_matrix(runs, grid, None)
            if len(mat):
                bands[label] = stats.iqm_curve(grid, [mat], **boot)
        if bands:
            path = plots.curves(
                bands,
                w.out_dir / f"curves_{safe_name(task, trim=True)}.png",
                title=task,
                xlabel="environment steps",
                ylabel="IQM eval return",
                palette=palette,
                groups=_groups(arms),
            )
            w.figure(path, _shown_caption(f"{task}: IQM eval return against steps", arms, shown))


def _poi_and_profiles(
    w: _Writer,
    arms: Mapping[str, _SettingRuns],
    shown: Sequence[str],
    normaliser: Normaliser,
    palette: Mapping[str, tuple[float, ...]],
    boot: Mapping[str, Any],
) -> None:
    if len(shown) >= 2:
        w.add("## Probability of improvement")
        n = len(shown)
        matrix = np.full((n, n), np.nan)
        for i, a in enumerate(shown):
            for j, b in enumerate(shown):
                common = sorted(set(arms[a].tasks) & set(arms[b].tasks))
                if i == j or not common:
                    continue
                xs, ys = [], []
                for task in common:
                    x = scores(arms[a].tasks[task], "final_return", None)
                    y = scores(arms[b].tasks[task], "final_return", None)
                    if x.size and y.size:
                        xs.append(x)
                        ys.append(y)
                if xs:
                    matrix[i, j] = float(stats.average_probability_of_improvement(xs, ys))
        path = plots.poi_matrix(list(shown), matrix, w.out_dir / "poi_matrix.png")
        w.figure(
            path,
            _shown_caption(
                "Probability that a run of the candidate setting (row) ends with a higher final return than "
                "a run of the baseline setting (column), averaged over the tasks both ran; 0.5 = neither "
                "is better",
                arms,
                shown,
                curves=False,
            ),
        )
    strata = {label: _score_strata(arms[label], "final_return", normaliser) for label in shown}
    strata = {k: v for k, v in strata.items() if v}
    if not strata:
        return
    pooled = np.concatenate([s for v in strata.values() for s in v])
    # τ spans the scores themselves: a fixed [0, 1] squeezed a small budget's profile into one step at 0.03
    low, high = float(pooled.min()), float(pooled.max())
    pad = 0.05 * (high - low) if high > low else 0.05
    taus = np.linspace(low - pad, high + pad, 101)
    bands = {label: stats.performance_profile(v, taus, **boot) for label, v in strata.items()}
    w.add("## Performance profiles")
    path = plots.curves(
        bands,
        w.out_dir / "performance_profile.png",
        title="Performance profile",
        xlabel="normalised final return τ",
        ylabel="fraction of runs with score > τ",
        palette=palette,
        groups=_groups(arms),
    )
    w.figure(path, _shown_caption("Fraction of runs whose normalised final return exceeds τ", arms, shown))


MAX_GRID_VALUES = 10
"""A beta with more distinct values than this was searched, not gridded: no β figure for it."""


def _betas_from_scaling_rule(record: RunLike) -> bool:
    """Whether the run's betas were derived by the square-root rule at κ ≠ 1 (β → 1 − κ(1 − β),
    :mod:`rlopt.optim.scaling`) rather than chosen: they are no point of a β grid."""
    kappa = record_value(record, "kappa")
    return record_value(record, "scaling_rule") == "sqrt" and kappa is not None and float(kappa) != 1.0


def _beta_grid(
    w: _Writer, usable: Sequence[RunLike], normaliser: Normaliser, boot: Mapping[str, Any]
) -> None:
    """β heat maps (two betas varied) and score-against-β lines (one beta varied), per optimizer."""
    panels = []
    sweeps: dict[int, list[tuple[str, list[float], list[RunLike]]]] = {}
    fixed: list[tuple[str, tuple[float, ...], list[RunLike]]] = []  # optimizers run at one set of betas
    usable = [r for r in usable if not _betas_from_scaling_rule(r)]
    for optimizer in sorted({r.optimizer for r in usable}):
        runs = [r for r in usable if r.optimizer == optimizer and record_value(r, "betas") is not None]
        betas = [tuple(record_value(r, "betas")) for r in runs]
        if not betas or len({len(b) for b in betas}) != 1:
            continue
        varying = [i for i in range(len(betas[0])) if 1 < len({b[i] for b in betas}) <= MAX_GRID_VALUES]
        if len(set(betas)) == 1:
            fixed.append((optimizer, betas[0], runs))
            continue
        if len(varying) == 1:
            sweeps.setdefault(varying[0], []).append((optimizer, [float(b[varying[0]]) for b in betas], runs))
            continue
        if len(varying) != 2:
            continue
        i, j = varying
        rows, cols = sorted({b[i] for b in betas}), sorted({b[j] for b in betas})
        values = np.full((len(rows), len(cols)), np.nan)
        for (ri, r_val), (ci, c_val) in ((a, b) for a in enumerate(rows) for b in enumerate(cols)):
            cell = [r for r, b in zip(runs, betas, strict=True) if b[i] == r_val and b[j] == c_val]
            pooled = [scores([r], "final_return", normaliser) for r in cell]
            pooled_values = np.concatenate(pooled) if pooled else np.empty(0)
            if pooled_values.size:
                values[ri, ci] = float(stats.iqm(pooled_values))
        panels.append(
            plots.Heatmap(
                optimizer,
                f"β{i + 1}",
                f"β{j + 1}",
                [f"{v:g}" for v in rows],
                [f"{v:g}" for v in cols],
                values,
            )
        )
    if not panels and not sweeps:
        return
    for index, entries in sweeps.items():
        # an optimizer run at one set of betas (e.g. at its defaults) is a single point on the sweep of
        # the optimizers that vary this beta, when its betas are of the same kind (same count)
        width = len(record_value(entries[0][2][0], "betas"))
        entries += [
            (f"{optimizer} (one setting)", [float(b[index])] * len(runs), runs)
            for optimizer, b, runs in fixed
            if len(b) == width
        ]
    w.add("## β grid")
    for index, entries in sorted(sweeps.items()):
        _beta_sweep(w, index, entries, normaliser, boot)
    if panels:
        path = plots.heatmaps(
            panels, w.out_dir / "beta_heatmap.png", colorbar_label="IQM normalised final return"
        )
        w.figure(
            path, "IQM of the normalised final return (pooled over tasks and seeds) at each pair of betas."
        )


def _beta_sweep(
    w: _Writer,
    index: int,
    entries: Sequence[tuple[str, list[float], list[RunLike]]],
    normaliser: Normaliser,
    boot: Mapping[str, Any],
) -> None:
    """One figure: the IQM normalised final return and AUC against β``index+1``, a line per optimizer."""
    name = f"β{index + 1}"
    panels: dict[str, list[plots.BetaSweep]] = {}
    for metric, ylabel in (("final_return", "IQM normalised final return"), ("auc", "IQM normalised AUC")):
        for optimizer, values, runs in entries:
            grid = sorted(set(values))
            intervals = []
            for value in grid:
                cell = [r for r, v in zip(runs, values, strict=True) if v == value]
                strata = [scores(t, metric, normaliser) for t in by_task(cell).values()]
                strata = [x for x in strata if x.size]
                nan = stats.Interval(math.nan, math.nan, math.nan)
                intervals.append(stats.iqm_interval(strata, **boot) if strata else nan)
            panels.setdefault(ylabel, []).append(plots.BetaSweep(optimizer, grid, intervals))
    path = plots.beta_sweeps(
        panels,
        w.out_dir / f"beta{index + 1}_sweep.png",
        beta_name=name,
        title=f"Score against {name}",
    )
    confidence = float(boot.get("confidence", stats.DEFAULT_CONFIDENCE))
    w.figure(
        path,
        f"IQM of the normalised final return and of the normalised area under the curve at each {name}, "
        f"a line per optimizer, with {confidence:.0%} stratified-bootstrap intervals (runs pooled over "
        "tasks, seeds and any other setting that varies)"
        + (
            "; an optimizer run at one setting only is a single point at its own "
            f'{name}, marked "(one setting)"'
            if any(len(set(v)) == 1 for _, v, _ in entries)
            else ""
        )
        + ".",
    )


LOGGING_CADENCE = ("interval", "sample_every")
"""config.json ``diagnostics`` keys that follow the task's agent (its rollout size), the same for every arm
of a task, so not part of what defines an event for comparing arms."""


def event_definitions(runs: Sequence[RunLike]) -> dict[str, list[RunLike]]:
    """The runs by the thresholds their stability events were counted with (config.json ``diagnostics``,
    rlopt.run.diagnostics; not :data:`LOGGING_CADENCE`), keyed by the thresholds that differ between them,
    e.g. ``{"spike_factor=10.0, spike_history=20": [...], "spike_factor=50.0, spike_history=50": [...]}``.
    A run without a config.json (read from a CSV) is left out; one key means one definition."""
    found = [(run, d) for run in runs
             if isinstance(d := read_json(Path(run.run_dir) / "config.json").get("diagnostics"), dict)]
    names = sorted({k for _, d in found for k in d} - set(LOGGING_CADENCE))
    differ = [k for k in names if len({repr(d.get(k)) for _, d in found}) > 1]
    out: dict[str, list[RunLike]] = {}
    for run, d in found:
        key = ", ".join(f"{k}={d.get(k, 'unset')}" for k in differ)
        out.setdefault(key, []).append(run)
    return out


def _mixed_definitions(arms: Mapping[str, _SettingRuns]) -> str | None:
    """A warning naming which runs were counted with which thresholds, when they differ."""
    groups = event_definitions([r for arm in arms.values() for r in arm.runs])
    if len(groups) < 2:
        return None
    parts = []
    for key, runs in groups.items():
        cells = sorted({f"{arm_label(r)} on {r.task}" for r in runs})
        parts.append(f"{key} ({len(runs)} runs: {', '.join(cells)})")
    return ("> **These event counts mix definitions**: the runs were counted with different thresholds "
            "(each run's config.json `diagnostics`): " + "; ".join(parts) + ". Compare counts only between "
            "runs counted alike.")


def _stability(
    w: _Writer, arms: Mapping[str, _SettingRuns], normaliser: Normaliser, boot: Mapping[str, Any]
) -> None:
    w.add("## Stability")
    mixed = _mixed_definitions(arms)
    if mixed:
        w.add(mixed)
    rows = []
    for label, arm in arms.items():
        row: list[Any] = [label, len(arm.runs), sum(run_state(r) == "diverged" for r in arm.runs)]
        for metric in ("return_collapses", "loss_spikes", "nan_events"):
            strata = [
                s for s in (stability_values(runs, metric, None) for runs in arm.tasks.values()) if s.size
            ]
            row.append(stats.mean_interval(strata, **boot).format() if strata else "n/a")
        late = [
            s
            for s in (stability_values(runs, "late_std", normaliser) for runs in arm.tasks.values())
            if s.size
        ]
        row.append(f"{float(stats.iqm(np.concatenate(late))):.3f}" if late else "n/a")
        rows.append(row)
    w.add(
        "Events per run from each run's metrics.json `stability` (mean with interval; defined in "
        "rlopt.run.diagnostics, calibrated so that runs that learnt well count none). "
        "A *return collapse*: two "
        "evaluations in a row below the best return so far minus half of what the run had learnt; a *loss "
        "spike*: a window whose value (PPO) or critic (SAC) loss exceeds 50x the 90th percentile of the "
        "previous 50 windows; a *NaN event*: an update with a non-finite gradient or parameters. Late "
        "variation: IQM over runs of the standard deviation of the normalised eval return over the last 25% "
        "of training."
    )
    w.add(
        markdown_table(
            [
                "setting",
                "finished runs",
                "diverged",
                "return collapses / run",
                "loss spikes / run",
                "NaN events / run",
                "late variation (IQM of std)",
            ],
            rows,
        )
    )


def _in_progress(w: _Writer, records: Sequence[RunLike]) -> None:
    """The evaluations so far of the runs still training, one line each (in no statistic)."""
    panels: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for r in sorted(records, key=lambda r: (r.task, arm_label(r), r.seed)):
        steps, returns = np.asarray(r.timesteps, dtype=float), np.asarray(r.returns, dtype=float)
        if run_state(r) == "running" and steps.size:
            panels.setdefault(r.task, []).append((arm_label(r), steps, returns))
    if not panels:
        return
    n = sum(len(v) for v in panels.values())
    w.add("## Runs in progress")
    path = plots.run_lines(
        panels, w.out_dir / "in_progress.png", title=f"{n} run(s) still training", ylabel="eval return"
    )
    w.figure(
        path,
        "Evaluations so far of the runs still training, one line per run; they enter the "
        "statistics above once they finish in a complete trial.",
    )


def _left_out_reason(record: RunLike) -> str:
    """Why a run is left out: its own reason, and for a run that finished in a trial not (yet) complete,
    that it counts once a complete trial holds it."""
    metrics = record.metrics or {}
    reason = str(metrics.get("reason") or "")
    status = metrics.get("status")
    if status in USABLE_STATES and run_state(record) != status:
        said = f"{status}: {reason}" if reason else str(status)
        return (f"the run finished ({said}); it counts once a complete trial holds it "
                f"(its trial is {record.trial_state})")
    return reason


def _excluded_runs(w: _Writer, records: Sequence[RunLike], limit: int = 50) -> None:
    left_out = [r for r in records if not is_usable(r)]
    if not left_out:
        return
    w.add("## Runs left out")
    rows = [
        [r.trial, arm_label(r), r.task, r.seed, run_state(r), _left_out_reason(r)]
        for r in sorted(left_out, key=lambda r: (run_state(r), r.trial, r.task, r.seed))[:limit]
    ]
    w.add(markdown_table(["trial", "setting", "task", "seed", "state", "reason"], rows))
    if len(left_out) > limit:
        w.add(f"... and {len(left_out) - limit} more.")


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
blockquote { background: #fff4e0; border-left: 4px solid #e69500; margin: 1em 0; padding: 0.5em 1em; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 3px; }
"""


def _html(markdown_text: str, out_dir: Path, title: str) -> str:
    """The markdown as a standalone HTML page with every PNG embedded as base64."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])

    def embed(match: re.Match[str]) -> str:
        path = out_dir / html.unescape(match.group(1))
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
