"""``rlopt verdict CLAIM.yaml RUNS.csv``: the report's verdict table for any runs in the long CSV format.

The claim file is a study file (its ``claim:`` section is read) or the claim mapping, or a list of
them, alone. References for normalisation are those ``rlopt report`` takes
(:func:`rlopt.analysis.scores.normaliser_for`: the study file's suite, else the first known suite
listing the task), ``--reference TASK=RANDOM,REFERENCE`` (once per task) overriding them; when some
task has neither, scores are normalised min–max over the runs of each task. The table goes to stdout,
a line on the references and runs to stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
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
            "loss_spikes, nan_events, status (see rlopt.analysis.runs_csv)."
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


def read_claims(path: Path) -> tuple[tuple[Any, ...], str | None]:
    """The claims of a study file's ``claim:`` section, or of a file holding only the claim(s), and the
    study file's ``suite:`` (whose reference scores its report uses), if any."""
    from rlopt.config.claims import claims_from_config
    from rlopt.config.yaml import read_yaml

    data = read_yaml(path, "claim file")
    study_file = isinstance(data, dict) and "claim" in data
    section = data.get("claim") if study_file else data
    claims = claims_from_config(section, where=f"{path}: claim")
    if not claims:
        raise ConfigError(f"{path}: no claim found (expected a 'claim:' section or a claim mapping)")
    return claims, data.get("suite") if study_file else None


def check_arms(claims: Sequence[Any], records: Sequence[Any], source: Path) -> None:
    """Raise ConfigError naming a claim's arm that matches no run."""
    for claim in claims:
        claim.check_keys(records)
        arms = [("candidate", claim.candidate)] + ([("baseline", claim.baseline)] if claim.baseline else [])
        for name, selector in arms:
            if not any(selector.matches(r) for r in records):
                raise ConfigError(
                    f"claim {claim.statement!r}: the {name} ({selector.describe()}) matches no run "
                    f"in {source}"
                )


def run(args: argparse.Namespace) -> int:
    from rlopt.analysis.runs_csv import read_runs_csv
    from rlopt.analysis.scores import normaliser_for
    from rlopt.analysis.verdict_table import judge, verdicts_markdown

    if args.resamples < 1:
        raise ConfigError(f"--resamples must be a positive integer, got {args.resamples}")
    references = parse_references(args.reference)
    claims, suite = read_claims(args.claim)
    records = read_runs_csv(args.runs)
    if not records:
        raise ConfigError(f"{args.runs}: no runs (the CSV has a header but no rows)")
    check_arms(claims, records, args.runs)
    normaliser = normaliser_for(records, references, suite)
    verdicts = judge(claims, records, normaliser=normaliser, n_resamples=args.resamples, seed=args.seed)
    print(f"{len(records)} runs from {args.runs}; normalised scores: {normaliser.source}", file=sys.stderr)
    sys.stdout.write(verdicts_markdown(verdicts))
    return 0
