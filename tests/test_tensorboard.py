"""What TensorBoard shows of a finished run: read from the event files and over a real server's HTTP API."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlopt.run.train import TrainConfig, run_training

pytestmark = pytest.mark.slow

OPTIM_METRICS = (
    "grad_norm_pre_clip",
    "grad_norm_post_clip",
    "update_norm",
    "update_ratio",
    "effective_step_size",
    "second_moment_sqrt_mean",
    "second_moment_sqrt_max",
)
STABILITY = ("stability/nan_events", "stability/return_collapses", "stability/loss_spikes")


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory: pytest.TempPathFactory, tiny_agent: dict) -> Path:
    run_dir = tmp_path_factory.mktemp("tb") / "ppo-adopt"
    run_training(
        TrainConfig(
            algo="ppo",
            env="InvertedPendulum-v5",
            optimizer="adopt",
            betas=(0.9, 0.99),
            timesteps=384,
            eval_freq=128,
            eval_episodes=1,
            run_dir=run_dir,
            overrides=tiny_agent["ppo"],
        )
    )
    return run_dir


@pytest.fixture(scope="module")
def sac_run(tmp_path_factory: pytest.TempPathFactory, tiny_agent: dict) -> Path:
    run_dir = tmp_path_factory.mktemp("tb") / "sac-adan"
    run_training(
        TrainConfig(
            algo="sac",
            env="InvertedPendulum-v5",
            optimizer="adan",
            timesteps=160,
            eval_freq=80,
            eval_episodes=1,
            run_dir=run_dir,
            diagnostics_interval=40,
            overrides=tiny_agent["sac"],
        )
    )
    return run_dir


def _events(run_dir: Path) -> EventAccumulator:
    ea = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def _eval_steps(run_dir: Path) -> list[int]:
    with (run_dir / "eval.csv").open() as fh:
        return [int(row["timesteps"]) for row in csv.DictReader(fh)]


def test_ppo_run_has_sb3_eval_optimizer_and_stability_curves_by_env_step(ppo_run: Path) -> None:
    ea = _events(ppo_run)
    tags = set(ea.Tags()["scalars"])
    expected = {
        "eval/mean_return",
        "eval/std_return",
        "train/loss",
        "train/value_loss",
        "rollout/ep_rew_mean",
        *(f"optim/{m}" for m in OPTIM_METRICS),
        *STABILITY,
    }
    assert expected <= tags
    assert [e.step for e in ea.Scalars("eval/mean_return")] == _eval_steps(ppo_run)
    steps = [e.step for e in ea.Scalars("optim/grad_norm_post_clip")]
    assert (
        steps == sorted(steps)
        and steps[-1] == json.loads((ppo_run / "metrics.json").read_text())["timesteps_done"]
    )
    # ADOPT's first step only initialises its second moment (no update); later ones move the parameters
    assert ea.Scalars("optim/update_norm")[-1].value > 0


def test_ppo_run_records_hparams_and_config_text(ppo_run: Path) -> None:
    ea = _events(ppo_run)
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(ea.PluginTagToContent("hparams"))
    text = ea.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    config = json.loads(text.removeprefix("```json").removesuffix("```"))
    assert config == json.loads((ppo_run / "config.json").read_text())


def test_sac_run_has_one_optimizer_namespace_per_injected_optimizer(sac_run: Path) -> None:
    tags = set(_events(sac_run).Tags()["scalars"])
    for role in ("actor", "critic", "ent_coef"):
        assert {f"optim/{role}/{m}" for m in OPTIM_METRICS} <= tags, role
    assert {"train/critic_loss", "train/ent_coef", "eval/mean_return", *STABILITY} <= tags


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_tensorboard_server_serves_the_curves_and_hparams(ppo_run: Path) -> None:
    exe = Path(sys.executable).with_name("tensorboard")
    proc = subprocess.Popen(
        [str(exe), "--logdir", str(ppo_run), "--host", "127.0.0.1", "--port", "0", "--load_fast", "false"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        url = None
        assert proc.stderr is not None
        for line in proc.stderr:
            match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if match:
                url = match.group(1)
                break
        assert url, "TensorBoard did not start"
        tags: dict = {}
        for _ in range(100):
            tags = _get(url + "data/plugin/scalars/tags")  # type: ignore[assignment]
            if tags.get("tb"):
                break
            time.sleep(0.1)
        assert {"eval/mean_return", "optim/grad_norm_pre_clip", "stability/nan_events"} <= set(tags["tb"])
        query = urllib.parse.urlencode({"run": "tb", "tag": "eval/mean_return"})
        points = _get(url + "data/plugin/scalars/scalars?" + query)
        with (ppo_run / "eval.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert [(p[1], pytest.approx(p[2])) for p in points] == [
            (int(r["timesteps"]), float(r["mean_return"])) for r in rows
        ]
        request = urllib.request.Request(
            url + "data/plugin/hparams/experiment",
            data=json.dumps({"experimentName": ""}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            experiment = json.load(response)
        names = {info["name"] for info in experiment["hparamInfos"]}
        assert {"optimizer", "beta1", "beta2", "lr", "eps", "algo", "env", "seed"} <= names
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
