"""The HParams summaries of a run and where its event files are found, without training."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from rlopt.run.tensorboard import (
    HPARAM_COLUMNS,
    end_summary,
    event_files,
    events_dir,
    hparam_name,
    start_summaries,
)

ADAM = {
    "optimizer": "adam",
    "beta1": 0.9,
    "beta2": 0.999,
    "lr": 3e-4,
    "env": "Hopper-v5",
    "seed": 1,
    "algo": "ppo",
    "eps": 1e-8,
    "weight_decay": 0.0,
    "clipping": "PPO global-norm clip at 0.5",
    "timesteps": 1000,
    "n_envs": 1,
}


def _plugin_data(summary: object) -> HParamsPluginData:
    return HParamsPluginData.FromString(summary.value[0].metadata.plugin_data.content)  # type: ignore[attr-defined]


def _columns(hparams: dict) -> list[api_pb2.HParamInfo]:
    return list(_plugin_data(start_summaries(hparams, ["eval/mean_return"])[0]).experiment.hparam_infos)


def _session(hparams: dict) -> dict:
    return dict(_plugin_data(start_summaries(hparams, ["eval/mean_return"])[1]).session_start_info.hparams)


def test_sorting_by_name_as_tensorboard_does_puts_optimizer_betas_lr_task_and_seed_first() -> None:
    infos = _columns({**dict(reversed(ADAM.items())), "opt_gamma": 0.25, "opt_amsgrad": True})
    by_name = [info.display_name for info in sorted(infos, key=lambda info: info.name)]
    assert by_name[:6] == ["optimizer", "beta1", "beta2", "lr", "env", "seed"]
    assert by_name == [*HPARAM_COLUMNS, "opt_amsgrad", "opt_gamma"]


def test_every_run_lists_the_same_columns_whatever_it_lacks() -> None:
    sgd = {k: v for k, v in ADAM.items() if not k.startswith("beta")} | {"eps": None, "optimizer": "sgd"}
    assert [i.name for i in _columns(sgd)] == [i.name for i in _columns(ADAM)]
    assert set(_session(sgd)) == {hparam_name(k) for k in sgd if sgd[k] is not None}
    assert hparam_name("lr") == "04_lr" and hparam_name("opt_momentum") == "14_opt_momentum"


def test_values_keep_their_types_and_the_metrics_are_the_given_tags() -> None:
    values = _session({**ADAM, "opt_amsgrad": True})
    assert values[hparam_name("optimizer")].string_value == "adam"
    assert values[hparam_name("lr")].number_value == 3e-4
    assert values[hparam_name("opt_amsgrad")].bool_value is True
    experiment = _plugin_data(start_summaries(ADAM, ["eval/mean_return", "eval/std_return"])[0]).experiment
    assert [m.name.tag for m in experiment.metric_infos] == ["eval/mean_return", "eval/std_return"]
    with pytest.raises(TypeError, match="opt_betas"):
        start_summaries({**ADAM, "opt_betas": (0.9, 0.9)}, [])


@pytest.mark.parametrize(
    ("status", "shown"),
    [("ok", "STATUS_SUCCESS"), ("diverged", "STATUS_FAILURE"), ("pruned", "STATUS_FAILURE")],
)
def test_session_end_says_whether_the_run_finished(status: str, shown: str) -> None:
    assert _plugin_data(end_summary(status)).session_end_info.status == api_pb2.Status.Value(shown)


def test_event_files_are_found_in_the_run_folder_and_in_older_runs_tb_folder(tmp_path: Path) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    (old / "tb").mkdir(parents=True)
    new.mkdir()
    (new / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    (old / "tb" / "events.out.tfevents.1.host.1.0").write_bytes(b"")
    assert events_dir(new) == new and events_dir(old) == old / "tb"
    assert [p.parent for p in event_files(new) + event_files(old)] == [new, old / "tb"]
    assert event_files(tmp_path / "missing") == []
