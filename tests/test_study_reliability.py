"""Reliability of studies with real processes: a SIGKILLed worker (its trial shown stale, then retried),
pruning, several workers on PostgreSQL under CPU load."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from _pg import postgres_server
from _processes import alive, cpu_load, descendants, run_processes, wait_for
from _study_files import arm_trials, rlopt_command, run_rlopt, write_study
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from rlopt.analysis.load import load_runs
from rlopt.config.study import load_spec
from rlopt.stats import iqm
from rlopt.study.run import run_study

pytestmark = pytest.mark.slow

GRACE_S = 10  # the shortest grace period a study accepts (_study_files.TINY)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("│┃").replace("┃", "│").split("│")]


def _progress(out: str) -> dict[str, dict[str, str]]:
    """The rows of `rlopt study status`'s "Progress per setting" table by setting, each by column name."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "Progress per setting" in line)
    header = next(_cells(line) for line in lines[start:] if line.lstrip().startswith("┃"))
    rows = []
    for line in lines[start:]:
        if line.lstrip().startswith("└"):
            break
        if line.lstrip().startswith("│"):
            rows.append(dict(zip(header, _cells(line), strict=True)))
    return {row["setting"]: row for row in rows}


def test_killed_worker_trial_is_shown_stale_then_retried_and_finished_trials_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: status table cells on one line each
    grid = "  - optimizer: adopt\n    beta2: [0.99, 0.9999]\n"
    path = write_study(tmp_path, "killed", grid, timesteps=1536)
    study_dir = tmp_path / "runs" / "killed"
    url = f"sqlite:///{study_dir / 'study.db'}"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # one run at a time, so the kill lands after the second trial's first seed finished, during its second
    command = rlopt_command(
        "study", "run", path, "--runs-dir", tmp_path / "runs", "--no-plots", "--parallel-runs", "1"
    )
    worker = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    paused: list[int] = []
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
            return (
                (first / "metrics.json").is_file()
                and '"ok"' in (first / "metrics.json").read_text()
                and evals.exists()
                and len(evals.read_text().splitlines()) >= 2
            )

        wait_for(second_seed_of_second_trial_is_training, "the second trial's second seed to be training")
        # Hold the run still (SIGSTOP) while status looks: the worker and its heartbeat go on, the run
        # cannot finish before the kill
        paused = run_processes(worker.pid)
        assert paused, "the trial's run should be a process below the worker"
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        live = run_rlopt(
            "study", "status", "killed", "--runs-dir", tmp_path / "runs", "--no-plots", cwd=tmp_path
        )
        below = descendants(worker.pid)
        before = arm_trials(url, "killed", "adopt")
        finished_seed = study_dir / before[1].user_attrs["run_dirs"][0]
        finished_curve = (finished_seed / "eval.csv").read_text()
        finished_metrics = (finished_seed / "metrics.json").read_text()
        worker.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
        for pid in paused:  # let it see that its worker is gone (it holds the worker's stderr open)
            if alive(pid):
                os.kill(pid, signal.SIGCONT)
        worker.communicate()
    wait_for(lambda: not any(alive(pid) for pid in below), "the killed worker's runs to exit")

    # While the worker lived, its trial was running, not stale
    assert live.returncode == 0, live.stderr[-3000:]
    done, killed = (t.user_attrs["setting"] for t in before)  # the grid's order is the sampler's
    rows = _progress(live.stdout)
    assert (rows[done]["complete"], rows[killed]["running"]) == ("1", "1"), live.stdout
    assert all("stale" not in row for row in rows.values()) and "Stale trials" not in live.stdout

    # Past the grace period, status shows the killed worker's trial stale, with its heartbeat's age
    time.sleep(max(0.0, killed_at + GRACE_S + 1.5 - time.monotonic()))
    status = run_rlopt(
        "study", "status", "killed", "--runs-dir", tmp_path / "runs", "--no-plots", cwd=tmp_path
    )
    assert status.returncode == 0, status.stderr[-3000:]
    out = status.stdout
    row = _progress(out)[killed]
    assert (row["running"], row["stale"]) == ("", "1"), out
    assert "finished 1, stale 1" in out
    assert f"grace period of {GRACE_S} s" in out
    stale_rows = [line for line in out.splitlines() if "ago" in line]
    assert stale_rows and killed in stale_rows[0], out
    seconds = int(stale_rows[0].split(" s ago")[0].split()[-1])
    assert GRACE_S < seconds < GRACE_S + 60, stale_rows[0]
    assert "the next `rlopt study run` marks it failed" in " ".join(out.split())
    # status only reads: the trial is still RUNNING in the storage
    assert [t.state for t in arm_trials(url, "killed", "adopt")] == [TrialState.COMPLETE, TrialState.RUNNING]

    again = run_rlopt("study", "run", path, "--runs-dir", tmp_path / "runs", "--no-plots", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = arm_trials(url, "killed", "adopt")
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE], (
        [(t.number, t.state, t.user_attrs.get("reason")) for t in trials],
        again.stderr[-3000:],
    )
    assert (trials[0].datetime_complete, trials[0].value) == (before[0].datetime_complete, before[0].value)
    assert trials[2].system_attrs["failed_trial"] == 1
    assert trials[2].system_attrs["retry_history"] == [1]
    assert trials[2].params == trials[1].params
    assert sorted(t.user_attrs["setting"] for t in trials if t.state == TrialState.COMPLETE) == [
        "adopt b2=0.99",
        "adopt b2=0.9999",
    ]
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
        ("adopt b2=0.99", 0),
        ("adopt b2=0.99", 1),
        ("adopt b2=0.9999", 0),
        ("adopt b2=0.9999", 1),
    ]
    status = run_rlopt("study", "status", study_dir, "--no-plots", cwd=tmp_path)
    assert "stopped sending heartbeats" in status.stdout, status.stdout


def test_pruned_trial_of_a_searched_setting_stops_all_of_its_runs(tmp_path: Path) -> None:
    path = write_study(
        tmp_path,
        "pruned",
        "  - optimizer: adam\n    lr: {low: 1.0e-4, high: 1.0e-3}\n",
        timesteps=4096,
        extra="sampler: {name: random, seed: 0}\nn_trials: 1\npruner: {name: threshold, lower: 1.0e9}",
    )
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
    # Four grid points, so both workers take trials however the start-up race goes; one seed and one
    # evaluation each: the claims, heartbeats (every 2 s, stale after 10 s) and the server are under test
    grid = "  - optimizer: adopt\n    beta2: [0.9, 0.99, 0.999, 0.9999]\n"
    path = write_study(tmp_path, "shared", grid, seeds=1, timesteps=128)
    with postgres_server() as url:
        psycopg = url.replace("postgresql://", "postgresql+psycopg2://")
        # a loaded machine: a busy loop beside the two workers, so every core has more to do than it can
        # (imports and the run's start after a claim take longer than the grace period)
        with cpu_load(1):
            result = run_rlopt(
                "study",
                "run",
                path,
                "--workers",
                "2",
                "--storage",
                url,
                "--runs-dir",
                tmp_path / "runs",
                "--no-plots",
                cwd=tmp_path,
            )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "taken over" not in result.stderr, result.stderr[-3000:]
        trials = arm_trials(psycopg, "shared", "adopt")
        # the same study again (as the same command would): finished on the server, no worker started
        _, again = run_study(load_spec(path), storage=url, runs_dir=tmp_path / "runs")
        assert again.already and again.complete and again.finished == 4
        assert len(arm_trials(psycopg, "shared", "adopt")) == 4
        records = load_runs(tmp_path / "runs" / "shared", storage=url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert sorted(t.user_attrs["betas"][1] for t in trials) == [0.9, 0.99, 0.999, 0.9999]
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert len(records) == 4 and all(r.metrics["status"] == "ok" for r in records)
