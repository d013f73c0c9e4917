"""``rlopt train``: train one PPO or SAC agent with any registered optimizer injected.

Exit codes: 0 finished (``ok``), 1 the run diverged, failed or was stopped, 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from rlopt.errors import ConfigError


def _parse_betas(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"Invalid --betas {text!r} (accepted: comma-separated numbers in [0, 1), e.g. 0.9,0.999)"
        ) from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one agent (PPO or SAC) with an injected optimizer",
        description="Train one SB3 agent on a Gymnasium task with the chosen optimizer replacing every "
        "optimizer the agent owns. Writes a run folder (config, versions, TensorBoard events, "
        "eval.csv, metrics.json).",
    )
    parser.add_argument("--algo", default="ppo", help="ppo or sac (default: ppo)")
    parser.add_argument("--env", default="HalfCheetah-v5", help="Gymnasium task id (default: HalfCheetah-v5)")
    parser.add_argument(
        "--optimizer", default="adam", help="registry name, see `rlopt optimizers` (default: adam)"
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="initial learning rate (default: the agent's; its schedule shape is kept)",
    )
    parser.add_argument("--betas", default=None, help="comma-separated betas (default: the optimizer's)")
    parser.add_argument(
        "--eps",
        type=float,
        default=None,
        help="optimizer eps (default: the optimizer's, Adam 1e-8; SB3's PPO would use 1e-5)",
    )
    parser.add_argument("--weight-decay", type=float, default=None, help="default: the optimizer's")
    parser.add_argument(
        "--optimizer-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="further optimizer argument, value as YAML (repeatable), e.g. gamma=0.25",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the agent, its networks and the training envs (the evaluation env gets seed + 1000003); "
        "on the CPU the same seed and options repeat the same run (default: 0)",
    )
    parser.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="env steps (default: the budget of the agent's hyperparameters)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    parser.add_argument(
        "--n-envs", type=int, default=None, help="parallel training envs (default: the agent's)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: 1, fastest for these network sizes, see README Performance)",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="run folder (default: runs/train/<algo>-<env>-<optimizer>-s<seed>-<timestamp>)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="agent hyperparameter, value as YAML (repeatable), e.g. n_steps=256 or "
        "policy_kwargs.net_arch=[64,64]",
    )
    parser.add_argument(
        "--eval-freq",
        type=int,
        default=None,
        help="env steps between evaluations, plus one after the last update "
        "(default: max(20000, timesteps/20), which keeps evaluation under 10%% of the run)",
    )
    parser.add_argument(
        "--eval-episodes",
        type=int,
        default=None,
        help="episodes per evaluation, deterministic policy on a separate env (default: 5)",
    )
    parser.add_argument("--save-model", action="store_true", help="also write model.zip (+ vecnormalize.pkl)")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (on a terminal) or progress lines (when stdout is not a terminal)",
    )
    parser.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> Any:
    from rlopt.config.agents import parse_set
    from rlopt.run.config import TrainConfig

    return TrainConfig(
        algo=args.algo,
        env=args.env,
        optimizer=args.optimizer,
        lr=args.lr,
        betas=None if args.betas is None else _parse_betas(args.betas),
        eps=args.eps,
        weight_decay=args.weight_decay,
        optimizer_extra=parse_set(args.optimizer_arg, flag="--optimizer-arg"),
        seed=args.seed,
        timesteps=args.timesteps,
        device=args.device,
        n_envs=args.n_envs,
        threads=args.threads,
        run_dir=args.run_dir,
        overrides=parse_set(args.overrides),
        eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes,
        save_model=args.save_model,
        progress=not args.no_progress,
        command=shlex.join(["rlopt", *args.argv]) if args.argv is not None else None,
    )


def run(args: argparse.Namespace) -> int:
    from rlopt.run.train import run_training

    logging.basicConfig(level=logging.INFO, format="rlopt: %(message)s", stream=sys.stderr)
    summary = run_training(config_from_args(args))
    final = "-" if summary.final_return is None else f"{summary.final_return:.2f}"
    print(
        f"{summary.status}: {summary.reason}; final return {final}; {summary.steps_per_s:,.0f} steps/s; "
        f"run folder {summary.run_dir}"
    )
    return 0 if summary.status == "ok" else 1
