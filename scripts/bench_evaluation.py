#!/usr/bin/env python
"""Share of a run's wall time spent evaluating, under the default schedule and the one before it.

Each schedule trains the same agent (``agents/<algo>.yaml``, seed 0) for ``--timesteps`` env steps in a
fresh Python process through ``rlopt.run.train.run_training``, which times every evaluation
(``metrics.json``: ``eval_time_s``, ``eval_share``):

- ``default``: what ``rlopt train`` does without ``--eval-freq``/``--eval-episodes`` today
  (``config.json`` records it);
- ``before``: the schedule before: every ``timesteps // 20`` env steps, 5 episodes.

``--extrapolate T`` adds rows for a budget of ``T`` env steps for both schedules, computed (not run)
from the measured training steps/s (evaluation excluded) and seconds per evaluation episode (medians
over all runs of this invocation) and each schedule's evaluation count at ``T``. Training steps/s
of a short run stand for a long one's: PPO's cost per step does not change with the budget; a SAC
run's first ``learning_starts`` steps take no gradient step, so measure SAC with a small
``learning_starts`` and read its extrapolated share as understated by up to that fraction of the
budget (10% at 100k steps, zoo's 10k). Schedules run one after the other (``--repeats`` rounds,
interleaved); the table shows medians.

Usage:
    python scripts/bench_evaluation.py --algo ppo --env HalfCheetah-v5 --timesteps 20000 \\
        --extrapolate 200000,1000000
    python scripts/bench_evaluation.py --algo sac --env HalfCheetah-v5 --timesteps 3000 \\
        --set learning_starts=100 --schedules default --extrapolate 100000,1000000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SCHEDULES = ("default", "before")
BEFORE_EVALUATIONS, BEFORE_EPISODES = 20, 5


def child(args: argparse.Namespace) -> None:
    from rlopt.config.agents import parse_set
    from rlopt.run.config import TrainConfig
    from rlopt.run.train import run_training

    before = args.schedule == "before"
    with tempfile.TemporaryDirectory(prefix="rlopt-bench-") as tmp:
        run_dir = Path(tmp) / "run"
        summary = run_training(TrainConfig(
            algo=args.algo, env=args.env, optimizer=args.optimizer, seed=0, timesteps=args.timesteps,
            run_dir=run_dir, overrides=parse_set(args.overrides), threads=args.threads,
            eval_freq=max(1, args.timesteps // BEFORE_EVALUATIONS) if before else None,
            eval_episodes=BEFORE_EPISODES if before else None,
        ))
        evaluation = json.loads((run_dir / "config.json").read_text())["evaluation"]
    if summary.status != "ok":
        raise SystemExit(f"{summary.status}: {summary.reason}")
    episodes = sum(len(p.returns) for p in summary.evaluations)
    print(json.dumps({
        "wall_s": summary.wall_time_s, "eval_s": summary.eval_time_s, "steps": summary.timesteps_done,
        "evaluations": len(summary.evaluations), "episodes": evaluation["episodes"],
        "freq": evaluation["freq"], "schedule": evaluation["schedule"],
        "train_steps_per_s": summary.timesteps_done / (summary.wall_time_s - summary.eval_time_s),
        "s_per_episode": summary.eval_time_s / episodes, "gradient_steps": summary.gradient_steps,
    }))


def measure(args: argparse.Namespace, schedule: str) -> dict[str, object]:
    command = [sys.executable, __file__, "--child", "--schedule", schedule, "--algo", args.algo,
               "--env", args.env, "--timesteps", str(args.timesteps), "--optimizer", args.optimizer]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    for item in args.overrides:
        command += ["--set", item]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{schedule}: exit {done.returncode}\n{done.stderr[-3000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def evaluations_at(schedule: str, timesteps: int) -> tuple[int, int]:
    """(evaluations, episodes each) of ``schedule`` for a budget of ``timesteps`` (no rollout overshoot)."""
    from rlopt.run.config import DEFAULT_EVAL_EPISODES, DEFAULT_EVALUATIONS, EVAL_MIN_FREQ

    if schedule == "before":
        freq, episodes = max(1, timesteps // BEFORE_EVALUATIONS), BEFORE_EPISODES
    else:
        freq, episodes = max(EVAL_MIN_FREQ, timesteps // DEFAULT_EVALUATIONS), DEFAULT_EVAL_EPISODES
    return timesteps // freq + (1 if timesteps % freq else 0), episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ppo", choices=("ppo", "sac"))
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: rlopt's)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--schedules", default=",".join(SCHEDULES), help="default, before or both")
    parser.add_argument("--extrapolate", default="", help="comma-separated budgets to extrapolate to")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--schedule", default="default", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import platform

    import torch
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    schedules = [s.strip() for s in args.schedules.split(",") if s.strip()]
    for schedule in schedules:
        if schedule not in SCHEDULES:
            raise SystemExit(f"bad schedule {schedule!r} (accepted: {', '.join(SCHEDULES)})")
    console.print(f"python {platform.python_version()}, torch {torch.__version__}; {args.algo.upper()} "
                  f"{args.env} {args.optimizer}, {args.timesteps:,} steps per run"
                  + (f", --set {' '.join(args.overrides)}" if args.overrides else "")
                  + f", {args.repeats} round(s)", highlight=False)
    results: dict[str, list[dict[str, object]]] = {s: [] for s in schedules}
    for repeat in range(args.repeats):
        for schedule in schedules:
            result = measure(args, schedule)
            results[schedule].append(result)
            console.print(f"  round {repeat + 1} {schedule}: {result}", highlight=False)

    def median(schedule: str, key: str) -> float:
        return statistics.median(float(r[key]) for r in results[schedule])  # type: ignore[arg-type]

    table = Table(title=f"{args.algo.upper()} {args.env}: evaluation share of a run's wall time (medians)")
    for column in ("schedule", "env steps", "evaluations x episodes", "wall s", "eval s", "eval share",
                   "train steps/s", "s / episode", "measured"):
        table.add_column(column, justify="left" if column in ("schedule", "measured") else "right")
    for schedule in schedules:
        first = results[schedule][0]
        wall, eval_s = median(schedule, "wall_s"), median(schedule, "eval_s")
        table.add_row(schedule, f"{int(first['steps']):,}",  # type: ignore[call-overload]
                      f"{first['evaluations']} x {first['episodes']}", f"{wall:,.1f}", f"{eval_s:,.1f}",
                      f"{eval_s / wall:.1%}", f"{median(schedule, 'train_steps_per_s'):,.0f}",
                      f"{median(schedule, 's_per_episode'):.2f}", "yes")
    everything = [r for s in schedules for r in results[s]]
    rate = statistics.median(float(r["train_steps_per_s"]) for r in everything)  # type: ignore[arg-type]
    per_episode = statistics.median(float(r["s_per_episode"]) for r in everything)  # type: ignore[arg-type]
    for budget in (int(b) for b in args.extrapolate.split(",") if b.strip()):
        for schedule in SCHEDULES:
            n_evals, episodes = evaluations_at(schedule, budget)
            eval_s = n_evals * episodes * per_episode
            train_s = budget / rate
            table.add_row(schedule, f"{budget:,}", f"{n_evals} x {episodes}", f"{train_s + eval_s:,.0f}",
                          f"{eval_s:,.0f}", f"{eval_s / (train_s + eval_s):.1%}", f"{rate:,.0f}",
                          f"{per_episode:.2f}", "extrapolated")
    console.print(table)
    for schedule in schedules:
        console.print(f"{schedule}: {results[schedule][0]['schedule']}", highlight=False)


if __name__ == "__main__":
    main()
