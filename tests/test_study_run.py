"""A tiny real study end to end on SQLite with two workers: trials, divergence, resume, records, status."""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import optuna
import pytest
from _study_files import arm_trials, run_rlopt, write_study
from optuna.trial import TrialState

from rlopt.analysis.load import load_runs
from rlopt.config.suites import find_task
from rlopt.stats import iqm

pytestmark = pytest.mark.slow

OPTIMIZERS = """\
  - optimizer: adam
  - optimizer: adopt
    beta2: [0.99, 0.9999]
  - optimizer: sgd
    label: sgd-huge-lr
    lr: 1.0e6            # diverges within the first update
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("study")
    path = write_study(folder, "tiny", OPTIMIZERS)
    first = run_rlopt("study", "run", path, "--workers", "2", "--runs-dir", folder / "runs", "--no-plots",
                      cwd=folder)
    assert first.returncode == 0, first.stderr[-3000:]
    study_dir = folder / "runs" / "tiny"
    url = f"sqlite:///{study_dir / 'study.db'}"
    return {"folder": folder, "path": path, "dir": study_dir, "url": url, "first": first,
            "trials": {arm: arm_trials(url, "tiny", arm) for arm in ("adam", "adopt", "sgd-huge-lr")}}


def test_every_grid_point_runs_once_with_two_workers_sharing_sqlite(study: dict[str, Any]) -> None:
    trials = study["trials"]
    assert [len(trials[a]) for a in ("adam", "adopt", "sgd-huge-lr")] == [1, 2, 1]
    adopt = trials["adopt"]
    assert all(t.state == TrialState.COMPLETE for t in trials["adam"] + adopt)
    assert sorted(t.user_attrs["betas"][1] for t in adopt) == [0.99, 0.9999]
    assert {t.user_attrs["setting"] for t in adopt} == {"adopt b2=0.99", "adopt b2=0.9999"}
    workers = {t.user_attrs["worker"] for a in trials.values() for t in a}
    assert len(workers) == 2, workers  # both workers took trials
    # progress while a trial trains: a line per evaluation of each run, the worker named once
    log = study["first"].stderr
    assert "adam trial 0 (adam): InvertedPendulum-v5 seed 0 at 128 of 256 env steps" in log, log[-2000:]
    assert "worker 1: " not in log and "[worker 1]" in log
    assert "study tiny: finished, 4 of 4 trials; next: rlopt report" in study["first"].stdout
    storage = optuna.storages.RDBStorage(study["url"], skip_compatibility_check=True)
    # optuna-dashboard titles the objective with the metric name, not "Objective 0"
    assert optuna.load_study(study_name="tiny/adam", storage=storage).metric_names == ["iqm final_return"]


def test_trial_value_is_the_iqm_of_the_runs_final_returns(study: dict[str, Any]) -> None:
    records = load_runs(study["dir"])
    for trial in study["trials"]["adopt"]:
        finals = [r.returns[-1] for r in records if r.params["arm"] == "adopt" and r.trial == trial.number]
        assert len(finals) == 2
        assert trial.value == pytest.approx(float(iqm(np.array(finals))))
        assert [trial.intermediate_values[s] for s in (128, 256)][-1] == pytest.approx(trial.value)


def test_diverging_trial_is_recorded_with_its_reason_and_the_study_goes_on(study: dict[str, Any]) -> None:
    (sgd,) = study["trials"]["sgd-huge-lr"]
    # A result, not a pruned trial: complete, marked diverged, and scored by the stated rule (its runs'
    # remaining evaluations at the random policy's return), not at its last evaluation.
    assert sgd.state == TrialState.COMPLETE
    assert sgd.user_attrs["outcome"] == "diverged" and sgd.user_attrs["diverged_runs"] == 2
    assert "2 of 2 runs diverged" in sgd.user_attrs["reason"]
    assert "random-policy return" in sgd.user_attrs["reason"]
    assert "non-finite" in sgd.user_attrs["reason"]
    assert sgd.user_attrs["lr"] == 1.0e6
    assert sgd.value == pytest.approx(find_task("InvertedPendulum-v5").random_return)
    assert sgd.value != pytest.approx(list(sgd.intermediate_values.values())[-1])


def test_load_runs_returns_one_record_per_run_with_its_curve(study: dict[str, Any]) -> None:
    records = load_runs(study["dir"])
    assert len(records) == 4 * 2
    trials = (("adam", 0), ("adopt", 0), ("adopt", 1), ("sgd-huge-lr", 0))
    assert {(r.params["arm"], r.trial, r.seed) for r in records} == {
        (arm, n, s) for arm, n in trials for s in (0, 1)}
    for record in records:
        assert record.study == "tiny" and record.task == "InvertedPendulum-v5"
        assert record.run_dir.is_dir() and record.run_dir.is_relative_to(study["dir"])
        with (record.run_dir / "eval.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert record.timesteps.tolist() == [int(r["timesteps"]) for r in rows]
        assert record.returns.tolist() == [float(r["mean_return"]) for r in rows]
        if record.optimizer == "sgd":
            assert (record.trial_state, record.metrics["status"]) == ("COMPLETE", "diverged")
        else:
            assert (record.trial_state, record.metrics["status"]) == ("COMPLETE", "ok")
            assert record.timesteps.tolist() == [128, 256]
    adopt = {r.setting: r.params for r in records if r.optimizer == "adopt"}
    assert adopt["adopt b2=0.9999"]["betas"] == (0.9, 0.9999)
    assert adopt["adopt b2=0.9999"]["eps"] == 1e-6 and adopt["adopt b2=0.9999"]["kappa"] == 1.0


def test_every_run_writes_tensorboard_events_under_the_study_folder(study: dict[str, Any]) -> None:
    events = list(study["dir"].glob("*/trial_*/*/events.out.tfevents.*"))
    assert len({e.parts[-4:-1] for e in events}) == 8


def test_status_shows_progress_and_failures_and_writes_plots(study: dict[str, Any]) -> None:
    result = run_rlopt("study", "status", "tiny", "--runs-dir", study["folder"] / "runs", cwd=study["folder"])
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for text in ("adopt b2=0.9999", "Best trials", "Failures", "diverged", "non-finite"):
        assert text in out, out
    plots = sorted(p.name for p in (study["dir"] / "plots").glob("*.png"))
    assert "objective_by_setting.png" in plots and "adopt_intermediate.png" in plots  # grid: no history


def test_rerunning_the_same_command_resumes_and_adds_nothing(study: dict[str, Any]) -> None:
    folders = sorted(study["dir"].glob("*/trial_*"))
    again = run_rlopt("study", "run", study["path"], "--runs-dir", study["folder"] / "runs", "--no-plots",
                      cwd=study["folder"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"study tiny: already finished, 4 of 4 trials; next: rlopt report {study['dir']}" in again.stdout
    for arm, before in study["trials"].items():
        after = arm_trials(study["url"], "tiny", arm)
        assert [(t.number, t.state, t.value) for t in after] == [(t.number, t.state, t.value) for t in before]
    assert sorted(study["dir"].glob("*/trial_*")) == folders
    assert (study["dir"] / "command.txt").read_text().startswith("rlopt study run")
