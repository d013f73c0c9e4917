"""From run records to the per-task arrays that :mod:`rlopt.stats` works on.

A run enters the statistics when it finished in a complete trial: status ``ok``, or ``diverged`` (a
diverged run is a real outcome of its optimizer, scored by the rule
:data:`rlopt.run.metrics.DIVERGED_RULE` that the trial objective uses too: its curve continues to
its budget at the task's random-policy return). Pruned, stopped and failed runs, runs still in progress
and second runs of a cell are left out and counted (:class:`RunCensus`).

Scores are normalised per task so tasks can be pooled: ``(x − low) / (high − low)`` with reference
scores (e.g. a random and an expert policy) when the study gives them, else with the worst and best
evaluation seen on that task in this study (:meth:`Normaliser.from_runs`), which is stated in reports.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rlopt import stats
from rlopt.errors import ConfigError
from rlopt.run.metrics import RUN_METRICS, run_metric

USABLE_STATES = ("ok", "diverged")
DUPLICATE = "DUPLICATE"
"""Trial state given by :func:`mark_duplicates` to a second run of the same cell."""
EXCLUDED_STATES = ("pruned", "stopped", "failed", "running", "duplicate")
SCORE_METRICS = RUN_METRICS
STABILITY_COUNTS = ("return_collapses", "loss_spikes", "nan_events")
STABILITY_METRICS = ("instabilities", *STABILITY_COUNTS, "diverged", "late_std")


class RunLike(Protocol):
    """The fields of :class:`rlopt.records.RunRecord` that the statistics read (see docs/CONTRACTS.md)."""

    @property
    def study(self) -> str: ...

    @property
    def trial(self) -> int: ...

    @property
    def trial_state(self) -> str: ...

    @property
    def optimizer(self) -> str: ...

    @property
    def setting(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    @property
    def task(self) -> str: ...

    @property
    def seed(self) -> int: ...

    @property
    def timesteps(self) -> np.ndarray: ...

    @property
    def returns(self) -> np.ndarray: ...

    @property
    def metrics(self) -> Mapping[str, Any]: ...

    @property
    def run_dir(self) -> Path: ...


TRIAL_STATES = {"PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "running",
                DUPLICATE: "duplicate"}


def run_state(record: RunLike) -> str:
    """``ok | diverged | pruned | stopped | failed | running | duplicate``, from the run and its trial.

    A run counts (``ok`` or ``diverged``) only when it finished *and* its trial is COMPLETE: a run that
    finished inside a trial that failed or was pruned is left out (``failed``, ``pruned``; a failed
    trial's finished runs move into its retry, where they count once the retry completes), and so is a
    second run of the same (setting, task, seed) (``duplicate``, see :func:`mark_duplicates`).
    """
    status = (record.metrics or {}).get("status")
    if record.trial_state in TRIAL_STATES and (status in USABLE_STATES or record.trial_state == DUPLICATE):
        return TRIAL_STATES[record.trial_state]
    if status in USABLE_STATES or status in ("pruned", "stopped", "failed"):
        return str(status)
    return TRIAL_STATES.get(record.trial_state, "running")


def _with_trial_state(record: RunLike, state: str) -> RunLike:
    if dataclasses.is_dataclass(record):
        return dataclasses.replace(record, trial_state=state)
    marked = copy.copy(record)
    marked.trial_state = state  # type: ignore[misc]
    return marked


def mark_duplicates(records: Sequence[RunLike]) -> list[RunLike]:
    """The records with every run after the first of a (arm, setting, task, seed) marked ``duplicate``.

    Exactly one run per cell enters the statistics: the first finished one of a complete trial, in
    trial order (a sampler that draws the same setting twice, or a study merged from two runs of it,
    gives two). Records keep their order.
    """
    seen: set[tuple[Any, ...]] = set()
    out: list[RunLike] = []
    for record in records:
        key = ((record.params or {}).get("arm"), arm_label(record), record.task, record.seed)
        if is_usable(record):
            if key in seen:
                record = _with_trial_state(record, DUPLICATE)
            seen.add(key)
        out.append(record)
    return out


def is_usable(record: RunLike) -> bool:
    """Whether the run finished (``ok`` or ``diverged``) and so enters the statistics."""
    return run_state(record) in USABLE_STATES


def arm_label(record: RunLike) -> str:
    """The arm a run belongs to in tables and plots: its ``setting`` label, else its optimizer."""
    return record.setting or record.optimizer


@dataclass(frozen=True)
class RunCensus:
    """How many runs are in each state; ``partial`` when some are still running. ``finished_running``:
    the "running" runs that have finished, and wait for their trial to complete to count."""

    counts: Mapping[str, int]
    finished_running: int = 0

    @classmethod
    def of(cls, records: Iterable[RunLike]) -> RunCensus:
        records = list(records)
        states = [run_state(r) for r in records]
        counts = Counter(states)
        waiting = sum(state == "running" and (r.metrics or {}).get("status") in USABLE_STATES
                      for r, state in zip(records, states, strict=True))
        return cls({state: counts.get(state, 0) for state in (*USABLE_STATES, *EXCLUDED_STATES)}, waiting)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def usable(self) -> int:
        return sum(self.counts[s] for s in USABLE_STATES)

    @property
    def partial(self) -> bool:
        return self.counts["running"] > 0

    def describe(self) -> str:
        """``"12 runs: 10 ok, 1 diverged, 1 pruned"`` (states with zero runs left out; "running" says how
        many of its runs have finished)."""
        waiting = (f" ({self.finished_running} of them finished, waiting for their trial to complete)"
                   if self.finished_running else "")
        parts = [f"{n} {state}" + (waiting if state == "running" else "")
                 for state, n in self.counts.items() if n]
        return f"{self.total} runs: " + (", ".join(parts) if parts else "none")


def _finite_curve(record: RunLike, continued: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The run's finite evaluations; a diverged run's continued to its budget by the diverged-run rule
    (unless ``continued`` is False)."""
    steps = np.asarray(record.timesteps, dtype=float)
    returns = np.asarray(record.returns, dtype=float)
    keep = np.isfinite(steps) & np.isfinite(returns)
    steps, returns = steps[keep], returns[keep]
    if continued and run_state(record) == "diverged":
        steps, returns = _continued(record, steps, returns)
    return steps, returns


def _continued(record: RunLike, steps: np.ndarray, returns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation steps the diverged run did not reach (from its ``config.json``; one step past its last
    when the schedule is unknown), each at the floor of :func:`rlopt.run.metrics.continue_diverged`."""
    from rlopt.run.metrics import continue_diverged

    schedule = _schedule(record)
    last = float(steps[-1]) if len(steps) else 0.0
    if schedule is None:
        missing = np.array([last + 1.0])
    else:
        timesteps, every = schedule
        planned = np.arange(every, timesteps + 1, every, dtype=float)
        if timesteps % every:
            planned = np.append(planned, float(timesteps))
        missing = planned[planned > last] if len(planned[planned > last]) else np.array([last + 1.0])
    continued = continue_diverged(record.task, list(returns), len(returns) + len(missing), 1)
    if len(continued) <= len(returns):
        return steps, returns
    return np.concatenate([steps, missing]), np.asarray(continued, dtype=float)


def _schedule(record: RunLike) -> tuple[int, int] | None:
    """``(timesteps, evaluation interval)`` from the run folder's ``config.json``, if it has one."""
    import json

    try:
        config = json.loads((Path(record.run_dir) / "config.json").read_text())
        return int(config["timesteps"]), int(config["evaluation"]["freq"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def run_score(record: RunLike, metric: str) -> float:
    """A run's raw score: ``final_return`` or ``auc`` from metrics.json, else from its eval curve.

    A diverged run, or one whose metrics lack the value, scores from its curve (a diverged run's
    continued by the diverged-run rule) by :func:`rlopt.run.metrics.run_metric`; NaN when it has none.
    """
    if metric not in SCORE_METRICS:
        raise ConfigError(f"score metric {metric!r} is not one of: {', '.join(SCORE_METRICS)}")
    value = _finite((record.metrics or {}).get(metric))
    if value is not None and run_state(record) != "diverged":
        return value
    _, returns = _finite_curve(record)
    return run_metric(metric, returns.tolist()) if len(returns) else math.nan


@dataclass(frozen=True)
class Normaliser:
    """Per-task reference scores: ``low`` maps to 0 and ``high`` to 1.

    Attributes:
        bounds: ``{task: (low, high)}``.
        source: One line saying where the references come from, for reports.
        drawn_from_runs: True for :meth:`from_runs`: the scores then move with every run added.
    """

    bounds: Mapping[str, tuple[float, float]]
    source: str
    drawn_from_runs: bool = False

    @classmethod
    def from_references(cls, references: Mapping[str, Any], source: str = "reference scores") -> Normaliser:
        """From ``{task: (low, high)}`` or ``{task: {"random": low, "reference": high}}``.

        Raises:
            ConfigError: if a task's references are not two different finite numbers.
        """
        bounds: dict[str, tuple[float, float]] = {}
        for task, ref in references.items():
            pair = (ref.get("random"), ref.get("reference")) if isinstance(ref, Mapping) else ref
            try:
                low, high = (float(v) for v in pair)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ConfigError(
                    f"reference scores for task {task!r} must be [low, high] or "
                    f"{{random: low, reference: high}}, got {ref!r}"
                ) from None
            if not (math.isfinite(low) and math.isfinite(high)) or low == high:
                raise ConfigError(
                    f"reference scores for task {task!r} must be two different numbers, got {ref!r}"
                )
            bounds[str(task)] = (low, high)
        return cls(bounds, source)

    @classmethod
    def from_tasks(cls, tasks: Iterable[Any], source: str = "") -> Normaliser:
        """From task entries of a suite (``rlopt.config.suites.Task``: ``name``, ``random_return``,
        ``reference_return``): 0 is a uniform random policy, 1 the published reference."""
        tasks = list(tasks)
        bounds = {t.name: (float(t.random_return), float(t.reference_return)) for t in tasks}
        sources = sorted({str(getattr(t, "reference_source", "")) for t in tasks} - {""})
        text = source or "0 = uniform random policy, 1 = reference return"
        if sources:
            text += " (" + "; ".join(sources) + ")"
        return cls(bounds, text)

    @classmethod
    def from_runs(cls, records: Iterable[RunLike]) -> Normaliser:
        """Min–max over every evaluation of the finished runs of each task (0 = worst seen, 1 = best)."""
        seen: dict[str, list[float]] = {}
        for record in records:
            if not is_usable(record):
                continue
            _, returns = _finite_curve(record)
            values = list(returns)
            for metric in SCORE_METRICS:
                score = _finite((record.metrics or {}).get(metric))
                if score is not None:
                    values.append(score)
            seen.setdefault(record.task, []).extend(values)
        bounds = {}
        for task, values in seen.items():
            if not values:
                continue
            low, high = min(values), max(values)
            bounds[task] = (low, high) if high > low else (low, low + 1.0)
        return cls(bounds, "min–max over every evaluation of this study's finished runs on each task", True)

    def __call__(self, task: str, values: np.ndarray | float) -> np.ndarray:
        """Normalised ``values`` of ``task``."""
        if task not in self.bounds:
            have = ", ".join(sorted(self.bounds)) or "none"
            raise ConfigError(f"no reference scores for task {task!r} (have: {have})")
        low, high = self.bounds[task]
        return stats.normalise(values, low, high)


def normaliser_for(
    records: Sequence[RunLike],
    references: Mapping[str, tuple[float, float]] | None = None,
    suite: str | Path | None = None,
) -> Normaliser:
    """The reference scores of a study's runs, the one choice that ``rlopt report`` and ``rlopt verdict``
    make (and the trial objective, through :func:`rlopt.config.suites.reference_task`).

    Each task of ``records`` takes its ``references`` (``{task: (random, reference)}``, e.g. from
    ``--reference``) when given, else those of :func:`rlopt.config.suites.reference_task`: the study's
    own ``suite`` when it names one, else the first known suite listing the task. When some task has
    none, every task is normalised min–max over the runs (:meth:`Normaliser.from_runs`).
    """
    from rlopt.config.suites import load_suite, reference_task

    references = references or {}
    suite = (suite.strip() or None) if isinstance(suite, str) else suite
    tasks = sorted({r.task for r in records})
    found = {}
    for task in (t for t in tasks if t not in references):
        with contextlib.suppress(ConfigError):  # a task without references: min–max below
            found[task] = reference_task(task, suite)
    if not tasks or set(found) | (set(references) & set(tasks)) != set(tasks):
        return Normaliser.from_runs(records)
    if not references:
        where = f"suite {load_suite(suite).name}" if suite else "known suites"
        return Normaliser.from_tasks(
            found.values(), f"0 = uniform random policy, 1 = reference return ({where})"
        )
    bounds = {t: references[t] if t in references else (found[t].random_return, found[t].reference_return)
              for t in tasks}
    sources = [f"{t}: --reference" if t in references else f"{t}: {found[t].reference_source or 'suite'}"
               for t in tasks]
    return Normaliser.from_references(bounds, "0 = random, 1 = reference (" + "; ".join(sources) + ")")


def by_task(records: Iterable[RunLike]) -> dict[str, list[RunLike]]:
    """Finished runs grouped by task, tasks in sorted order, each task's runs by setting, seed and trial:
    the bootstrap resamples positions, so a verdict must not depend on the order runs were listed in (a
    study's run folders and its exported CSV list them differently)."""
    out: dict[str, list[RunLike]] = {}
    for record in records:
        if is_usable(record):
            out.setdefault(record.task, []).append(record)
    return {task: sorted(runs, key=_run_order) for task, runs in sorted(out.items())}


def _run_order(record: RunLike) -> tuple[str, str, int, int]:
    params = sorted((str(k), repr(v)) for k, v in (record.params or {}).items())
    return (str(record.setting), repr(params), int(record.seed), int(record.trial))


def scores(records: Sequence[RunLike], metric: str, normaliser: Normaliser | None) -> np.ndarray:
    """Scores of runs of one task (normalised when ``normaliser`` is given), NaNs dropped."""
    if not records:
        return np.empty(0)
    values = np.array([run_score(r, metric) for r in records], dtype=float)
    values = values[np.isfinite(values)]
    return normaliser(records[0].task, values) if normaliser is not None else values


def floor_score(record: RunLike, normaliser: Normaliser | None) -> float:
    """The score a run starts from: ``max(0, its first evaluation)`` (normalised), or 0 with one evaluation.

    0 is the floor of the normalised scale (a uniform random policy with the suite's references, the
    worst evaluation seen with :meth:`Normaliser.from_runs`). The first evaluation stands for the
    initial policy, which may already score well above random (Ant-v5's untrained policy collects ~1000
    of healthy reward, 0.2 normalised); a run evaluated only once has no earlier point, so its floor is 0.
    The runner evaluates first after ``evaluation.every`` steps, so this floor includes a little early
    learning: the gains measured from it are, if anything, too small (a conservative guard).
    """
    _, returns = _finite_curve(record)
    if len(returns) < 2:
        return 0.0
    first = float(returns[0]) if normaliser is None else float(normaliser(record.task, returns[0]))
    return max(0.0, first)


def gains(records: Sequence[RunLike], metric: str, normaliser: Normaliser | None) -> np.ndarray:
    """What each run of one task learnt: its (normalised) score minus :func:`floor_score`, NaNs dropped."""
    if not records:
        return np.empty(0)
    raw = np.array([run_score(r, metric) for r in records], dtype=float)
    values = normaliser(records[0].task, raw) if normaliser is not None else raw
    floors = np.array([floor_score(r, normaliser) for r in records], dtype=float)
    out = np.asarray(values, dtype=float) - floors
    return out[np.isfinite(out)]


def late_score(record: RunLike, normaliser: Normaliser | None) -> float:
    """Where a run ended up: the mean (normalised) return of its evaluations in the last quarter of training.

    :func:`rlopt.stats.late_window` over the run's curve (a diverged run's continued by the diverged-run
    rule); NaN for a run without evaluations. The mean of several late evaluations, not the last one
    alone: one evaluation of a few episodes swings widely on some tasks (Ant-v5's PPO between 630 and
    1,820 in consecutive evaluations), and whether a run *learnt* should not hang on one of them.
    """
    steps, returns = _finite_curve(record)
    window = stats.late_window(steps, returns)
    if not len(window):
        return math.nan
    values = window if normaliser is None else normaliser(record.task, window)
    return float(np.mean(values))


def learning_gains(records: Sequence[RunLike], normaliser: Normaliser | None) -> np.ndarray:
    """What each run of one task learnt, as the verdicts' guard asks: :func:`late_score` minus
    :func:`floor_score`, NaNs dropped."""
    out = np.array([late_score(r, normaliser) - floor_score(r, normaliser) for r in records], dtype=float)
    return out[np.isfinite(out)]


def stability_value(record: RunLike, metric: str, normaliser: Normaliser | None = None) -> float:
    """One run's instability measure.

    ``return_collapses``, ``loss_spikes``, ``nan_events`` come from metrics.json ``stability``;
    ``diverged`` is 1 for a diverged run, else 0; ``instabilities`` is collapses + spikes + NaN events,
    a diverged run counting at least one NaN event (a run can stop on a non-finite value before the
    diagnostics record it); ``late_std`` is the standard deviation of the (normalised) eval returns over
    the last quarter of training.
    """
    if metric == "late_std":
        steps, returns = _finite_curve(record)
        if normaliser is not None and len(returns):
            returns = normaliser(record.task, returns)
        return stats.late_variation(steps, returns)[0]
    if metric not in STABILITY_METRICS:
        raise ConfigError(f"stability metric {metric!r} is not one of: {', '.join(STABILITY_METRICS)}")
    diverged = run_state(record) == "diverged"
    if metric == "diverged":
        return float(diverged)
    counts = (record.metrics or {}).get("stability") or {}
    names = STABILITY_COUNTS if metric == "instabilities" else (metric,)
    values = [_finite(counts.get(name)) for name in names]
    if any(v is None for v in values):
        return math.nan
    total = {name: float(v) for name, v in zip(names, values, strict=True) if v is not None}
    if metric == "instabilities" and diverged:
        total["nan_events"] = max(total["nan_events"], 1.0)
    return float(sum(total.values()))


def stability_values(records: Sequence[RunLike], metric: str, normaliser: Normaliser | None) -> np.ndarray:
    """Instability measure of every run of one task, NaNs (missing data) dropped."""
    values = np.array([stability_value(r, metric, normaliser) for r in records], dtype=float)
    return values[np.isfinite(values)]


def common_grid(records: Iterable[RunLike]) -> np.ndarray:
    """Eval steps shared by the curves: every step any finished run evaluated at, up to the last step
    every ``ok`` run reached (diverged runs are continued to their budget by the diverged-run rule)."""
    curves = [(run_state(r), _finite_curve(r, continued=False)[0]) for r in records if is_usable(r)]
    curves = [(state, steps) for state, steps in curves if len(steps)]
    if not curves:
        return np.empty(0)
    ends = [steps[-1] for state, steps in curves if state == "ok"] or [steps[-1] for _, steps in curves]
    grid = np.unique(np.concatenate([steps for _, steps in curves]))
    return grid[grid <= min(ends)]


def curve_matrix(records: Sequence[RunLike], grid: np.ndarray, normaliser: Normaliser | None) -> np.ndarray:
    """Each run's eval returns linearly interpolated on ``grid``: shape (n_runs, len(grid)).

    Runs with no evaluation are skipped; outside a run's evaluations its edge values are held.
    """
    rows = []
    for record in records:
        steps, returns = _finite_curve(record)
        if not len(steps):
            continue
        if normaliser is not None:
            returns = normaliser(record.task, returns)
        rows.append(np.interp(grid, steps, returns))
    return np.array(rows, dtype=float).reshape(len(rows), len(grid))
