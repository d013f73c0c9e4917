"""Runs as a long-format CSV, one row per evaluation: what ``rlopt verdict`` reads and ``rlopt study
export`` writes, so a verdict can be recomputed from a study or judged on runs of another library.

Columns (header names; order free):

- required: ``task``, ``seed``, ``optimizer``, ``step``, ``return`` (the mean evaluation return at that
  env step);
- optional, naming the setting: ``label`` (default: the optimizer and the values below), ``beta1``,
  ``beta2``, ``beta3``, ``lr``, ``eps``, ``weight_decay``, ``kappa``, ``scaling_rule``;
- optional, per run (the same value on every row of a run, or on one of them): ``return_collapses``,
  ``loss_spikes``, ``nan_events``, and ``status`` (``ok`` or ``diverged``; default ``ok``).

A run is the rows sharing (task, seed, setting). A run with no evaluation (it diverged before the
first) is one row with ``step`` and ``return`` empty. ``return`` may be ``nan`` (a non-finite
evaluation). A run's final return is its last evaluation and its AUC the mean of its evaluations, as
:mod:`rlopt.run.train` computes them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlopt.analysis.scores import STABILITY_COUNTS, RunLike, is_usable, run_state
from rlopt.errors import ConfigError
from rlopt.records import RunRecord

REQUIRED = ("task", "seed", "optimizer", "step", "return")
SETTING = ("label", "beta1", "beta2", "beta3", "lr", "eps", "weight_decay", "kappa", "scaling_rule")
PER_RUN = (*STABILITY_COUNTS, "status")
COLUMNS = (*REQUIRED, *SETTING, *PER_RUN)
_NUMERIC_PARAMS = ("lr", "eps", "weight_decay", "kappa")
_SHORT = {"beta1": "b1", "beta2": "b2", "beta3": "b3", "weight_decay": "wd"}


def _number(text: str, column: str, line: int, path: Path) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{path}:{line}: column {column!r} must be a number, got {text!r}") from None


def _label(optimizer: str, params: Mapping[str, Any]) -> str:
    parts = [optimizer]
    for key in SETTING[1:]:
        if key in params:
            value = params[key]
            parts.append(
                f"{_SHORT.get(key, key)}={value:g}" if isinstance(value, float) else f"{key}={value}"
            )
    return " ".join(parts)


def read_runs_csv(path: str | Path) -> list[RunRecord]:
    """The runs of a long-format runs CSV (module docstring).

    Raises:
        ConfigError: naming the file, line and column of a missing column, a non-numeric value, an
            unknown status or per-run values that disagree within a run.
    """
    path = Path(path)
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise ConfigError(f"cannot read runs CSV {path}: {exc.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ConfigError(
                f"{path}: missing column {missing[0]!r} (required: {', '.join(REQUIRED)}; "
                f"optional: {', '.join(SETTING + PER_RUN)})"
            )
        runs: dict[tuple[str, int, str], dict[str, Any]] = {}
        for line, raw in enumerate(reader, start=2):
            row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
            cell, params = _cell(row, line, path)
            run = runs.setdefault(
                cell,
                {"optimizer": row["optimizer"], "params": params, "steps": [], "returns": [], "per_run": {}},
            )
            if row["step"] or row["return"]:
                if not row["step"]:
                    raise ConfigError(f"{path}:{line}: column 'step' is empty where 'return' is not")
                run["steps"].append(_number(row["step"], "step", line, path))
                run["returns"].append(_number(row["return"], "return", line, path))
            _add_per_run(run["per_run"], row, line, path, cell)
    settings = sorted({k[2] for k in runs})
    ordered = sorted(runs.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1]))
    return [_record(path, cell, run, trial=settings.index(cell[2])) for cell, run in ordered]


def _cell(row: Mapping[str, str], line: int, path: Path) -> tuple[tuple[str, int, str], dict[str, Any]]:
    """The run a row belongs to, ``(task, seed, setting)``, and the setting's optimizer parameters."""
    for column in ("task", "seed", "optimizer"):
        if not row[column]:
            raise ConfigError(f"{path}:{line}: column {column!r} is empty")
    seed = _number(row["seed"], "seed", line, path)
    if not seed.is_integer():
        raise ConfigError(f"{path}:{line}: column 'seed' must be an integer, got {row['seed']!r}")
    params: dict[str, Any] = {}
    betas = []
    for key in ("beta1", "beta2", "beta3"):
        if row.get(key):
            betas.append(_number(row[key], key, line, path))
    if betas:
        params["betas"] = tuple(betas)
    for key in _NUMERIC_PARAMS:
        if row.get(key):
            params[key] = _number(row[key], key, line, path)
    if row.get("scaling_rule"):
        params["scaling_rule"] = row["scaling_rule"]
    named = {**params, **dict(zip(("beta1", "beta2", "beta3"), betas, strict=False))}
    setting = row.get("label") or _label(row["optimizer"], named)
    return (row["task"], int(seed), setting), params


def _add_per_run(
    per_run: dict[str, Any], row: Mapping[str, str], line: int, path: Path, cell: tuple[str, int, str],
) -> None:
    """Record a row's per-run values (stability counts, status) in ``per_run``, which they must match."""
    for column in PER_RUN:
        value = row.get(column)
        if not value:
            continue
        if column == "status":
            if value not in ("ok", "diverged"):
                raise ConfigError(
                    f"{path}:{line}: column 'status' must be ok or diverged, got {value!r}"
                )
            parsed: Any = value
        else:
            parsed = _number(value, column, line, path)
        seen = per_run.setdefault(column, parsed)
        if seen != parsed:
            raise ConfigError(
                f"{path}:{line}: column {column!r} is {value!r} here but {seen!r} earlier in "
                f"the same run (task {cell[0]}, seed {cell[1]}, {cell[2]})"
            )


def _record(path: Path, cell: tuple[str, int, str], run: Mapping[str, Any], trial: int) -> RunRecord:
    """One run of the CSV as a record of a complete trial, its evaluations in step order."""
    task, seed, setting = cell
    order = np.argsort(run["steps"], kind="stable")
    steps = np.asarray(run["steps"], dtype=float)[order]
    returns = np.asarray(run["returns"], dtype=float)[order]
    per_run = run["per_run"]
    finite = returns[np.isfinite(returns)]
    metrics: dict[str, Any] = {
        "status": per_run.get("status", "ok"),
        "final_return": float(returns[-1]) if returns.size else None,
        "auc": float(np.mean(returns)) if returns.size else None,
    }
    if not finite.size:
        metrics["final_return"] = metrics["auc"] = None
    if any(c in per_run for c in STABILITY_COUNTS):
        metrics["stability"] = {c: per_run.get(c) for c in STABILITY_COUNTS}
    return RunRecord(
        study=path.stem,
        trial=trial,
        trial_state="COMPLETE",
        optimizer=run["optimizer"],
        setting=setting,
        params=run["params"],
        task=task,
        seed=seed,
        timesteps=steps,
        returns=returns,
        metrics=metrics,
    )


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else repr(value))
    return str(value)


def csv_rows(records: Sequence[RunLike]) -> list[dict[str, str]]:
    """Rows of the runs CSV for the finished runs among ``records`` (one per evaluation)."""
    rows = []
    for record in records:
        if not is_usable(record):
            continue
        params = record.params or {}
        base = {
            "task": record.task,
            "seed": str(record.seed),
            "optimizer": record.optimizer,
            "label": record.setting,
        }
        betas = params.get("betas")
        if isinstance(betas, (list, tuple)):
            base.update({f"beta{i + 1}": _format(float(b)) for i, b in enumerate(betas[:3])})
        for key in _NUMERIC_PARAMS:
            if isinstance(params.get(key), (int, float)) and not isinstance(params.get(key), bool):
                base[key] = _format(float(params[key]))
        if params.get("scaling_rule") is not None:
            base["scaling_rule"] = str(params["scaling_rule"])
        stability = (record.metrics or {}).get("stability") or {}
        for column in STABILITY_COUNTS:
            if stability.get(column) is not None:
                base[column] = _format(stability[column])
        base["status"] = run_state(record)
        steps = np.asarray(record.timesteps, dtype=float)
        returns = np.asarray(record.returns, dtype=float)
        if not steps.size:
            rows.append({**base, "step": "", "return": ""})
        for step, value in zip(steps, returns, strict=True):
            rows.append({**base, "step": _format(float(step)), "return": _format(float(value))})
    return rows


def write_runs_csv(records: Sequence[RunLike], path: str | Path) -> int:
    """Write the finished runs among ``records`` as a runs CSV; returns the number of runs written."""
    rows = csv_rows(records)
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return sum(1 for r in records if is_usable(r))
