#!/usr/bin/env python
"""The evidence campaign: the claim studies at budgets where agents learn, resumable across sessions.

The studies train for hours, longer than one session or machine lasts, so the campaign is built to be
stopped at any moment and resumed anywhere from what is committed:

    python scripts/campaign.py run --claims 1,2          # run (or resume) the claims' studies, in order
    python scripts/campaign.py run --studies NAME,...    # or these studies (studies/<name>.yaml)
    python scripts/campaign.py snapshot                  # write the committed bundle of every study
    python scripts/campaign.py report                    # runs.csv and report/ of every bundle
    python scripts/campaign.py progress                  # progress.md of every bundle, from the bundle
    python scripts/claims_table.py                       # then the claims table of both READMEs

``run`` trains in a *live* folder (``--live``, default ``runs/campaign``, not committed) with
``rlopt study run``. Where the live folder lacks a study but the committed bundle has it (a new
session or machine), the bundle is copied in first, so the same command resumes: the storage marks the
trial that was training when the last session stopped as failed (its heartbeat is stale), its retry
moves in the runs that trial had finished, and only the unfinished runs train again.
A run that another study of the live folder or of the committed bundles (``--into``: complete studies
are not copied into a fresh machine's live folder) already finished, the same run in everything that
decides its numbers (``rlopt study run --reuse-runs-from``, :mod:`rlopt.study.shared_runs`), is copied,
not trained again: the default Adam arm that several claims share, every scaling rule's κ = 1 cell.

``snapshot`` writes ``results/campaign/<study>/`` (``--into``): a consistent copy of the study's
SQLite storage (SQLite's online backup, safe while workers write), ``study.json``, ``study.yaml``,
``command.txt``, and every *finished* run folder's small files (``config.json``, ``command.txt``,
``versions.json``, ``eval.csv``, ``metrics.json``; no TensorBoard events or models), plus
``progress.json`` (finished runs out of planned, per arm, and the runs in flight) and ``progress.md``
(one row per run of the bundle, from its own files: state, env steps, returns, wall time, commit;
``progress`` rewrites it from the bundle alone, and a test checks it). A run still training
that has a checkpoint (``checkpoint.pt``, every ``checkpoint_every`` env steps of the study) is copied
too, with its checkpoint: the next session moves it into the retry of its trial and it continues from
there, bit for bit, instead of from zero. A run in flight whose folder cannot be committed (its checkpoint
is over :data:`MAX_CHECKPOINT_BYTES`, as a long SAC run's replay buffer is, or it has none yet) trains
again from zero elsewhere; ``progress.json`` keeps its evaluations so far and ``progress.md`` lists them
apart, so the compute it got is visible without counting anywhere. Run it while the campaign trains,
then commit.

``report`` writes, from each bundle (read from a temporary copy, so the committed database is never
touched), ``runs.csv`` (``rlopt study export``: the long format ``rlopt verdict`` reads, one row per
evaluation of every run of a complete trial) and ``report/`` (``rlopt report`` with the claim of
``studies/<study>.yaml``, saying "partial" while runs are missing). A test regenerates every committed
bundle's verdict table from its ``runs.csv`` and compares it with the committed report.

The campaign runs from pinned checkouts with their own venvs, at low priority: ``run`` is called in
each by ``scripts/resume_campaign.py``, which reads the stages of ``results/campaign/pins.yaml`` (which
commit trains which claims), makes the checkouts and resumes the unfinished claims in order:

    nohup nice -n 19 .venv/bin/python scripts/resume_campaign.py --parallel-runs 2 > campaign.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

from rlopt import atomic

ROOT = Path(__file__).resolve().parent.parent
STUDIES = ROOT / "studies"
BUNDLE_FILES = ("study.json", "study.yaml", "command.txt")
RUN_FILES = ("config.json", "command.txt", "versions.json", "eval.csv", "metrics.json")
CHECKPOINT = "checkpoint.pt"
MAX_CHECKPOINT_BYTES = 8 * 2**20
"""In-flight checkpoints larger than this are not committed (a bundle stays <= 20 MB): PPO's are ~2 MB, a
SAC run's grows with its replay buffer (~17 MB at 100k HalfCheetah steps), so such a run restarts."""
FINISHED = ("ok", "diverged")
UNFINISHED = ("running", "stopped")
"""A run still training, or one a session's stop left (killed: ``running``; SIGTERM: ``stopped``)."""


def fail(message: str) -> NoReturn:
    print(f"campaign: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def claim_files(claims: str) -> list[Path]:
    """The study files of the claims, in the order given (e.g. ``1,2``); a study shared by several claims
    (``claim6-8-*.yaml``) comes once, after the first claim's own files."""
    from rlopt.config.data import claim_files as files_of

    files: list[Path] = []
    for word in claims.split(","):
        if not word.strip().isdigit():
            fail(f"--claims {claims!r}: {word!r} is not a claim number (accepted: e.g. 1,2)")
        found = files_of(STUDIES, int(word))
        if not found:
            fail(f"--claims: no study file of claim {int(word)} in studies/ (claim{int(word)}-*.yaml)")
        files.extend(p for p in found if p not in files)
    return files


def named_files(names: str) -> list[Path]:
    """The study files ``studies/<name>.yaml`` of ``names`` (e.g. ``claim1-adopt-vs-adam-ppo``), in the
    order given: how ``scripts/resume_campaign.py`` names only the unfinished studies of a claim."""
    files = []
    for name in (n.strip() for n in names.split(",")):
        path = STUDIES / f"{name}.yaml"
        if not name or not path.is_file():
            fail(f"--studies: {name!r} is not a study of studies/ (accepted: names of studies/*.yaml "
                 "without .yaml, comma-separated)")
        if path not in files:
            files.append(path)
    return files


def study_name(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("name:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    fail(f"{path}: no top-level name")


def _backup_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the online backup API)."""
    tmp = target.with_name(target.name + ".tmp")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=120)
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    tmp.replace(target)


def _run_state(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def _copy_run(run_dir: Path, target: Path, names: tuple[str, ...]) -> None:
    """Each file whole or not at all: a snapshot stopped part-way (a kill, a full disk) leaves the
    bundle's earlier copy of a file, never half of one."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (run_dir / name).is_file():
            atomic.copy_file(run_dir / name, target / name)


def _short_commit(run_dir: Path) -> str:
    """The first 7 hex digits of the commit that made a run (its ``versions.json``; "" if unknown)."""
    from rlopt.run.folder import read_json

    return str(read_json(run_dir / "versions.json").get("git_commit") or "")[:7]


def _return_cells(returns: list[float]) -> list[str]:
    """A run's first, last, mean-of-last-5 and best evaluation returns as table cells ("—" if none)."""
    if not returns:
        return ["—"] * 4
    last = returns[-5:]
    return [f"{value:,.0f}" for value in (returns[0], returns[-1], sum(last) / len(last), max(returns))]


def _progress_so_far(run_dir: Path) -> dict[str, object]:
    """What the bundle keeps of a run in flight whose folder it cannot commit, so the compute spent on it
    still shows (a SAC run's replay buffer outgrows :data:`MAX_CHECKPOINT_BYTES` long before a long run
    ends): its commit and ``[timesteps, mean return, wall time s]`` of each evaluation so far."""
    from rlopt.run.folder import read_eval_rows

    return {"commit": _short_commit(run_dir),
            "evaluations": read_eval_rows(run_dir / "eval.csv", ("timesteps", "mean_return", "wall_time_s"))}


def _checkpoint_steps(run_dir: Path) -> int | None:
    try:
        import torch

        return int(torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=False)["timesteps"])
    except Exception:  # being replaced while we read: the next snapshot takes it
        return None


def snapshot_study(live: Path, bundle: Path) -> dict[str, int]:
    """Write the bundle of one live study folder; returns finished runs per arm."""
    bundle.mkdir(parents=True, exist_ok=True)
    _backup_sqlite(live / "study.db", bundle / "study.db")
    _copy_run(live, bundle, BUNDLE_FILES)
    finished: dict[str, int] = {}
    in_flight: list[dict[str, object]] = []
    for metrics in sorted(live.glob("*/trial_*/*/metrics.json")):
        run_dir = metrics.parent
        relative = run_dir.relative_to(live)
        if _run_state(run_dir) in FINISHED:
            _copy_run(run_dir, bundle / relative, RUN_FILES)
            (bundle / relative / CHECKPOINT).unlink(missing_ok=True)
            finished[relative.parts[0]] = finished.get(relative.parts[0], 0) + 1
        elif (run_dir / CHECKPOINT).is_file():
            steps = _checkpoint_steps(run_dir)
            size = (run_dir / CHECKPOINT).stat().st_size
            if steps is not None and size <= MAX_CHECKPOINT_BYTES:
                _copy_run(run_dir, bundle / relative, (*RUN_FILES, CHECKPOINT))
                in_flight.append({"run": str(relative), "checkpoint_timesteps": steps})
            elif steps is not None:
                in_flight.append({"run": str(relative), "checkpoint_timesteps": steps,
                                  "not_committed": f"checkpoint of {size / 2**20:.1f} MB > "
                                                   f"{MAX_CHECKPOINT_BYTES / 2**20:.0f} MB: restarts",
                                  **_progress_so_far(run_dir)})
        elif _run_state(run_dir) in UNFINISHED:
            in_flight.append({"run": str(relative), "not_committed": "no checkpoint yet: restarts",
                              **_progress_so_far(run_dir)})
    # a run folder moved by a retry since the last snapshot leaves a stale copy: keep only live ones
    for metrics in sorted(bundle.glob("*/trial_*/*/metrics.json")):
        live_run = live / metrics.parent.relative_to(bundle)
        committed = {str(e["run"]) for e in in_flight if "not_committed" not in e}
        if _run_state(live_run) not in FINISHED and str(metrics.parent.relative_to(bundle)) not in committed:
            shutil.rmtree(metrics.parent)
    for trial_dir in sorted(bundle.glob("*/trial_*")):
        if not any(trial_dir.iterdir()):
            trial_dir.rmdir()
    progress = {"finished_runs": finished, "finished_total": sum(finished.values()),
                "planned_runs": _planned_runs(live), "in_flight": in_flight}
    atomic.write_text(bundle / "progress.json", json.dumps(progress, indent=2) + "\n")
    write_progress_table(bundle)
    return finished


def write_progress_table(bundle: Path) -> Path:
    """``progress.md``: one row per run folder of the bundle, read from the bundle's own files only.

    Which runs *count* is the trials' business (a finished run of a failed trial does not): the
    report's "Runs left out" says which, and why."""
    from rlopt.run.folder import read_eval_csv, read_json
    from rlopt.study.shared_runs import COPIED_FROM

    progress = json.loads((bundle / "progress.json").read_text())
    checkpoints = {str(e["run"]): e.get("checkpoint_timesteps") for e in progress.get("in_flight", [])}
    rows = []
    copies = 0
    for metrics_path in sorted(bundle.glob("*/trial_*/*/metrics.json")):
        run_dir = metrics_path.parent
        name = str(run_dir.relative_to(bundle))
        metrics = read_json(metrics_path)
        commit = _short_commit(run_dir)
        returns = read_eval_csv(run_dir / "eval.csv")[1].tolist()
        finished = metrics.get("status") in FINISHED
        steps = metrics.get("timesteps_done") if finished else checkpoints.get(name)
        cells = [
            f"`{name}`",
            str(metrics.get("status", "?")) + ("" if finished else " (checkpointed)" if steps else "")
            + (f" (copy of `{metrics[COPIED_FROM]}`)" if metrics.get(COPIED_FROM) else ""),
            f"{steps:,}" if isinstance(steps, int) else "—",
            *_return_cells(returns),
            f"{metrics['wall_time_s'] / 3600:.2f}" if finished and "wall_time_s" in metrics else "—",
            ", ".join(f"{s:,}" for s in metrics.get("resumed_from", [])) or "—",
            commit or "—",
        ]
        copies += bool(metrics.get(COPIED_FROM))
        rows.append("| " + " | ".join(cells) + " |")
    header = [
        f"# Runs of {bundle.name}",
        "",
        "Generated by `scripts/campaign.py` from this bundle's run folders (nothing edited by hand).",
        f"{progress.get('finished_total', 0)} finished run folders; runs planned: "
        f"{progress.get('planned_runs')}. Which finished runs count is decided by their trials: see "
        '"Runs left out" in report/report.md. Returns are the mean evaluation return at each evaluation '
        "(eval.csv); steps of a run in flight are those of its committed checkpoint; wall time is up to "
        "the last checkpoint of each session it ran in." + (
            " A copy was not trained again: another study of the same stage had finished the same run "
            "(same resolved config, commit and versions; `rlopt study run --reuse-runs-from`), whose "
            "folder it names." if copies else ""),
        "",
        "| run | state | env steps | first eval | last eval | mean of last 5 evals | best eval "
        "| wall time (h) | resumed from | commit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    path = bundle / "progress.md"
    atomic.write_text(path, "\n".join([*header, *rows, *_uncommitted_runs_table(progress)]) + "\n")
    return path


def _uncommitted_runs_table(progress: dict[str, Any]) -> list[str]:
    """The runs in flight whose folders the bundle could not take (``progress.json``'s evaluations so
    far), a row each: how far each got, not a result (such a run trains again from zero elsewhere)."""
    entries = [e for e in progress.get("in_flight", []) if "evaluations" in e]
    if not entries:
        return []
    rows = [
        "",
        "## Runs in flight, not committed",
        "",
        "These runs were training when the snapshot was taken, but their folders are not in the bundle "
        "(why: last column), so a new machine trains them again from zero. What they had evaluated by "
        "then (`progress.json`, their eval.csv rows) shows how far the compute got; none of it counts "
        "in a report. Wall time is that of the last evaluation, since the run (re)started.",
        "",
        "| run | evaluated env steps | evaluations | first eval | last eval | mean of last 5 evals "
        "| best eval | wall time (h) | commit | not committed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in entries:
        evaluations = entry["evaluations"]
        rows.append("| " + " | ".join([
            f"`{entry['run']}`",
            f"{int(evaluations[-1][0]):,}" if evaluations else "—",
            str(len(evaluations)),
            *_return_cells([row[1] for row in evaluations]),
            f"{evaluations[-1][2] / 3600:.2f}" if evaluations else "—",
            str(entry.get("commit") or "—"),
            str(entry["not_committed"]),
        ]) + " |")
    return rows


def _planned_runs(live: Path) -> int | None:
    """Runs the study file asks for: trials per arm x tasks x seeds (None if the file is unreadable)."""
    try:
        from rlopt.config.study import load_spec

        spec = load_spec(live / "study.yaml")
    except Exception:
        return None
    return spec.planned_runs()


def seed_live(bundle: Path, live: Path) -> None:
    """Copy a committed bundle into an empty live folder, so the study resumes from it."""
    shutil.copytree(bundle, live, ignore=shutil.ignore_patterns("progress.json"))


def run(args: argparse.Namespace) -> int:
    files = named_files(args.studies) if args.studies else claim_files(args.claims)
    live_root, into = Path(args.live), Path(args.into)
    live_root.mkdir(parents=True, exist_ok=True)  # a folder --reuse-runs-from reads, before any study
    for path in files:
        name = study_name(path)
        live, bundle = live_root / name, into / name
        if not (live / "study.db").exists() and (bundle / "study.db").exists():
            print(f"campaign: resuming {name} from the committed bundle {bundle}", flush=True)
            seed_live(bundle, live)
        command = [sys.executable, "-m", "rlopt", "study", "run", str(path), "--runs-dir", str(live_root),
                   "--workers", str(args.workers), "--no-plots", "--reuse-runs-from", str(live_root)]
        if into.is_dir():
            command += ["--reuse-runs-from", str(into)]
        if args.parallel_runs:
            command += ["--parallel-runs", str(args.parallel_runs)]
        print("campaign: " + " ".join(command), flush=True)
        code = subprocess.call(command)
        if (live / "study.db").exists():
            snapshot_study(live, bundle)
        if code != 0:
            print(f"campaign: {name} exited with {code}; stopping here (the same command resumes)",
                  file=sys.stderr)
            return code
    return 0


def _folders_holding(root: Path, name: str, flag: str, accepted: str) -> list[Path]:
    """The study folders under ``root`` that hold ``name``; none is a one-line error naming ``flag``."""
    folders = sorted(p.parent for p in root.glob(f"*/{name}"))
    if not folders:
        fail(f"{flag} {root}: no study folder with a {name} (accepted: {accepted})")
    return folders


def snapshot(args: argparse.Namespace) -> int:
    live_root, into = Path(args.live), Path(args.into)
    for live in _folders_holding(live_root, "study.db", "--live", "the campaign's live folder"):
        finished = snapshot_study(live, into / live.name)
        print(f"{live.name}: {sum(finished.values())} finished runs -> {into / live.name}")
    return 0


def report(args: argparse.Namespace) -> int:
    import tempfile

    for bundle in _folders_holding(Path(args.into), "study.db", "--into", "the campaign's results folder"):
        study_file = STUDIES / f"{bundle.name}.yaml"
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / bundle.name
            shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("report", "runs.csv"))
            rlopt = [sys.executable, "-m", "rlopt"]
            steps = [
                [*rlopt, "study", "export", str(copy), "-o", str(bundle / "runs.csv")],
                [*rlopt, "report", str(copy), "--study-file", str(study_file), "--out",
                 str(bundle / "report")],
            ]
            for command in steps:
                code = subprocess.call(command)
                if code != 0:
                    return code
        print(f"{bundle.name}: {bundle / 'runs.csv'}, {bundle / 'report' / 'report.md'}")
    return 0


def progress(args: argparse.Namespace) -> int:
    for bundle in _folders_holding(Path(args.into), "progress.json", "--into",
                                   "the campaign's results folder"):
        print(f"{bundle.name}: {write_progress_table(bundle)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("run", "snapshot", "report", "progress"):
        p = sub.add_parser(action)
        p.add_argument("--live", default="runs/campaign", help="live study folders (default runs/campaign)")
        p.add_argument("--into", default=str(ROOT / "results" / "campaign"),
                       help="where the committed bundles are (default results/campaign of this checkout)")
        if action == "run":
            which = p.add_mutually_exclusive_group()
            which.add_argument("--claims", default="1,2", help="claim numbers in order (default 1,2)")
            which.add_argument("--studies", default=None,
                               help="study names in order (studies/<name>.yaml), instead of --claims")
            p.add_argument("--workers", type=int, default=1)
            p.add_argument("--parallel-runs", type=int, default=None,
                           help="runs of one trial at once (default: cores / workers)")
    args = parser.parse_args()
    return {"run": run, "snapshot": snapshot, "report": report, "progress": progress}[args.action](args)


if __name__ == "__main__":
    sys.exit(main())
