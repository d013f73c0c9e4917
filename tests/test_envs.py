"""Task suites as data, reference scores, and the evaluation env's use of the training statistics."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from rlopt.config.suites import known_suites, load_suite, normalized_score
from rlopt.errors import ConfigError
from rlopt.run.envs import make_eval_env, make_train_env, random_policy_return


def test_every_suite_lists_registered_tasks_with_budgets_and_sourced_references() -> None:
    assert {"mujoco", "smoke"} <= set(known_suites())
    for name in known_suites():
        suite = load_suite(name)
        for task in suite.tasks:
            gym.spec(task.name)
            assert task.timesteps >= task.eval_freq >= 1
            assert task.random_source and task.reference_source
            assert task.reference_return > task.random_return


def test_mujoco_suite_is_the_five_locomotion_tasks() -> None:
    names = set(load_suite("mujoco").task_names)
    assert names == {"HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5"}


def test_normalized_score_maps_random_to_zero_and_reference_to_one() -> None:
    task = load_suite("smoke").task("HalfCheetah-v5")
    assert normalized_score(task, task.random_return) == pytest.approx(0.0)
    assert normalized_score("HalfCheetah-v5", task.reference_return) == pytest.approx(1.0)
    halfway = (task.random_return + task.reference_return) / 2
    np.testing.assert_allclose(normalized_score(task, np.array([halfway])), [0.5])


def test_random_return_of_the_suite_is_reproducible_by_its_stated_measurement() -> None:
    task = load_suite("smoke").task("InvertedPendulum-v5")
    mean, _ = random_policy_return(task.name, episodes=50, seed=0)
    assert mean == pytest.approx(task.random_return, abs=0.005)


def test_unknown_suite_and_incomplete_suite_file_are_rejected_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Unknown suite 'nope'.*smoke"):
        load_suite("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  Hopper-v5:\n    timesteps: 10\n")
    with pytest.raises(ConfigError, match=r"Hopper-v5.*eval_freq"):
        load_suite(bad)


def test_eval_env_uses_training_normalisation_without_updating_it() -> None:
    from stable_baselines3.common.vec_env import sync_envs_normalization

    train = make_train_env("InvertedPendulum-v5", 1, 0, {"norm_obs": True, "norm_reward": True}, 0.99)
    evaluation = make_eval_env("InvertedPendulum-v5", 0, train)
    train.reset()
    for _ in range(20):
        train.step(np.zeros((1, 1), dtype=np.float32))
    sync_envs_normalization(train, evaluation)
    before = evaluation.obs_rms.mean.copy()
    evaluation.reset()
    for _ in range(20):
        evaluation.step(np.zeros((1, 1), dtype=np.float32))
    assert not evaluation.training and not evaluation.norm_reward
    np.testing.assert_array_equal(evaluation.obs_rms.mean, before)
    np.testing.assert_array_equal(evaluation.obs_rms.mean, train.obs_rms.mean)
    train.close()
    evaluation.close()


SUITE = """\
name: mine
tasks:
  InvertedPendulum-v5:
    timesteps: 1_000
    eval_freq: 5e2
    eval_episodes: 2
    random_return: 5.6
    random_source: measured
    reference_return: 1e3
    reference_source: by construction
"""


def test_rlopt_data_adds_a_users_suite_and_numbers_read_as_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "mine.yaml").write_text(SUITE)
    monkeypatch.setenv("RLOPT_DATA", str(tmp_path))
    assert {"mine", "mujoco", "smoke"} <= set(known_suites())
    task = load_suite("mine").task("InvertedPendulum-v5")
    assert (task.timesteps, task.eval_freq, task.reference_return) == (1000, 500, 1000.0)
    assert load_suite("smoke").path.parent != tmp_path / "envs"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SUITE + "    eval_freq: 100\n", "not valid YAML at line 11: key 'eval_freq' is given twice"),
        (SUITE + "name: again\n", "not valid YAML at line 11: key 'name' is given twice"),
        ("tasks:\n  Hopper-v5: 3\n", "task 'Hopper-v5' must be a mapping of timesteps"),
        ("- a\n", "expected a non-empty 'tasks' mapping"),
    ],
)
def test_bad_user_suite_files_are_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    (tmp_path / "envs").mkdir()
    path = tmp_path / "envs" / "mine.yaml"
    path.write_text(text)
    monkeypatch.setenv("RLOPT_DATA", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        load_suite("mine")
    assert str(info.value).startswith(f"{path}: {message}")
