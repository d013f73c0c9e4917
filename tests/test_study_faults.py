"""Studies under faults, with real processes, signals and file systems: nothing finished is lost, nothing
is counted twice, and the same command resumes.

- a run process killed as the OOM killer would: its trial is retried in the same command;
- a run folder that cannot be written: retried up to ``heartbeat.max_retry``, then exit code 1 and a
  line naming what is missing; the next command, once the cause is gone, finishes the study;
- SIGTERM (``timeout``, systemd, Slurm) of ``rlopt study run`` and of ``rlopt train``: handled as Ctrl-C;
- SIGKILL of a spawned worker: the others finish the study and the command exits 0;
- the study folder turning read-only, or the disk filling up, mid-study: one line, exit code 1, the
  database intact, and the next command resumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from _processes import alive, children, command_line, descendants, run_processes, wait_for
from _study_files import arm_trials, rlopt_command, run_rlopt, write_study
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

from rlopt.analysis.load import load_runs
from rlopt.run.folder import read_json

pytestmark = pytest.mark.slow

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def _start(args: list[str | Path], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        rlopt_command(*args), cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _trials(url: str, study: str, arm: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return arm_trials(url, study, arm)
    except (KeyError, optuna.exceptions.StorageInternalError, SQLAlchemyError):
        return []  # the study is being created


def _status(run_dir: Path) -> str:
    """A run's ``metrics.json`` status (``running`` from its start; written atomically)."""
    return str(read_json(run_dir / "metrics.json").get("status", ""))


def _training(study_dir: Path, arm: str, process: subprocess.Popen[str], runs: int = 1) -> bool:
    """The arm's first trial's first ``runs`` runs are each training and have written an evaluation.

    Files only (each run's ``metrics.json`` says ``running`` from its start), so it can be polled often:
    a slow poll (the study's SQLite, under load) could see a 1 s run only once it had finished."""
    assert process.poll() is None, process.communicate()[1][-3000:]
    evals = sorted(study_dir.glob(f"{arm}/trial_0000*/*/eval.csv"))[:runs]
    return len(evals) == runs and all(
        _status(e.parent) == "running" and len(e.read_text().splitlines()) >= 2 for e in evals
    )


def _finish(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_a_run_killed_like_the_oom_killer_does_is_retried_in_the_same_command(tmp_path: Path) -> None:
    path = write_study(tmp_path, "oom", "  - optimizer: adam\n", seeds=1, timesteps=3072)
    study_dir, url = tmp_path / "runs" / "oom", f"sqlite:///{tmp_path / 'runs' / 'oom' / 'study.db'}"
    process = _start(
        ["study", "run", path, "--runs-dir", tmp_path / "runs", "--no-plots", "--parallel-runs", "1"],
        tmp_path,
    )
    try:
        wait_for(lambda: _training(study_dir, "adam", process), "the first run to be training", poll_s=0.01)
        (victim,) = run_processes(process.pid)
        os.kill(victim, signal.SIGKILL)
        code, out, err = _finish(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, err[-3000:]
    trials = arm_trials(url, "oom", "adam")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE], [
        (t.number, t.state, t.user_attrs.get("reason")) for t in trials
    ]
    assert "run process died (exit code -9)" in trials[0].user_attrs["reason"]
    assert trials[1].system_attrs["retry_history"] == [0]
    assert "study oom: finished, 1 of 1 trials" in out
    complete = [r for r in load_runs(study_dir) if r.trial_state == "COMPLETE"]
    assert [r.seed for r in complete] == [0] and complete[0].metrics["status"] == "ok"


def test_an_unwritable_run_folder_is_retried_then_reported_missing_and_the_next_command_finishes(
    tmp_path: Path,
) -> None:
    path = write_study(tmp_path, "blocked", "  - optimizer: adam\n")
    study_dir, url = tmp_path / "runs" / "blocked", f"sqlite:///{tmp_path / 'runs' / 'blocked' / 'study.db'}"
    study_dir.mkdir(parents=True)
    (study_dir / "adam").write_text("a file where the arm's folder must go\n")
    first = run_rlopt("study", "run", path, "--runs-dir", tmp_path / "runs", "--no-plots", cwd=tmp_path)
    assert first.returncode == 1, first.stderr[-3000:]
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("study blocked: incomplete, 0 of 1 trials finished; 1 failed with no retry"), last
    assert "adam: adam (InvertedPendulum-v5 seed 0:" in last and "run the same command again" in last, last
    assert [t.state for t in arm_trials(url, "blocked", "adam")] == [TrialState.FAIL] * 3  # 1 + max_retry 2

    (study_dir / "adam").unlink()
    again = run_rlopt("study", "run", path, "--runs-dir", tmp_path / "runs", "--no-plots", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    trials = arm_trials(url, "blocked", "adam")
    assert [t.state for t in trials] == [TrialState.FAIL] * 3 + [TrialState.COMPLETE]
    assert trials[3].system_attrs["retry_history"] == [0, 1, 2]
    assert "study blocked: finished, 1 of 1 trials" in again.stdout


def test_sigterm_of_a_study_stops_its_runs_cleanly_and_the_same_command_resumes(tmp_path: Path) -> None:
    path = write_study(tmp_path, "term", "  - optimizer: adam\n", timesteps=3072)
    study_dir, url = tmp_path / "runs" / "term", f"sqlite:///{tmp_path / 'runs' / 'term' / 'study.db'}"
    process = _start(
        ["study", "run", path, "--runs-dir", tmp_path / "runs", "--no-plots", "--parallel-runs", "2"],
        tmp_path,
    )
    try:
        wait_for(
            lambda: _training(study_dir, "adam", process, runs=2),
            "both runs of the trial to be training",
            poll_s=0.01,
        )
        below = descendants(process.pid)
        process.send_signal(signal.SIGTERM)
        code, _, err = _finish(process, timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 130, err[-3000:]
    assert err.strip().splitlines()[-1] == "rlopt: interrupted"
    wait_for(lambda: not any(alive(pid) for pid in below), "the study's processes to exit")
    (trial,) = arm_trials(url, "term", "adam")
    assert trial.state == TrialState.FAIL and trial.user_attrs["reason"] == "interrupted (KeyboardInterrupt)"
    statuses = [
        json.loads((study_dir / d / "metrics.json").read_text())["status"]
        for d in trial.user_attrs["run_dirs"]
    ]
    assert statuses == ["stopped", "stopped"], statuses  # no folder left saying "training in progress"

    again = run_rlopt("study", "run", path, "--runs-dir", tmp_path / "runs", "--no-plots", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [t.state for t in arm_trials(url, "term", "adam")] == [TrialState.FAIL, TrialState.COMPLETE]


def test_sigterm_of_rlopt_train_closes_the_run_folder_as_stopped(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process = _start(
        [
            "train",
            "--algo",
            "ppo",
            "--env",
            "InvertedPendulum-v5",
            "--timesteps",
            "100000",
            "--set",
            "n_steps=64",
            "--set",
            "batch_size=32",
            "--eval-freq",
            "128",
            "--eval-episodes",
            "1",
            "--run-dir",
            run_dir,
        ],
        tmp_path,
    )
    try:
        wait_for(
            lambda: (
                (run_dir / "eval.csv").exists() and len((run_dir / "eval.csv").read_text().splitlines()) >= 2
            ),
            "the run to evaluate once",
        )
        process.send_signal(signal.SIGTERM)
        code, _, err = _finish(process, timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 130, err[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "stopped" and 0 < metrics["timesteps_done"] < 100000, metrics


def test_a_killed_spawned_worker_does_not_fail_a_study_the_others_finished(tmp_path: Path) -> None:
    grid = "  - optimizer: adopt\n    beta2: [0.99, 0.9999]\n"
    path = write_study(tmp_path, "twoworkers", grid, seeds=1, timesteps=1536)
    study_dir = tmp_path / "runs" / "twoworkers"
    url = f"sqlite:///{study_dir / 'study.db'}"
    process = _start(
        ["study", "run", path, "--workers", "2", "--runs-dir", tmp_path / "runs", "--no-plots"], tmp_path
    )
    try:
        spawned: list[int] = []

        def spawned_worker_training() -> bool:
            assert process.poll() is None, process.communicate()[1][-3000:]
            if not spawned:
                spawned.extend(pid for pid in children(process.pid) if "spawn_main" in command_line(pid))
            if not spawned or not (study_dir / "study.db").exists():
                return False
            mine = f"{socket.gethostname()}:{spawned[0]}"
            trials = _trials(url, "twoworkers", "adopt")
            return any(t.state == TrialState.RUNNING and t.user_attrs.get("worker") == mine for t in trials)

        wait_for(spawned_worker_training, "the spawned worker to be training")
        os.kill(spawned[0], signal.SIGKILL)
        code, out, err = _finish(process)
    finally:
        if process.poll() is None:
            process.kill()
    assert code == 0, err[-3000:]
    assert "worker-1 exited early, but the other workers finished every trial" in err
    trials = arm_trials(url, "twoworkers", "adopt")
    assert sorted(t.user_attrs["setting"] for t in trials if t.state == TrialState.COMPLETE) == [
        "adopt b2=0.99",
        "adopt b2=0.9999",
    ]
    assert "study twoworkers: finished, 2 of 2 trials" in out


@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def _stopped(pid: int) -> Iterator[None]:
    """``pid`` and every process below it stopped (SIGSTOP) inside the block, continued after it."""
    pids = [pid, *descendants(pid)]
    for each in pids:
        os.kill(each, signal.SIGSTOP)
    try:
        yield
    finally:
        for each in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(each, signal.SIGCONT)


def _fill(folder: Path) -> None:
    """Write until the file system is full."""
    with (folder / "filler").open("wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * (1 << 16))
            fh.flush()


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_a_read_only_or_full_disk_stops_the_study_in_one_line_and_the_next_command_resumes(
    tmp_path: Path, fault: str
) -> None:
    with _tmpfs(tmp_path / "disk", "64m") as disk:
        grid = "  - optimizer: adopt\n    beta2: [0.99, 0.9999]\n"
        path = write_study(tmp_path, "disk", grid, seeds=1, timesteps=3072)  # ~1 s unloaded per trial
        study_dir, url = disk / "disk", f"sqlite:///{disk / 'disk' / 'study.db'}"
        process = _start(
            ["study", "run", path, "--runs-dir", disk, "--no-plots", "--parallel-runs", "1"], tmp_path
        )
        try:

            def second_trial_training() -> bool:
                # files only, polled often: a slow poll (SQLite under load) could see the second trial
                # only once it had finished, and the fault would then hit nothing
                assert process.poll() is None, process.communicate()[1][-3000:]
                runs = sorted(study_dir.glob("adopt/trial_*/*/eval.csv"))
                return (len(runs) == 2 and [_status(r.parent) for r in runs] == ["ok", "running"]
                        and len(runs[1].read_text().splitlines()) >= 2)

            wait_for(second_trial_training, "the second trial to be training", poll_s=0.01)
            with _stopped(process.pid):  # the fault lands while the second trial's run is mid-way
                if fault == "read-only":
                    subprocess.run(["mount", "--bind", str(study_dir), str(study_dir)], check=True)
                    subprocess.run(["mount", "-o", "remount,ro,bind", str(study_dir)], check=True)
                else:
                    _fill(disk)
            code, _, err = _finish(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
            if fault == "read-only":
                subprocess.run(["umount", str(study_dir)], check=False)
            (disk / "filler").unlink(missing_ok=True)
        assert code == 1, err[-3000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith(("rlopt: study disk stopped: ", "study disk: incomplete, 1 of 2 trials")), last
        assert "Traceback" not in err, err[-3000:]
        with sqlite3.connect(study_dir / "study.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        first = arm_trials(url, "disk", "adopt")[0]
        assert first.state == TrialState.COMPLETE and first.value is not None
        first_value = first.value

        again = run_rlopt("study", "run", path, "--runs-dir", disk, "--no-plots", cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        trials = arm_trials(url, "disk", "adopt")
        assert trials[0].value == first_value
        assert sorted(t.user_attrs["setting"] for t in trials if t.state == TrialState.COMPLETE) == [
            "adopt b2=0.99",
            "adopt b2=0.9999",
        ]
