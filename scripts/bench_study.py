#!/usr/bin/env python
"""Study throughput: trials per hour with N worker processes against one worker, side by side in one run.

The same small real study (PPO on ``--env``, one seed per trial, a grid of ``--trials`` learning rates)
runs through ``rlopt study run`` from scratch, alternately with 1 worker and with ``--workers`` workers,
``--repeats`` times each, every time in a fresh folder with its own SQLite storage. The table shows the
median wall time of the whole command (start-up, every trial, the storage) and trials per hour, and
the ratio of N workers' trials per hour to one worker's; the target on N free cores is at least 0.9·N.

Usage:
    python scripts/bench_study.py [--workers 2] [--trials 8] [--timesteps 16384] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = """\
name: bench
algorithm: ppo
tasks: [{env}]
seeds: 1
timesteps: {timesteps}
evaluation: {{every: {every}, episodes: 2}}
optimizers:
  - optimizer: adam
    lr: [{lrs}]
sampler: grid
pruner: none
parallel_runs: 1
"""


def run_once(args: argparse.Namespace, workers: int) -> float:
    """Wall time of one ``rlopt study run`` of the benchmark study with ``workers`` workers."""
    lrs = ", ".join(f"{3e-4 * 1.1 ** i:.6g}" for i in range(args.trials))
    with tempfile.TemporaryDirectory(prefix="rlopt-bench-study-") as tmp:
        path = Path(tmp) / "bench.yaml"
        path.write_text(STUDY.format(env=args.env, timesteps=args.timesteps, every=args.timesteps // 2,
                                     lrs=lrs))
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "rlopt", "study", "run", str(path), "--workers", str(workers),
             "--no-plots", "--runs-dir", str(Path(tmp) / "runs")],
            capture_output=True, text=True, check=False,
        )
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{workers} worker(s): exit {done.returncode}\n{done.stderr[-3000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--timesteps", type=int, default=16384)
    parser.add_argument("--env", default="InvertedPendulum-v5")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    console.print(f"python {platform.python_version()}, {platform.processor() or platform.machine()}, "
                  f"{len(os.sched_getaffinity(0))} cores; PPO {args.env}, {args.trials} trials x 1 seed x "
                  f"{args.timesteps:,} steps; {args.repeats} interleaved repeats")
    counts = (1, args.workers)
    walls: dict[int, list[float]] = {n: [] for n in counts}
    for repeat in range(args.repeats):
        for n in counts:
            walls[n].append(run_once(args, n))
            console.print(f"  repeat {repeat + 1}/{args.repeats}, {n} worker(s): {walls[n][-1]:.1f} s",
                          highlight=False)
    per_hour = {n: args.trials * 3600 / statistics.median(walls[n]) for n in counts}
    table = Table(title="study throughput (medians)")
    for column in ("workers", "wall time (s)", "trials / hour", "ratio to 1 worker", "target"):
        table.add_column(column, justify="right")
    for n in counts:
        table.add_row(str(n), f"{statistics.median(walls[n]):.1f}", f"{per_hour[n]:,.0f}",
                      f"{per_hour[n] / per_hour[1]:.2f}x", f">= {0.9 * n:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
