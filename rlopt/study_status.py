"""Progress of a study, read from its storage: tables (rich) and Optuna's plots (matplotlib PNGs).

``open_study("runs/x")`` (or the name ``x``) finds the folder, its ``study.json`` and the storage;
:func:`print_status` shows done/running/pruned/diverged/failed per setting, the best trials and every
failure with its reason; :func:`write_plots` writes Optuna's optimisation history, intermediate values,
parameter importances, beta1 x beta2 contour and parallel coordinates per arm into ``plots/``, skipping
each plot the trials cannot define (too few finished trials, fewer than two parameters...).
"""

from __future__ import annotations

import json
import logging
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from rlopt import atomic
from rlopt.errors import ConfigError
from rlopt.storage import check_url, default_url, redact
from rlopt.study import DEFAULT_STORAGE, STUDY_JSON

log = logging.getLogger(__name__)

OUTCOMES = ("complete", "running", "waiting", "pruned", "diverged", "failed")


@dataclass
class OpenedStudy:
    """A study's folder, storage and one Optuna study per arm."""

    name: str
    study_dir: Path
    url: str
    arms: dict[str, optuna.Study]

    def trials(self) -> list[tuple[str, FrozenTrial]]:
        return [(label, t) for label, study in self.arms.items() for t in study.get_trials(deepcopy=False)]


def find_study_dir(study: str | Path, runs_dir: str | Path = "runs") -> Path:
    """The folder of ``study``: a path to it, or its name under ``runs_dir``.

    Raises:
        ConfigError: neither holds a ``study.json``.
    """
    for candidate in (Path(study), Path(runs_dir) / str(study)):
        if (candidate / STUDY_JSON).is_file():
            return candidate
    raise ConfigError(f"no study at {str(study)!r} (accepted: a study folder holding {STUDY_JSON}, "
                      f"or a study name under {runs_dir}/)")


def open_study(study: str | Path, storage: str | None = None, runs_dir: str | Path = "runs") -> OpenedStudy:
    """Open a study folder and its storage (read as is; nothing is created)."""
    study_dir = find_study_dir(study, runs_dir)
    try:
        meta = json.loads((study_dir / STUDY_JSON).read_text())
        arm_names = dict(meta["arms"])
        name = str(meta["name"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{study_dir / STUDY_JSON} is damaged ({type(exc).__name__}: {exc}; accepted: "
                          "the study.json that rlopt study run wrote, and rewrites on the next run)") from exc
    if storage is not None:
        url = check_url(storage)
    elif meta.get("storage") == DEFAULT_STORAGE:
        url = default_url(study_dir)
    else:
        url = str(meta.get("storage"))
        if "***" in url:
            raise ConfigError(f"{study_dir / STUDY_JSON}: the storage password is not recorded "
                              f"(accepted: --storage {url})")
    return OpenedStudy(name, study_dir, url, _load_arms(url, arm_names))


def _load_arms(url: str, arm_names: dict[str, str]) -> dict[str, optuna.Study]:
    """Each arm's Optuna study, read only: a missing or damaged SQLite file is an error, never created."""
    from sqlalchemy.exc import SQLAlchemyError

    from rlopt.storage import SQLITE_HEADER, sqlite_path

    path = sqlite_path(url)
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"{path} does not exist (accepted: the folder of a study that rlopt study run "
                              "made, with its study.db, or --storage URL)")
        with path.open("rb") as fh:
            if fh.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise ConfigError(f"{path} is not an SQLite database (damaged or truncated?)")
    arms = {}
    try:
        rdb = optuna.storages.RDBStorage(url, skip_table_creation=True, skip_compatibility_check=True)
        for label, study_name in arm_names.items():
            try:
                arms[label] = optuna.load_study(study_name=study_name, storage=rdb)
            except KeyError as exc:
                raise ConfigError(f"storage {redact(url)} has no study {study_name!r} "
                                  "(accepted: the storage the study was run with, --storage URL)") from exc
            arms[label].get_trials(deepcopy=False)  # read now: a damaged file fails here, in one line
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise ConfigError(f"storage {redact(url)} cannot be read ({reason[0] if reason else exc}; damaged "
                          "or truncated database?)") from exc
    return arms


def outcome(trial: FrozenTrial) -> str:
    """``complete | running | waiting | pruned | diverged | failed``."""
    if trial.state == TrialState.COMPLETE:
        return "diverged" if trial.user_attrs.get("outcome") == "diverged" else "complete"
    if trial.state == TrialState.RUNNING:
        return "running"
    if trial.state == TrialState.WAITING:
        return "waiting"
    if trial.state == TrialState.PRUNED:
        return "diverged" if trial.user_attrs.get("outcome") == "diverged" else "pruned"
    return "failed"


def failure_reason(trial: FrozenTrial) -> str:
    reason = trial.user_attrs.get("reason") or ""
    if trial.state == TrialState.FAIL and not reason:
        return "worker stopped sending heartbeats (killed?); marked failed, retried if retries were left"
    return str(reason)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)


def print_status(opened: OpenedStudy, console: Any = None, top: int = 5) -> dict[str, int]:
    """Print progress per setting, the best trials and the failures; returns the outcome counts."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=160)
    trials = opened.trials()
    totals = Counter(outcome(t) for _, t in trials)
    targets = {label: s.user_attrs.get("n_trials") for label, s in opened.arms.items()}
    first = next(iter(opened.arms.values()), None)
    attrs = first.user_attrs if first is not None else {}
    console.print(
        f"[bold]{opened.name}[/bold]  storage {redact(opened.url)}  objective {attrs.get('objective', '?')}  "
        f"sampler {attrs.get('sampler', '?')}  pruner {attrs.get('pruner', '?')}  "
        f"fairness {attrs.get('fairness', '?')}"
    )
    finished = sum(totals[o] for o in ("complete", "pruned", "diverged"))
    others = "".join(f", {o} {totals[o]}" for o in OUTCOMES[1:] if totals[o])
    console.print(f"trials per arm: {', '.join(f'{k}: {v}' for k, v in targets.items())}; "
                  f"finished {finished}{others}")

    per_setting: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    best: dict[tuple[str, str], float] = {}
    for label, t in trials:
        setting = str(t.user_attrs.get("setting", "(not drawn yet)"))
        per_setting[(label, setting)][outcome(t)] += 1
        if t.state == TrialState.COMPLETE and t.value is not None:
            best[(label, setting)] = max(best.get((label, setting), t.value), t.value)
    table = Table(title="Progress per setting")
    for column in ("arm", "setting", *OUTCOMES, "best value"):
        table.add_column(column, justify="left" if column in ("arm", "setting") else "right")
    for (label, setting), counts in sorted(per_setting.items()):
        table.add_row(label, setting, *(str(counts[o] or "") for o in OUTCOMES),
                      _fmt(best.get((label, setting))))
    console.print(table)

    done = sorted((t for _, t in trials if t.state == TrialState.COMPLETE and t.value is not None),
                  key=lambda t: float(t.value or 0.0), reverse=True)
    if done:
        table = Table(title=f"Best trials ({attrs.get('objective', 'objective')})")
        for column in ("arm", "trial", "setting", "value", "lr", "betas", "eps", "weight_decay"):
            table.add_column(column)
        for t in done[:top]:
            a = t.user_attrs
            table.add_row(str(a.get("arm")), str(t.number), str(a.get("setting")), _fmt(t.value),
                          _fmt(a.get("lr")), _fmt(a.get("betas")), _fmt(a.get("eps")),
                          _fmt(a.get("weight_decay")))
        console.print(table)

    failures = [(label, t) for label, t in trials if outcome(t) in ("failed", "diverged")]
    if failures:
        table = Table(title="Failures")
        for column in ("arm", "trial", "setting", "outcome", "reason"):
            table.add_column(column, overflow="fold")
        for label, t in failures:
            table.add_row(label, str(t.number), str(t.user_attrs.get("setting", "-")), outcome(t),
                          failure_reason(t))
        console.print(table)
    return dict(totals)


def _plots(study: optuna.Study) -> list[tuple[str, Callable[[], Any]]]:
    from optuna.visualization import matplotlib as vis

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    params = sorted({p for t in complete for p in t.params})
    out: list[tuple[str, Callable[[], Any]]] = []
    if complete:
        out.append(("history", lambda: vis.plot_optimization_history(study)))
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        out.append(("intermediate", lambda: vis.plot_intermediate_values(study)))
    if len(params) >= 2 and len(complete) >= 2:
        out.append(("importances", lambda: vis.plot_param_importances(study)))
        out.append(("parallel", lambda: vis.plot_parallel_coordinate(study)))
    betas = [p for p in params if p in ("beta1", "1-beta1")]
    betas += [p for p in params if p in ("beta2", "1-beta2")]
    if len(betas) == 2 and len(complete) >= 2:
        out.append(("contour_beta1_beta2", lambda: vis.plot_contour(study, params=betas)))
    return out


def write_plots(opened: OpenedStudy) -> list[Path]:
    """Write Optuna's plots of every arm to ``<study>/plots/<arm>_<plot>.png``; skip undefined ones."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = opened.study_dir / "plots"
    written = []
    for label, study in opened.arms.items():
        for name, make in _plots(study):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    axes = make()
                except Exception as exc:  # an undefined plot (e.g. importances of constant params) is skipped
                    log.info("plot %s of %s skipped: %s", name, label, exc)
                    continue
            figure = getattr(axes, "figure", None)
            if figure is None and hasattr(axes, "flat"):
                figure = axes.flat[0].figure
            if figure is None:
                continue
            folder.mkdir(exist_ok=True)
            path = folder / f"{label}_{name}.png"
            atomic.save_figure(figure, path, dpi=100, bbox_inches="tight")
            plt.close(figure)
            written.append(path)
    return written
