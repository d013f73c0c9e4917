"""The ``rlopt`` command: ``train | study run | study status | study export | report | verdict | optimizers``.

Each subcommand lives in ``rlopt/cli/<name>.py`` with a ``register(subparsers)`` function that adds
its parser and sets ``func``. Bad user input (``ValueError``, including :class:`rlopt.errors.ConfigError`)
is printed as one line, ``rlopt: error: ...``, with exit code 2; a study that cannot go on
(:class:`rlopt.errors.StudyStopped`: a read-only or full disk) as one line with exit code 1. SIGTERM (what
``timeout``, systemd and Slurm send) is handled as Ctrl-C: the run or trial in progress is closed as
``stopped`` and the command exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from rlopt.errors import StudyStopped
from rlopt.interrupts import forget_unhandled_interrupt, interrupt_on_sigterm

COMMAND_MODULES = ("optimizers", "train", "study", "report", "verdict")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlopt",
        description="Compare adaptive optimizers and their beta settings in deep RL (SB3 PPO/SAC on MuJoCo).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"rlopt.cli.{name}")
        module.register(subparsers)
    parser.set_defaults(argv=None)  # main() fills in the command as typed, for the records
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rlopt")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the program itself (not a caller passing its own words): SIGTERM is Ctrl-C
        interrupt_on_sigterm()
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(words)
    args.argv = words  # the command as typed, so run folders can record it
    try:
        code = args.func(args)
    except ValueError as exc:
        print(f"rlopt: error: {exc}", file=sys.stderr)
        return 2
    except StudyStopped as exc:
        print(f"rlopt: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rlopt: interrupted", file=sys.stderr)
        forget_unhandled_interrupt()
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
