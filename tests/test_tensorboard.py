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
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from rlopt.run.config import TrainConfig
from rlopt.run.tensorboard import EVENTS_GLOB
from rlopt.run.train import run_training
from rlopt.study.plan import RunKey, trial_folder
from rlopt.study.space import Setting

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
ADOPT_B2 = Setting(
    arm="adopt",
    optimizer="adopt",
    label="adopt b2=0.99",
    values={"beta2": 0.99},
    lr=None,
    betas=(0.9, 0.99),
    eps=None,
    weight_decay=None,
)
ADAN = Setting(
    arm="adan", optimizer="adan", label="adan", values={}, lr=None, betas=None, eps=None, weight_decay=None
)
PPO_RUN_NAME = "adopt/trial_0003-b2=0.99/InvertedPendulum-v5_seed0"
SAC_RUN_NAME = "adan/trial_0000/InvertedPendulum-v5_seed1"
"""The run names TensorBoard gives the two runs of the study folder they lie in (``--logdir <study>``)."""
FIRST_COLUMNS = ["optimizer", "beta1", "beta2", "lr", "env", "seed"]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("study")


@pytest.fixture(scope="module")
def ppo_run(study_dir: Path, tiny_agent: dict) -> Path:
    """A run folder where a study puts it: ``<study>/<arm>/trial_<n>-<setting>/<task>_seed<s>``."""
    run_dir = study_dir / trial_folder(ADOPT_B2, 3) / RunKey("InvertedPendulum-v5", 0).folder()
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
def sac_run(study_dir: Path, tiny_agent: dict) -> Path:
    run_dir = study_dir / trial_folder(ADAN, 0) / RunKey("InvertedPendulum-v5", 1).folder()
    run_training(
        TrainConfig(
            algo="sac",
            env="InvertedPendulum-v5",
            optimizer="adan",
            seed=1,
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
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def _hparams(run_dir: Path) -> dict[str, HParamsPluginData]:
    """The run's HParams summaries by kind: ``experiment``, ``session_start_info``, ``session_end_info``."""
    contents = _events(run_dir).PluginTagToContent("hparams")
    return {tag.removeprefix("_hparams_/"): HParamsPluginData.FromString(c) for tag, c in contents.items()}


def test_event_files_lie_in_the_run_folder_so_tensorboard_names_the_run_by_it(
    study_dir: Path, ppo_run: Path, sac_run: Path
) -> None:
    for run_dir in (ppo_run, sac_run):
        assert len(list(run_dir.glob(EVENTS_GLOB))) == 1 and not (run_dir / "tb").exists()
    assert sorted(EventMultiplexer().AddRunsFromDirectory(str(study_dir)).Runs()) == [
        SAC_RUN_NAME,
        PPO_RUN_NAME,
    ]
    assert list(EventMultiplexer().AddRunsFromDirectory(str(ppo_run.parent)).Runs()) == [ppo_run.name]


def test_hparams_columns_put_optimizer_betas_lr_task_and_seed_first_in_tensorboards_order(
    ppo_run: Path, sac_run: Path
) -> None:
    for run_dir in (ppo_run, sac_run):
        infos = _hparams(run_dir)["experiment"].experiment.hparam_infos
        # the hparams plugin serves the columns sorted by name, and its dashboard shows the first five
        columns = [info.display_name for info in sorted(infos, key=lambda info: info.name)]
        assert columns[: len(FIRST_COLUMNS)] == FIRST_COLUMNS
        assert set(columns) >= {"beta3", "algo", "eps", "weight_decay", "clipping", "timesteps", "n_envs"}
    adan = {
        name.split("_", 1)[1]: value
        for name, value in _hparams(sac_run)["session_start_info"].session_start_info.hparams.items()
    }
    assert (adan["optimizer"].string_value, adan["beta3"].number_value, adan["seed"].number_value) == (
        "adan",
        0.99,
        1,
    )
    assert _hparams(ppo_run)["session_end_info"].session_end_info.status == api_pb2.Status.Value(
        "STATUS_SUCCESS"
    )


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
    assert set(ea.PluginTagToContent("hparams")) == {
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    }
    text = ea.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    config = json.loads(text.removeprefix("```json").removesuffix("```"))
    assert config == json.loads((ppo_run / "config.json").read_text())


def test_sac_run_has_one_optimizer_namespace_per_injected_optimizer(sac_run: Path) -> None:
    tags = set(_events(sac_run).Tags()["scalars"])
    for role in ("actor", "critic", "ent_coef"):
        assert {f"optim/{role}/{m}" for m in OPTIM_METRICS} <= tags, role
    assert {"train/critic_loss", "train/ent_coef", "eval/mean_return", *STABILITY} <= tags


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_tensorboard_server_serves_the_curves_and_hparams(
    study_dir: Path, ppo_run: Path, sac_run: Path
) -> None:
    exe = Path(sys.executable).with_name("tensorboard")
    proc = subprocess.Popen(
        [
            str(exe),
            "--logdir",
            str(study_dir),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--load_fast",
            "false",
        ],
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
            tags = _get(url + "data/plugin/scalars/tags")
            if len(tags) == 2:
                break
            time.sleep(0.1)
        assert sorted(tags) == [SAC_RUN_NAME, PPO_RUN_NAME]
        expected = {"eval/mean_return", "optim/grad_norm_pre_clip", "stability/nan_events"}
        assert expected <= set(tags[PPO_RUN_NAME])
        query = urllib.parse.urlencode({"run": PPO_RUN_NAME, "tag": "eval/mean_return"})
        points = _get(url + "data/plugin/scalars/scalars?" + query)
        with (ppo_run / "eval.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert [(p[1], pytest.approx(p[2])) for p in points] == [
            (int(r["timesteps"]), float(r["mean_return"])) for r in rows
        ]
        # as the HParams dashboard asks (tf-hparams-query-pane: hparamsLimit 1000; it shows the first five)
        request = urllib.request.Request(
            url + "data/plugin/hparams/experiment",
            data=json.dumps({"experimentName": "", "hparamsLimit": 1000}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            experiment = json.load(response)
        columns = [info["displayName"] for info in experiment["hparamInfos"]]
        assert columns[: len(FIRST_COLUMNS)] == FIRST_COLUMNS
        assert {"beta3", "eps", "algo", "weight_decay"} <= set(columns)
        assert [m["name"]["tag"] for m in experiment["metricInfos"]] == [
            "eval/mean_return",
            "eval/std_return",
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
