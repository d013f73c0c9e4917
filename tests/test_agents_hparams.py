"""Agent hyperparameters as data: the agent files, --set parsing, validation, schedules, activations."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.nn as nn
from stable_baselines3.common.utils import LinearSchedule

from rlopt.config.agents import (
    ALGOS,
    agent_file,
    initial_learning_rate,
    known_tasks,
    parse_set,
    resolve_agent,
    to_sb3_kwargs,
)
from rlopt.errors import ConfigError

MUJOCO_V5 = {
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "Ant-v5",
    "Humanoid-v5",
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5",
    "Swimmer-v5",
    "Reacher-v5",
}


@pytest.mark.parametrize("algo", ALGOS)
def test_agent_file_covers_the_nine_mujoco_tasks_each_with_a_source(algo: str) -> None:
    assert set(known_tasks(algo)) == MUJOCO_V5
    for task in known_tasks(algo):
        hp = resolve_agent(algo, task)
        assert hp.source.startswith(("rl-baselines3-zoo", "no zoo"))
        assert "optimizer_kwargs" not in hp.kwargs.get("policy_kwargs", {})
        to_sb3_kwargs(hp)


def test_ppo_entries_normalise_observations_and_rewards_as_the_zoo_does() -> None:
    for task in known_tasks("ppo"):
        assert resolve_agent("ppo", task).normalize == {"norm_obs": True, "norm_reward": True}


def test_zoo_values_reach_sb3_arguments_with_activation_mapped_by_name() -> None:
    kwargs = to_sb3_kwargs(resolve_agent("ppo", "HalfCheetah-v5"))
    assert kwargs["learning_rate"] == pytest.approx(2.0633e-05)
    assert kwargs["n_steps"] == 512 and kwargs["max_grad_norm"] == 0.8
    assert kwargs["policy_kwargs"]["activation_fn"] is nn.ReLU
    assert kwargs["policy_kwargs"]["net_arch"] == {"pi": [256, 256], "vf": [256, 256]}


def test_set_values_parse_as_yaml_and_dotted_keys_nest() -> None:
    parsed = parse_set(
        [
            "n_steps=64",
            "policy_kwargs.net_arch=[16, 16]",
            "policy_kwargs.activation_fn=tanh",
            "learning_rate=lin_1e-3",
            "normalize=false",
        ]
    )
    assert parsed == {
        "n_steps": 64,
        "learning_rate": "lin_1e-3",
        "normalize": False,
        "policy_kwargs": {"net_arch": [16, 16], "activation_fn": "tanh"},
    }


@pytest.mark.parametrize("item", ["n_steps", "=3", "a..b=1", "x=[1, 2"])
def test_malformed_set_is_rejected_naming_it(item: str) -> None:
    with pytest.raises(ConfigError, match="Malformed --set"):
        parse_set([item])


def test_overrides_merge_into_policy_kwargs_and_win_over_the_file() -> None:
    hp = resolve_agent("ppo", "HalfCheetah-v5", parse_set(["policy_kwargs.net_arch=[16]", "n_epochs=3"]))
    assert hp.kwargs["policy_kwargs"] == {
        "log_std_init": -2,
        "ortho_init": False,
        "activation_fn": "relu",
        "net_arch": [16],
    }
    assert hp.kwargs["n_epochs"] == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_stepz": 5}, "Unknown PPO hyperparameter 'n_stepz'.*n_steps"),
        ({"n_steps": "many"}, "n_steps='many'.*an integer"),
        ({"gamma": True}, "gamma=True.*a number"),
        ({"learning_rate": "fast"}, "Invalid learning_rate: 'fast'.*lin_"),
        ({"policy_kwargs": {"activation_fn": "nn.ReLU"}}, "Unknown activation_fn 'nn.ReLU'.*relu"),
        ({"policy_kwargs": {"optimizer_kwargs": {"eps": 1e-5}}}, "optimizer comes from rlopt"),
        ({"policy_kwargs": {"net_arc": [8]}}, "Unknown policy_kwargs key 'net_arc'"),
        ({"normalize": "yes"}, "Invalid normalize: 'yes'"),
        ({"n_envs": 4}, "use --n-envs"),
    ],
)
def test_bad_hyperparameters_are_rejected_naming_the_value(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_agent("ppo", "HalfCheetah-v5", overrides)


def test_lr_replaces_the_initial_value_and_keeps_the_schedule_shape() -> None:
    hp = resolve_agent("ppo", "HalfCheetah-v5", {"learning_rate": "lin_7.3e-4"})
    schedule = to_sb3_kwargs(hp)["learning_rate"]
    assert isinstance(schedule, LinearSchedule)
    assert schedule(1.0) == pytest.approx(7.3e-4) and schedule(0.5) == pytest.approx(3.65e-4)
    hp = resolve_agent("sac", "Hopper-v5", lr=1e-3)
    assert initial_learning_rate(hp) == 1e-3
    with pytest.raises(ConfigError, match="--lr or --set learning_rate"):
        resolve_agent("sac", "Hopper-v5", {"learning_rate": 1e-3}, lr=1e-3)


def test_task_without_entry_falls_back_to_sb3_defaults_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="rlopt.config.agents"):
        hp = resolve_agent("sac", "Pendulum-v1")
    assert "SB3 defaults" in caplog.text and "Pendulum-v1" in caplog.text
    assert hp.source.startswith("SB3 SAC defaults") and hp.normalize is None
    assert hp.kwargs == {"learning_rate": 3e-4}


def _user_data(tmp_path: Path, kind: str, name: str, content: str | bytes) -> Path:
    """``tmp_path/data/<kind>/<name>`` with ``content``: a user's own data folder for ``RLOPT_DATA``."""
    path = tmp_path / "data" / kind / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


USER_PPO = """\
tasks:
  InvertedPendulum-v5:
    source: my own tuning
    n_steps: 64
    batch_size: 32
    learning_rate: 3e-4
"""


def test_rlopt_data_points_at_a_users_agent_file_and_the_rest_stays_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _user_data(tmp_path, "agents", "ppo.yaml", USER_PPO)
    monkeypatch.setenv("RLOPT_DATA", str(tmp_path / "data"))
    assert agent_file("ppo") == path and known_tasks("ppo") == ["InvertedPendulum-v5"]
    hp = resolve_agent("ppo", "InvertedPendulum-v5")
    assert hp.source == "my own tuning" and hp.kwargs["learning_rate"] == 3e-4 and hp.kwargs["n_steps"] == 64
    assert set(known_tasks("sac")) == MUJOCO_V5  # no sac.yaml there: the shipped one
    monkeypatch.setenv("RLOPT_DATA", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"^RLOPT_DATA='.*nope' is not a folder \(accepted: a folder "):
        known_tasks("ppo")


def _train(tmp_path: Path, data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "rlopt", "train", "--env", "InvertedPendulum-v5", "--timesteps", "64", *args],
        cwd=work, capture_output=True, text=True, timeout=120, env={**os.environ, "RLOPT_DATA": str(data)},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("ppo.yaml", USER_PPO + "    n_steps: 1\n", "not valid YAML at line 7: key 'n_steps' is given twice"),
        ("ppo.yaml", USER_PPO.encode("utf-16"), "not a UTF-8 text file (byte 0xff at offset 0; accepted: "),
    ],
    ids=["repeated key", "UTF-16"],
)
def test_rlopt_train_refuses_a_bad_user_agent_file_in_one_line_naming_it(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = _user_data(tmp_path, "agents", name, content)
    proc = _train(tmp_path, tmp_path / "data")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rlopt: error: {path}: {message}"), proc.stderr
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tasks: {}\ntasks: {}\n", "not valid YAML at line 2: key 'tasks' is given twice"),
        ("tasks: [InvertedPendulum-v5]\n", "expected a 'tasks' mapping of task id"),
        ("tasks:\n  Hopper-v5: 3\n", "expected a 'tasks' mapping of task id"),
        ("- 1\n", "expected a 'tasks' mapping of task id"),
    ],
)
def test_bad_user_agent_files_are_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, message: str
) -> None:
    path = _user_data(tmp_path, "agents", "sac.yaml", content)
    monkeypatch.setenv("RLOPT_DATA", str(tmp_path / "data"))
    with pytest.raises(ConfigError) as info:
        resolve_agent("sac", "Hopper-v5")
    assert str(info.value).startswith(f"{path}: {message}")
