"""``rlopt study export NAME -o runs.csv``: a study's finished runs as the long CSV ``rlopt verdict`` reads.

Only runs of COMPLETE trials are written (a pruned or failed trial's runs, and a running trial's, are
not the study's result), one row per evaluation (:mod:`rlopt.analysis.runs_csv`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    """Add ``export`` to the ``rlopt study`` subcommands."""
    export = commands.add_parser(
        "export", help="write a study's finished runs as a runs CSV for rlopt verdict"
    )
    export.add_argument("study", help="a study folder (runs/<name>) or a study name")
    export.add_argument("-o", "--output", type=Path, required=True, help="the CSV file to write")
    export.add_argument(
        "--storage", default=None, help="storage URL (default: the one the study was run with)"
    )
    export.add_argument("--runs-dir", default="runs", help="where study names are looked up (default runs)")
    export.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    from rlopt.analysis.load import load_runs
    from rlopt.analysis.runs_csv import write_runs_csv
    from rlopt.study.folder import find_study_dir

    study_dir = find_study_dir(args.study, args.runs_dir)
    records = [r for r in load_runs(study_dir, args.storage) if r.trial_state == "COMPLETE"]
    written = write_runs_csv(records, args.output)
    print(f"wrote {written} runs to {args.output}")
    return 0
