#!/usr/bin/env python
"""Run the paper-claim studies (``studies/claim*.yaml``) and write one report per claim.

At the budget the study files state (what ``results/`` was made with on a 2-core CPU):

    python scripts/reproduce_claims.py --claims 1,2 --workers 2

At paper scale (1M env steps per run, or each task's suite budget, and 10 seeds), for users with more
compute; studies get a ``-full`` suffix so they never mix with the small ones, and the same command on
several machines with one PostgreSQL URL shares the work:

    python scripts/reproduce_claims.py --full --claims 1,2,3 --workers 8 [--storage postgresql://...]

Re-running resumes every study (finished trials are kept). A claim whose settings are a subset of
another study's grid at the same budget can be read from that study's runs (``READS_FROM``; none today:
claim 1 trains 1M steps, claim 2's β2 grid 300k). Reports go to ``<out>/<claim study name>/``
(``report.md``, ``report.html``, PNGs) with ``command.txt`` holding the command that made the data.

The committed evidence is made by ``scripts/campaign.py`` (resumable across sessions, bundles under
``results/campaign/``); this script is the one-shot way for a user with the compute.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml

from rlopt.cli.main import main as rlopt
from rlopt.config.storage import redact_argv
from rlopt.config.yaml import StrictDumper, read_yaml

ROOT = Path(__file__).resolve().parent.parent
STUDIES = Path(os.path.relpath(ROOT / "studies"))  # relative, so recorded commands are portable
# A claim whose settings are a subset of another study's grid is read from that study's runs.
READS_FROM: dict[str, str] = {}
FULL_SEEDS = 10
FULL_TIMESTEPS = 1_000_000
FULL_EVALUATION = {"every": 10_000, "episodes": 5}


def fail(message: str) -> NoReturn:
    """Bad input: one line, exit code 2 (as ``rlopt`` does)."""
    print(f"reproduce_claims: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def claim_files(numbers: list[int]) -> list[Path]:
    """The study files of the claims ``numbers`` (a claim may have several, e.g. PPO and SAC)."""
    from rlopt.config.data import claim_files as files_of
    from rlopt.config.data import claim_numbers

    files: list[Path] = []
    for number in numbers:
        found = files_of(STUDIES, number)
        if not found:
            known = sorted({n for p in STUDIES.glob("claim*.yaml") for n in claim_numbers(p.name)})
            fail(f"no study file for claim {number} (accepted: {', '.join(map(str, known))})")
        files.extend(p for p in found if p not in files)
    return files


def full_scale(path: Path, folder: Path) -> Path:
    """A copy of the study file at paper scale: 10 seeds, 1M steps (or the suite's budgets)."""
    data: dict[str, Any] = read_yaml(path, "study file")
    data["name"] = f"{data['name']}-full"
    data["seeds"] = FULL_SEEDS
    if "suite" in data:  # each task's budget and evaluation schedule from envs/<suite>.yaml
        data.pop("timesteps", None)
        data.pop("evaluation", None)
    else:
        data["timesteps"] = FULL_TIMESTEPS
        data["evaluation"] = dict(FULL_EVALUATION)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{data['name']}.yaml"
    out.write_text(f"# {path.name} at paper scale (scripts/reproduce_claims.py --full)\n"
                   + yaml.dump(data, Dumper=StrictDumper, sort_keys=False))
    return out


def study_name(path: Path) -> str:
    return str(read_yaml(path, "study file")["name"])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", default="1,2", help="claim numbers, comma-separated (default 1,2)")
    parser.add_argument("--full", action="store_true",
                        help="paper scale: 1M steps (or suite budgets), 10 seeds")
    parser.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    parser.add_argument("--storage", default=None, help="shared storage URL (default: SQLite per study)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"),
                        help="parent folder of the study folders (default runs)")
    parser.add_argument("--out", type=Path, default=Path(os.path.relpath(ROOT / "results")),
                        help="reports go here (default results/)")
    parser.add_argument("--report-only", action="store_true", help="write the reports of existing studies")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    try:
        numbers = [int(n) for n in args.claims.split(",") if n.strip()]
    except ValueError:
        fail(f"--claims {args.claims!r} (accepted: claim numbers such as 1,2)")

    def scaled(path: Path) -> Path:
        return full_scale(path, args.runs_dir / "full-scale-studies") if args.full else path

    claims = {study_name(f): f for f in map(scaled, claim_files(numbers))}
    to_run: dict[str, Path] = {}  # study whose runs are trained -> its file
    data_of: dict[str, str] = {}  # claim study -> study that holds its data
    for name, path in claims.items():
        source = READS_FROM.get(name.removesuffix("-full"))
        if source is not None:
            path = scaled(STUDIES / f"{source}.yaml")
        data_of[name] = study_name(path)
        to_run[data_of[name]] = path

    storage = ["--storage", args.storage] if args.storage else []
    if not args.report_only:
        for name, path in to_run.items():
            print(f"== study {name}: {path}", flush=True)
            code = rlopt(["study", "run", str(path), "--workers", str(args.workers),
                          "--runs-dir", str(args.runs_dir), *storage])
            if code != 0:
                return code
    for name, path in claims.items():
        data_dir, out = args.runs_dir / data_of[name], args.out / name
        report = ["report", str(data_dir), "--study-file", str(path), "--out", str(out), *storage]
        print(f"== report {name} (data: study {data_of[name]}) -> {out}", flush=True)
        code = rlopt(report)
        if code != 0:
            return code
        this = ["python", "scripts/reproduce_claims.py", *redact_argv(sys.argv[1:])]
        (out / "command.txt").write_text(
            f"# data: study {data_of[name]}\n{(data_dir / 'command.txt').read_text()}"
            f"# report\n{shlex.join(['rlopt', *redact_argv(report)])}\n"
            f"# this script\n{shlex.join(this)}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
