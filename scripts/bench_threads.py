#!/usr/bin/env python
"""Env steps per second of ``rlopt train`` with 1, 2 and torch's default CPU threads, idle and under load.

Each configuration trains the same agent for ``--timesteps`` env steps in a fresh Python process
(``run_training`` with ``TrainConfig.threads``; ``default`` is ``torch.get_num_threads()`` of a fresh
process, i.e. what a run got before ``--threads`` existed). With ``--load busy`` the script first
starts ``--busy`` processes that spin on one core each (``while True: pass``) for the whole
measurement, as another job on a shared machine would, and stops them at the end. Configurations are
interleaved over ``--repeats`` rounds; the table shows the median steps/s and the ratio to 1 thread.
A run that takes longer than ``--timeout`` seconds is stopped and shown as ``< timesteps/timeout``.

Usage:
    python scripts/bench_threads.py --algo sac --env InvertedPendulum-v5 --timesteps 1500 \\
        --set learning_starts=500 --load idle,busy
    python scripts/bench_threads.py --algo ppo --env HalfCheetah-v5 --timesteps 4096 --load idle,busy
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

THREADS = ("1", "2", "default")


def child(args: argparse.Namespace) -> None:
    import torch

    from rlopt.config.agents import parse_set
    from rlopt.run.config import TrainConfig
    from rlopt.run.train import run_training

    threads = torch.get_num_threads() if args.threads == "default" else int(args.threads)
    with tempfile.TemporaryDirectory(prefix="rlopt-bench-") as tmp:
        summary = run_training(TrainConfig(
            algo=args.algo, env=args.env, optimizer=args.optimizer, seed=0, timesteps=args.timesteps,
            threads=threads, run_dir=Path(tmp) / "run", eval_freq=args.timesteps, eval_episodes=1,
            overrides=parse_set(args.overrides),
        ))
    if summary.status != "ok":
        raise SystemExit(f"{summary.status}: {summary.reason}")
    train_s = summary.wall_time_s - summary.eval_time_s
    print(json.dumps({"threads": threads, "steps_per_s": summary.timesteps_done / train_s,
                      "gradient_steps": summary.gradient_steps}))


def measure(args: argparse.Namespace, threads: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", "--threads", threads, "--algo", args.algo,
               "--env", args.env, "--timesteps", str(args.timesteps), "--optimizer", args.optimizer]
    for item in args.overrides:
        command += ["--set", item]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, env=env,
                              timeout=args.timeout)
    except subprocess.TimeoutExpired:  # slower than timesteps / timeout, setup included: an upper bound
        import torch

        count = torch.get_num_threads() if threads == "default" else int(threads)
        return {"threads": count, "steps_per_s": args.timesteps / args.timeout, "timed_out": 1.0}
    if done.returncode != 0:
        raise SystemExit(f"threads {threads}: exit {done.returncode}\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def start_busy(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="sac", choices=("ppo", "sac"))
    parser.add_argument("--env", default="InvertedPendulum-v5")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--timesteps", type=int, default=1500)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--load", default="idle,busy", help="idle, busy or both (default idle,busy)")
    parser.add_argument("--busy", type=int, default=1, help="spinning processes with --load busy")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds per run; a run past it counts as < timesteps/timeout steps/s")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", default="1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    import torch
    from rich.console import Console
    from rich.table import Table

    console = Console()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    console.print(f"python {platform.python_version()}, torch {torch.__version__}, {cores} cores; "
                  f"{args.algo.upper()} {args.env} {args.optimizer}, {args.timesteps:,} steps per run"
                  + (f", --set {' '.join(args.overrides)}" if args.overrides else "")
                  + f", {args.repeats} interleaved repeats; default threads = {torch.get_num_threads()}",
                  highlight=False)
    table = Table(title="training env steps/s (evaluation excluded), medians")
    for column in ("load", "threads", "steps/s", "ratio to 1 thread"):
        table.add_column(column, justify="left" if column == "load" else "right")
    for load in (part.strip() for part in args.load.split(",")):
        if load not in ("idle", "busy"):
            raise SystemExit(f"bad --load {load!r} (accepted: idle, busy)")
        spinners = start_busy(args.busy) if load == "busy" else []
        try:
            results: dict[str, list[dict[str, float]]] = {t: [] for t in THREADS}
            for repeat in range(args.repeats):
                for threads in THREADS:
                    results[threads].append(measure(args, threads))
                    last = results[threads][-1]
                    late = "< " if last.get("timed_out") else ""
                    console.print(f"  {load} repeat {repeat + 1}/{args.repeats} threads {threads}: "
                                  f"{late}{last['steps_per_s']:,.1f} steps/s", highlight=False)
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()
        base = statistics.median(r["steps_per_s"] for r in results["1"])
        for threads in THREADS:
            rate = statistics.median(r["steps_per_s"] for r in results[threads])
            late = "< " if any(r.get("timed_out") for r in results[threads]) else ""
            label = f"default ({int(results[threads][0]['threads'])})" if threads == "default" else threads
            table.add_row(load + (f" (+{args.busy} spinning)" if load == "busy" else ""), label,
                          f"{late}{rate:,.1f}", f"{late}{rate / base:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
