"""`rlopt study status` of a study whose worker was SIGKILLed: the trial it left RUNNING is shown as
stale, with the age of its last heartbeat, once that is past the study's grace period."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from _processes import alive, descendants, wait_for
from _study_files import arm_trials, rlopt_command, run_rlopt, write_study
from optuna.trial import TrialState
from sqlalchemy.exc import SQLAlchemyError

pytestmark = pytest.mark.slow

GRACE_S = 10  # the shortest grace period a study accepts (_study_files.TINY)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("│┃").replace("┃", "│").split("│")]


def _progress(out: str) -> dict[str, str]:
    """The first row of the "Progress per setting" table, by column name (rich's box-drawing table)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if "Progress per setting" in line)
    header = next(_cells(line) for line in lines[start:] if line.lstrip().startswith("┃"))
    row = next(_cells(line) for line in lines[start:] if line.lstrip().startswith("│"))
    return dict(zip(header, row, strict=True))


def test_status_shows_the_trial_of_a_killed_worker_as_stale_after_the_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: table cells on one line each
    # a budget the run does not reach before the kill
    path = write_study(tmp_path, "stale", "  - optimizer: adam\n", seeds=1, timesteps=200_000)
    study_dir = tmp_path / "runs" / "stale"
    url = f"sqlite:///{study_dir / 'study.db'}"
    worker = subprocess.Popen(
        rlopt_command("study", "run", path, "--runs-dir", tmp_path / "runs", "--no-plots"),
        cwd=tmp_path, env={**os.environ, "PYTHONWARNINGS": "ignore"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        def training() -> bool:
            assert worker.poll() is None, worker.stderr.read()[-3000:] if worker.stderr else ""
            if not (study_dir / "study.db").exists():
                return False
            try:
                trials = arm_trials(url, "stale", "adam")
            except (KeyError, optuna.exceptions.StorageInternalError, SQLAlchemyError):
                return False  # the study is being created
            if not trials or trials[0].state != TrialState.RUNNING:
                return False
            if not trials[0].user_attrs.get("run_dirs"):
                return False
            evals = study_dir / trials[0].user_attrs["run_dirs"][0] / "eval.csv"
            return evals.exists() and len(evals.read_text().splitlines()) >= 2

        wait_for(training, "the trial to be training")
        runs = descendants(worker.pid)
        live = run_rlopt("study", "status", "stale", "--runs-dir", tmp_path / "runs", "--no-plots",
                         cwd=tmp_path)
        worker.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()
    wait_for(lambda: not any(alive(pid) for pid in runs), "the killed worker's runs to exit")
    assert live.returncode == 0, live.stderr[-3000:]
    assert _progress(live.stdout)["running"] == "1" and "stale" not in _progress(live.stdout), live.stdout
    assert "Stale trials" not in live.stdout

    time.sleep(max(0.0, killed_at + GRACE_S + 1.5 - time.monotonic()))
    status = run_rlopt("study", "status", "stale", "--runs-dir", tmp_path / "runs", "--no-plots",
                       cwd=tmp_path)
    assert status.returncode == 0, status.stderr[-3000:]
    out = status.stdout
    progress = _progress(out)
    assert (progress["setting"], progress["running"], progress["stale"]) == ("adam", "", "1"), out
    assert "finished 0, stale 1" in out
    assert f"grace period of {GRACE_S} s" in out
    stale_rows = [line for line in out.splitlines() if "ago" in line]
    assert stale_rows, out
    seconds = int(stale_rows[0].split(" s ago")[0].split()[-1])
    assert GRACE_S < seconds < GRACE_S + 60, stale_rows[0]
    assert "the next `rlopt study run` marks it failed" in " ".join(out.split())
    # status only reads: the trial is still RUNNING in the storage
    assert [t.state for t in arm_trials(url, "stale", "adam")] == [TrialState.RUNNING]
