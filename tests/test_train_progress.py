"""Progress of `rlopt train`: one line per evaluation when stdout is not a terminal, and the time left.

The CLI runs as a user would, with stdout piped (as ``| tee`` or ``> log`` would make it), on a real
tiny PPO run on InvertedPendulum-v5; the estimate is checked on a clock the test controls.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rlopt.run.progress import Estimate

LINE = re.compile(
    r"progress: (?P<done>[\d,]+)/(?P<total>[\d,]+) steps \((?P<percent>\d+)%\), (?P<rate>[\d,]+) steps/s, "
    r"eval return (?P<ret>-?[\d,.]+), (?P<tail>ETA \d+:\d\d:\d\d|done in \d+:\d\d:\d\d)$"
)


@pytest.mark.slow
def test_piped_stdout_gets_one_progress_line_per_evaluation(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable, "-m", "rlopt", "train", "--algo", "ppo", "--env", "InvertedPendulum-v5",
            "--timesteps", "512", "--set", "n_steps=128", "--set", "batch_size=64", "--set", "n_epochs=2",
            "--set", "policy_kwargs.net_arch=[16]", "--eval-freq", "128", "--eval-episodes", "1",
            "--run-dir", str(run_dir),
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("ok: trained 512 env steps, ")
    with (run_dir / "eval.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    progress = [LINE.fullmatch(line) for line in lines[:-1]]
    assert all(progress), lines
    assert [int(m["done"].replace(",", "")) for m in progress if m] == [int(r["timesteps"]) for r in rows]
    assert [float(m["ret"].replace(",", "")) for m in progress if m] == [
        pytest.approx(float(r["mean_return"]), abs=0.05) for r in rows
    ]
    assert all(m["tail"].startswith("ETA") for m in progress[:-1] if m)
    last = progress[-1]
    assert last is not None and last["tail"].startswith("done in") and last["percent"] == "100"
    assert "\x1b[" not in proc.stdout  # no bar, no colour codes in a file


def test_estimate_counts_evaluation_in_rate_and_time_left() -> None:
    now = [0.0]
    estimate = Estimate(total=1000, evaluations=4, clock=lambda: now[0])
    now[0], estimate.steps = 10.0, 250  # 250 training steps in 10 s: 25 steps/s of training
    assert estimate.seconds_left() == pytest.approx(30.0)  # no evaluation measured yet
    estimate.eval_started()
    now[0] = 14.0  # a 4-second evaluation
    assert estimate.evaluating
    assert estimate.seconds_left() == pytest.approx(30.0)  # training left; this evaluation unmeasured
    estimate.eval_done(4.0)
    # 750 steps at 25 steps/s, and 3 more evaluations of 4 s
    assert estimate.seconds_left() == pytest.approx(30.0 + 12.0)
    assert estimate.steps_per_s() == pytest.approx(250 / 14.0)  # what the summary reports
    estimate.eval_started()
    now[0] = 15.0  # 1 s into the second evaluation: 3 s of it, 8 s of the other two, 750 steps
    assert estimate.seconds_left() == pytest.approx(30.0 + 11.0)


def test_run_json_records_the_default_evaluation_schedule_and_threads(tiny_config) -> None:
    from rlopt.run.config import DEFAULT_EVAL_EPISODES, EVAL_MIN_FREQ
    from rlopt.run.train import run_training

    summary = run_training(tiny_config("ppo", "adam", eval_freq=None, eval_episodes=None))
    config = json.loads((summary.run_dir / "config.json").read_text())
    evaluation = config["evaluation"]
    assert (evaluation["freq"], evaluation["episodes"]) == (EVAL_MIN_FREQ, DEFAULT_EVAL_EPISODES)
    assert evaluation["expected_evaluations"] == 1 and "default" in evaluation["schedule"]
    assert [p.timesteps for p in summary.evaluations] == [256]
    assert len(summary.evaluations[0].returns) == DEFAULT_EVAL_EPISODES
    metrics = json.loads((summary.run_dir / "metrics.json").read_text())
    assert 0 < metrics["eval_time_s"] < metrics["wall_time_s"]
    # eval_share is the ratio of the unrounded times, and both times are stored rounded to 1 ms: on a
    # run of about a second that moves the ratio by up to ~1e-3 each (seen: 0.1153 against 0.1165)
    bound = 1e-3 / metrics["wall_time_s"] * (1 + metrics["eval_share"]) + 1e-4
    assert metrics["eval_share"] == pytest.approx(metrics["eval_time_s"] / metrics["wall_time_s"], abs=bound)
    assert config["threads"] == 1
