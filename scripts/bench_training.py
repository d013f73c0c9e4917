#!/usr/bin/env python
"""End-to-end throughput and peak memory of ``rlopt train`` against stock Stable-Baselines3, in one run.

Every configuration trains the same agent (hyperparameters from ``agents/<algo>.yaml``, the same seed,
VecNormalize where the agent file asks for it) for ``--timesteps`` env steps in a fresh Python process:

- ``stock SB3``: what a user of plain SB3 writes: ``make_vec_env`` (+ ``VecNormalize``), the algorithm
  with its default optimizer (``th.optim.Adam``, and for PPO SB3's hidden ``eps=1e-5``), TensorBoard
  logging, and SB3's ``EvalCallback`` on a separate env at the same schedule as rlopt's evaluation,
  plus one evaluation after the last update where rlopt makes one (the schedule missed the end).
- ``rlopt <optimizer>``: ``rlopt.run.train.run_training`` as ``rlopt train`` runs it (evaluation, TensorBoard,
  optimizer diagnostics, run folder). ``rlopt adam`` gets ``eps=1e-5`` so its update is stock SB3's.

Both sides run on ``--threads`` torch threads (default: ``rlopt train``'s default, 1), so the ratio
compares the code, not the thread count (``scripts/bench_threads.py`` measures that).

Configurations are interleaved over ``--repeats`` rounds so that machine noise hits all of them alike.
The table shows the median env steps per second of ``learn`` (setup excluded, evaluation included),
its ratio to stock SB3 measured in the same run, the median seconds spent in ``optimizer.step`` over
the whole run (every optimizer of the agent) and, of them, in the first FIRST_STEPS steps (where the
compiled kernels compile: the rest is the steady-state cost of the update),
and the median peak resident memory of the process and its ratio to stock SB3. The optimizer seconds
vary less with machine load than the end-to-end rate, which SB3's rollouts and evaluation dominate.

Usage:
    python scripts/bench_training.py --algo ppo --env HalfCheetah-v5 --timesteps 20000 --repeats 3
    python scripts/bench_training.py --algo sac --timesteps 3000 --set learning_starts=1000
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FIRST_STEPS = 10
"""Optimizer steps reported apart: where the compiled kernels compile (each optimizer's first step)."""
RLOPT_OPTIMIZERS = ("adam", "adopt", "adan", "adabelief", "adamssm", "dgclip")
STOCK = "stock SB3"


def _eval_schedule(timesteps: int, evaluations: int) -> int:
    return max(1, timesteps // evaluations)


def run_stock(args: argparse.Namespace, out: Path) -> float:
    """Plain SB3, as its documentation shows it; returns env steps per second of ``learn``."""
    import torch
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization

    from rlopt.config.agents import algo_class, parse_set, resolve_agent, to_sb3_kwargs

    torch.set_num_threads(args.threads)  # what rlopt train does, so both sides run on as many threads
    agent = resolve_agent(args.algo, args.env, parse_set(args.overrides))
    kwargs = to_sb3_kwargs(agent)
    gamma = float(kwargs.get("gamma", 0.99))
    env = make_vec_env(args.env, n_envs=agent.n_envs, seed=args.seed)
    eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 1000)
    if agent.normalize is not None:
        env = VecNormalize(env, gamma=gamma, **agent.normalize)
        eval_env = VecNormalize(eval_env, training=False, norm_obs=agent.normalize["norm_obs"],
                                norm_reward=False, gamma=gamma)
    model = algo_class(args.algo)("MlpPolicy", env, seed=args.seed, device="cpu", verbose=0,
                                  tensorboard_log=str(out / "tb"), **kwargs)
    # EvalCallback counts calls, not env steps: one call advances n_envs steps.
    evaluator = EvalCallback(eval_env, eval_freq=max(1, args.eval_freq // agent.n_envs),
                             n_eval_episodes=args.eval_episodes, verbose=0)
    start = time.perf_counter()
    model.learn(args.timesteps, callback=evaluator)
    if evaluator.n_calls % evaluator.eval_freq != 0:  # rlopt evaluates after the last update too
        sync_envs_normalization(env, eval_env)
        evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes)
    return model.num_timesteps / (time.perf_counter() - start)


def _switches(items: list[str]) -> dict[str, bool]:
    """``["fused", "flat=false"]`` -> ``{"fused": True, "flat": False}`` (boolean optimizer options)."""
    options = {}
    for item in items:
        key, _, value = item.partition("=")
        if value.lower() not in ("", "true", "false"):
            raise SystemExit(f"bad option {item!r} in --optimizers (accepted: NAME+KEY[=true|false])")
        options[key] = value.lower() != "false"
    return options


def run_rlopt(args: argparse.Namespace, out: Path) -> tuple[float, str]:
    """``rlopt train`` through its Python entry point; returns its env steps per second and its kernel.

    The kernel is what ``config.json`` records: ``compiled`` or ``eager``, with ``(auto)`` where
    ``fused="auto"`` chose it.
    """
    from rlopt.config.agents import parse_set
    from rlopt.run.config import TrainConfig
    from rlopt.run.train import run_training

    name, *switches = args.optimizer.split("+")
    summary = run_training(TrainConfig(
        algo=args.algo, env=args.env, optimizer=name, seed=args.seed, timesteps=args.timesteps,
        eps=1e-5 if name == "adam" and args.algo == "ppo" else None, device="cpu",
        run_dir=out / "run", eval_freq=args.eval_freq, eval_episodes=args.eval_episodes,
        overrides=parse_set(args.overrides), optimizer_extra=_switches(switches), threads=args.threads,
    ))
    if summary.status != "ok":
        raise SystemExit(f"rlopt {args.optimizer}: {summary.status}: {summary.reason}")
    recorded = json.loads((out / "run" / "config.json").read_text())["optimizer"]
    kernel = "compiled" if recorded.get("fused") else "eager"
    return summary.steps_per_s, kernel + (" (auto)" if recorded.get("fused_auto") else "")


def _time_optimizer_steps() -> list[float]:
    """Seconds of every ``optimizer.step`` of the process, from torch's global step hooks (they run for
    every ``torch.optim.Optimizer``, stock and rlopt alike, compiling included)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    durations: list[float] = []
    started: list[float] = []
    register_optimizer_step_pre_hook(lambda *_: started.append(time.perf_counter()))
    register_optimizer_step_post_hook(lambda *_: durations.append(time.perf_counter() - started.pop()))
    return durations


def child(args: argparse.Namespace) -> None:
    step_seconds = _time_optimizer_steps()
    with tempfile.TemporaryDirectory(prefix="rlopt-bench-") as tmp:
        rate, kernel = (run_stock(args, Path(tmp)), "torch Adam") if args.optimizer == STOCK else run_rlopt(
            args, Path(tmp))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"steps_per_s": rate, "peak_mb": peak_mb, "kernel": kernel,
                      "optimizer_s": sum(step_seconds), "first_steps_s": sum(step_seconds[:FIRST_STEPS])}))


def measure(args: argparse.Namespace, optimizer: str) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", "--optimizer", optimizer, "--algo", args.algo,
               "--env", args.env, "--timesteps", str(args.timesteps), "--seed", str(args.seed),
               "--eval-freq", str(args.eval_freq), "--eval-episodes", str(args.eval_episodes),
               "--threads", str(args.threads)]
    for item in args.overrides:
        command += ["--set", item]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{optimizer}: exit {done.returncode}\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def environment() -> str:
    import stable_baselines3
    import torch

    return (f"python {platform.python_version()}, torch {torch.__version__}, "
            f"SB3 {stable_baselines3.__version__}, "
            f"{platform.processor() or platform.machine()}, {_cores()} cores")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ppo", choices=("ppo", "sac"))
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--timesteps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evaluations", type=int, default=4, help="evaluations per run (default 4)")
    parser.add_argument("--eval-freq", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--eval-episodes", type=int, default=2)
    parser.add_argument("--optimizers", default=",".join(RLOPT_OPTIMIZERS),
                        help=f"rlopt optimizers to run (default {','.join(RLOPT_OPTIMIZERS)}); "
                             "NAME+KEY[=true|false] sets a boolean option, e.g. adopt+fused")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="agent hyperparameter for both sides, e.g. learning_starts=1000 (repeatable)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for both sides (default: rlopt train's, DEFAULT_THREADS)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--optimizer", default=STOCK, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.eval_freq is None:
        args.eval_freq = _eval_schedule(args.timesteps, args.evaluations)
    if args.threads is None:
        from rlopt.run.config import DEFAULT_THREADS

        args.threads = DEFAULT_THREADS
    if args.child:
        child(args)
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    configs = [STOCK, *(o.strip() for o in args.optimizers.split(",") if o.strip())]
    console.print(f"{environment()}\n{args.algo.upper()} {args.env}, {args.timesteps:,} steps per run, "
                  f"evaluation every {args.eval_freq:,} steps ({args.eval_episodes} episodes), seed "
                  f"{args.seed}, {args.threads} torch thread(s), {args.repeats} interleaved repeats, "
                  "one process per run"
                  + (f", --set {' '.join(args.overrides)}" if args.overrides else ""))
    results: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    for repeat in range(args.repeats):
        for config in configs:
            results[config].append(measure(args, config))
            console.print(f"  repeat {repeat + 1}/{args.repeats} {config}: "
                          f"{results[config][-1]['steps_per_s']:,.0f} steps/s", highlight=False)

    def median(config: str, key: str) -> float:
        return statistics.median(r[key] for r in results[config])

    base_rate, base_mem = median(STOCK, "steps_per_s"), median(STOCK, "peak_mb")
    table = Table(title=f"{args.algo.upper()} {args.env}: rlopt train vs stock SB3 (medians)")
    columns = ("configuration", "kernel", "env steps/s", "ratio to stock", "optimizer steps (s)",
               f"of which first {FIRST_STEPS}", "peak RSS (MB)", "memory ratio")
    for column in columns:
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for config in configs:
        rate, mem = median(config, "steps_per_s"), median(config, "peak_mb")
        label = config if config == STOCK else f"rlopt {config}"
        table.add_row(label, results[config][-1]["kernel"], f"{rate:,.0f}", f"{rate / base_rate:.2f}x",
                      f"{median(config, 'optimizer_s'):,.2f}", f"{median(config, 'first_steps_s'):,.2f}",
                      f"{mem:,.0f}", f"{mem / base_mem:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
