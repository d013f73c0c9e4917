"""Real training runs at tiny budgets: run folder, metrics, fidelity to plain SB3, divergence, pruning."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from rlopt.cli.main import main
from rlopt.optim._compiled import MIN_NUMEL, compiled
from rlopt.run.config import TrainConfig
from rlopt.run.evaluation import EVAL_CSV_COLUMNS, EvalPoint
from rlopt.run.train import run_training

pytestmark = pytest.mark.slow

RUN_FILES = {"config.json", "command.txt", "versions.json", "eval.csv", "metrics.json"}
METRIC_KEYS = {
    "status",
    "reason",
    "final_return",
    "best_return",
    "auc",
    "stability",
    "timesteps_done",
    "wall_time_s",
    "steps_per_s",
    "eval_time_s",
    "eval_share",
    "gradient_steps",
}


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _check_complete_run_folder(run_dir: Path, optimizer: str) -> None:
    assert {p.name for p in run_dir.iterdir()} >= RUN_FILES
    assert list(run_dir.glob("events.out.tfevents.*"))  # in the run folder: TensorBoard names the run by it
    metrics = _metrics(run_dir)
    assert set(metrics) >= METRIC_KEYS and metrics["status"] == "ok"
    assert set(metrics["stability"]) == {"nan_events", "return_collapses", "loss_spikes"}
    with (run_dir / "eval.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == EVAL_CSV_COLUMNS
    returns = [float(r["mean_return"]) for r in rows]
    assert metrics["final_return"] == returns[-1] and metrics["best_return"] == max(returns)
    assert metrics["auc"] == pytest.approx(np.mean(returns))
    assert int(rows[-1]["timesteps"]) == metrics["timesteps_done"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["optimizer"]["name"] == optimizer
    assert config["optimizer"]["eps"] == config["optimizer"]["eps"]  # recorded, possibly null (dgclip)
    assert "eps" in config["optimizer"] and "betas" in config["optimizer"]
    assert config["gradient_clipping"]["summary"]
    versions = json.loads((run_dir / "versions.json").read_text())
    assert {
        "python",
        "torch",
        "stable-baselines3",
        "gymnasium",
        "mujoco",
        "optuna",
        "rlopt",
        "git_commit",
    } <= set(versions)
    assert (run_dir / "command.txt").read_text().startswith("rlopt train")


@pytest.mark.parametrize("optimizer", ["adam", "adopt", "adan", "dgclip", "pytorch_optimizer:adopt"])
def test_ppo_trains_with_each_optimizer_and_leaves_a_complete_run_folder(tiny_config, optimizer: str) -> None:
    lr = 0.05 if optimizer == "dgclip" else None
    summary = run_training(tiny_config("ppo", optimizer, lr=lr))
    assert summary.status == "ok" and summary.timesteps_done >= 256
    _check_complete_run_folder(summary.run_dir, optimizer)
    config = json.loads((summary.run_dir / "config.json").read_text())
    assert config["optimizer"]["injected_into"] == ["policy"]
    assert config["agent"]["hyperparameters"]["n_steps"] == 128


@pytest.mark.parametrize("optimizer", ["adopt", "adan", "dgclip"])
def test_sac_trains_with_each_optimizer_and_leaves_a_complete_run_folder(tiny_config, optimizer: str) -> None:
    summary = run_training(tiny_config("sac", optimizer))
    assert summary.status == "ok"
    _check_complete_run_folder(summary.run_dir, optimizer)
    config = json.loads((summary.run_dir / "config.json").read_text())
    assert config["optimizer"]["injected_into"] == ["actor", "critic", "ent_coef"]


def test_rlopt_train_adam_reproduces_plain_sb3_ppo_exactly(tiny_config) -> None:
    """`rlopt train --optimizer adam --eps 1e-5 --optimizer-arg fused=false` (SB3's hidden eps, torch's
    default arithmetic) against plain SB3 PPO with the same hyperparameters and seed on CPU: identical
    final parameters and normalisation statistics."""
    config = tiny_config(
        "ppo", "adam", eps=1e-5, optimizer_extra={"fused": False}, save_model=True, timesteps=512,
        eval_freq=200,
    )
    assert main(["train", *config.to_cli_args(), "--no-progress"]) == 0
    hp = json.loads((config.run_dir / "config.json").read_text())["agent"]["hyperparameters"]

    env = VecNormalize(make_vec_env("InvertedPendulum-v5", n_envs=1, seed=0), gamma=hp["gamma"])
    plain = PPO("MlpPolicy", env, seed=0, device="cpu", **{**hp, "policy_kwargs": {"net_arch": [16]}})
    assert plain.policy.optimizer.param_groups[0]["eps"] == 1e-5
    plain.learn(512)

    ours = PPO.load(config.run_dir / "model.zip", device="cpu")
    theirs = plain.policy.state_dict()
    for name, tensor in ours.policy.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name
    stats = VecNormalize.load(str(config.run_dir / "vecnormalize.pkl"), make_vec_env("InvertedPendulum-v5"))
    np.testing.assert_array_equal(stats.obs_rms.mean, env.obs_rms.mean)
    env.close()


def test_rlopt_train_sac_with_fused_kernels_runs_them_for_actor_and_critic(tiny_config, caplog) -> None:
    """`rlopt train --optimizer adopt --optimizer-arg fused=true` on SAC with 128x128 networks: the actor's
    and the critic's groups (>= 16k elements each) run the compiled kernel at every update but ADOPT's
    first, the entropy coefficient's (one element) the eager rule, and the step counters agree."""
    compiled.cache_clear()  # count this run's calls into the compiled kernels only
    config = tiny_config(
        "sac", "adopt", optimizer_extra={"fused": True}, save_model=True,
        overrides={"policy_kwargs": {"net_arch": [128, 128]}},
    )
    with caplog.at_level(logging.WARNING, logger="rlopt.optim._compiled"):
        assert main(["train", *config.to_cli_args(), "--no-progress"]) == 0
    assert not [r.getMessage() for r in caplog.records if "failed to compile" in r.getMessage()]
    model = SAC.load(config.run_dir / "model.zip", device="cpu")
    updates = model._n_updates
    assert updates > 50
    for optimizer in (model.actor.optimizer, model.critic.optimizer):
        assert optimizer.defaults["fused"] is True
        assert sum(p.numel() for p in optimizer.param_groups[0]["params"]) >= MIN_NUMEL
        assert all(int(s["step"]) == updates for s in optimizer.state.values())
    # a failed compile stops the calls after the first, so every one of these ran the kernel
    calls = compiled.cache_info()
    assert calls.hits + calls.misses == 2 * (updates - 1)


def test_saved_sac_model_loads_in_plain_sb3_and_acts(tiny_config) -> None:
    summary = run_training(tiny_config("sac", "adopt", save_model=True))
    model = SAC.load(summary.run_dir / "model.zip", device="cpu")
    assert type(model.actor.optimizer).__name__ == "ADOPT"
    action, _ = model.predict(np.zeros(4, dtype=np.float32), deterministic=True)
    assert model.action_space.contains(action)


def test_huge_learning_rate_diverges_cleanly_and_the_cli_exits_1(tiny_config, tmp_path: Path) -> None:
    run_dir = tmp_path / "diverged"
    code = main(
        [
            "train",
            "--algo",
            "ppo",
            "--env",
            "InvertedPendulum-v5",
            "--optimizer",
            "sgd",
            "--lr",
            "1e12",
            "--timesteps",
            "1024",
            "--set",
            "n_steps=128",
            "--set",
            "batch_size=64",
            "--set",
            "max_grad_norm=.inf",
            "--set",
            "policy_kwargs.net_arch=[16]",
            "--eval-freq",
            "5000",
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ]
    )
    assert code == 1
    metrics = _metrics(run_dir)
    assert metrics["status"] == "diverged"
    assert "non-finite" in metrics["reason"]
    assert metrics["stability"]["nan_events"] >= 1
    assert metrics["timesteps_done"] < 1024


def test_sac_with_a_huge_learning_rate_stops_as_diverged_well_before_its_budget(tiny_config) -> None:
    """SAC checks its parameters every PARAMETER_CHECK_EVERY steps, not at each one-step rollout."""
    summary = run_training(tiny_config("sac", "sgd", lr=1e12, timesteps=2000, eval_freq=5000))
    assert summary.status == "diverged", summary.reason
    assert "non-finite" in summary.reason
    assert summary.timesteps_done < 2000
    assert _metrics(summary.run_dir)["status"] == "diverged"


def test_on_eval_raising_prunes_the_run_and_propagates(tiny_config) -> None:
    seen: list[EvalPoint] = []

    def prune_at_second(point: EvalPoint) -> None:
        seen.append(point)
        if len(seen) == 2:
            raise optuna.TrialPruned(f"pruned at {point.timesteps}")

    config: TrainConfig = tiny_config("ppo", "adam", timesteps=2048)
    with pytest.raises(optuna.TrialPruned):
        run_training(config, on_eval=prune_at_second)
    metrics = _metrics(config.run_dir)
    assert metrics["status"] == "pruned" and "TrialPruned" in metrics["reason"]
    assert metrics["timesteps_done"] < 2048
    assert [p.timesteps for p in seen] == [128, 256]
    assert seen[0].returns and seen[0].mean_return == pytest.approx(np.mean(seen[0].returns))


def test_on_eval_raising_anything_else_stops_the_run(tiny_config) -> None:
    def stop(point: EvalPoint) -> None:
        raise RuntimeError("enough")

    config = tiny_config("sac", "adam")
    with pytest.raises(RuntimeError, match="enough"):
        run_training(config, on_eval=stop)
    assert _metrics(config.run_dir)["status"] == "stopped"


@pytest.mark.parametrize("task", ["InvertedPendulum-v5", "HalfCheetah-v5"])
def test_smoke_suite_tasks_train_at_their_suite_budget(tiny_config, task: str) -> None:
    from rlopt.config.suites import load_suite, normalized_score

    spec = load_suite("smoke").task(task)
    summary = run_training(
        tiny_config(
            "ppo",
            "adan",
            env=task,
            timesteps=spec.timesteps,
            eval_freq=spec.eval_freq,
            eval_episodes=spec.eval_episodes,
        )
    )
    assert summary.status == "ok" and summary.timesteps_done >= spec.timesteps
    assert [p.timesteps for p in summary.evaluations][:2] == [spec.eval_freq, 2 * spec.eval_freq]
    assert all(len(p.returns) == spec.eval_episodes for p in summary.evaluations)
    assert np.isfinite(normalized_score(spec, summary.final_return))


def test_sac_reports_its_gradient_steps(tiny_config) -> None:
    """SB3's SAC takes one gradient step per env step once ``num_timesteps > learning_starts``."""
    summary = run_training(tiny_config("sac", "adam", timesteps=160))
    metrics = _metrics(summary.run_dir)
    assert metrics["gradient_steps"] == 160 - 64 == summary.gradient_steps
    assert metrics["reason"] == "trained 160 env steps, 96 gradient steps"


def test_sac_budget_below_learning_starts_warns_and_says_no_gradient_step_ran(tiny_config, caplog) -> None:
    config = tiny_config("sac", "adam", timesteps=160, overrides={"learning_starts": 500})
    with caplog.at_level(logging.WARNING, logger="rlopt.run.train"):
        summary = run_training(config)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("learning_starts is 500" in w and "160 env steps" in w for w in warnings), warnings
    assert summary.status == "ok" and summary.gradient_steps == 0
    assert _metrics(config.run_dir)["reason"] == (
        "trained 160 env steps, 0 gradient steps (SAC's learning_starts=500 was not passed)"
    )


def test_ppo_gradient_steps_are_its_minibatch_updates(tiny_config) -> None:
    """256 steps in rollouts of 128, 2 epochs of 2 minibatches of 64 each: 8 optimizer steps."""
    summary = run_training(tiny_config("ppo", "adopt"))
    assert summary.gradient_steps == 2 * 2 * 2 == _metrics(summary.run_dir)["gradient_steps"]


def test_fused_auto_compiles_only_past_the_break_even_and_is_recorded(tiny_config) -> None:
    """ADOPT/Adan/AdaBelief/AdamSSM default to fused="auto": the compiled kernel when the run's expected
    gradient steps reach FUSED_BREAK_EVEN, the eager rule below; an explicit fused=... is kept."""
    from rlopt.optim._compiled import FUSED_BREAK_EVEN
    from rlopt.run.config import expected_gradient_steps

    long_sac = TrainConfig(algo="sac", env="HalfCheetah-v5", optimizer="adopt", timesteps=100_000).validate()
    assert long_sac.optimizer.extra["fused"] is True
    assert long_sac.fused_auto == {"expected_gradient_steps": 90_000, "break_even": FUSED_BREAK_EVEN,
                                   "fused": True}
    short = TrainConfig(algo="sac", env="HalfCheetah-v5", optimizer="adan", timesteps=20_000).validate()
    assert short.optimizer.extra["fused"] is False and short.fused_auto["expected_gradient_steps"] == 10_000
    ppo = TrainConfig(algo="ppo", env="HalfCheetah-v5", optimizer="adabelief", timesteps=200_000).validate()
    assert ppo.fused_auto["expected_gradient_steps"] == 391 * 20 * 8 and ppo.optimizer.extra["fused"] is True
    kept = TrainConfig(algo="sac", env="HalfCheetah-v5", optimizer="adopt", timesteps=100_000,
                       optimizer_extra={"fused": False}).validate()
    assert kept.optimizer.extra["fused"] is False and kept.fused_auto is None
    assert TrainConfig(algo="sac", optimizer="adam", timesteps=100_000).validate().fused_auto is None

    config = tiny_config("sac", "adamssm")  # 96 gradient steps: eager
    plan = config.validate()
    summary = run_training(config)
    recorded = json.loads((summary.run_dir / "config.json").read_text())["optimizer"]
    assert recorded["fused_auto"]["fused"] is False and recorded["extra_effective"]["fused"] is False
    assert summary.gradient_steps == expected_gradient_steps(plan.agent, plan.timesteps, plan.n_envs) == 96
