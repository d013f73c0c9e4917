"""What TensorBoard shows of a run: where its event files lie, and its row in the HParams dashboard.

**Run names.** TensorBoard names a run by the folder of its event files, relative to ``--logdir``. The
event files lie directly in the run folder, so the name is the run folder's path:
``tensorboard --logdir runs`` shows ``train/ppo-HalfCheetah-v5-adopt-s0-<timestamp>`` for
``rlopt train`` and ``<study>/<arm>/trial_0003-b2=0.999/Hopper-v5_seed1`` for a study's run
(:func:`rlopt.study.plan.trial_folder`); ``--logdir runs/<study>`` drops the study's name. Run
folders written before 2026-12-02 hold their events in ``tb/`` (every run name then ended in
``/tb``); :func:`events_dir` finds either.

**HParams.** Each run writes its hyperparameters (:meth:`rlopt.run.config.TrainPlan.hparams`) as an
experiment and a session-start summary when it starts, and a session-end summary with its outcome when
it ends: ``Success`` for ``ok``, ``Failure`` for ``diverged``, ``pruned``, ``stopped`` and ``failed``;
a run still training, or killed, shows ``Unknown``. The dashboard takes its columns from one run's
experiment summary (the first it finds) and sorts them by name before it serves them
(``_sort_and_reduce_to_hparams_limit`` in ``tensorboard/plugins/hparams/backend_context.py``, 2.21: by
``differs``, false in a run's own summary, then by name), and it shows the first five. So every run
lists the same columns, :data:`HPARAM_COLUMNS`, present or not (SGD's betas are blank), each name starts
with its rank (``01_optimizer``: optimizer, betas, lr, task and seed first) and the plain name
(``optimizer``) is the display name, which the dashboard's columns, filters and CSV download show.

.. warning::
    A run's own extra optimizer arguments (``opt_gamma`` of ``dgclip``, ``opt_rho`` of ``adamssm``) are
    columns only when the dashboard happens to read the experiment summary of a run of that optimizer:
    in a study that compares it with another optimizer they may be missing (the run names still say
    the setting).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

EVENTS_GLOB = "events.out.tfevents.*"
"""The name pattern of TensorBoard event files."""

LEGACY_EVENTS_DIR = "tb"
"""Where run folders written before 2026-12-02 hold their event files."""

STRING, NUMBER, BOOL = "DATA_TYPE_STRING", "DATA_TYPE_FLOAT64", "DATA_TYPE_BOOL"

HPARAM_COLUMNS: dict[str, str] = {
    "optimizer": STRING,
    "beta1": NUMBER,
    "beta2": NUMBER,
    "lr": NUMBER,
    "env": STRING,
    "seed": NUMBER,
    "beta3": NUMBER,
    "algo": STRING,
    "eps": NUMBER,
    "weight_decay": NUMBER,
    "clipping": STRING,
    "timesteps": NUMBER,
    "n_envs": NUMBER,
}
"""Every run's HParams columns, first to last, with their types; a run's extra optimizer arguments
(``opt_<key>``) come after them, by name. ``beta3`` (Adan's) comes after the task and the seed, so that
the five columns shown at first are useful for every optimizer. A rank stays with its name whatever a
run lacks, so runs of a study that differ in which hyperparameters they have share every column."""

STATUS = {"ok": "STATUS_SUCCESS"}
"""A run's HParams status by its outcome (``metrics.json`` ``status``); any other is a failure."""


def events_dir(run_dir: Path) -> Path:
    """The folder holding ``run_dir``'s TensorBoard event files (``run_dir``, or ``tb/`` in older runs)."""
    legacy = Path(run_dir) / LEGACY_EVENTS_DIR
    if legacy.is_dir() and any(legacy.glob(EVENTS_GLOB)):
        return legacy
    return Path(run_dir)


def event_files(run_dir: Path) -> list[Path]:
    """``run_dir``'s TensorBoard event files, oldest first (by name, which starts with the time)."""
    return sorted(events_dir(run_dir).glob(EVENTS_GLOB))


def hparam_name(key: str) -> str:
    """The name ``key`` is logged under: its rank in :data:`HPARAM_COLUMNS` and itself (``01_optimizer``)."""
    order = list(HPARAM_COLUMNS)
    rank = order.index(key) + 1 if key in order else len(order) + 1
    return f"{rank:02d}_{key}"


def _type(value: Any) -> str:
    if isinstance(value, bool):
        return BOOL
    return NUMBER if isinstance(value, (int, float)) else STRING


def _summary(tag: str, data: Any) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import metadata

    return Summary(value=[Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data))])


def start_summaries(hparams: Mapping[str, Any], metrics: Sequence[str]) -> list[Any]:
    """The experiment and session-start summaries of a run, for the HParams dashboard.

    Args:
        hparams: plain names (``optimizer``, ``beta1``...) to ``int``, ``float``, ``str`` or ``bool``
            values; ``None`` values are left out.
        metrics: the scalar tags the dashboard shows as metric columns.
    """
    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionStartInfo

    given = {key: value for key, value in hparams.items() if value is not None}
    unknown = [key for key, value in given.items() if not isinstance(value, (int, float, str, bool))]
    if unknown:
        raise TypeError(f"hparams {unknown}: not int, float, str or bool")
    columns = {**HPARAM_COLUMNS, **{k: _type(v) for k, v in sorted(given.items()) if k not in HPARAM_COLUMNS}}
    experiment = api_pb2.Experiment(
        time_created_secs=time.time(),
        hparam_infos=[
            api_pb2.HParamInfo(name=hparam_name(key), display_name=key, type=api_pb2.DataType.Value(kind))
            for key, kind in columns.items()
        ],
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag)) for tag in metrics],
    )
    start = SessionStartInfo(start_time_secs=time.time())
    for key, value in given.items():
        slot = start.hparams[hparam_name(key)]
        if isinstance(value, bool):
            slot.bool_value = value
        elif isinstance(value, (int, float)):
            slot.number_value = value
        else:
            slot.string_value = value
    return [
        _summary(metadata.EXPERIMENT_TAG, HParamsPluginData(experiment=experiment)),
        _summary(metadata.SESSION_START_INFO_TAG, HParamsPluginData(session_start_info=start)),
    ]


def end_summary(status: str) -> Any:
    """The session-end summary of a run whose ``metrics.json`` status is ``status``."""
    from tensorboard.plugins.hparams import api_pb2, metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo

    end = SessionEndInfo(
        status=api_pb2.Status.Value(STATUS.get(status, "STATUS_FAILURE")), end_time_secs=time.time()
    )
    return _summary(metadata.SESSION_END_INFO_TAG, HParamsPluginData(session_end_info=end))


def write_hparams_start(writer: Any, hparams: Mapping[str, Any], metrics: Sequence[str]) -> None:
    """Write :func:`start_summaries` with ``writer`` (a ``torch.utils.tensorboard.SummaryWriter``)."""
    for summary in start_summaries(hparams, metrics):
        writer.file_writer.add_summary(summary)
    writer.flush()


def write_hparams_end(writer: Any, status: str) -> None:
    """Write :func:`end_summary` with ``writer``."""
    writer.file_writer.add_summary(end_summary(status))
    writer.flush()
