"""Calibration of the verdict rules by simulation: false-"reproduced" rates, power, sequential design.

    .venv/bin/python scripts/calibrate_verdicts.py                 # 1000 studies per scenario
    .venv/bin/python scripts/calibrate_verdicts.py --studies 200   # quicker, wider MC error
    .venv/bin/python scripts/calibrate_verdicts.py --scenarios better-tuned competitive-tuned \
        --skip methods resamples sequential                          # the tuned-arm rows only

Prints, for every scenario of :mod:`rlopt.analysis.simulation` (every claim kind, at the claim files'
5 seeds per cell and 2 tasks; closest_curves at 1 task as claim 5): the rate of ``reproduced``, its
Monte-Carlo standard error and whether it is within nominal (2.5%) + 3 MC SE for null and degenerate
scenarios (power for effect scenarios); then the percentile against the t interval on the null, the
effect of the bootstrap resample count, and the sequential design (looks at 5, 10, 15 seeds).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rlopt import stats
from rlopt.analysis import simulation as vs

NOMINAL = 0.025


def calibration_table(
    studies: int, resamples: int, truths: tuple[str, ...] = vs.TRUTHS, only: tuple[str, ...] = ()
) -> bool:
    print(f"## Verdict calibration ({studies} simulated studies per row, {resamples} bootstrap resamples)")
    print("| scenario | kind | truth | seeds x tasks | reproduced | MC SE | contradicted | check |")
    print("|---|---|---|---|---|---|---|---|")
    ok = True
    for scenario in vs.scenarios():
        if scenario.truth not in truths or (only and not scenario.name.startswith(only)):
            continue
        n = studies if scenario.truth != "degenerate" else max(100, studies // 5)
        rates = vs.simulate(scenario, n, n_resamples=resamples)
        if scenario.truth == "effect":
            check = f"power {rates.reproduced_rate:.1%}"
        else:
            limit = NOMINAL + 3 * rates.mc_se if scenario.truth == "null" else 0.0
            passed = rates.reproduced_rate <= limit
            ok &= passed
            check = ("ok" if passed else "FAIL") + f" (<= {limit:.1%})"
        print(
            f"| {scenario.name} | {scenario.kind} | {scenario.truth} "
            f"| {scenario.seeds} x {len(scenario.tasks)} "
            f"| {rates.reproduced_rate:.1%} | {rates.mc_se:.1%} | {rates.contradicted / n:.1%} | {check} |"
        )
    return ok


def interval_methods(studies: int, resamples: int) -> None:
    """One-sided error of the IQM-difference interval under the better/null scenario, by method."""
    scenario = next(s for s in vs.scenarios() if s.name == "better/null")
    rng = np.random.default_rng(1)
    above = {"percentile": 0, "t": 0}
    for i in range(studies):
        runs = scenario.draw(rng)
        a = [
            np.array([r.metrics["auc"] for r in runs if r.optimizer == "cand" and r.task == t])
            for t in vs.TASK_FLOORS
        ]
        b = [
            np.array([r.metrics["auc"] for r in runs if r.optimizer == "base" and r.task == t])
            for t in vs.TASK_FLOORS
        ]
        for method in above:
            interval = stats.iqm_difference_interval(a, b, n_resamples=resamples, seed=i, method=method)
            above[method] += interval.low > 0
    print(f"\n## Interval methods (better/null, {studies} studies, 5 seeds x 2 tasks): P(lower bound > 0)")
    for method, count in above.items():
        print(f"- {method}: {count / studies:.1%} (nominal {NOMINAL:.1%})")


def resample_counts(studies: int) -> None:
    print(f"\n## Bootstrap resamples (reproduced rate, {studies} studies each)")
    for name in ("better/null", "competitive/null", "better/effect"):
        scenario = next(s for s in vs.scenarios() if s.name == name)
        row = []
        for resamples in (500, 2000):
            rates = vs.simulate(scenario, studies, n_resamples=resamples)
            row.append(f"{resamples}: {rates.reproduced_rate:.1%}")
        print(f"- {name}: " + ", ".join(row))


def sequential(studies: int, resamples: int) -> None:
    print(
        f"\n## Sequential seed allocation ({studies} studies per row; looks 5, 10, 15; Bonferroni over looks)"
    )
    print("| scenario | design | reproduced | contradicted | mean seeds per cell | seeds vs 15 |")
    print("|---|---|---|---|---|---|")
    for name in (
        "better/null",
        "better/effect",
        "competitive/null",
        "competitive/effect",
        "fewer_instabilities/effect",
    ):
        scenario = next(s for s in vs.scenarios() if s.name == name)
        designs = {
            "fixed 5": vs.simulate(scenario, studies, n_resamples=resamples, seeds=5),
            "fixed 15": vs.simulate(scenario, studies, n_resamples=resamples, seeds=15),
            "sequential 5/10/15": vs.simulate(
                scenario,
                studies,
                n_resamples=resamples,
                seeds=15,
                judge=vs.sequential_judge((5, 10, 15), resamples),
            ),
        }
        for design, rates in designs.items():
            print(
                f"| {name} | {design} | {rates.reproduced_rate:.1%} | {rates.contradicted / studies:.1%} "
                f"| {rates.seeds_spent:.1f} | {15 / rates.seeds_spent:.2f}x fewer |"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--studies", type=int, default=1000, help="simulated studies per scenario (default 1000)"
    )
    parser.add_argument("--resamples", type=int, default=500, help="bootstrap resamples (default 500)")
    parser.add_argument("--sequential-studies", type=int, default=None, help="default: --studies / 2")
    parser.add_argument(
        "--truth", nargs="*", default=list(vs.TRUTHS), choices=vs.TRUTHS, help="table rows (default: all)"
    )
    parser.add_argument(
        "--scenarios", nargs="*", default=[], metavar="PREFIX",
        help="only the table's scenarios whose names start so (e.g. better-tuned competitive-tuned)",
    )
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["table", "methods", "resamples", "sequential"]
    )
    args = parser.parse_args()
    start = time.perf_counter()
    ok = True
    if "table" not in args.skip:
        ok = calibration_table(args.studies, args.resamples, tuple(args.truth), tuple(args.scenarios))
    if "methods" not in args.skip:
        interval_methods(args.studies, args.resamples)
    if "resamples" not in args.skip:
        resample_counts(max(200, args.studies // 3))
    if "sequential" not in args.skip:
        sequential(args.sequential_studies or args.studies // 2, args.resamples)
    print(f"\n({time.perf_counter() - start:.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
