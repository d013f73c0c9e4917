"""``rlopt report <study_dir>``: tables, figures and one verdict per claim for a study (finished or not)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlopt.errors import ConfigError

if TYPE_CHECKING:
    from rlopt.analysis.scores import Normaliser
    from rlopt.config.claims import Claim
    from rlopt.records import RunRecord


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write report.md, report.html and figures for a study, with a verdict per claim",
        description=(
            "Read a study's storage and run folders and write report.md, report.html (figures embedded) and "
            "the PNG figures. Works while the study is still running (the report says the data are partial)."
        ),
    )
    parser.add_argument("study_dir", help="the study folder (runs/<name>) or the study name")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: <study_dir>/report)")
    parser.add_argument(
        "--storage", default=None, help="Optuna storage URL (default: the study folder's study.db)"
    )
    parser.add_argument(
        "--study-file",
        type=Path,
        default=None,
        help="study file whose 'claim:' section to test (default: a copy in the study folder, if any)",
    )
    parser.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples per interval (default: 2000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.set_defaults(func=run)


def find_study_file(study_dir: Path) -> Path | None:
    """The copy of the study file that ``rlopt study run`` keeps in the study folder, if there is one."""
    from rlopt.study.folder import STUDY_YAML

    path = study_dir / STUDY_YAML
    return path if path.is_file() else None


def recorded_command(study_dir: Path, records: Sequence[Any]) -> str | None:
    """The command that produced the study: ``<study_dir>/command.txt``, else the run folders' ones."""
    top = study_dir / "command.txt"
    if top.is_file():
        return top.read_text().strip() or None
    seen: list[str] = []
    for record in records:
        path = Path(record.run_dir) / "command.txt"
        if path.is_file():
            text = path.read_text().strip()
            if text and text not in seen:
                seen.append(text)
    if not seen:
        return None
    return seen[0] if len(seen) == 1 else " ; ".join(seen[:3]) + (" ; ..." if len(seen) > 3 else "")


def _load_spec(study_file: Any) -> Any:
    """The validated study file, or None when there is none or it no longer validates."""
    if study_file is None:
        return None
    from rlopt.config.study import load_spec

    try:
        return load_spec(study_file)
    except ValueError:
        return None


def _planned_runs(spec: Any, look: int) -> int | None:
    """Runs the study file asks for (trials per arm x tasks x seeds, at ``look`` for sequential seeds);
    None when it cannot say."""
    if spec is None or spec.sampler.name != "grid":
        return None  # a search's trial count is a budget, not a set of cells
    return (spec.at_look(look) if spec.seed_looks else spec).planned_runs()


def _final_claims(spec: Any, claims: Sequence[Claim], records: Sequence[RunRecord],
                  normaliser: Normaliser) -> list[str]:
    """Statements of the claims whose own runs are all in (:func:`rlopt.analysis.progress.claim_progress`),
    for a study file the report can read; none otherwise."""
    if spec is None:
        return []
    from rlopt.analysis.progress import claim_progress

    return [c.statement for c in claims if claim_progress(spec, c, records, normaliser).settled]


def _look(study_dir: Path, storage: str | None) -> tuple[int, str | None]:
    """The look a sequential study is at, and a line on how its looks went."""
    from rlopt.study import looks
    from rlopt.study.status import open_study

    first = next(iter(open_study(study_dir, storage).arms.values()))
    judged = looks.history(first)
    done = "; ".join(f"look {h['look'] + 1} ({h['seeds']} seeds per cell): " + ", ".join(
        f"{outcome} ({reason})" if reason else outcome  # reasons recorded since 2026-12-06
        for outcome, reason in zip(h["outcomes"], h.get("reasons") or [""] * len(h["outcomes"]), strict=True))
        for h in judged)
    return looks.current_look(first), done or None


def run(args: argparse.Namespace) -> int:
    if args.resamples < 1:
        raise ConfigError(f"--resamples must be a positive integer, got {args.resamples}")

    from rlopt.analysis.load import load_runs
    from rlopt.analysis.report import write_report
    from rlopt.analysis.scores import normaliser_for
    from rlopt.config.claims import claims_from_config
    from rlopt.config.yaml import read_yaml
    from rlopt.study.folder import find_study_dir

    study_dir = find_study_dir(args.study_dir)
    from rlopt.paths import check_folder_can_be_made

    check_folder_can_be_made(args.out or study_dir / "report", "--out")  # before anything is read or written

    study_file = args.study_file or find_study_file(study_dir)
    spec = read_yaml(study_file, "study file") if study_file is not None else {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{study_file}: expected a mapping at the top of the study file")
    claims = claims_from_config(spec.get("claim"), where=f"{study_file}: claim")
    records = load_runs(study_dir, args.storage)
    validated, look, note = _load_spec(study_file), 0, None
    if validated is not None and validated.seed_looks:  # sequential seeds: error spent over the looks
        from rlopt.config.claims import claims_at_looks

        claims = claims_at_looks(claims, len(validated.seed_looks))
        look, judged = _look(study_dir, args.storage)
        note = (f"Sequential seeds: looks at {', '.join(map(str, validated.seed_looks))} seeds per cell, "
                f"each verdict's interval at the per-look confidence (Bonferroni over "
                f"{len(validated.seed_looks)} looks)" + (f"; {judged}" if judged else ""))
    out = args.out or study_dir / "report"
    normaliser = normaliser_for(records, suite=spec.get("suite"))
    path = write_report(
        records,
        claims,
        out,
        normaliser=normaliser,
        title=f"rlopt report: {spec.get('name') or study_dir.name}",
        command=recorded_command(study_dir, records),
        n_resamples=args.resamples,
        seed=args.seed,
        planned_runs=_planned_runs(validated, look),
        note=note,
        final_claims=_final_claims(validated, claims, records, normaliser),
    )
    print(f"wrote {path} and {path.with_suffix('.html')}")
    return 0
