"""config.suites"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from rlopt.config.data import data_file, data_names
from rlopt.config.yaml import read_yaml
from rlopt.errors import ConfigError


@dataclass(frozen=True)
class Task:
    """One task of a suite.

    Attributes:
        name: Gymnasium id (e.g. ``HalfCheetah-v5``).
        timesteps: training budget in env steps.
        eval_freq: env steps between evaluations.
        eval_episodes: episodes per evaluation.
        random_return: mean return of a uniform random policy (score 0 after normalisation).
        reference_return: a good published return (score 1 after normalisation).
        random_source, reference_source: where the two numbers come from.
    """

    name: str
    timesteps: int
    eval_freq: int
    eval_episodes: int
    random_return: float
    reference_return: float
    random_source: str
    reference_source: str


@dataclass(frozen=True)
class Suite:
    """A named list of tasks (``envs/<name>.yaml``)."""

    name: str
    description: str
    tasks: tuple[Task, ...]
    path: Path

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        accepted = ", ".join(self.task_names)
        raise ConfigError(f"Unknown task {name!r} in suite {self.name!r} (accepted: {accepted})")


def known_suites() -> list[str]:
    """Suite names: ``envs/*.yaml`` shipped with rlopt and in ``$RLOPT_DATA/envs``."""
    return data_names("envs")


def _number(value: Any, what: str, positive_int: bool = False) -> Any:
    if positive_int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"Invalid {what}: {value!r} (accepted: an integer >= 1)")
        return value
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"Invalid {what}: {value!r} (accepted: a finite number)")
    return float(value)


def load_suite(name_or_path: str | Path) -> Suite:
    """Load a suite by name (``envs/<name>.yaml``) or by path, validating every field.

    Raises:
        ConfigError: unknown suite, or a field missing or of the wrong type (naming it).
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = data_file("envs", f"{name_or_path}.yaml")
    if not path.is_file():
        accepted = ", ".join(known_suites())
        raise ConfigError(f"Unknown suite {str(name_or_path)!r} (accepted: {accepted}, or a path)")
    return _read_suite(path)


@cache
def _read_suite(path: Path) -> Suite:
    data = read_yaml(path, "suite file")
    raw_tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(raw_tasks, dict) or not raw_tasks:
        raise ConfigError(f"{path}: expected a non-empty 'tasks' mapping")
    tasks = []
    required = (
        "timesteps",
        "eval_freq",
        "eval_episodes",
        "random_return",
        "random_source",
        "reference_return",
        "reference_source",
    )
    for task_name, entry in raw_tasks.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: task {task_name!r} must be a mapping of {', '.join(required)}")
        missing = [k for k in required if k not in entry]
        if missing:
            raise ConfigError(f"{path}: task {task_name!r} is missing {', '.join(missing)}")
        task = Task(
            name=task_name,
            timesteps=_number(entry["timesteps"], f"{task_name}.timesteps", positive_int=True),
            eval_freq=_number(entry["eval_freq"], f"{task_name}.eval_freq", positive_int=True),
            eval_episodes=_number(entry["eval_episodes"], f"{task_name}.eval_episodes", positive_int=True),
            random_return=_number(entry["random_return"], f"{task_name}.random_return"),
            reference_return=_number(entry["reference_return"], f"{task_name}.reference_return"),
            random_source=str(entry["random_source"]),
            reference_source=str(entry["reference_source"]),
        )
        if task.reference_return <= task.random_return:
            raise ConfigError(f"{path}: task {task_name!r} has reference_return <= random_return")
        tasks.append(task)
    return Suite(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        tasks=tuple(tasks),
        path=path,
    )


def find_task(name: str) -> Task:
    """The first task called ``name`` in the known suites (sorted by suite name)."""
    for suite_name in known_suites():
        for task in load_suite(suite_name).tasks:
            if task.name == name:
                return task
    raise ConfigError(f"No reference scores for task {name!r} in any suite ({', '.join(known_suites())})")


def reference_task(name: str, suite: str | Path | None = None) -> Task:
    """The reference scores of task ``name`` for a study: its own ``suite`` when it names one (a name or
    path, as in the study file), else the first known suite listing the task (:func:`find_task`).

    The one choice of references: the trial objective (:func:`normalized_score`), ``rlopt report`` and
    ``rlopt verdict`` (:func:`rlopt.analysis.scores.normaliser_for`) all make it, so a study's trials and
    its report put returns on the same scale.

    Raises:
        ConfigError: the suite is unknown or does not list the task, or no known suite lists it.
    """
    if suite is None:
        return find_task(name)
    return load_suite(suite).task(name)


def normalized_score(
    task: Task | str, raw_return: float | np.ndarray, suite: str | Path | None = None
) -> float | np.ndarray:
    """``(raw - random) / (reference - random)``: 0 is a random policy, 1 the published reference.

    A task given by name takes the references of :func:`reference_task` (``suite``: the study's own).
    """
    t = task if isinstance(task, Task) else reference_task(task, suite)
    return (raw_return - t.random_return) / (t.reference_return - t.random_return)


def check_task(task: Any) -> str:
    """``task`` if it is a registered Gymnasium id with a continuous (Box) action space."""
    from rlopt.config.agents import known_tasks

    accepted = sorted(set(known_tasks("ppo")) | set(known_tasks("sac")))
    if not isinstance(task, str):
        raise ConfigError(f"Unknown task {task!r} (accepted: {', '.join(accepted)}, or any Gymnasium id)")
    try:
        spec = gym.spec(task)
    except gym.error.Error as exc:
        raise ConfigError(
            f"Unknown task {task!r} (accepted: {', '.join(accepted)}, or any registered Gymnasium id)"
        ) from exc
    return spec.id


