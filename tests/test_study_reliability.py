"""Reliability of studies with real processes: SIGKILLed worker, pruning, several workers on PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pytest
from _pg import postgres_server
from _processes import alive, cpu_load, descendants, wait_for
from _study_files import arm_trials, rlopt_command, run_rlopt, write_study
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from rlopt.analysis.load import load_runs
from rlopt.stats import iqm

pytestmark = pytest.mark.slow

def test_killed_worker_trial_goes_stale_is_retried_and_finished_trials_are_kept(tmp_path: Path) -> None:
    grid = "  - optimizer: adopt\n    beta2: [0.99, 0.9999]\n"
    path = write_study(tmp_path, "killed", grid, timesteps=1536)
    study_dir = tmp_path / "runs" / "killed"
    url = f"sqlite:///{study_dir / 'study.db'}"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # one run at a time, so the kill lands after the second trial's first seed finished, during its second
    command = rlopt_command("study", "run", path, "--runs-dir", tmp_path / "runs", "--no-plots",
                            "--parallel-runs", "1")
    worker = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        def second_seed_of_second_trial_is_training() -> bool:
            assert worker.poll() is None, worker.stderr.read()[-3000:] if worker.stderr else ""
            if not (study_dir / "study.db").exists():
                return False
            try:
                trials = arm_trials(url, "killed", "adopt")
            except (KeyError, optuna.exceptions.StorageInternalError, SQLAlchemyError):
                return False  # the study is being created
            if [t.state for t in trials] != [TrialState.COMPLETE, TrialState.RUNNING]:
                return False
            first, second = (study_dir / d for d in trials[1].user_attrs.get("run_dirs", ["-", "-"]))
            evals = second / "eval.csv"
            return ((first / "metrics.json").is_file() and '"ok"' in (first / "metrics.json").read_text()
                    and evals.exists() and len(evals.read_text().splitlines()) >= 2)

        wait_for(second_seed_of_second_trial_is_training, "the second trial's second seed to be training")
        children = descendants(worker.pid)
        assert children, "the trial's runs should be processes below the worker"
        before = arm_trials(url, "killed", "adopt")
        finished_seed = study_dir / before[1].user_attrs["run_dirs"][0]
        finished_curve = (finished_seed / "eval.csv").read_text()
        finished_metrics = (finished_seed / "metrics.json").read_text()
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()
    wait_for(lambda: not any(alive(pid) for pid in children), "the killed worker's runs to exit")

    again = run_rlopt("study", "run", path, "--runs-dir", tmp_path / "runs", "--no-plots", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = arm_trials(url, "killed", "adopt")
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE], (
        [(t.number, t.state, t.user_attrs.get("reason")) for t in trials], again.stderr[-3000:])
    assert (trials[0].datetime_complete, trials[0].value) == (before[0].datetime_complete, before[0].value)
    assert trials[2].system_attrs["failed_trial"] == 1
    assert trials[2].system_attrs["retry_history"] == [1]
    assert trials[2].params == trials[1].params
    assert sorted(t.user_attrs["setting"] for t in trials if t.state == TrialState.COMPLETE) == [
        "adopt b2=0.99", "adopt b2=0.9999"]
    killed_dirs, retry_dirs = trials[1].user_attrs["run_dirs"], trials[2].user_attrs["run_dirs"]
    assert retry_dirs == [d.replace("/trial_0001-", "/trial_0002-") for d in killed_dirs]
    assert all((study_dir / d / "metrics.json").is_file() for d in retry_dirs)
    # The seed that finished before the kill was moved into the retry, not trained again
    reused = study_dir / retry_dirs[0]
    assert not (study_dir / killed_dirs[0]).exists()
    assert (reused / "eval.csv").read_text() == finished_curve
    assert (reused / "metrics.json").read_text() == finished_metrics
    assert "1 of them finished by an earlier attempt" in again.stderr
    # and the report's loader sees exactly one run per (setting, seed) among complete trials
    complete = [r for r in load_runs(study_dir) if r.trial_state == "COMPLETE"]
    assert sorted((r.setting, r.seed) for r in complete) == [
        ("adopt b2=0.99", 0), ("adopt b2=0.99", 1), ("adopt b2=0.9999", 0), ("adopt b2=0.9999", 1)]
    status = run_rlopt("study", "status", study_dir, "--no-plots", cwd=tmp_path)
    assert "stopped sending heartbeats" in status.stdout, status.stdout


def test_pruned_trial_of_a_searched_setting_stops_all_of_its_runs(tmp_path: Path) -> None:
    path = write_study(tmp_path, "pruned", "  - optimizer: adam\n    lr: {low: 1.0e-4, high: 1.0e-3}\n",
                       timesteps=4096, extra="sampler: {name: random, seed: 0}\nn_trials: 1\n"
                                             "pruner: {name: threshold, lower: 1.0e9}")
    result = run_rlopt("study", "run", path, "--runs-dir", tmp_path / "runs", "--no-plots", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (trial,) = arm_trials(f"sqlite:///{tmp_path / 'runs' / 'pruned' / 'study.db'}", "pruned", "adam")
    assert trial.state == TrialState.PRUNED and trial.user_attrs["outcome"] == "pruned"
    assert "threshold pruner at step 128" in trial.user_attrs["reason"]
    assert trial.distributions["lr"].log and 1e-4 <= trial.params["lr"] <= 1e-3
    assert trial.user_attrs["lr"] == trial.params["lr"]
    records = load_runs(tmp_path / "runs" / "pruned")
    assert len(records) == 2
    for record in records:
        assert record.metrics["status"] == "pruned" and record.params["lr"] == trial.params["lr"]
        assert record.metrics["timesteps_done"] < 4096
    # the pruner saw the across-seed aggregate of the first evaluation
    first = float(iqm(np.array([r.returns[0] for r in records])))
    assert trial.intermediate_values == {128: pytest.approx(first)}


def test_two_workers_on_postgresql_run_each_grid_point_exactly_once(tmp_path: Path) -> None:
    grid = "  - optimizer: adopt\n    beta2: [0.9, 0.99, 0.999, 0.9999]\n"
    path = write_study(tmp_path, "shared", grid, seeds=1)
    with postgres_server() as url, cpu_load(2):  # a loaded machine: a busy loop per core beside the workers
        result = run_rlopt("study", "run", path, "--workers", "2", "--storage", url, "--runs-dir",
                           tmp_path / "runs", "--no-plots", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        trials = arm_trials(url.replace("postgresql://", "postgresql+psycopg2://"), "shared", "adopt")
        again = run_rlopt("study", "run", path, "--storage", url, "--runs-dir", tmp_path / "runs",
                          "--no-plots", cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        assert len(arm_trials(url.replace("postgresql://", "postgresql+psycopg2://"), "shared", "adopt")) == 4
        records = load_runs(tmp_path / "runs" / "shared", storage=url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert sorted(t.user_attrs["betas"][1] for t in trials) == [0.9, 0.99, 0.999, 0.9999]
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert len(records) == 4 and all(r.metrics["status"] == "ok" for r in records)
