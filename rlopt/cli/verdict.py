"""``rlopt verdict CLAIM.yaml RUNS.csv``: the report's verdict table for any runs in the long CSV format.

The claim file is a study file (its ``claim:`` section is read) or the claim mapping, or a list of
them, alone. References for normalisation are those ``rlopt report`` takes
(:func:`rlopt.analysis.scores.normaliser_for`: the study file's suite, else the first known suite
listing the task), ``--reference TASK=RANDOM,REFERENCE`` (once per task) overriding them; when some
task has neither, scores are normalised min–max over the runs of each task. The table goes to stdout,
a line on the references and runs to stderr.

A study file is validated whole (its claim's arms must be optimizer entries of the study), and then
an arm without runs in the CSV is a study still running, not a mistake: the verdict is the report's,
inconclusive for want of runs, and a line on stderr says which arm has none yet. A study with
sequential seeds is judged at the per-look confidence (Bonferroni over its looks), as the study and its
report judge it. A CSV none of whose
runs is of any arm, or a claim file alone whose arm matches no run, is refused (exit 2): that is the
wrong file or a misspelt arm.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlopt.errors import ConfigError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "verdict",
        help="judge a paper's claim on a runs CSV (task, seed, optimizer, step, return, ...)",
        description=(
            "Print the verdict table of the claim(s) in CLAIM (a study file or a claim mapping) on the runs "
            "of RUNS, a long-format CSV with columns task, seed, optimizer, step, return and optional "
            "label, beta1, beta2, beta3, lr, eps, weight_decay, kappa, scaling_rule, return_collapses, "
            "loss_spikes, nan_events, status (see rlopt.analysis.runs_csv). With a study file, an arm with "
            "no runs yet in RUNS (its study still running) makes its claims inconclusive, as in the report."
        ),
    )
    parser.add_argument("claim", type=Path, help="YAML file: a study file with 'claim:', or the claim(s)")
    parser.add_argument("runs", type=Path, help="the runs CSV (e.g. from rlopt study export)")
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="TASK=RANDOM,REFERENCE",
        help="normalisation references of a task (scores RANDOM -> 0, REFERENCE -> 1); overrides the suite",
    )
    parser.add_argument(
        "--resamples", type=int, default=2000, help="bootstrap resamples per interval (default: 2000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.set_defaults(func=run)


def parse_references(values: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``["Hopper-v5=18,2325"]`` -> ``{"Hopper-v5": (18.0, 2325.0)}``.

    Raises:
        ConfigError: for a value not of the form TASK=RANDOM,REFERENCE with two different numbers.
    """
    out: dict[str, tuple[float, float]] = {}
    for value in values:
        task, _, pair = value.partition("=")
        numbers = pair.split(",")
        try:
            low, high = (float(v) for v in numbers)
        except ValueError:
            raise ConfigError(
                f"--reference {value!r} is not TASK=RANDOM,REFERENCE (e.g. Hopper-v5=18,2325)"
            ) from None
        if not task or low == high:
            raise ConfigError(f"--reference {value!r}: needs a task name and two different numbers")
        out[task] = (low, high)
    return out


@dataclass(frozen=True)
class ClaimFile:
    """The claims to judge and where they come from.

    Attributes:
        claims: The claims, validated.
        suite: The study file's ``suite:`` as written (whose reference scores its report uses), if any.
        of_study: Whether they are a study file's ``claim:`` section, checked against its arms.
    """

    claims: tuple[Any, ...]
    suite: str | None
    of_study: bool


def read_claims(path: Path) -> ClaimFile:
    """The claims of a study file (validated whole, as ``rlopt study run`` would) or of a file holding
    only the claim(s)."""
    from rlopt.config.claims import claims_at_looks, claims_from_config
    from rlopt.config.study import parse_spec
    from rlopt.config.yaml import read_yaml

    data = read_yaml(path, "claim file")
    if isinstance(data, dict) and "claim" not in data and {"algorithm", "optimizers"} & set(data):
        raise ConfigError(f"{path}: a study file with no 'claim:' section: nothing to judge (accepted: a "
                          "study file with a 'claim:' section, or a claim mapping)")
    if isinstance(data, dict) and "claim" in data:
        spec = parse_spec(data, file=str(path), path=path)
        if not spec.claim:
            raise ConfigError(f"{path}: the study file's 'claim:' section is empty: nothing to judge")
        # sequential seeds spend the error over the looks, as the study and its report judged them
        return ClaimFile(claims_at_looks(spec.claim, len(spec.seed_looks)), spec.suite, of_study=True)
    claims = claims_from_config(data, where=f"{path}: claim")
    if not claims:
        raise ConfigError(f"{path}: no claim found (expected a 'claim:' section or a claim mapping)")
    return ClaimFile(claims, None, of_study=False)


def arms_without_runs(claim_file: ClaimFile, records: Sequence[Any], source: Path) -> list[str]:
    """The arms of a study file's claims that match no run of ``records``, described once each
    (e.g. ``optimizer=adopt``).

    Raises:
        ConfigError: for a claim key no run has; for a CSV none of whose runs belongs to any arm; for
            an arm of a claim file alone that matches no run (a misspelt arm or the wrong CSV).
    """
    missing: list[str] = []
    matched = False
    for claim in claim_file.claims:
        claim.check_keys(records)
        arms = [("candidate", claim.candidate)] + ([("baseline", claim.baseline)] if claim.baseline else [])
        for name, selector in arms:
            if any(selector.matches(r) for r in records):
                matched = True
                continue
            if not claim_file.of_study:
                raise ConfigError(
                    f"claim {claim.statement!r}: the {name} ({selector.describe()}) matches no run "
                    f"in {source}"
                )
            if selector.describe() not in missing:
                missing.append(selector.describe())
    if missing and not matched and records:
        raise ConfigError(
            f"{source}: none of its {len(records)} runs is of an arm of the claims ({'; '.join(missing)}); "
            f"accepted: the runs CSV of this study (rlopt study export)"
        )
    return missing


def run(args: argparse.Namespace) -> int:
    from rlopt.analysis.runs_csv import read_runs_csv
    from rlopt.analysis.scores import normaliser_for
    from rlopt.analysis.verdict_table import judge, verdicts_markdown

    if args.resamples < 1:
        raise ConfigError(f"--resamples must be a positive integer, got {args.resamples}")
    references = parse_references(args.reference)
    claim_file = read_claims(args.claim)
    records = read_runs_csv(args.runs)
    if not records and not claim_file.of_study:
        raise ConfigError(f"{args.runs}: no runs (the CSV has a header but no rows)")
    missing = arms_without_runs(claim_file, records, args.runs)
    normaliser = normaliser_for(records, references, claim_file.suite)
    verdicts = judge(
        claim_file.claims, records, normaliser=normaliser, n_resamples=args.resamples, seed=args.seed
    )
    print(f"{len(records)} runs from {args.runs}; normalised scores: {normaliser.source}", file=sys.stderr)
    if missing:
        print(f"no runs yet of {'; '.join(missing)} (the study is still running): its claims are "
              "inconclusive for want of them", file=sys.stderr)
    sys.stdout.write(verdicts_markdown(verdicts))
    return 0
