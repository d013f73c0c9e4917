"""Tiny study files and a runner of the real ``rlopt`` command, shared by the study tests."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna

BASE: dict[str, Any] = {
    "name": "unit",
    "algorithm": "ppo",
    "tasks": ["InvertedPendulum-v5"],
    "seeds": 2,
    "timesteps": 256,
    "evaluation": {"every": 128, "episodes": 2},
    "overrides": {"n_steps": 64, "batch_size": 32, "policy_kwargs": {"net_arch": [8]}},
    "optimizers": [{"optimizer": "adam"}, {"optimizer": "adopt"}],
}


def spec_with(**changes: Any) -> dict[str, Any]:
    """A valid study (as data) with top-level keys replaced (``None`` removes a key)."""
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


TINY = """\
name: {name}
algorithm: ppo
tasks: [InvertedPendulum-v5]
seeds: {seeds}
timesteps: {timesteps}
evaluation: {{every: 128, episodes: 2}}
overrides: {{n_steps: 64, batch_size: 32, n_epochs: 2, policy_kwargs: {{net_arch: [8]}}}}
heartbeat: {{interval: 2, grace_period: 10, max_retry: 2}}
{extra}
optimizers:
{optimizers}
"""


def write_study(folder: Path, name: str, optimizers: str, seeds: int = 2, timesteps: int = 256,
                extra: str = "") -> Path:
    """Write ``<folder>/<name>.yaml``: PPO, InvertedPendulum-v5, 8-unit net, evaluated every 128 steps."""
    path = folder / f"{name}.yaml"
    text = TINY.format(name=name, seeds=seeds, timesteps=timesteps, extra=extra, optimizers=optimizers)
    path.write_text(text)
    return path


def rlopt_command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "rlopt", *map(str, args)]


def run_rlopt(*args: str | Path, cwd: Path, timeout: float = 300,
              quiet_warnings: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``python -m rlopt ARGS`` in ``cwd``, capturing its output (library warnings off by default)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"} if quiet_warnings else dict(os.environ)
    return subprocess.run(rlopt_command(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env)


def arm_trials(url: str, study: str, arm: str) -> list[optuna.trial.FrozenTrial]:
    """The trials of one arm's Optuna study, by number."""
    storage = optuna.storages.RDBStorage(url, skip_table_creation=True, skip_compatibility_check=True)
    try:
        trials = optuna.load_study(study_name=f"{study}/{arm}", storage=storage).get_trials()
    finally:
        storage.remove_session()
        storage.engine.dispose()
    return sorted(trials, key=lambda t: t.number)
