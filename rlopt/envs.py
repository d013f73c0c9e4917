"""Task suites as data (``envs/<suite>.yaml``) and the vectorised environments of one run.

A suite file lists tasks, each with the budget it needs and two reference returns so scores can be
put on one scale across tasks (:func:`normalized_score`)::

    name: smoke
    description: ...
    tasks:
      InvertedPendulum-v5:
        timesteps: 2000           # training budget in env steps
        eval_freq: 1000           # env steps between evaluations
        eval_episodes: 2
        random_return: 5.6        # mean return of uniform random actions
        random_source: "measured: rlopt.envs.random_policy_return(..., episodes=50, seed=0)"
        reference_return: 1000.0  # a published (or by-construction) good return
        reference_source: "..."

Environment construction follows rl-baselines3-zoo: ``make_vec_env`` (``Monitor`` + ``DummyVecEnv``),
optionally ``VecNormalize``; evaluation uses a separate env whose ``VecNormalize`` shares the training
statistics but never updates them and reports raw rewards.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rlopt.data_files import data_file, data_names
from rlopt.errors import ConfigError
from rlopt.yaml_loader import read_yaml

EVAL_SEED_OFFSET = 1_000_003
"""Evaluation envs are seeded with ``seed + EVAL_SEED_OFFSET`` so they never replay training episodes."""


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


def normalized_score(task: Task | str, raw_return: float | np.ndarray) -> float | np.ndarray:
    """``(raw - random) / (reference - random)``: 0 is a random policy, 1 the published reference."""
    t = task if isinstance(task, Task) else find_task(task)
    return (raw_return - t.random_return) / (t.reference_return - t.random_return)


def check_task(task: Any) -> str:
    """``task`` if it is a registered Gymnasium id with a continuous (Box) action space."""
    from rlopt.hparams import known_tasks

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


_mujoco_log = logging.getLogger("rlopt.mujoco")


@cache
def route_mujoco_warnings() -> None:
    """Send MuJoCo's C-level warnings to Python logging instead of stderr and ``./MUJOCO_LOG.TXT``.

    Deprecation notices (HalfCheetah's ``settotalmass``, printed at every env creation) go to DEBUG,
    everything else (e.g. simulation instabilities) to WARNING. Process-wide, installed once.
    """
    try:
        import mujoco
    except ImportError:  # pragma: no cover - MuJoCo tasks need it, other tasks do not
        return

    def warn(message: str) -> None:
        level = logging.DEBUG if "deprecated" in message else logging.WARNING
        _mujoco_log.log(level, "MuJoCo: %s", message.strip())

    mujoco.set_mju_user_warning(warn)


def make_train_env(
    task: str, n_envs: int, seed: int, normalize: dict[str, bool] | None, gamma: float
) -> VecEnv:
    """Training envs as rl-baselines3-zoo builds them: ``make_vec_env`` then optional ``VecNormalize``."""
    route_mujoco_warnings()
    env = make_vec_env(task, n_envs=n_envs, seed=seed)
    if normalize is not None:
        env = VecNormalize(
            env, gamma=gamma, norm_obs=normalize["norm_obs"], norm_reward=normalize["norm_reward"]
        )
    return env


def make_eval_env(task: str, seed: int, train_env: VecEnv) -> VecEnv:
    """One evaluation env; with ``VecNormalize`` when training uses it (frozen stats, raw rewards).

    The statistics are copied from ``train_env`` before each evaluation
    (``stable_baselines3.common.vec_env.sync_envs_normalization``).
    """
    route_mujoco_warnings()
    env = make_vec_env(task, n_envs=1, seed=seed + EVAL_SEED_OFFSET)
    if isinstance(train_env, VecNormalize):
        env = VecNormalize(
            env, training=False, norm_obs=train_env.norm_obs, norm_reward=False, gamma=train_env.gamma
        )
    return env


def random_policy_return(task: str, episodes: int = 50, seed: int = 0) -> tuple[float, float]:
    """Mean and standard deviation of the return of uniform random actions over ``episodes`` episodes.

    This is how the ``random_return`` of the suites was measured (reproduce it with this function).
    """
    route_mujoco_warnings()
    env = gym.make(task)
    env.action_space.seed(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns)), float(np.std(returns))
