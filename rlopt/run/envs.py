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
        random_source: "measured: rlopt.run.envs.random_policy_return(..., episodes=50, seed=0)"
        reference_return: 1000.0  # a published (or by-construction) good return
        reference_source: "..."

Environment construction follows rl-baselines3-zoo: ``make_vec_env`` (``Monitor`` + ``DummyVecEnv``),
optionally ``VecNormalize``; evaluation uses a separate env whose ``VecNormalize`` shares the training
statistics but never updates them and reports raw rewards.
"""

from __future__ import annotations

import logging
from functools import cache

import gymnasium as gym
import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

EVAL_SEED_OFFSET = 1_000_003
"""Evaluation envs are seeded with ``seed + EVAL_SEED_OFFSET`` so they never replay training episodes."""


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
