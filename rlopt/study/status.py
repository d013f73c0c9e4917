"""Progress of a study, read from its storage: tables (rich) and Optuna's plots (matplotlib PNGs).

``open_study("runs/x")`` (or the name ``x``) finds the folder, its ``study.json`` and the storage;
:func:`print_status` shows done/running/stale/pruned/diverged/failed per setting, the best trials and
every failure with its reason. A trial is *stale* when the storage still has it RUNNING but its last
heartbeat is older than the study's ``heartbeat.grace_period`` (its worker was killed or lost); the next
``rlopt study run`` marks it failed and retries it. :func:`write_plots` writes Optuna's optimisation
history, intermediate values, parameter importances, beta1 x beta2 contour and parallel coordinates per
arm into ``plots/``, each titled with its arm, and for a grid study one objective-by-setting chart of all
arms instead of the histories (a grid's trial order carries no information); it skips each plot the
trials cannot define (too few finished trials, fewer than two parameters...) and says why.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from rlopt.config.storage import check_url, redact
from rlopt.config.study import DEFAULT_HEARTBEAT
from rlopt.errors import ConfigError, first_line
from rlopt.study import looks
from rlopt.study.folder import DEFAULT_STORAGE, STUDY_JSON, STUDY_YAML, default_url, find_study_dir

log = logging.getLogger(__name__)

OUTCOMES = ("complete", "running", "stale", "waiting", "pruned", "diverged", "failed")


@dataclass
class OpenedStudy:
    """A study's folder, storage and one Optuna study per arm.

    Attributes:
        arms: The Optuna study of each optimizer entry (:class:`rlopt.config.study.Arm`), by its label.
        grace_period: Seconds without a heartbeat after which a RUNNING trial is stale (the study file's
            ``heartbeat.grace_period``).
        heartbeat_ages: Seconds since each trial's last heartbeat, by storage trial id, as the database
            clock saw it when the study was opened (trials that never beat are absent).
    """

    name: str
    study_dir: Path
    url: str
    arms: dict[str, optuna.Study]
    grace_period: float = float(DEFAULT_HEARTBEAT["grace_period"])
    heartbeat_ages: dict[int, float] = field(default_factory=dict)

    def trials(self) -> list[tuple[str, FrozenTrial]]:
        """Every trial by arm, less those a later trial extends to more seeds (:mod:`rlopt.study.looks`),
        whose runs it took over."""
        out = []
        for label, study in self.arms.items():
            trials = study.get_trials(deepcopy=False)
            extended = looks.extended_numbers(trials)
            out += [(label, t) for t in trials if t.number not in extended]
        return out

    def stale_for(self, trial: FrozenTrial) -> float | None:
        """Seconds since the last heartbeat of a RUNNING trial past its grace period, else None."""
        if trial.state != TrialState.RUNNING:
            return None
        age = self.heartbeat_ages.get(trial._trial_id)
        return age if age is not None and age > self.grace_period else None

    def outcome(self, trial: FrozenTrial) -> str:
        """:func:`outcome`, with ``stale`` for a RUNNING trial whose heartbeat stopped."""
        return "stale" if self.stale_for(trial) is not None else outcome(trial)


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
    arms, ages = _load_arms(url, arm_names)
    return OpenedStudy(name, study_dir, url, arms, _grace_period(study_dir), ages)


def _grace_period(study_dir: Path) -> float:
    """The study file's ``heartbeat.grace_period`` (the default when the file is missing or unreadable)."""
    from rlopt.config.study import load_spec

    try:
        return float(load_spec(study_dir / STUDY_YAML).heartbeat.grace_period)
    except ConfigError:
        return float(DEFAULT_HEARTBEAT["grace_period"])


def _heartbeat_ages(rdb: optuna.storages.RDBStorage) -> dict[int, float]:
    """Seconds since each trial's last heartbeat, on the database's clock (optuna writes its ``now()``)."""
    import sqlalchemy
    from optuna.storages._rdb import models

    beats = models.TrialHeartbeatModel
    with rdb.engine.connect() as connection:
        now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
        rows = connection.execute(sqlalchemy.select(beats.trial_id, beats.heartbeat)).all()
    if now is None:
        return {}
    now = now.replace(tzinfo=None)
    return {int(trial_id): (now - beat.replace(tzinfo=None)).total_seconds() for trial_id, beat in rows}


def _load_arms(
    url: str, arm_names: dict[str, str]
) -> tuple[dict[str, optuna.Study], dict[int, float]]:
    """Each arm's Optuna study and the heartbeat ages, read only: a missing or damaged SQLite file is an
    error, never created."""
    from sqlalchemy.exc import SQLAlchemyError

    from rlopt.config.storage import sqlite_path
    from rlopt.study.storage import SQLITE_HEADER

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
        ages = _heartbeat_ages(rdb)
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise ConfigError(f"storage {redact(url)} cannot be read ({first_line(exc)}; damaged "
                          "or truncated database?)") from exc
    return arms, ages


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


def _ago(seconds: float) -> str:
    """``"45 s"``, ``"3 min 20 s"``, ``"2 h 5 min"``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "(" + ", ".join(_fmt(v) for v in value) + ")"
    return str(value)


def print_status(opened: OpenedStudy, console: Any = None, top: int = 5) -> dict[str, int]:
    """Print progress per setting, the best trials and the failures; returns the outcome counts.

    The per-setting table always has the complete and running columns, and the other outcomes' only
    where some trial has that outcome.
    """
    from rich.console import Console

    console = console or Console()
    trials = opened.trials()
    totals = Counter(opened.outcome(t) for _, t in trials)
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
    if first is not None and looks.history(first):
        console.print("sequential seeds: " + "; ".join(
            f"look {h['look'] + 1} ({h['seeds']} seeds per cell) {', '.join(h['outcomes'])}"
            for h in looks.history(first)) + ("; stopped" if looks.is_final(first) else ""), highlight=False)
    _print_progress(console, opened, trials, totals)
    _print_best(console, trials, str(attrs.get("objective", "objective")), top)
    _print_stale(console, opened, trials)
    _print_failures(console, trials)
    return dict(totals)


def _print_progress(
    console: Any, opened: OpenedStudy, trials: Sequence[tuple[str, FrozenTrial]], totals: Counter[str],
) -> None:
    """Outcome counts and best value per (arm, setting); a column per outcome that some trial has."""
    from rich.table import Table

    per_setting: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    best: dict[tuple[str, str], float] = {}
    for label, t in trials:
        setting = str(t.user_attrs.get("setting", "(not drawn yet)"))
        per_setting[(label, setting)][opened.outcome(t)] += 1
        if t.state == TrialState.COMPLETE and t.value is not None:
            best[(label, setting)] = max(best.get((label, setting), t.value), t.value)
    table = Table(title="Progress per setting")
    shown = [o for o in OUTCOMES if o in ("complete", "running") or totals[o]]  # narrow: no empty columns
    for column in ("arm", "setting", *shown, "best value"):
        table.add_column(column, justify="left" if column in ("arm", "setting") else "right")
    for (label, setting), counts in sorted(per_setting.items()):
        table.add_row(label, setting, *(str(counts[o] or "") for o in shown),
                      _fmt(best.get((label, setting))))
    console.print(table)


def _print_best(console: Any, trials: Sequence[tuple[str, FrozenTrial]], objective: str, top: int) -> None:
    """The ``top`` complete trials by value, with their hyperparameters."""
    from rich.table import Table

    done = sorted((t for _, t in trials if t.state == TrialState.COMPLETE and t.value is not None),
                  key=lambda t: float(t.value or 0.0), reverse=True)
    if not done:
        return
    table = Table(title=f"Best trials ({objective})")
    for column in ("arm", "trial", "setting", "value", "lr", "betas", "eps", "weight_decay"):
        table.add_column(column)
    for t in done[:top]:
        a = t.user_attrs
        table.add_row(str(a.get("arm")), str(t.number), str(a.get("setting")), _fmt(t.value),
                      _fmt(a.get("lr")), _fmt(a.get("betas")), _fmt(a.get("eps")),
                      _fmt(a.get("weight_decay")))
    console.print(table)


def _print_stale(console: Any, opened: OpenedStudy, trials: Sequence[tuple[str, FrozenTrial]]) -> None:
    """RUNNING trials whose heartbeat is older than the grace period (their worker is gone)."""
    from rich.table import Table

    stale = [(label, t, opened.stale_for(t)) for label, t in trials if opened.stale_for(t) is not None]
    if not stale:
        return
    table = Table(title="Stale trials (RUNNING in the storage, but no heartbeat within "
                  f"the grace period of {opened.grace_period:g} s)")
    for column in ("arm", "trial", "setting", "last heartbeat", "what happens"):
        table.add_column(column, overflow="fold")
    for label, t, age in stale:
        table.add_row(label, str(t.number), str(t.user_attrs.get("setting", "-")),
                      f"{_ago(age or 0.0)} ago",
                      "its worker is gone (killed?); the next `rlopt study run` marks it failed and "
                      "retries it")
    console.print(table)


def _print_failures(console: Any, trials: Sequence[tuple[str, FrozenTrial]]) -> None:
    """Failed and diverged trials with their reasons."""
    from rich.table import Table

    failures = [(label, t) for label, t in trials if outcome(t) in ("failed", "diverged")]
    if not failures:
        return
    table = Table(title="Failures")
    for column in ("arm", "trial", "setting", "outcome", "reason"):
        table.add_column(column, overflow="fold")
    for label, t in failures:
        table.add_row(label, str(t.number), str(t.user_attrs.get("setting", "-")), outcome(t),
                      failure_reason(t))
    console.print(table)
