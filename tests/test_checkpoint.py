"""Checkpoints: a run stopped at any moment continues from its last checkpoint bit for bit.

Each test compares a stopped-and-resumed run with the same run trained without stopping: every
evaluation (returns to the last digit), the final parameters and optimizer state, the stability counts
and the gradient steps must be equal, on real MuJoCo tasks (VecNormalize, episodes that terminate,
SAC's replay buffer and entropy optimizer, a compiled optimizer kernel). The CLI and study tests stop
the run with a real kill -9.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from _processes import descendants, wait_for
from _scripts import load_script
from _study_files import arm_trials, rlopt_command, run_rlopt, write_study
from optuna.trial import TrialState

from rlopt.run.checkpoint import CHECKPOINT_FILE
from rlopt.run.config import TrainConfig
from rlopt.run.evaluation import EvalPoint
from rlopt.run.train import run_training

pytestmark = pytest.mark.slow

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
REPO = Path(__file__).resolve().parent.parent
SAC_TINY = {"learning_starts": 100, "batch_size": 64, "policy_kwargs": {"net_arch": [64, 64]}}
FEWER_EPOCHS = {"n_epochs": 4}  # the zoo's networks and rollouts, a fifth of its epochs: the test's time
SHORT_ROLLOUTS = {"n_epochs": 4, "n_steps": 512}  # SB3's default agent (Hopper) in 512-step rollouts

# (algo, task, optimizer, optimizer_extra, overrides, timesteps, every, stop evaluation)
CASES = {
    # VecNormalize, the zoo's agent (2x256 nets, 512-step rollouts), ADOPT in flat buffers
    "ppo-halfcheetah-adopt": ("ppo", "HalfCheetah-v5", "adopt", {}, FEWER_EPOCHS, 3072, 512, 2048),
    # the compiled ADOPT kernel
    "ppo-halfcheetah-adopt-fused": ("ppo", "HalfCheetah-v5", "adopt", {"fused": True}, FEWER_EPOCHS, 2048,
                                    512, 1536),
    # episodes that terminate (the task's random generator at every reset), torch's Adam in flat buffers
    "ppo-hopper-adam": ("ppo", "Hopper-v5", "adam", {}, SHORT_ROLLOUTS, 3072, 512, 2048),
    # replay buffer, three optimizers (entropy coefficient included), warm-up actions of the action space
    "sac-hopper-adopt": ("sac", "Hopper-v5", "adopt", {}, SAC_TINY, 600, 200, 400),
}


def _config(case: str, run_dir: Path, **fields: Any) -> TrainConfig:
    algo, task, optimizer, extra, overrides, timesteps, every, _ = CASES[case]
    return TrainConfig(
        algo=algo, env=task, optimizer=optimizer, optimizer_extra=extra, overrides=overrides, seed=7,
        timesteps=timesteps, eval_freq=every, eval_episodes=1, run_dir=run_dir, save_model=True, **fields,
    )


def _eval_rows(run_dir: Path) -> list[dict[str, str]]:
    """``eval.csv`` without the wall-clock column."""
    with (run_dir / "eval.csv").open() as fh:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(fh)]


def _saved_tensors(run_dir: Path) -> dict[str, Any]:
    """Every tensor of ``model.zip``: the policy's parameters and every optimizer's state."""
    out = {}
    with zipfile.ZipFile(run_dir / "model.zip") as archive:
        for name in archive.namelist():
            if name.endswith(".pth"):
                out[name] = torch.load(io.BytesIO(archive.read(name)), weights_only=False)
    return out


def _assert_same(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs by {(a.double() - b.double()).abs().max().item():.3g}"
    else:
        assert a == b, where


def _metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("case", list(CASES))
def test_a_stopped_run_resumes_bit_for_bit(case: str, tmp_path: Path) -> None:
    straight = run_training(_config(case, tmp_path / "straight"))
    stop_at = CASES[case][-1]

    def stop(point: EvalPoint) -> None:
        if point.timesteps >= stop_at:
            raise KeyboardInterrupt

    resumed_dir = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run_training(_config(case, resumed_dir, checkpoint_every=CASES[case][-2]), stop)
    assert _metrics(resumed_dir)["status"] == "stopped"
    saved_at = torch.load(resumed_dir / CHECKPOINT_FILE, weights_only=False)["timesteps"]
    assert 0 < saved_at < stop_at
    # the stopped run evaluated past its checkpoint: those rows are dropped and evaluated again
    assert len(_eval_rows(resumed_dir)) > len([r for r in _eval_rows(straight.run_dir)
                                               if int(r["timesteps"]) <= saved_at])

    seen: list[int] = []
    resumed = run_training(
        _config(case, resumed_dir, checkpoint_every=CASES[case][-2], resume=True),
        lambda point: seen.append(point.timesteps),
    )

    assert _eval_rows(resumed_dir) == _eval_rows(straight.run_dir)
    assert seen == [p.timesteps for p in straight.evaluations]  # the earlier ones passed on again
    _assert_same(_saved_tensors(resumed_dir), _saved_tensors(straight.run_dir))
    for key in ("status", "final_return", "auc", "stability", "timesteps_done", "gradient_steps"):
        assert _metrics(resumed_dir)[key] == _metrics(straight.run_dir)[key], key
    assert _metrics(resumed_dir)["resumed_from"] == [saved_at]
    assert resumed.resumed_from == (saved_at,) and straight.resumed_from == ()
    assert not (resumed_dir / CHECKPOINT_FILE).exists()  # finished: nothing left to resume
    versions = json.loads((resumed_dir / "versions.json").read_text())
    assert [s["from_timesteps"] for s in versions["resumed"]] == [saved_at]


def test_tensorboard_keeps_one_value_per_step_after_a_resume(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    case = "sac-hopper-adopt"

    def stop(point: EvalPoint) -> None:
        if point.timesteps >= 400:
            raise KeyboardInterrupt

    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_training(_config(case, run_dir, checkpoint_every=200), stop)
    run_training(_config(case, run_dir, checkpoint_every=200, resume=True))
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    steps = [e.step for e in events.Scalars("eval/mean_return")]
    assert steps == [int(r["timesteps"]) for r in _eval_rows(run_dir)]  # the stopped run's 400 purged
    returns = [e.value for e in events.Scalars("eval/mean_return")]
    assert returns == pytest.approx([float(r["mean_return"]) for r in _eval_rows(run_dir)], rel=1e-6)


def _train_args(run_dir: Path) -> list[str]:
    return ["train", "--algo", "ppo", "--env", "HalfCheetah-v5", "--optimizer", "adopt", "--seed", "3",
            "--timesteps", "4096", "--eval-freq", "1024", "--eval-episodes", "1", "--run-dir", str(run_dir),
            "--checkpoint-every", "1024", "--set", "n_epochs=4"]


def _checkpoint_step(run_dir: Path) -> int:
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        return 0
    try:
        return int(torch.load(path, weights_only=False)["timesteps"])
    except (OSError, RuntimeError, EOFError, KeyError):
        return 0


def test_rlopt_train_killed_with_sigkill_resumes_with_resume(tmp_path: Path) -> None:
    straight = run_rlopt(*_train_args(tmp_path / "straight"), cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]

    run_dir = tmp_path / "killed"
    process = subprocess.Popen(rlopt_command(*_train_args(run_dir)), cwd=tmp_path, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: process.poll() is not None or _checkpoint_step(run_dir) >= 2048,
                 "a checkpoint at 2048 env steps or later")
        assert process.poll() is None, process.communicate()[1][-3000:]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert _metrics(run_dir)["status"] == "running"  # killed: nothing closed the folder

    command = (run_dir / "command.txt").read_text().split()
    assert command[:2] == ["rlopt", "train"]
    again = run_rlopt(*command[1:], "--resume", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _eval_rows(run_dir) == _eval_rows(tmp_path / "straight")
    assert _metrics(run_dir)["resumed_from"][0] >= 2048
    assert not (run_dir / CHECKPOINT_FILE).exists()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (["--seed", "4"], ["another run (seed differ", "command.txt"]),
        (["--timesteps", "9999"], ["another run (timesteps differ", "command.txt"]),
    ],
    ids=["seed", "timesteps"],
)
def test_resume_of_another_run_is_one_line_exit_2_and_changes_nothing(
    change: list[str], expected: list[str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"

    def stop(point: EvalPoint) -> None:
        if point.timesteps >= 1024:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(_config("ppo-hopper-adam", run_dir, checkpoint_every=512), stop)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    args = ["train", "--algo", "ppo", "--env", "Hopper-v5", "--optimizer", "adam", "--seed", "7",
            "--timesteps", "3072", "--eval-freq", "512", "--eval-episodes", "1", "--run-dir", str(run_dir),
            "--set", "n_epochs=4", "--set", "n_steps=512"]
    for flag, value in zip(change[::2], change[1::2], strict=True):
        args[args.index(flag) + 1] = value
    proc = run_rlopt(*args, "--resume", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rlopt: error: "), proc.stderr
    for text in expected:
        assert text in lines[0]
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def _run_folder(study_dir: Path, url: str, name: str) -> Path | None:
    try:
        trials = arm_trials(url, name, "adam")
    except Exception:
        return None
    dirs = trials[0].user_attrs.get("run_dirs") if trials else None
    return study_dir / dirs[0] if dirs else None


def _campaign_script() -> Any:
    """``scripts/campaign.py`` as a module (its snapshot and resume from a committed bundle)."""
    return load_script("campaign")


def test_a_study_killed_mid_run_resumes_the_run_from_its_checkpoint_through_a_bundle(tmp_path: Path) -> None:
    """Killed with kill -9 mid-run, then resumed by the same command as the evidence campaign does on a
    new machine: from a bundle (``scripts/campaign.py snapshot``) copied into an empty folder (the
    retry that moves the stopped run in is the same as in the folder it was killed in)."""
    extra = "checkpoint_every: 256"
    path = write_study(tmp_path, "ckpt", "  - optimizer: adam\n", seeds=1, timesteps=2048, extra=extra)
    control = write_study(tmp_path, "straight", "  - optimizer: adam\n", seeds=1, timesteps=2048)
    runs = tmp_path / "runs"
    done = run_rlopt("study", "run", control, "--runs-dir", runs, "--no-plots", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    study_dir, url = runs / "ckpt", f"sqlite:///{runs / 'ckpt' / 'study.db'}"
    process = subprocess.Popen(rlopt_command("study", "run", path, "--runs-dir", runs, "--no-plots"),
                               cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        def checkpointed() -> bool:
            assert process.poll() is None, process.communicate()[1][-3000:]
            folder = _run_folder(study_dir, url, "ckpt") if (study_dir / "study.db").exists() else None
            return folder is not None and _checkpoint_step(folder) >= 512

        wait_for(checkpointed, "the run's checkpoint at 512 env steps or later")
        for pid in [process.pid, *descendants(process.pid)]:
            os.kill(pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    killed = _run_folder(study_dir, url, "ckpt")
    assert killed is not None
    saved_at = _checkpoint_step(killed)
    campaign = _campaign_script()
    bundle = tmp_path / "results" / "ckpt"
    campaign.snapshot_study(study_dir, bundle)
    progress = json.loads((bundle / "progress.json").read_text())
    assert progress["finished_total"] == 0
    assert progress["in_flight"] == [{"run": str(killed.relative_to(study_dir)),
                                      "checkpoint_timesteps": saved_at}]
    assert not list(bundle.rglob("events.out.tfevents.*"))  # curves, metrics and the checkpoint only
    shutil.rmtree(study_dir)  # a new machine: nothing but what was committed
    campaign.seed_live(bundle, study_dir)
    time.sleep(11)  # the heartbeat's grace period (10 s): the killed trial is now stale

    again = run_rlopt("study", "run", path, "--runs-dir", runs, "--no-plots", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "from its checkpoint" in again.stderr + again.stdout
    trials = arm_trials(url, "ckpt", "adam")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    resumed = study_dir / trials[1].user_attrs["run_dirs"][0]
    assert not killed.exists()  # moved, not copied: one trial lists the run
    assert _metrics(resumed)["resumed_from"] == [saved_at]
    control_trial = arm_trials(f"sqlite:///{runs / 'straight' / 'study.db'}", "straight", "adam")[0]
    assert _eval_rows(resumed) == _eval_rows(runs / "straight" / control_trial.user_attrs["run_dirs"][0])
    assert trials[1].value == control_trial.value


def test_a_snapshot_commits_small_checkpoints_of_runs_in_flight_and_the_curves_of_the_others(
    tmp_path: Path,
) -> None:
    import sqlite3

    campaign = _campaign_script()
    live, bundle = tmp_path / "live", tmp_path / "bundle"
    live.mkdir()
    sqlite3.connect(live / "study.db").close()
    sizes = {"small": 1_000, "large": campaign.MAX_CHECKPOINT_BYTES + 1, "young": None}
    evaluations = "timesteps,mean_return,wall_time_s\n20000,-250.5,113.2\n40000,2584.25,350.5\n"
    for name, size in sizes.items():
        run = live / "adam" / "trial_0000" / f"{name}_seed0"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"status": "running"}))
        (run / "eval.csv").write_text(evaluations)
        (run / "versions.json").write_text(json.dumps({"git_commit": "5d45c315c09f"}))
        if size is not None:  # "young": killed before its first checkpoint
            torch.save({"timesteps": 50_016, "padding": b"x" * size}, run / CHECKPOINT_FILE)
    failed = live / "adam" / "trial_0000" / "failed_seed1"  # a run that failed does not restart
    failed.mkdir()
    (failed / "metrics.json").write_text(json.dumps({"status": "failed"}))
    campaign.snapshot_study(live, bundle)
    progress = json.loads((bundle / "progress.json").read_text())
    by_run = {Path(e["run"]).name: e for e in progress["in_flight"]}
    assert set(by_run) == {"small_seed0", "large_seed0", "young_seed0"}
    assert by_run["small_seed0"] == {"run": "adam/trial_0000/small_seed0", "checkpoint_timesteps": 50_016}
    assert "restarts" in by_run["large_seed0"]["not_committed"]
    assert by_run["young_seed0"]["not_committed"] == "no checkpoint yet: restarts"
    for name in ("large_seed0", "young_seed0"):  # not committed, but how far each got is kept
        assert by_run[name]["evaluations"] == [[20_000, -250.5, 113.2], [40_000, 2584.25, 350.5]]
        assert by_run[name]["commit"] == "5d45c31"
        assert not (bundle / "adam" / "trial_0000" / name).exists()
    assert (bundle / "adam" / "trial_0000" / "small_seed0" / CHECKPOINT_FILE).is_file()
    table = (bundle / "progress.md").read_text().split("## Runs in flight, not committed")
    assert len(table) == 2 and "small_seed0" in table[0] and "large_seed0" not in table[0]
    large_row = next(line for line in table[1].splitlines() if "large_seed0" in line)
    assert [c.strip() for c in large_row.strip("|").split("|")][1:9] == [
        "40,000", "2", "-250", "2,584", "1,167", "2,584", "0.10", "5d45c31"]
    assert "young_seed0" in table[1] and "failed_seed1" not in table[0] + table[1]
    # the small run finishes: its next snapshot keeps its files and drops the checkpoint
    small = live / "adam" / "trial_0000" / "small_seed0"
    (small / "metrics.json").write_text(json.dumps({"status": "ok"}))
    campaign.snapshot_study(live, bundle)
    assert not (bundle / "adam" / "trial_0000" / "small_seed0" / CHECKPOINT_FILE).exists()
    assert (bundle / "adam" / "trial_0000" / "small_seed0" / "metrics.json").is_file()
    assert json.loads((bundle / "progress.json").read_text())["finished_total"] == 1
