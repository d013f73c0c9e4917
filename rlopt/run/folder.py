"""The files of a run folder: ``config.json``, ``command.txt``, ``versions.json``, ``eval.csv``,
``metrics.json`` (see docs/CONTRACTS.md, "One training run")."""

from __future__ import annotations

import csv
import importlib.metadata
import json
import logging
import math
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rlopt import atomic
from rlopt.run.evaluation import EVAL_CSV_COLUMNS

log = logging.getLogger(__name__)

def read_eval_rows(path: Path, columns: tuple[str, ...]) -> list[list[float]]:
    """The ``columns`` of each complete row of a run's ``eval.csv`` (``timesteps`` as an int; no rows if
    the file is missing)."""
    rows: list[list[float]] = []
    if path.is_file():
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    rows.append([int(float(row[c])) if c == "timesteps" else float(row[c]) for c in columns])
                except (KeyError, TypeError, ValueError):
                    continue  # a row being written while we read
    return rows


def read_eval_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(timesteps, mean_return)`` of a run's ``eval.csv`` (empty arrays if it has no rows yet)."""
    rows = read_eval_rows(path, ("timesteps", "mean_return"))
    return (np.asarray([r[0] for r in rows], dtype=np.int64),
            np.asarray([r[1] for r in rows], dtype=np.float64))


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


VERSIONED_PACKAGES = (
    "torch",
    "stable-baselines3",
    "gymnasium",
    "mujoco",
    "optuna",
    "numpy",
    "rlopt",
    "pytorch-optimizer",
)


def jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, non-finite floats as strings and anything else not JSON as repr."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def source_checkout() -> Path | None:
    """The git checkout rlopt is imported from (an editable install), or ``None`` (an installed wheel).

    A checkout is the folder above the package holding both ``.git`` and ``pyproject.toml``; a wheel's
    ``site-packages`` has neither, even inside someone else's repository.
    """
    root = Path(__file__).resolve().parents[2]  # rlopt/run/folder.py -> the checkout
    return root if (root / ".git").exists() and (root / "pyproject.toml").is_file() else None


def git_commit() -> str | None:
    """``HEAD`` of the rlopt checkout, with ``-dirty`` if tracked files differ; ``None`` outside one."""
    root = source_checkout()
    if root is None:
        return None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for package in VERSIONED_PACKAGES:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    out["git_commit"] = git_commit()
    return out


IDENTITY_KEYS = ("algo", "env", "seed", "timesteps", "n_envs", "agent", "evaluation", "optimizer")
"""What makes two runs the same run: everything that changes the numbers, not where the code lives."""
_DESCRIPTIVE = ("class", "source", "paper", "injected_into", "fused_auto")
"""Optimizer entries that describe, not decide (``fused_auto`` says how ``extra_effective.fused`` was
chosen)."""
_EVALUATION_DECIDES = ("freq", "episodes", "deterministic")
"""Evaluation entries that decide the numbers (the others are derived from them, or words)."""


def as_written(config_json: Mapping[str, Any]) -> dict[str, Any]:
    """A plan's ``config.json`` data before it is written, as it will read back (JSON types only)."""
    return dict(json.loads(json.dumps(jsonable(config_json))))


def plan_identity(config_json: Mapping[str, Any]) -> dict[str, Any] | None:
    """:func:`config_identity` of a plan's ``config.json`` data before it is written (as it will read)."""
    return config_identity(as_written(config_json))


def config_identity(config: Any) -> dict[str, Any] | None:
    """The part of a run's ``config.json`` (as a JSON mapping) that decides what the run computes.

    Entries that only describe (added to ``config.json`` over time, such as ``fused_auto`` or the
    evaluation's ``schedule``) are left out, so a run recorded by an earlier rlopt is still the same run.
    """
    if not isinstance(config, dict):
        return None
    identity = {key: config.get(key) for key in IDENTITY_KEYS}
    optimizer = identity.get("optimizer")
    if isinstance(optimizer, dict):
        identity["optimizer"] = {k: v for k, v in optimizer.items() if k not in _DESCRIPTIVE}
    evaluation = identity.get("evaluation")
    if isinstance(evaluation, dict):
        identity["evaluation"] = {k: v for k, v in evaluation.items() if k in _EVALUATION_DECIDES}
    return identity


def rewrite_eval_csv(path: Path, rows: list[list[Any]]) -> None:
    """Write ``eval.csv`` anew (header and ``rows``) atomically: a new run's header, or a resumed run's
    rows up to its checkpoint."""

    def write(fh: Any) -> None:
        writer = csv.writer(fh)
        writer.writerow(EVAL_CSV_COLUMNS)
        writer.writerows(rows)

    atomic.write_file(path, write, text=True)


def start_run_folder(run_dir: Path, config: Mapping[str, Any], command: str) -> None:
    """Create ``run_dir`` and write every file a run folder always has (metrics as ``running``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", config)
    (run_dir / "command.txt").write_text(command + "\n")
    write_json(run_dir / "versions.json", versions())
    rewrite_eval_csv(run_dir / "eval.csv", [])
    write_json(run_dir / "metrics.json", {"status": "running", "reason": "training in progress"})
