"""``rlopt study run FILE`` and ``rlopt study status STUDY``.

``run`` validates the study file (one-line error, exit code 2, nothing written), then runs or resumes
it with ``--workers`` processes on this machine; the same command with ``--storage postgresql://...`` on
several machines shares one study. ``status`` prints progress, best trials and failures, and writes
Optuna's plots into the study folder.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("study", help="run a study file (Optuna) or show its status")
    commands = parser.add_subparsers(dest="study_command", metavar="ACTION", required=True)

    run = commands.add_parser("run", help="run or resume a study file (studies/*.yaml)")
    run.add_argument("file", help="the study file, e.g. studies/quickstart.yaml")
    run.add_argument("--workers", type=int, default=1,
                     help="worker processes on this machine, each pulling trials from the storage "
                          "(default 1)")
    run.add_argument("--storage", default=None,
                     help="storage URL (default: the file's, else sqlite:///runs/<study>/study.db); "
                          "postgresql://user:pass@host/db shares the study between machines")
    run.add_argument("--runs-dir", default="runs", help="parent folder of the study folder (default runs)")
    run.add_argument("--parallel-runs", type=int, default=None,
                     help="runs of one trial at once per worker (default: the file's, else cores / workers)")
    run.add_argument("--no-plots", action="store_true", help="do not write Optuna's plots at the end")
    run.add_argument("--reuse-runs-from", action="append", default=None, metavar="DIR",
                     help="copy, instead of training, each run that a study under DIR (e.g. the --runs-dir) "
                          "finished with the same resolved config, device, threads, clean git commit and "
                          "package versions; the copy's metrics.json names it; repeatable, the first DIR "
                          "first (default: train every run)")
    run.set_defaults(func=run_command)

    status = commands.add_parser("status", help="progress, best trials and failures of a study")
    status.add_argument("study", help="a study folder (runs/<name>) or a study name")
    status.add_argument("--storage", default=None,
                        help="storage URL (default: the one the study was run with)")
    status.add_argument("--runs-dir", default="runs", help="where study names are looked up (default runs)")
    status.add_argument("--no-plots", action="store_true", help="do not write Optuna's plots")
    status.set_defaults(func=status_command)

    from rlopt.cli.study_export import add_parser as add_export

    add_export(commands)


def _quiet_libraries() -> None:
    import optuna

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_command(args: argparse.Namespace) -> int:
    from rlopt.config.study import load_spec
    from rlopt.errors import ConfigError, StudyStopped

    for flag, value in (("--workers", args.workers), ("--parallel-runs", args.parallel_runs)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value} is not accepted (accepted: an integer >= 1)")
    spec = load_spec(args.file)
    if args.storage is not None:
        from rlopt.config.storage import check_url

        try:
            check_url(args.storage)
        except ConfigError as exc:
            raise ConfigError(f"--storage: {exc}") from exc
    # The study's machinery (optuna, sqlalchemy, the statistics) loads only once the file is valid:
    # a bad file is refused without waiting for it.
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import SQLAlchemyError

    from rlopt.analysis.look_verdicts import judge_look
    from rlopt.study.run import run_study

    _quiet_libraries()
    try:
        location, outcome = run_study(spec, storage=args.storage, runs_dir=args.runs_dir,
                                      workers=args.workers, parallel_runs=args.parallel_runs, file=args.file,
                                      command=_command_line(args), judge_look=judge_look,
                                      reuse_runs_from=args.reuse_runs_from or ())
    except (OSError, SQLAlchemyError, StorageInternalError) as exc:
        raise StudyStopped(f"study {spec.name} stopped: {_one_line(exc)}; finished trials are kept, and the "
                           "same command resumes once the storage and study folder can be written") from exc
    _show(str(location.study_dir), location.url, args.runs_dir, not args.no_plots)
    return _say_outcome(spec.name, location.study_dir, outcome)


def _one_line(exc: BaseException) -> str:
    """What the database or the system said, with the error's type."""
    from rlopt.errors import first_line, root_cause

    return f"{type(root_cause(exc)).__name__}: {first_line(exc)}"[:300]


def _say_outcome(name: str, study_dir: Any, outcome: Any) -> int:
    """One closing line: finished, or which grid points are missing (exit code 1) and how to resume."""
    import sys

    if outcome.complete:
        state = "already finished" if outcome.already else "finished"
        print(f"study {name}: {state}, {outcome.finished} of {outcome.planned} trials; "
              f"next: rlopt report {study_dir}")
        return 0
    shown = "; ".join(outcome.missing[:3]) + (
        f"; and {len(outcome.missing) - 3} more" if len(outcome.missing) > 3 else ""
    )
    lacking = (
        f"{len(outcome.missing)} failed with no retry left in this command: {shown}"
        if outcome.missing
        else "the workers stopped early (see the log above)"
    )
    print(
        f"study {name}: incomplete, {outcome.finished} of {outcome.planned} trials finished; {lacking}. "
        "Fix the cause and run the same command again: it keeps what finished and retries every failed "
        "trial up to heartbeat.max_retry times",
        file=sys.stderr,
    )
    return 1


def _command_line(args: argparse.Namespace) -> str | None:
    """The command as the user typed it, with any storage password left out."""
    import shlex

    from rlopt.config.storage import redact_argv

    return None if args.argv is None else shlex.join(["rlopt", *redact_argv(args.argv)])


def status_command(args: argparse.Namespace) -> int:
    _quiet_libraries()
    return _show(args.study, args.storage, args.runs_dir, not args.no_plots)


def _show(study: str, storage: str | None, runs_dir: str, plots: bool) -> int:
    from rich.console import Console

    from rlopt.analysis.study_plots import write_plots
    from rlopt.study.status import open_study, print_status

    console = Console()  # the terminal's width (COLUMNS, or 80 when not a terminal)
    opened = open_study(study, storage, runs_dir)
    print_status(opened, console)
    if plots:
        written = write_plots(opened, console)
        if written:
            console.print(f"plots: {len(written)} PNG files in {opened.study_dir / 'plots'}")
    console.print(f"TensorBoard: tensorboard --logdir {opened.study_dir}")
    return 0
