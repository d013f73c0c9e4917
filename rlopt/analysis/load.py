"""The runs of a study as plain records: what :mod:`rlopt.stats` and :mod:`rlopt.analysis.report` consume.

``load_runs(study_dir, storage=None)`` reads the study's storage (every arm's Optuna study, every trial
that has started) and each trial's run folders (``eval.csv``, ``metrics.json``, ``config.json``), and
returns one :class:`RunRecord` per run folder found. A run folder that does not exist here (a trial
run on another machine with a shared PostgreSQL storage but separate disks) is skipped with a warning.
``load_runs_untouched(study_dir)`` does the same from a temporary copy, for a committed study folder
(SQLite may write to a database it opens, e.g. its journal or a schema upgrade by Optuna).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from rlopt.records import RunRecord
from rlopt.run.folder import read_eval_csv, read_json
from rlopt.study.looks import extended_numbers

log = logging.getLogger(__name__)

_NOT_PARAMS = ("name", "class", "source", "paper", "injected_into", "extra_effective")
"""Keys of ``config.json``'s ``optimizer`` section that describe the class, not its hyperparameters."""
_IMPLEMENTATION = ("foreach", "fused", "capturable", "differentiable", "maximize")
"""Optimizer arguments that choose a code path, not the update rule (left out of ``params``)."""


def _float_or_none(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _params(trial: FrozenTrial, config: Mapping[str, Any]) -> dict[str, Any]:
    attrs = trial.user_attrs
    optimizer = config.get("optimizer")
    if isinstance(optimizer, Mapping):
        params = {k: _float_or_none(v) for k, v in optimizer.items() if k not in _NOT_PARAMS}
        effective = optimizer.get("extra_effective")
        if isinstance(effective, Mapping):
            params.update({k: v for k, v in effective.items() if k not in params})
        params = {k: v for k, v in params.items() if k not in _IMPLEMENTATION}
    else:
        params = {k: attrs.get(k) for k in ("lr", "betas", "eps", "weight_decay")}
        params.update(attrs.get("extra") or {})
    if isinstance(params.get("betas"), list):
        params["betas"] = tuple(params["betas"])
    params["kappa"] = attrs.get("kappa", 1.0)
    params["scaling_rule"] = attrs.get("scaling_rule", "none")
    params["arm"] = attrs.get("arm")
    return params


def _records(study: str, trial: FrozenTrial, study_dir: Path, extended: bool = False) -> list[RunRecord]:
    """The runs of ``trial`` found on disk; ``extended``: a later trial extends it to more seeds
    (:mod:`rlopt.study.looks`) and has taken its runs, so a missing folder is expected."""
    attrs = trial.user_attrs
    run_dirs = attrs.get("run_dirs") or []
    pairs = [(task, seed) for task in attrs.get("tasks", []) for seed in attrs.get("seeds", [])]
    out = []
    for i, relative in enumerate(run_dirs):
        run_dir = study_dir / relative
        if not run_dir.is_dir():
            # A running trial may not have started this run yet; a failed one may have died before.
            if trial.state.is_finished() and trial.state != TrialState.FAIL and not extended:
                log.warning("%s: run folder %s of trial %d is not here (run on another machine?)",
                            study, run_dir, trial.number)
            continue
        config = read_json(run_dir / "config.json")
        task, seed = pairs[i] if i < len(pairs) else (None, None)
        timesteps, returns = read_eval_csv(run_dir / "eval.csv")
        out.append(RunRecord(
            study=study,
            trial=trial.number,
            trial_state=trial.state.name,
            optimizer=str(attrs.get("optimizer") or (config.get("optimizer") or {}).get("name")),
            setting=str(attrs.get("setting", "")),
            params=_params(trial, config),
            task=str(config.get("env", task)),
            seed=int(config.get("seed", seed if seed is not None else -1)),
            timesteps=timesteps,
            returns=returns,
            metrics=read_json(run_dir / "metrics.json"),
            run_dir=run_dir,
        ))
    return out


def load_runs(study_dir: str | Path, storage: str | None = None) -> list[RunRecord]:
    """Every run of the study in ``study_dir``, in arm then trial then (task, seed) order.

    Args:
        study_dir: the study folder (``runs/<study>``, holding ``study.json``).
        storage: storage URL; default: the one the study was run with.

    Raises:
        ConfigError: no study in ``study_dir``, or its storage cannot be read.
    """
    from rlopt.study.status import open_study

    opened = open_study(Path(study_dir), storage)
    records: list[RunRecord] = []
    for _, study in opened.arms.items():
        trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
        extended = extended_numbers(trials)
        for trial in trials:
            if trial.state == TrialState.WAITING:
                continue
            records.extend(_records(opened.name, trial, opened.study_dir, trial.number in extended))
    return records


@contextmanager
def untouched_copy(study_dir: Path) -> Iterator[Path]:
    """A temporary copy of the study folder ``study_dir`` (without ``report/`` and ``runs.csv``, which
    the storage does not need), removed on exit: what a committed bundle is read from."""
    with tempfile.TemporaryDirectory(prefix="rlopt-load-") as tmp:
        copy = Path(tmp) / study_dir.name
        shutil.copytree(study_dir, copy, ignore=shutil.ignore_patterns("report", "runs.csv"))
        yield copy


def pointing_back(records: list[RunRecord], copy: Path, study_dir: Path) -> list[RunRecord]:
    """``records`` read from ``copy`` (:func:`untouched_copy` of ``study_dir``), their ``run_dir``
    pointing back into ``study_dir``."""
    root = copy.resolve()
    moved = []
    for record in records:
        run_dir = record.run_dir.resolve()
        if run_dir.is_relative_to(root):
            record = dataclasses.replace(record, run_dir=study_dir / run_dir.relative_to(root))
        moved.append(record)
    return moved


def load_runs_untouched(study_dir: str | Path) -> list[RunRecord]:
    """:func:`load_runs` of the study in ``study_dir`` read from a temporary copy
    (:func:`untouched_copy`), so that nothing in the folder (a committed bundle's ``study.db``) is
    ever opened for writing; each record's ``run_dir`` points back into ``study_dir``.

    Raises:
        ConfigError: as :func:`load_runs`.
    """
    study_dir = Path(study_dir)
    with untouched_copy(study_dir) as copy:
        return pointing_back(load_runs(copy), copy, study_dir)
