"""`rlopt train` driven as a user would: bad input is one line, exit 2, and nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from rlopt.cli.main import build_parser
from rlopt.cli.train import config_from_args
from rlopt.run.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent

# (extra arguments, text the error must contain: the bad value and what is accepted)
BAD_INPUT = [
    (["--env", "Nope-v5"], ["'Nope-v5'", "HalfCheetah-v5"]),
    (["--algo", "dqn"], ["'dqn'", "ppo, sac"]),
    (["--optimizer", "adamz"], ["'adamz'", "adopt"]),
    (["--optimizer", "adopt", "--betas", "0.9,1.2"], ["1.2", "0 <= beta < 1"]),
    (["--optimizer", "adan", "--betas", "0.9,0.99"], ["has 2 values", "exactly 3"]),
    (["--betas", "a,b"], ["'a,b'", "comma-separated numbers"]),
    (["--optimizer", "dgclip", "--eps", "1e-8"], ["eps", "dgclip", "no eps"]),
    (["--set", "n_steps"], ["'n_steps'", "key=value"]),
    (["--set", "n_stepz=64"], ["'n_stepz'", "n_steps"]),
    (["--set", "batch_size=1"], ["batch_size", "greater than 1"]),
    (["--set", "policy_kwargs.activation_fn=nn.ReLU"], ["'nn.ReLU'", "relu"]),
    (["--device", "tpu"], ["'tpu'", "cpu, cuda, auto"]),
    (["--threads", "0"], ["threads: 0", "integer >= 1"]),
    (["--eval-episodes", "0"], ["eval_episodes: 0", "integer >= 1"]),
    (["--checkpoint-every", "0"], ["checkpoint_every: 0", "integer >= 1"]),
    (["--checkpoint-every", "1000", "--set", "use_sde=true"], ["use_sde=True", "use_sde=False"]),
    (["--resume"], ["resume without a run folder", "--run-dir"]),
]


def _rlopt(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rlopt", "train", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(("args", "expected"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_leaves_no_run_folder(
    args: list[str], expected: list[str], tmp_path: Path
) -> None:
    proc = _rlopt(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlopt: error: "), proc.stderr
    for text in expected:
        assert text in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_existing_run_folder_is_refused_and_kept_as_it_was(tmp_path: Path) -> None:
    run_dir = tmp_path / "taken"
    run_dir.mkdir()
    (run_dir / "eval.csv").write_text("precious\n")
    proc = _rlopt("--run-dir", str(run_dir), cwd=tmp_path)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert [p.name for p in run_dir.iterdir()] == ["eval.csv"]
    assert (run_dir / "eval.csv").read_text() == "precious\n"


def test_script_entry_point_trains_like_the_cli(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "train.py"),
            "--algo",
            "ppo",
            "--env",
            "InvertedPendulum-v5",
            "--optimizer",
            "adopt",
            "--betas",
            "0.9,0.9999",
            "--seed",
            "3",
            "--timesteps",
            "128",
            "--set",
            "n_steps=64",
            "--set",
            "batch_size=32",
            "--set",
            "policy_kwargs.net_arch=[8]",
            "--eval-episodes",
            "1",
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok:")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["optimizer"]["betas"] == [0.9, 0.9999] and config["seed"] == 3
    assert "--betas 0.9,0.9999" in (run_dir / "command.txt").read_text()


def test_cli_arguments_become_a_typed_config_that_round_trips() -> None:
    args = build_parser().parse_args(
        [
            "train",
            "--algo",
            "sac",
            "--env",
            "Hopper-v5",
            "--optimizer",
            "adan",
            "--betas",
            "0.98,0.92,0.99",
            "--lr",
            "1e-3",
            "--eps",
            "1e-8",
            "--weight-decay",
            "0.02",
            "--optimizer-arg",
            "max_grad_norm=1.0",
            "--set",
            "learning_starts=100",
            "--set",
            "policy_kwargs.net_arch=[64,64]",
            "--timesteps",
            "5000",
            "--n-envs",
            "2",
            "--eval-freq",
            "1000",
            "--eval-episodes",
            "3",
            "--save-model",
            "--threads",
            "2",
            "--seed",
            "7",
        ]
    )
    config = config_from_args(args)
    assert isinstance(config, TrainConfig)
    assert config.threads == 2 and config.eval_episodes == 3
    assert config.betas == (0.98, 0.92, 0.99) and config.optimizer_extra == {"max_grad_norm": 1.0}
    assert config.overrides == {"learning_starts": 100, "policy_kwargs": {"net_arch": [64, 64]}}
    again = config_from_args(build_parser().parse_args(["train", *config.to_cli_args()]))
    assert again.to_cli_args() == config.to_cli_args()
    assert (again.betas, again.overrides, again.optimizer_extra, again.save_model) == (
        config.betas,
        config.overrides,
        config.optimizer_extra,
        True,
    )


def test_threads_are_set_for_the_run_recorded_and_restored(tiny_config) -> None:
    import torch

    from rlopt.cli.main import main
    from rlopt.run.train import run_training

    before = torch.get_num_threads()
    seen: list[int] = []
    config = tiny_config("ppo", "adam", threads=2 if before != 2 else 1)
    run_training(config, on_eval=lambda point: seen.append(torch.get_num_threads()))
    assert seen == [config.threads] * len(seen) and seen
    assert json.loads((config.run_dir / "config.json").read_text())["threads"] == config.threads
    assert "--threads" in (config.run_dir / "command.txt").read_text()
    assert torch.get_num_threads() == before
    again = config.run_dir.with_name("cli")
    assert main(["train", *replace(config, run_dir=again).to_cli_args(), "--no-progress"]) == 0
    assert json.loads((again / "config.json").read_text())["threads"] == config.threads
