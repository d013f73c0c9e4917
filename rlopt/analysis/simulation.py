"""Verdict rules on simulated studies whose truth is known: false-"reproduced" rates and power.

A *scenario* draws one study: runs of the claim's arms (and groups) on two tasks with ``seeds`` runs per
cell, each run an eval curve of six points from its floor (its initial policy) to its final score:

.. math::

    r_k = f + (y - f)\\,\\frac{k - 1}{K - 1} + \\varepsilon_k, \\qquad k = 1..K,\\ \\varepsilon_k \\sim
    N(0, 0.02^2)

with ``f`` the task's initial score (0 on the ``Cheetah`` task, 0.2 on the ``Ant`` task, whose untrained
policy already scores above random) and ``y`` the run's final score, drawn from an arm's *run model*:
normal around its mean, with 20% of seeds failing (they end at ``f + 0.2 (y − f)``). Scores are
already normalised (references 0 and 1), as :mod:`rlopt.analysis.verdict` sees them.

Scenarios come in three kinds of truth:

- ``null``: at the boundary of the claim (no effect, or exactly the competitive margin). The rate of
  ``reproduced`` over many studies must not exceed the one-sided nominal ``(1 − confidence)/2`` (2.5%).
- ``effect``: the claim is true by a clear effect; the rate of ``reproduced`` is the power.
- ``degenerate``: the cases where a careless rule says reproduced (nothing learnt, flat curves, too few
  runs); every one must come out inconclusive.

Claims with tuned arms (``tune_by: lr``, claim 7's design) draw three groups per arm (:data:`LRS`); the
hardest null puts all three of the candidate's at the boundary, where picking the best gains most.

Population values that a boundary needs (the IQM of an arm's AUC or gains) are computed from 200,000
draws of the run model. Competitive and robust boundaries shift a whole curve by a constant, which
shifts its AUC and final score (and their IQMs) by exactly that constant.

:func:`sequential_verdict` is the sequential seed allocation (measured here, not used by the study
runner): looks at 5, 10, 15 seeds, each look's interval at confidence ``1 − (1 − c)/L`` for ``L``
planned looks (Bonferroni over looks), stopping at the first decided look.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rlopt import stats
from rlopt.analysis.scores import Normaliser
from rlopt.analysis.verdict import CONTRADICTED, INCONCLUSIVE, REPRODUCED, Verdict, evaluate
from rlopt.config.claims import Claim, claims_at_looks
from rlopt.records import RunRecord

TASK_FLOORS = {"Cheetah": 0.0, "Ant": 0.2}
"""The simulated tasks and the normalised score of their initial policy."""
N_EVALS = 6
EVAL_NOISE = 0.02
STEPS = 30_000
FAIL_RATE = 0.2
NORMALISER = Normaliser.from_references({t: (0.0, 1.0) for t in TASK_FLOORS}, "simulated (0 and 1)")
TRUTHS = ("null", "effect", "degenerate")


@dataclass(frozen=True)
class RunModel:
    """How the final scores of one arm (or group) on one task are drawn.

    Attributes:
        mean: Mean final score of a seed that does not fail, as a gain over the task's floor
            (``y = f + mean + noise``).
        sd: Standard deviation of that final score.
        fail: Probability that a seed fails and ends at ``f + 0.2·(y − f)``.
        shift: A constant added to every evaluation of the run (boundaries are set with it).
        collapses: Mean of the Poisson number of return collapses per run.
        flat: The run never learns: every evaluation at ``f`` (plus noise).
        flat_on: Tasks where it never learns (as ``flat``), learning as above on the others.
    """

    mean: float = 0.5
    sd: float = 0.1
    fail: float = FAIL_RATE
    shift: float = 0.0
    collapses: float = 0.0
    flat: bool = False
    flat_on: tuple[str, ...] = ()

    def finals(self, rng: np.random.Generator, floor: float, n: int) -> np.ndarray:
        if self.flat:
            return np.full(n, floor)
        y = floor + self.mean + rng.normal(0.0, self.sd, n)
        failed = rng.random(n) < self.fail
        y[failed] = floor + 0.2 * (y[failed] - floor)
        return y

    def curves(self, rng: np.random.Generator, floor: float, n: int) -> np.ndarray:
        """Shape (n, N_EVALS)."""
        y = self.finals(rng, floor, n)
        ramp = np.linspace(0.0, 1.0, N_EVALS)
        curves = floor + (y - floor)[:, None] * ramp[None, :] + rng.normal(0.0, EVAL_NOISE, (n, N_EVALS))
        return curves + self.shift


def population(model: RunModel, metric: str = "auc", draws: int = 200_000, seed: int = 12345) -> float:
    """Population IQM, pooled over the tasks, of ``metric``: ``auc``, ``final_return`` or ``gain_<m>``."""
    rng = np.random.default_rng(seed)
    pooled = []
    for floor in TASK_FLOORS.values():
        curves = model.curves(rng, floor, draws)
        name = metric.removeprefix("gain_")
        score = curves.mean(axis=1) if name == "auc" else curves[:, -1]
        if metric.startswith("gain_"):
            score = score - np.maximum(0.0, curves[:, 0])
        pooled.append(score)
    return float(stats.iqm(np.concatenate(pooled)))


@dataclass(frozen=True)
class Arm:
    """One arm of a scenario: its name, params and one run model per group (a single group: one entry)."""

    optimizer: str
    groups: Mapping[Any, RunModel]
    key: str = "setting"
    params: Mapping[str, Any] = field(default_factory=dict)


def draw_study(
    arms: Sequence[Arm], rng: np.random.Generator, seeds: int, tasks: Sequence[str] = tuple(TASK_FLOORS)
) -> list[RunRecord]:
    """Runs of every arm and group on every task, ``seeds`` each."""
    runs: list[RunRecord] = []
    steps = np.linspace(STEPS / N_EVALS, STEPS, N_EVALS)
    for arm in arms:
        for group, model in arm.groups.items():
            for task in tasks:
                floor = TASK_FLOORS[task]
                on_task = replace(model, flat=True) if task in model.flat_on else model
                curves = on_task.curves(rng, floor, seeds)
                collapses = rng.poisson(model.collapses, seeds)
                for seed in range(seeds):
                    returns = curves[seed]
                    metrics = {
                        "status": "ok",
                        "final_return": float(returns[-1]),
                        "auc": float(returns.mean()),
                        "stability": {
                            "return_collapses": int(collapses[seed]),
                            "loss_spikes": 0,
                            "nan_events": 0,
                        },
                    }
                    params: dict[str, Any] = dict(arm.params)
                    if arm.key != "setting":
                        params[arm.key] = group
                    label = " ".join([arm.optimizer, *map(str, arm.params.values()), str(group)])
                    runs.append(
                        RunRecord(
                            "sim",
                            len(runs),
                            "COMPLETE",
                            arm.optimizer,
                            label,
                            params,
                            task,
                            seed,
                            steps,
                            returns,
                            metrics,
                        )
                    )
    return runs


@dataclass(frozen=True)
class Scenario:
    """One simulated study design with a known truth.

    Attributes:
        name: Short name for the tables.
        kind: The claim kind.
        truth: ``null``, ``effect`` or ``degenerate`` (module docstring).
        claim: The claim mapping (as in a study file).
        arms: The arms to draw.
        seeds: Runs per cell, as in the claim files (5) unless the scenario is about seeds.
        description: One line saying what is true.
    """

    name: str
    kind: str
    truth: str
    claim: Mapping[str, Any]
    arms: tuple[Arm, ...]
    seeds: int = 5
    description: str = ""
    tasks: tuple[str, ...] = tuple(TASK_FLOORS)

    def draw(self, rng: np.random.Generator, seeds: int | None = None) -> list[RunRecord]:
        return draw_study(self.arms, rng, seeds or self.seeds, self.tasks)


def _claim(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "statement": f"simulated {kind}",
        "source": "simulation",
        "kind": kind,
        "candidate": {"optimizer": "cand"},
        "baseline": {"optimizer": "base"},
        **extra,
    }


CURVES_CLAIM = _claim("closest_curves", candidate={"scaling_rule": "sqrt"}, baseline={"scaling_rule": "none"})
"""Claim 5's form: the sqrt scaling rule (candidate) against none (baseline), across kappa."""
CURVES_TASKS = ("Cheetah",)
"""Claim 5 runs one task."""


def _scenario(
    name: str, truth: str, claim: Mapping[str, Any], arms: Sequence[Arm], description: str, **options: Any
) -> Scenario:
    """A scenario of its claim's kind."""
    return Scenario(name, claim["kind"], truth, claim, tuple(arms), description=description, **options)


def _one(optimizer: str, model: RunModel) -> Arm:
    return Arm(optimizer, {"all": model})


def _pair(candidate: RunModel, baseline: RunModel) -> tuple[Arm, Arm]:
    """The arms ``cand`` and ``base``, one group each."""
    return _one("cand", candidate), _one("base", baseline)


def _grouped(optimizer: str, models: Sequence[RunModel], key: str, values: Sequence[Any]) -> Arm:
    return Arm(optimizer, dict(zip(values, models, strict=True)), key)


def _beta2(candidate: Sequence[RunModel], baseline: Sequence[RunModel] | None = None) -> tuple[Arm, ...]:
    """The arms ``cand`` (and ``base``) with one group per value of beta2 (:data:`BETA2`)."""
    models = [candidate] if baseline is None else [candidate, baseline]
    return tuple(_grouped(name, m, "beta2", BETA2) for name, m in zip(("cand", "base"), models, strict=False))


def _kappas(rule: str, means: Sequence[float], **model: Any) -> Arm:
    groups = {k: RunModel(mean=mu, **model) for k, mu in zip(KAPPA, means, strict=True)}
    return Arm("adam", groups, "kappa", {"scaling_rule": rule})


def _lrs(optimizer: str, models: Sequence[RunModel]) -> Arm:
    """An arm tuned over three learning rates (:data:`LRS`), one run model each (claim 7's design)."""
    return _grouped(optimizer, models, "lr", LRS)


BASE = RunModel()
BETA2 = (0.9, 0.99, 0.999, 0.9999)
KAPPA = (0.25, 0.5, 1.0, 2.0, 4.0)
LRS = (1e-4, 3e-4, 1e-3)


def scenarios(competitive_margin: float = 0.2) -> list[Scenario]:
    """Every scenario of the calibration (null, effect and degenerate cases for every kind).

    Longer than 60 lines by its table of cases (one entry per scenario), not by its logic.
    """
    m = competitive_margin
    gain = population(BASE, "gain_auc")  # the baseline's IQM gain, and the best setting's
    robust_margin = 0.2
    steep = RunModel(mean=0.15)  # a setting where the baseline learns a third as much
    robust_alone = _claim("robust", metric="auc", baseline=None, margin=robust_margin)
    same_kappas = [0.5, 0.45, 0.55, 0.4, 0.5]
    poor = RunModel(mean=0.25)  # a learning rate off the best: half the gain
    at_margin = replace(BASE, shift=-m * gain)
    tuned_competitive = _claim("competitive", metric="auc", margin=m, tune_by="lr")
    tuned_better = _claim("better", metric="auc", tune_by="lr")
    out = [
        _scenario(
            "better/null",
            "null",
            _claim("better", metric="auc"),
            _pair(BASE, BASE),
            "same run model for both arms",
        ),
        _scenario(
            "better/effect",
            "effect",
            _claim("better", metric="auc"),
            _pair(RunModel(mean=0.7), BASE),
            "candidate's mean final gain 0.7 against 0.5",
        ),
        _scenario(
            "competitive/null",
            "null",
            _claim("competitive", metric="auc", margin=m),
            _pair(replace(BASE, shift=-m * gain), BASE),
            f"candidate exactly {m:g} x the baseline's IQM gain below it",
        ),
        _scenario(
            "competitive/effect",
            "effect",
            _claim("competitive", metric="auc", margin=m),
            _pair(BASE, BASE),
            "candidate equal to the baseline",
        ),
        _scenario(
            "robust/null",
            "null",
            _claim("robust", metric="auc"),
            _beta2([BASE, BASE, BASE, steep], [BASE, BASE, BASE, steep]),
            "same spread across beta2 in both arms (one setting learns less)",
        ),
        _scenario(
            "robust/null-flat",
            "null",
            _claim("robust", metric="auc"),
            _beta2([BASE] * 4, [BASE] * 4),
            "no spread across beta2 in either arm",
        ),
        _scenario(
            "robust/effect",
            "effect",
            _claim("robust", metric="auc"),
            _beta2([BASE] * 4, [BASE, BASE, BASE, steep]),
            "candidate flat across beta2, baseline learns a third as much at one value",
        ),
        _scenario(
            "robust-alone/null",
            "null",
            robust_alone,
            _beta2([BASE, BASE, BASE, replace(BASE, shift=-robust_margin * gain)]),
            f"spread exactly {robust_margin:g} x the best setting's gain",
        ),
        _scenario(
            "robust-alone/effect", "effect", robust_alone, _beta2([BASE] * 4), "no spread across beta2"
        ),
        _scenario(
            "fewer_instabilities/null",
            "null",
            _claim("fewer_instabilities"),
            _pair(replace(BASE, collapses=1.0), replace(BASE, collapses=1.0)),
            "both arms 1 collapse per run on average (Poisson)",
        ),
        _scenario(
            "better-tuned/null",
            "null",
            tuned_better,
            (_lrs("cand", [BASE] * 3), _lrs("base", [BASE, poor, poor])),
            "best lr of each arm the same; the candidate's three lrs all at it (the most luck to pick)",
        ),
        _scenario(
            "better-tuned/effect",
            "effect",
            tuned_better,
            (_lrs("cand", [poor, RunModel(mean=0.7), poor]), _lrs("base", [BASE, poor, poor])),
            "candidate's best lr's mean final gain 0.7 against the baseline's best 0.5",
        ),
        _scenario(
            "competitive-tuned/null",
            "null",
            tuned_competitive,
            (_lrs("cand", [at_margin] * 3), _lrs("base", [BASE, poor, poor])),
            f"candidate's lrs all exactly {m:g} x the baseline's IQM gain below the baseline's best lr",
        ),
        _scenario(
            "competitive-tuned/null-one",
            "null",
            tuned_competitive,
            (_lrs("cand", [at_margin, poor, poor]), _lrs("base", [BASE, poor, poor])),
            f"one lr per arm stands out; the candidate's exactly {m:g} x the baseline's gain below",
        ),
        _scenario(
            "competitive-tuned/effect",
            "effect",
            tuned_competitive,
            (_lrs("cand", [poor, BASE, poor]), _lrs("base", [BASE, poor, poor])),
            "the best lr of each arm equal (at different lrs)",
        ),
        _scenario(
            "fewer_instabilities/effect",
            "effect",
            _claim("fewer_instabilities"),
            _pair(replace(BASE, collapses=0.3), replace(BASE, collapses=1.5)),
            "0.3 against 1.5 collapses per run",
        ),
        _scenario(
            "closest_curves/null",
            "null",
            CURVES_CLAIM,
            (_kappas("sqrt", same_kappas), _kappas("none", same_kappas)),
            "the same final gains across kappa under both rules",
            tasks=CURVES_TASKS,
        ),
        _scenario(
            "closest_curves/effect",
            "effect",
            CURVES_CLAIM,
            (_kappas("sqrt", [0.5] * 5), _kappas("none", [0.2, 0.35, 0.5, 0.65, 0.8])),
            "sqrt curves together, none spread from 0.2 to 0.8",
            tasks=CURVES_TASKS,
        ),
    ]
    return out + degenerate_scenarios()


def degenerate_scenarios() -> list[Scenario]:
    """The cases a careless rule calls reproduced; each must come out inconclusive.

    Longer than 60 lines by its table of cases (one entry per scenario), not by its logic.
    """
    flat = RunModel(flat=True)
    tiny = RunModel(mean=0.025, sd=0.005, fail=0.0)
    return [
        _scenario(
            "competitive/baseline-0.07",
            "degenerate",
            _claim("competitive", metric="final_return", margin=0.05),
            _pair(tiny, RunModel(mean=0.07, sd=0.01, fail=0.0)),
            "issue 13: baseline ~0.070, candidate ~0.025 (a third of it)",
        ),
        _scenario(
            "competitive/both-flat",
            "degenerate",
            _claim("competitive", metric="auc", margin=0.2),
            _pair(flat, flat),
            "neither arm learns; both stay at the initial policy's score",
        ),
        _scenario(
            "better/one-task-learns-nothing",
            "degenerate",
            _claim("better", metric="auc"),
            _pair(RunModel(mean=0.9, sd=0.05, fail=0.0, flat_on=("Ant",)),
                  RunModel(mean=0.3, flat_on=("Ant",))),
            "a clear win on Cheetah; on Ant neither arm leaves its initial score (claim 1's Ant at 1M)",
        ),
        _scenario(
            "competitive/baseline-flat-on-one-task",
            "degenerate",
            _claim("competitive", metric="auc", margin=0.2),
            _pair(RunModel(mean=0.8, sd=0.05, fail=0.0, flat_on=("Ant",)), RunModel(flat_on=("Ant",))),
            "both arms learn on Cheetah only (the candidate more); on Ant the baseline's gain is 0",
        ),
        _scenario(
            "competitive-tuned/baseline-flat",
            "degenerate",
            _claim("competitive", metric="auc", margin=0.2, tune_by="lr"),
            (_lrs("cand", [BASE] * 3), _lrs("base", [flat] * 3)),
            "tuned arms: the candidate learns at every lr, the baseline at none",
        ),
        _scenario(
            "better/ant-initial",
            "degenerate",
            _claim("better", metric="final_return"),
            _pair(flat, RunModel(mean=-0.15, sd=0.02, fail=0.0)),
            "candidate flat at its initial score (0.2 on Ant), baseline drifts below it",
        ),
        _scenario(
            "robust/candidate-learns-nothing",
            "degenerate",
            _claim("robust", metric="auc"),
            _beta2([flat] * 4, [flat, flat, flat, BASE]),
            "issue 13: candidate ~0 at every setting, baseline learns at one",
        ),
        _scenario(
            "robust-alone/all-flat",
            "degenerate",
            _claim("robust", metric="auc", baseline=None, margin=0.2),
            _beta2([flat] * 4),
            "every setting flat at the initial score (0.2 on Ant: above random)",
        ),
        _scenario(
            "fewer_instabilities/never-learns",
            "degenerate",
            _claim("fewer_instabilities"),
            _pair(flat, replace(BASE, collapses=1.5)),
            "issue 13: a candidate that never learns never collapses",
        ),
        _scenario(
            "closest_curves/flat",
            "degenerate",
            CURVES_CLAIM,
            (_kappas("sqrt", [0.0] * 5, flat=True), _kappas("none", [0.2, 0.35, 0.5, 0.65, 0.8])),
            "issue 13: flat curves are trivially close across kappa",
            tasks=CURVES_TASKS,
        ),
        _scenario(
            "better/four-seeds",
            "degenerate",
            _claim("better", metric="auc"),
            _pair(RunModel(mean=0.9, sd=0.02, fail=0.0), RunModel(mean=0.2, fail=0.0)),
            "a clear win on 4 seeds per cell (min_runs 5)",
            seeds=4,
        ),
        _scenario(
            "better/learnt-too-little",
            "degenerate",
            _claim("better", metric="final_return"),
            _pair(RunModel(mean=0.05, sd=0.005, fail=0.0), flat),
            "candidate consistently above a flat baseline, but by 0.05 of the reference",
        ),
    ]


@dataclass(frozen=True)
class Rates:
    """How often each outcome came out over ``studies`` simulated studies.

    Attributes:
        scenario: The scenario.
        studies: Simulated studies.
        reproduced: Studies whose verdict was reproduced.
        contradicted: ... contradicted.
        seeds_spent: Mean seeds per cell actually run (sequential designs; else the scenario's seeds).
    """

    scenario: Scenario
    studies: int
    reproduced: int
    contradicted: int
    seeds_spent: float
    example: str = ""

    @property
    def reproduced_rate(self) -> float:
        return self.reproduced / self.studies

    @property
    def mc_se(self) -> float:
        """Monte-Carlo standard error of the reproduced rate, at the nominal rate (or the rate if higher)."""
        p = max(self.reproduced_rate, 0.025)
        return math.sqrt(p * (1 - p) / self.studies)


def simulate(
    scenario: Scenario,
    studies: int,
    *,
    n_resamples: int = 500,
    seed: int = 0,
    seeds: int | None = None,
    judge: Callable[[Claim, list[RunRecord], int], tuple[Verdict, int]] | None = None,
) -> Rates:
    """Draw ``studies`` studies of ``scenario`` and count the verdicts.

    Args:
        scenario: What to draw.
        studies: How many studies.
        n_resamples: Bootstrap resamples per interval.
        seed: Seed of the draws (the bootstrap of study i uses seed i).
        seeds: Runs per cell (default: the scenario's).
        judge: ``(claim, runs, i) -> (verdict, seeds spent)``; default:
            :func:`rlopt.analysis.verdict.evaluate`.
    """
    claim = Claim.from_dict(scenario.claim)
    rng = np.random.default_rng(seed)
    counts = {REPRODUCED: 0, CONTRADICTED: 0, INCONCLUSIVE: 0}
    spent = 0
    example = ""
    for i in range(studies):
        runs = scenario.draw(rng, seeds)
        if judge is None:
            verdict = evaluate(claim, runs, normaliser=NORMALISER, n_resamples=n_resamples, seed=i,
                               each_task=False)
            used = seeds or scenario.seeds
        else:
            verdict, used = judge(claim, runs, i)
        counts[verdict.outcome] += 1
        spent += used
        if i == 0:
            example = verdict.reason
    return Rates(scenario, studies, counts[REPRODUCED], counts[CONTRADICTED], spent / studies, example)


def first_seeds(runs: Sequence[RunRecord], n: int) -> list[RunRecord]:
    """The runs with the ``n`` smallest seeds of each cell (the seeds a study runs first)."""
    return [r for r in runs if r.seed < n]


@dataclass(frozen=True)
class SequentialVerdict:
    """The verdict of :func:`sequential_verdict` and the seeds per cell it took to reach it."""

    verdict: Verdict
    seeds: int
    look: int


def sequential_verdict(
    claim: Claim,
    runs: Sequence[Any],
    looks: Sequence[int] = (5, 10, 15),
    *,
    normaliser: Normaliser | None = None,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
    seeds_of: Callable[[Sequence[Any], int], list[Any]] = first_seeds,
) -> SequentialVerdict:
    """Sequential seed allocation: judge at each planned look, stop at the first decided one.

    At look ``j`` of ``L`` the claim is judged on the first ``looks[j]`` seeds of every cell with
    intervals at confidence ``1 − (1 − c)/L`` (``c`` the claim's confidence), so each side's error
    ``(1 − c)/2`` is split evenly over the looks (Bonferroni): the chance of a false reproduced at any
    look is at most ``L · (1 − c)/(2L) = (1 − c)/2``, whatever the looks' correlation. A reproduced or
    contradicted verdict stops; an inconclusive one runs the next ``looks[j+1] − looks[j]`` seeds. The
    last look's verdict is final. Guards (nothing learnt, ``min_runs``) apply at every look.

    Args:
        claim: The claim (its confidence is the design's overall level).
        runs: Every run up to ``looks[-1]`` seeds per cell (a simulation has them all; a study would run
            them look by look).
        looks: Seeds per cell at each look, increasing.
        normaliser: Reference scores.
        n_resamples: Bootstrap resamples per interval.
        seed: Bootstrap seed.
        seeds_of: ``(runs, n) -> runs`` of the first ``n`` seeds of each cell.
    """
    (adjusted,) = claims_at_looks([claim], len(looks))
    verdict = None
    for j, n in enumerate(looks):
        verdict = evaluate(
            adjusted, seeds_of(runs, n), normaliser=normaliser, n_resamples=n_resamples, seed=seed + j,
            each_task=False,
        )
        if verdict.outcome != INCONCLUSIVE:
            return SequentialVerdict(verdict, n, j)
    assert verdict is not None
    return SequentialVerdict(verdict, looks[-1], len(looks) - 1)


def sequential_judge(
    looks: Sequence[int], n_resamples: int
) -> Callable[[Claim, list[RunRecord], int], tuple[Verdict, int]]:
    """A ``judge`` for :func:`simulate` that runs :func:`sequential_verdict`."""

    def judge(claim: Claim, runs: list[RunRecord], i: int) -> tuple[Verdict, int]:
        result = sequential_verdict(
            claim, runs, looks, normaliser=NORMALISER, n_resamples=n_resamples, seed=i
        )
        return result.verdict, result.seeds

    return judge
