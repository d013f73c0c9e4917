"""``rlopt train``: train one PPO or SAC agent with any registered optimizer injected.

Its options are :data:`rlopt.run.flags.TRAIN_FLAGS` (one per ``TrainConfig`` field a user sets), which
also write a run's ``command.txt``; ``--no-progress`` is this command's own.

Exit codes: 0 finished (``ok``), 1 the run diverged, failed or was stopped, 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from typing import Any

from rlopt.run.flags import TRAIN_FLAGS, Flag


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train one agent (PPO or SAC) with an injected optimizer",
        description="Train one SB3 agent on a Gymnasium task with the chosen optimizer replacing every "
        "optimizer the agent owns. Writes a run folder (config, versions, TensorBoard events, "
        "eval.csv, metrics.json).",
    )
    for flag in TRAIN_FLAGS:
        _add(parser, flag)
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (on a terminal) or progress lines (when stdout is not a terminal)",
    )
    parser.set_defaults(func=run)


def _add(parser: argparse.ArgumentParser, flag: Flag) -> None:
    """One option; unset ones stay None (or empty), so the config's own defaults apply."""
    if flag.kind == "switch":
        parser.add_argument(flag.name, action="store_true", dest=flag.field, help=flag.help)
    elif flag.kind == "pairs":
        parser.add_argument(
            flag.name, action="append", default=[], metavar="KEY=VALUE", dest=flag.field, help=flag.help
        )
    else:
        parser.add_argument(flag.name, type=flag.type or str, default=None, dest=flag.field, help=flag.help)


def config_from_args(args: argparse.Namespace) -> Any:
    from rlopt.run.config import TrainConfig
    from rlopt.run.flags import config_values

    return TrainConfig(
        **config_values(vars(args)),
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
