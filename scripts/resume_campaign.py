#!/usr/bin/env python
"""Resume the evidence campaign with one command: each pinned stage's unfinished studies, in order.

    nohup nice -n 19 .venv/bin/python scripts/resume_campaign.py --parallel-runs 2 > campaign.log 2>&1 &
    .venv/bin/python scripts/resume_campaign.py --dry-run     # what it would do, nothing written

``results/campaign/pins.yaml`` lists the stages: a tag, the commit it names and the claims it trains
(and studies by name that test no claim, such as the SAC sanity check).
For each stage in turn this finds the studies that are not complete (as the claims table says:
:mod:`rlopt.analysis.progress` reads the committed bundle; a study with no bundle has not started),
makes the stage's pinned checkout where it is missing (a git worktree at the commit, ``../rlopt-<tag>``
beside this checkout, with its own venv) and
runs ``scripts/campaign.py run`` there on the unfinished studies (``--studies``; ``--claims`` for the
stages cut before that option), which seeds each study from its bundle and trains only what is
missing. A stage that fails stops the command (the same command resumes).
Snapshots stay a separate step (``scripts/campaign.py snapshot --live ../rlopt-<tag>/runs/campaign``),
taken before each commit.

Written by hand because the steps span git, venvs and a pinned checkout, which no library joins.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from rlopt.config.pins import Stage, read_pins
from rlopt.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BUNDLES = ROOT / "results" / "campaign"
PINS = BUNDLES / "pins.yaml"
TORCH = "torch==2.13.0"
"""The torch the campaign's venvs install (the suite's tested version; each run records its own)."""


def fail(message: str) -> NoReturn:
    print(f"resume_campaign: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def study_files_at(commit: str, claim: int) -> dict[str, str]:
    """The study files of ``claim`` in ``studies/`` at ``commit`` (its own first, then shared ones, as
    ``scripts/campaign.py`` orders them), each with its text."""
    from rlopt.config.data import claim_file_names

    listing = _git("ls-tree", "--name-only", f"{commit}:studies")
    if listing.returncode != 0:
        fail(f"commit {commit}: not in this clone's history, or it has no studies/ "
             "(accepted: a commit of main; fetch the full history)")
    names = claim_file_names(listing.stdout.split(), claim)
    return {n: _git("show", f"{commit}:studies/{n}").stdout for n in names}


def named_study_at(commit: str, name: str, stage: str) -> str:
    """The text of ``studies/<name>.yaml`` at ``commit``, a study the stage names (one of no claim)."""
    shown = _git("show", f"{commit}:studies/{name}.yaml")
    if shown.returncode != 0:
        fail(f"study {name!r} of stage {stage}: no studies/{name}.yaml at {commit[:7]} "
             "(accepted: names of study files at the stage's commit, without .yaml)")
    return shown.stdout


def study_state(text: str, source: str, bundles: Path) -> tuple[str, bool, str]:
    """The study's name, whether it is complete and its state in words, from its committed bundle
    (:mod:`rlopt.analysis.progress`, as the claims table says it)."""
    from rlopt.analysis.progress import progress_of, study_progress
    from rlopt.config.study import parse_spec
    from rlopt.config.yaml import load

    try:
        spec = parse_spec(load(text, source), source)
    except ConfigError as exc:
        fail(str(exc))
    bundle = bundles / spec.name
    if not (bundle / "study.db").is_file():
        return spec.name, False, f"not started (0 of {progress_of(spec, [], [], 0).asked})"
    progress = study_progress(spec, bundle)[1]
    return spec.name, progress.complete, progress.describe()


@dataclass(frozen=True)
class Unfinished:
    """What of a stage is left: its claims with an unfinished study, and those studies, in order."""

    claims: tuple[int, ...]
    studies: tuple[str, ...]


def unfinished(stage: Stage, bundles: Path) -> Unfinished:
    """What of the stage is not complete, printing each study's state: its claims' studies, then the
    studies it names."""
    claims: list[int] = []
    studies: list[str] = []

    def judge(label: str, name: str, text: str) -> bool:
        study, complete, state = study_state(text, f"{stage.commit[:7]}:studies/{name}", bundles)
        print(f"{stage.tag}: {label}{study}: runs that count {state}", flush=True)
        if not complete and study not in studies:
            studies.append(study)
        return complete

    for claim in stage.claims:
        files = study_files_at(stage.commit, claim)
        if not files:
            fail(f"claim {claim} of stage {stage.tag}: no study file claim{claim}-*.yaml at "
                 f"{stage.commit[:7]} (accepted: claims with a study file at the stage's commit)")
        for name, text in files.items():
            if not judge(f"claim {claim}: ", name, text) and claim not in claims:
                claims.append(claim)
    for name in stage.studies:
        judge("", f"{name}.yaml", named_study_at(stage.commit, name, stage.tag))
    return Unfinished(tuple(claims), tuple(studies))


def what_to_run(stage: Stage, left: Unfinished) -> list[str]:
    """``campaign.py run``'s arguments for what is left: the unfinished studies by name where the stage's
    ``campaign.py`` takes ``--studies`` (so a complete study of a claim is never opened by a later
    commit), else the claims (the stages cut before it, which name no study)."""
    campaign = _git("show", f"{stage.commit}:scripts/campaign.py").stdout
    if '"--studies"' in campaign:
        return ["--studies", ",".join(left.studies)]
    if stage.studies:
        fail(f"stage {stage.tag}: its commit {stage.commit[:7]}'s scripts/campaign.py has no --studies, so "
             "it cannot train the studies it names (accepted: studies: in stages from 6ea4fee on)")
    return ["--claims", ",".join(map(str, left.claims))]


def checkout(stage: Stage, worktrees: Path, torch: str, dry_run: bool) -> Path:
    """The stage's pinned checkout with its venv, made where missing; a checkout at another commit is
    an error (it is someone's: never touched)."""
    path = worktrees / f"rlopt-{stage.tag}"
    steps: list[list[str]] = []
    if path.exists():
        head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
        if head.stdout.strip() != stage.commit:
            fail(f"{path}: checked out at {head.stdout.strip()[:7] or 'no commit'}, not {stage.tag}'s "
                 f"{stage.commit[:7]} (accepted: that commit's worktree, or no folder there)")
    else:
        steps += [["git", "-C", str(ROOT), "tag", "-f", stage.tag, stage.commit],
                  ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), stage.commit]]
    python = path / ".venv" / "bin" / "python"
    probe = [str(python), "-I", "-c",  # -I: not the rlopt of the current folder
             "import pathlib, sys, optuna, stable_baselines3, torch, rlopt; sys.exit(not pathlib.Path("
             f"rlopt.__file__).resolve().is_relative_to({str(path.resolve())!r}))"]
    if not python.is_file() or subprocess.run(probe, capture_output=True).returncode != 0:
        steps += [[sys.executable, "-m", "venv", str(path / ".venv")],
                  [str(path / ".venv" / "bin" / "pip"), "install", "-q", torch, "-e", str(path)]]
    for step in steps:
        print("resume_campaign: " + " ".join(step), flush=True)
        if not dry_run and subprocess.call(step) != 0:
            fail(f"{' '.join(step)} failed (see above); fix it and run the same command again")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pins", type=Path, default=PINS,
                        help="the stages (default results/campaign/pins.yaml)")
    parser.add_argument("--into", type=Path, default=BUNDLES,
                        help="the committed bundles (default results/campaign of this checkout)")
    parser.add_argument("--worktrees", type=Path, default=ROOT.parent,
                        help="where the pinned checkouts live (default: beside this checkout)")
    parser.add_argument("--parallel-runs", type=int, default=None,
                        help="runs of one trial at once (default: cores / workers)")
    parser.add_argument("--torch", default=TORCH,
                        help=f"what a new venv installs for torch (default {TORCH})")
    parser.add_argument("--dry-run", action="store_true", help="say what would run; make and train nothing")
    args = parser.parse_args(argv)
    if args.parallel_runs is not None and args.parallel_runs < 1:
        fail(f"--parallel-runs {args.parallel_runs} (accepted: a whole number >= 1)")
    if not args.into.is_dir():
        fail(f"--into {args.into}: no such folder (accepted: the campaign's results folder)")
    if not args.worktrees.is_dir():
        fail(f"--worktrees {args.worktrees}: no such folder (accepted: an existing folder)")
    try:
        stages = read_pins(args.pins)
    except ConfigError as exc:
        fail(str(exc))
    for stage in stages:
        left = unfinished(stage, args.into.resolve())
        if not left.studies:
            print(f"{stage.tag}: complete", flush=True)
            continue
        arguments = what_to_run(stage, left)  # before the checkout: a stage it cannot run makes nothing
        path = checkout(stage, args.worktrees.resolve(), args.torch, args.dry_run)
        command = [str(path / ".venv" / "bin" / "python"), "scripts/campaign.py", "run",
                   *arguments, "--into", str(args.into.resolve())]
        if args.parallel_runs:
            command += ["--parallel-runs", str(args.parallel_runs)]
        print(f"resume_campaign: (in {path}) " + " ".join(command), flush=True)
        if args.dry_run:
            continue
        code = subprocess.call(command, cwd=path)
        if code != 0:
            print(f"resume_campaign: {stage.tag} exited with {code}; stopping here "
                  "(the same command resumes)", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
