"""rlopt's evaluation loop against SB3's ``evaluate_policy``: the same returns, evaluation after evaluation.

Each side gets its own, identically seeded evaluation env; both run several evaluations in a row, so
the env's random state after an evaluation (its resets) must match too. Hopper and InvertedPendulum
end episodes early (``terminated``), so the auto-reset path is exercised as well as the time limit.
"""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rlopt.run.evaluation import episode_returns


def _sb3_returns(model: PPO | SAC, env: VecEnv, episodes: int) -> list[float]:
    returns, _ = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True,
                                 return_episode_rewards=True)
    assert isinstance(returns, list)
    return [float(r) for r in returns]


def _eval_env(task: str, train_env: VecEnv, n_envs: int = 1) -> VecEnv:
    env = make_vec_env(task, n_envs=n_envs, seed=1000)
    if isinstance(train_env, VecNormalize):
        env = VecNormalize(env, training=False, norm_reward=False, gamma=train_env.gamma)
        env.obs_rms = train_env.obs_rms.copy()
    return env


@pytest.mark.parametrize(
    ("algo", "task", "normalize"),
    [
        ("ppo", "Hopper-v5", True),
        ("ppo", "InvertedPendulum-v5", False),
        ("sac", "InvertedPendulum-v5", False),
    ],
)
def test_episode_returns_equal_evaluate_policy_over_consecutive_evaluations(
    algo: str, task: str, normalize: bool
) -> None:
    train_env = make_vec_env(task, n_envs=1, seed=0)
    if normalize:
        train_env = VecNormalize(train_env)
    if algo == "ppo":
        model = PPO("MlpPolicy", train_env, n_steps=256, batch_size=64, seed=0, device="cpu",
                    policy_kwargs={"net_arch": [32]})
    else:
        model = SAC("MlpPolicy", train_env, learning_starts=50, seed=0, device="cpu",
                    policy_kwargs={"net_arch": [32]})
    model.learn(256)
    ours, theirs = _eval_env(task, train_env), _eval_env(task, train_env)
    for _ in range(3):
        got = episode_returns(model, ours, 3)
        want = _sb3_returns(model, theirs, 3)
        assert got == want
    assert len(set(got)) > 1, "episodes of a seeded env should differ; the comparison proves nothing"
    np.testing.assert_array_equal(ours.reset(), theirs.reset())


def test_vectorised_eval_env_falls_back_to_evaluate_policy() -> None:
    train_env = make_vec_env("InvertedPendulum-v5", n_envs=1, seed=0)
    model = PPO("MlpPolicy", train_env, n_steps=64, batch_size=32, seed=0, device="cpu",
                policy_kwargs={"net_arch": [8]})
    ours = _eval_env("InvertedPendulum-v5", train_env, 2)
    theirs = _eval_env("InvertedPendulum-v5", train_env, 2)
    assert episode_returns(model, ours, 4) == _sb3_returns(model, theirs, 4)
