r"""Verdicts on the claims of the papers (:mod:`rlopt.config.claims`), computed from confidence intervals.

Each claim kind has its rule, one class here (:data:`RULES`): :class:`Better`, :class:`Competitive`,
:class:`Robust`, :class:`FewerInstabilities` and :class:`ClosestCurves`. Each measures one effect
with an interval and says what would credit an arm; :class:`Rule` holds what they share (the
bootstrap, the scores, the guards and the outcome).

**Scores and gains.** Scores are normalised per task (0 = random policy or worst evaluation seen, 1 =
reference). A run's *gain* is its score minus its floor, ``max(0, normalised first evaluation)``
(:func:`rlopt.analysis.scores.floor_score`): what it learnt beyond the floor of the scale *and* beyond its
initial policy (Ant's untrained policy already scores 0.2). An arm (or group) *has learnt* when the lower
bound of the IQM of its gains, pooled over tasks, is above ``min_gain`` (default 0.1: a tenth of the way
from random to the reference) *and* the IQM of its gains on each task alone is above it too, so that a
task where nothing was learnt cannot ride into a verdict on another task's gains. The guard's gains are
of the *late return* (:func:`rlopt.analysis.scores.late_score`: the mean return of the evaluations in the
last quarter of training): a policy that ends where it began has learnt nothing, whatever its curve did
between, and one noisy last evaluation neither makes nor unmakes a run that learnt.

**Intervals.** Every interval of a verdict is a stratified-bootstrap *t* interval (:mod:`rlopt.stats`,
``method="t"``) at ``confidence`` (default 95%, so 2.5% on each side): at 5 runs per task the percentile
interval was anti-conservative (3–6% one-sided error where 2.5% was meant) and BCa worse. The rates of
every rule are measured by simulation (:mod:`rlopt.analysis.simulation`, ``scripts/calibrate_verdicts.py``).

**Outcomes.** Every rule's effect is oriented so that the claim holds when it is above 0: a verdict is
``reproduced`` when the effect's lower bound is above 0, ``contradicted`` when its upper bound is below 0,
else ``inconclusive at this budget`` (:func:`decide`).

**Guards** (each turns the outcome into *inconclusive*, with a one-line reason):

- *Nothing learnt.* A verdict credits one arm with something (reproduced: the candidate is better,
  competitive, robust, stable, has close curves; contradicted: the baseline is), and that arm must have
  learnt (which runs of it, each rule's docstring says). Otherwise *nothing was learnt at this budget*:
  flat curves are close, a policy that never learns never collapses, and settings that all learn
  nothing have no spread.
- *Too few runs.* A cell (arm or group × task) with fewer than ``min_runs`` finished runs (default 5).
- *Budget.* Every verdict states the steps per run as a fraction of ``paper_timesteps`` and is labelled
  *sub-budget* below it; without that key it says the paper's budget is unknown.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from rlopt import stats
from rlopt.analysis.scores import (
    SCORE_METRICS,
    STABILITY_METRICS,
    Normaliser,
    RunLike,
    by_task,
    common_grid,
    curve_matrix,
    gains,
    is_usable,
    learning_gains,
    run_score,
    scores,
    stability_value,
    stability_values,
)
from rlopt.config import claims
from rlopt.config.claims import DEFAULT_GROUP_BY, KINDS, Claim, describe_value, record_value

if (claims.SCORE_METRICS, claims.STABILITY_METRICS, claims.DEFAULT_CONFIDENCE) != (
    SCORE_METRICS,
    STABILITY_METRICS,
    stats.DEFAULT_CONFIDENCE,
):  # rlopt.config.claims is a parsing leaf, so it names these itself: they must be what the statistics use
    raise ImportError("rlopt.config.claims and rlopt.analysis.scores/rlopt.stats disagree on the metrics "
                      "or the confidence")

REPRODUCED = "reproduced"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive at this budget"
NOTHING_LEARNT = "nothing was learnt at this budget: "
"""How a reason starts (or goes on) when the learning guard turned a verdict inconclusive."""

VERDICT_METHOD = "t"
"""The bootstrap interval of every verdict (see :mod:`rlopt.stats`)."""
LEARNING_SCORE = "late return"
"""What the learning guard's gains are of, as reasons name it: :func:`rlopt.analysis.scores.late_score`,
the mean return of the evaluations over the last quarter of training (:data:`rlopt.stats.LATE_FRACTION`)."""

Strata = list[np.ndarray]
"""One array per task, runs on the last axis (what :mod:`rlopt.stats` resamples)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of testing one claim on the runs of a study.

    Attributes:
        claim: The claim tested.
        outcome: ``reproduced``, ``contradicted`` or ``inconclusive at this budget``.
        effect: What was measured, e.g. ``IQM(candidate) − IQM(baseline), normalised``.
        interval: Its estimate and confidence interval (None when there was no data).
        measured: One line with the effect, its interval and any supporting numbers.
        reason: Why the outcome follows from the interval (the rule, or the guard, applied); one line.
        runs: How many finished runs of each arm were used, per how many tasks.
        details: Supporting numbers by name (e.g. ``iqm_difference``, ``gain_baseline``).
        budget: The steps per run against the paper's, e.g. ``sub-budget: 30,000 steps per run, 3% of
            the paper's 1,000,000``.
        sub_budget: True below the paper's budget, False at or above it, None when it is unknown.
        per_task: For a claim on several tasks, the same rule on each task's runs alone (its effect,
            interval and outcome); what the pooled verdict rests on, not what decides it ("" otherwise).
    """

    claim: Claim
    outcome: str
    effect: str
    interval: stats.Interval | None
    measured: str
    reason: str
    runs: str = ""
    details: Mapping[str, float] = field(default_factory=dict)
    budget: str = ""
    sub_budget: bool | None = None
    per_task: str = ""

    @property
    def label(self) -> str:
        """The outcome with its budget, as the verdict column shows it: ``reproduced (sub-budget: ...)``."""
        return f"{self.outcome} ({self.budget})" if self.budget else self.outcome


def decide(interval: stats.Interval, threshold: float, reproduced_if: str) -> tuple[str, str]:
    """Outcome and reason: the claim holds when the effect is ``above`` (or ``below``) ``threshold``.

    Reproduced when the whole interval is on the claim's side of the threshold, contradicted when it is
    wholly on the other side, inconclusive when it contains the threshold or does not exist.
    """
    if not interval.defined:
        return INCONCLUSIVE, "no confidence interval (a cell has fewer than two finished runs)"
    low, high, t = interval.low, interval.high, f"{threshold:g}"
    if reproduced_if == "above":
        if low > threshold:
            return REPRODUCED, f"lower bound {low:.3g} > {t}"
        if high < threshold:
            return CONTRADICTED, f"upper bound {high:.3g} < {t}"
    else:
        if high < threshold:
            return REPRODUCED, f"upper bound {high:.3g} < {t}"
        if low > threshold:
            return CONTRADICTED, f"lower bound {low:.3g} > {t}"
    return INCONCLUSIVE, f"interval [{low:.3g}, {high:.3g}] contains {t}"


@dataclass(frozen=True)
class _Cells:
    """Finished runs of named groups, split by the tasks every group has."""

    groups: dict[str, dict[str, list[RunLike]]]
    tasks: list[str]
    dropped_tasks: list[str]

    @classmethod
    def of(cls, groups: Mapping[str, Sequence[RunLike]]) -> _Cells:
        split = {name: by_task(runs) for name, runs in groups.items()}
        every = [set(t) for t in split.values()]
        tasks = sorted(set.intersection(*every)) if every else []
        dropped = sorted(set.union(*every) - set(tasks)) if every else []
        return cls(split, tasks, dropped)

    def strata(self, name: str, values: Callable[[list[RunLike]], np.ndarray]) -> Strata:
        return [values(self.groups[name][task]) for task in self.tasks]

    def only(self, task: str) -> _Cells:
        """The same groups on one of the tasks."""
        return _Cells({name: {task: tasks[task]} for name, tasks in self.groups.items()}, [task], [])

    def runs(self) -> list[RunLike]:
        return [r for tasks in self.groups.values() for t in self.tasks for r in tasks[t]]

    def smallest(self) -> int:
        return min((len(self.groups[g][t]) for g in self.groups for t in self.tasks), default=0)

    def describe(self) -> str:
        """``"finished runs: candidate 10, baseline 10 (3 groups) on 2 task(s)"``."""
        runs: dict[str, int] = {}
        groups: dict[str, int] = {}
        for name, tasks in self.groups.items():
            arm = name.split(":")[0]
            runs[arm] = runs.get(arm, 0) + sum(len(tasks[t]) for t in self.tasks)
            groups[arm] = groups.get(arm, 0) + 1
        counts = ", ".join(
            f"{arm} {n}" + (f" in {groups[arm]} groups" if groups[arm] > 1 else "") for arm, n in runs.items()
        )
        text = f"finished runs: {counts} on {len(self.tasks)} task(s), fewest per cell {self.smallest()}"
        if self.dropped_tasks:
            text += f"; left out (not run by every arm or group): {', '.join(self.dropped_tasks)}"
        return text


def _steps_per_run(runs: Sequence[RunLike]) -> float | None:
    last = []
    for run in runs:
        steps = np.asarray(run.timesteps, dtype=float)
        steps = steps[np.isfinite(steps)]
        if steps.size:
            last.append(float(steps.max()))
    return max(last) if last else None


def budget_of(claim: Claim, runs: Sequence[RunLike]) -> tuple[str, bool | None]:
    """The budget sentence of a verdict and whether it is below the paper's (None: unknown).

    The steps per run are the last evaluation step of the claim's runs (the largest, so a run that
    diverged early does not shrink it).
    """
    steps = _steps_per_run(runs)
    paper = claim.paper_timesteps
    if steps is None:
        return ("no evaluated runs" + ("" if paper else "; the paper's budget is unknown"), None)
    if paper is None:
        return f"{steps:,.0f} steps per run; the paper's budget is unknown", None
    share = 100 * steps / paper
    fraction = f"{share:.0f}%" if share >= 10 else f"{share:.2g}%"
    fraction = f"{fraction} of the paper's {paper:,}"
    if steps < paper:
        return f"sub-budget: {steps:,.0f} steps per run, {fraction}", True
    return f"{steps:,.0f} steps per run, {fraction}", False


class _Guard:
    """Whether an arm (or group) learnt: on the tasks pooled, the lower bound of the IQM of its gains
    above ``min_gain``; and on each task alone, the IQM of its gains there above ``min_gain``.

    The per-task test is on the estimate (five runs of one task give too wide an interval to ask its
    lower bound): it keeps a task where nothing was learnt (Ant's PPO falling back below its initial
    policy) from riding on another task's gains into a verdict about both. The pooled interval is
    computed only when a verdict needs the guard (most verdicts are inconclusive by their own
    interval), and not at all when the estimate itself is not above ``min_gain`` (the t interval is
    centred on it, so its lower bound cannot be).
    """

    def __init__(
        self, who: str, strata: Strata, min_gain: float, boot: Mapping[str, Any], tasks: Sequence[str]
    ) -> None:
        self.who = who
        self.strata = strata
        self.min_gain = min_gain
        self.boot = boot
        usable = bool(strata) and all(s.size for s in strata)
        self.estimate = float(stats.pooled_iqm(strata)) if usable else math.nan
        self.per_task = {
            task: float(stats.iqm(stratum)) if stratum.size else math.nan
            for task, stratum in zip(tasks, strata, strict=True)
        }
        self._interval: stats.Interval | None = None

    @property
    def interval(self) -> stats.Interval:
        if self._interval is None:
            if not self.estimate > self.min_gain:
                self._interval = stats.Interval(self.estimate, math.nan, math.nan, self.boot["confidence"])
            else:
                self._interval = stats.iqm_interval(self.strata, **self.boot)
        return self._interval

    @property
    def flat_tasks(self) -> list[str]:
        """The tasks where the IQM of the gains is not above ``min_gain``, when more than one task counts."""
        if len(self.per_task) < 2:
            return []  # then the pooled test is this task's own
        return [t for t, gain in self.per_task.items() if not gain > self.min_gain]

    @property
    def learnt_by_estimate(self) -> bool:
        """The estimates alone (no bootstrap): pooled and on each task above ``min_gain``."""
        return self.estimate > self.min_gain and not self.flat_tasks

    @property
    def learnt(self) -> bool:
        return self.learnt_by_estimate and self.interval.defined and self.interval.low > self.min_gain

    def failure(self) -> str:
        if self.estimate > self.min_gain and self.flat_tasks:
            task = self.flat_tasks[0]
            more = f" (and on {', '.join(self.flat_tasks[1:])})" if len(self.flat_tasks) > 1 else ""
            return (
                f"{self.who} learnt too little on {task}: IQM gain of its {LEARNING_SCORE} over its initial "
                f"score {self.per_task[task]:.2f} there{more}, not above min_gain {self.min_gain:g}, so the "
                f"pooled gain {self.estimate:.2f} rests on the other tasks"
            )
        shown = self.interval.format() if self.interval.defined else f"{self.estimate:.2f}"
        return (
            f"{self.who} learnt too little: IQM gain of its {LEARNING_SCORE} over its initial score {shown}, "
            f"{'lower bound' if self.interval.defined else 'estimate'} not above min_gain {self.min_gain:g}"
        )


def _first_failure(guards: Sequence[_Guard]) -> str | None:
    failed = [g for g in guards if not g.learnt]
    if not failed:
        return None
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return failed[0].failure() + more


def _smallest_gain(guards: Sequence[_Guard]) -> float:
    return min(g.estimate for g in guards)


class Rule(ABC):
    """The rule of one claim kind: what a subclass computes, and what every rule shares.

    A subclass sets :attr:`kind`, states its effect (:attr:`effect`, oriented so that the claim holds
    above 0) and implements :meth:`judge`, usually through :class:`TwoArmRule` or :class:`GroupedRule`;
    its docstring gives the rule, the math, which arm's learning each outcome needs, and the paper
    claims it tests. This base holds the bootstrap settings, the scores and gains of runs, the guards
    and the outcome (:meth:`finish`).

    Args:
        claim: The claim (of this rule's kind).
        normaliser: Per-task reference scores.
        n_resamples: Bootstrap resamples per interval.
        seed: Bootstrap seed.
        each_task: Also judge each task alone (:attr:`Verdict.per_task`; off where only the outcome counts).
    """

    kind: ClassVar[str]

    def __init__(
        self, claim: Claim, normaliser: Normaliser, n_resamples: int, seed: int, each_task: bool = True
    ) -> None:
        self.claim = claim
        self.normaliser = normaliser
        self.n_resamples = n_resamples
        self.seed = seed
        self.each_task = each_task

    @property
    @abstractmethod
    def effect(self) -> str:
        """What is measured, in words, for the verdict."""

    @abstractmethod
    def judge(self, candidate: list[RunLike], baseline: list[RunLike]) -> Verdict:
        """The verdict on the usable runs of each arm (``baseline`` empty when the claim has none)."""

    @property
    def boot(self) -> dict[str, Any]:
        return {
            "n_resamples": self.n_resamples,
            "confidence": self.claim.confidence,
            "seed": self.seed,
            "method": VERDICT_METHOD,
        }

    def interval(
        self, samples: Sequence[Strata], statistic: Callable[[list[Strata]], np.ndarray], **options: Any
    ) -> stats.Interval:
        """The interval of ``statistic`` of the groups of ``samples`` (resampled within tasks)."""
        est, low, high = stats.stratified_bootstrap(samples, statistic, **self.boot, **options)
        return stats.Interval(float(est), float(low), float(high), self.claim.confidence)

    def has_data(self, run: RunLike) -> bool:
        """Whether the run carries the claim's metric (e.g. a run diverged before its first evaluation)."""
        return math.isfinite(run_score(run, self.claim.metric))

    def scores(self, runs: list[RunLike]) -> np.ndarray:
        return scores(runs, self.claim.metric, self.normaliser)

    def scores_and_gains(self, runs: list[RunLike]) -> np.ndarray:
        """Shape (2, n_runs): normalised scores on row 0, gains over each run's floor on row 1."""
        finite = [r for r in runs if math.isfinite(run_score(r, self.claim.metric))]
        return np.stack([scores(finite, self.claim.metric, self.normaliser), self.gains(finite)])

    def gains(self, runs: list[RunLike]) -> np.ndarray:
        """Gains on the claim's metric (the margins of ``competitive`` and ``robust`` are fractions of it)."""
        return gains(runs, self.claim.metric, self.normaliser)

    def guard(self, who: str, cells: _Cells, names: Sequence[str]) -> _Guard:
        """Whether the runs of the named groups (pooled, per task) learnt: gains of the late return."""
        strata = [
            np.concatenate(
                [learning_gains(cells.groups[name][task], self.normaliser) for name in names]
            )
            for task in cells.tasks
        ]
        return _Guard(who, strata, self.claim.min_gain, self.boot, cells.tasks)

    def with_each_task(
        self, verdict: Verdict, tasks: Sequence[str], alone: Callable[[str], Verdict]
    ) -> Verdict:
        """``verdict`` with :attr:`Verdict.per_task`: the same rule on each task's runs alone (``alone``),
        when there are several tasks (and :attr:`each_task`). Each is at the claim's confidence with no
        correction for the several tasks, its interval from that task's runs only (so wider than the
        pooled one): ``"HalfCheetah-v5: +0.05 [-0.01, +0.11], inconclusive at this budget; Ant-v5: -0.02
        [-0.09, +0.04], inconclusive at this budget (nothing was learnt: the baseline learnt too little:
        ...)"``."""
        if not self.each_task or len(tasks) < 2:
            return verdict
        parts = []
        for task in tasks:
            one = alone(task)
            shown = one.interval.format(signed=True) if one.interval else "no data"
            _, guard, failure = one.reason.partition(NOTHING_LEARNT)
            why = f" (nothing was learnt: {failure.split(' (the interval alone')[0]})" if guard else ""
            parts.append(f"{task}: {shown}, {one.outcome}{why}")
        return replace(verdict, per_task="; ".join(parts))

    def no_data(self, why: str, runs: Sequence[RunLike] = ()) -> Verdict:
        """Inconclusive without an interval, saying ``why``."""
        budget, sub = budget_of(self.claim, runs)
        return Verdict(
            self.claim, INCONCLUSIVE, self.effect, None, "no data", why, budget=budget, sub_budget=sub
        )

    def finish(
        self,
        interval: stats.Interval,
        measured: str,
        cells: _Cells,
        details: Mapping[str, float],
        guards: Mapping[str, Sequence[_Guard]],
    ) -> Verdict:
        """Apply the rule (the effect above 0), then the guards: nothing learnt (per outcome), too few runs.

        Args:
            interval: The effect's interval.
            measured: The line of numbers the verdict shows (the confidence level is appended).
            cells: The runs used.
            details: Supporting numbers by name.
            guards: For each outcome, the guards of the runs it credits: all must have learnt.
        """
        claim = self.claim
        outcome, reason = decide(interval, 0.0, "above")
        failure = _first_failure(guards.get(outcome, ()))
        if failure:
            reason = f"{NOTHING_LEARNT}{failure} (the interval alone: {outcome}, {reason})"
            outcome = INCONCLUSIVE
        elif outcome == INCONCLUSIVE:
            # Say so when the arm a reproduced verdict would credit did not learn (estimates: no bootstrap).
            flat = [g for g in guards.get(REPRODUCED, ()) if not g.learnt_by_estimate]
            if flat:
                reason = f"{reason}; {NOTHING_LEARNT}{flat[0].failure()}"
        smallest = cells.smallest()
        if outcome != INCONCLUSIVE and smallest < claim.min_runs:
            reason = (
                f"{reason}, but the smallest cell has {smallest} finished run(s) (min_runs {claim.min_runs})"
            )
            outcome = INCONCLUSIVE
        conf = f"{claim.confidence * 100:.4g}% CI"  # 95% CI; 98.33% at the per-look level of 3 looks
        budget, sub = budget_of(claim, cells.runs())
        return Verdict(
            claim,
            outcome,
            self.effect,
            interval,
            f"{measured}; brackets: {conf}",
            reason,
            cells.describe(),
            dict(details),
            budget,
            sub,
        )


class TwoArmRule(Rule):
    r"""A rule on two arms, ``candidate`` and ``baseline``, compared on the tasks both have runs on.

    **Tuned arms** (the claim's ``tune_by``, e.g. ``lr``): each arm's runs form one group per value of
    that key (its tuning grid, ``k_c`` and ``k_b`` values), and each arm counts at its best value, one
    value for every task as a user tunes. With ``c_v`` the candidate's pooled IQM at value ``v``, and
    ``B_w = b_w − m·G_w`` the baseline's at ``w`` less the rule's margin (0 for ``better``), the effect is

    .. math::

        \theta = \max_v c_v - \max_w B_w = \max_v \min_w (c_v - B_w)

    The best values are picked on the same runs that measure them, so the max of noisy IQMs is biased
    up (an arm with more values near its best gains most), and a bootstrap of the max is not valid
    there (it put 6–7% false "reproduced" where 2.5% was meant: ``scripts/calibrate_verdicts.py``).
    So the bounds come from the pairwise intervals of ``Δ_vw = c_v − B_w`` (the usual t intervals), at
    Bonferroni levels, which are valid whatever was picked:

    .. math::

        L = \max_v \min_w L_{vw}(\alpha/k_c), \qquad U = \max_v \min_w U_{vw}(\alpha/k_b)

    with ``α = (1 − confidence)/2`` each side. ``θ < L`` needs some ``v`` with ``L_vw > Δ_vw`` at the
    ``w`` that is truly lowest for it (chance at most ``k_c · α/k_c``); ``θ > U`` needs, at the truly
    best ``v``, some ``w`` with ``U_vw < Δ_vw`` (at most ``k_b · α/k_b``). Untuned (one value each), this
    is the rule's plain interval. Both arms should have as many values (``fairness: same_budget``).
    """

    def judge(self, candidate: list[RunLike], baseline: list[RunLike]) -> Verdict:
        arms = {"candidate": candidate, "baseline": baseline}
        key = self.claim.tune_by
        flat = arms if not key else {
            f"{arm}: {name}": group for arm, runs in arms.items()
            for name, group in _groups(runs, key).items()
        }
        cells = _Cells.of(flat)
        if not cells.tasks or not candidate or not baseline:
            return self.no_data("no task has finished runs of both arms", candidate + baseline)
        verdict = self.compare(cells, candidate + baseline)
        return self.with_each_task(
            verdict, cells.tasks, lambda task: self.compare(cells.only(task), cells.only(task).runs())
        )

    @abstractmethod
    def compare(self, cells: _Cells, runs: list[RunLike]) -> Verdict:
        """The verdict on ``cells`` (``runs``: every usable run of both arms, for the budget)."""

    @property
    def at_best(self) -> str:
        """``", each arm at its best lr"`` when tuned, else ``""`` (for :attr:`effect`)."""
        return f", each arm at its best {self.claim.tune_by}" if self.claim.tune_by else ""

    @staticmethod
    def group_names(cells: _Cells, arm: str) -> list[str]:
        """The cells of ``arm``: itself, or its groups (``"candidate: lr=0.1"``) when tuned."""
        return [name for name in cells.groups if name == arm or name.startswith(f"{arm}: ")]

    def picks(self, cells: _Cells, margin: float = 0.0) -> tuple[str, str]:
        """The cells that stand for the candidate and the baseline in the estimate: the candidate's group
        with the highest pooled IQM of the scores, the baseline's with the highest ``IQM − margin × IQM
        of the gains`` (:class:`TwoArmRule`); the arms themselves when not tuned."""

        def best(arm: str, weight: float) -> str:
            names = self.group_names(cells, arm)
            if len(names) == 1:
                return names[0]
            values = [stats.pooled_iqm(cells.strata(name, self.scores_and_gains)) for name in names]
            return names[int(np.argmax([v[0] - weight * v[1] for v in values]))]

        return best("candidate", 0.0), best("baseline", margin)

    def tuned_interval(
        self, cells: _Cells, values: Callable[[list[RunLike]], np.ndarray], margin: float | None = None
    ) -> stats.Interval:
        """The interval of ``θ = max_v min_w (c_v − B_w)`` (:class:`TwoArmRule`), from ``values`` of the
        runs: scores, or with a ``margin`` ``(scores, gains)`` rows."""
        samples = [
            [cells.strata(name, values) for name in self.group_names(cells, arm)]
            for arm in ("candidate", "baseline")
        ]
        k_c, k_b = len(samples[0]), len(samples[1])

        def pairs(groups: list[Strata]) -> np.ndarray:  # shape (k_c, k_b[, resamples])
            iqms = [np.asarray(stats.pooled_iqm(g)) for g in groups]
            c, b = iqms[:k_c], iqms[k_c:]
            if margin is not None:
                c, b = [i[0] for i in c], [i[0] - margin * i[1] for i in b]
            return np.stack(c)[:, None] - np.stack(b)[None, :]

        alpha = (1.0 - self.claim.confidence) / 2
        bounds = {}
        for k in (k_c, k_b):
            if k not in bounds:
                options = {**self.boot, "confidence": 1.0 - 2 * alpha / k}
                bounds[k] = stats.stratified_bootstrap([*samples[0], *samples[1]], pairs, **options)
        estimate = float(np.max(np.min(bounds[k_c][0], axis=1)))
        low = float(np.max(np.min(bounds[k_c][1], axis=1)))
        high = float(np.max(np.min(bounds[k_b][2], axis=1)))
        return stats.Interval(estimate, low, high, self.claim.confidence)

    def tuning_note(self, cells: _Cells, picks: tuple[str, str]) -> str:
        """``"; tuned by lr over 3/3 values (...): candidate lr=0.1, baseline lr=0.0003"`` for the
        :meth:`picks`, or ``""``."""
        if not self.claim.tune_by:
            return ""
        arms = ("candidate", "baseline")
        chosen = ", ".join(f"{arm} {pick.split(': ', 1)[1]}" for arm, pick in zip(arms, picks, strict=True))
        sizes = "/".join(str(len(self.group_names(cells, arm))) for arm in arms)
        return (
            f"; tuned by {self.claim.tune_by} over {sizes} values (each arm at its best by pooled IQM; "
            f"bounds Bonferroni over the values): {chosen}"
        )

    def arm_guards(
        self, cells: _Cells, picks: tuple[str, str] = ("candidate", "baseline")
    ) -> tuple[_Guard, _Guard]:
        """Whether the candidate, and the baseline, learnt (each at its :meth:`picks` cell when tuned)."""
        return self.guard("the candidate", cells, [picks[0]]), self.guard("the baseline", cells, [picks[1]])


@dataclass(frozen=True)
class _Groups:
    """The runs of a grouped rule: each arm's groups (values of ``key``) as cells and strata.

    ``names[arm]`` are the cell names (``"candidate: kappa=0.5"``) in order; ``strata`` holds the
    candidate's groups first, then the baseline's.
    """

    key: str
    cells: _Cells
    names: Mapping[str, list[str]]
    strata: list[Strata]

    @property
    def n_candidate(self) -> int:
        return len(self.names["candidate"])

    @property
    def candidate(self) -> list[Strata]:
        return self.strata[: self.n_candidate]

    @property
    def baseline(self) -> list[Strata]:
        return self.strata[self.n_candidate :]


def _groups(runs: Sequence[RunLike], key: str) -> dict[str, list[RunLike]]:
    out: dict[Any, list[RunLike]] = {}
    for run in runs:
        out.setdefault(_hashable(record_value(run, key)), []).append(run)
    return {f"{key}={describe_value(k)}": v for k, v in sorted(out.items(), key=lambda kv: str(kv[0]))}


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


class GroupedRule(Rule):
    """A rule on the groups of each arm: its runs grouped by the value of ``group_by`` (:attr:`key`).

    Every arm needs two or more groups, and only the tasks that every group has runs on count.
    """

    no_common_task: ClassVar[str]
    """Why there is no data when no task has runs of every group (``{key}``: the group key)."""

    @property
    def key(self) -> str:
        return self.claim.group_by or DEFAULT_GROUP_BY[self.kind]

    def arms(self, candidate: list[RunLike], baseline: list[RunLike]) -> dict[str, dict[str, list[RunLike]]]:
        """Each arm's groups by name."""
        return {"candidate": _groups(candidate, self.key), "baseline": _groups(baseline, self.key)}

    @abstractmethod
    def group_values(self, runs: list[RunLike]) -> Callable[[list[RunLike]], np.ndarray] | None:
        """What is resampled of a cell's runs, given every run of every group; None: no data."""

    @abstractmethod
    def compare(self, groups: _Groups) -> Verdict:
        """The verdict on the groups."""

    def judge(self, candidate: list[RunLike], baseline: list[RunLike]) -> Verdict:
        key, runs = self.key, candidate + baseline
        arms = self.arms(candidate, baseline)
        few = [arm for arm, groups in arms.items() if len(groups) < 2]
        if few:
            return self.no_data(
                f"{' and '.join(few)} need(s) finished runs at two or more values of {key}", runs
            )
        flat = {f"{arm}: {name}": group for arm, groups in arms.items() for name, group in groups.items()}
        cells = _Cells.of(flat)
        values = self.group_values([r for group in flat.values() for r in group])
        if not cells.tasks or values is None:
            return self.no_data(self.no_common_task.format(key=key), runs)
        names = {arm: [f"{arm}: {name}" for name in groups] for arm, groups in arms.items()}

        def on(some: _Cells) -> _Groups:
            strata = [some.strata(name, values) for arm in arms for name in names[arm]]
            return _Groups(key, some, names, strata)

        verdict = self.compare(on(cells))
        return self.with_each_task(verdict, cells.tasks, lambda task: self.compare(on(cells.only(task))))

    def group_guards(self, groups: _Groups, arm: str) -> list[_Guard]:
        """Whether each group of ``arm`` learnt."""
        return [
            self.guard(f"the {arm} at {name.split(': ', 1)[1]}", groups.cells, [name])
            for name in groups.names[arm]
        ]

    def baseline_minus_candidate(
        self, groups: _Groups, measure: Callable[[list[Strata]], np.ndarray], **options: Any
    ) -> stats.Interval:
        """The interval of ``measure(baseline's groups) − measure(candidate's groups)``."""
        n = groups.n_candidate

        def statistic(samples: list[Strata]) -> np.ndarray:
            return measure(samples[n:]) - measure(samples[:n])

        return self.interval(groups.strata, statistic, **options)


class Better(TwoArmRule):
    r"""``better``: the candidate scores higher than the baseline.

    .. math::

        D = \mathrm{IQM}(\text{candidate}) - \mathrm{IQM}(\text{baseline})

    of the normalised ``metric`` (``final_return`` or ``auc``), pooled over tasks. Reproduced if D's
    lower bound is above 0, contradicted if its upper bound is below 0. P(improvement) is reported but
    does not decide: it says how often the candidate wins, not by how much (a 0.001 edge in every seed
    gives P = 1), and its bootstrap at 5 runs per task takes few values and was anti-conservative.

    Guard: reproduced needs the candidate to have learnt, contradicted the baseline.

    Tests claims such as "Adan gives better PPO reward curves than Adam" (Xie et al. 2022, PPO-Adan).
    """

    kind = "better"

    @property
    def effect(self) -> str:
        return f"IQM(candidate) − IQM(baseline), normalised{self.at_best}"

    def compare(self, cells: _Cells, runs: list[RunLike]) -> Verdict:
        diff = self.tuned_interval(cells, self.scores)
        picks = self.picks(cells)
        a, b = (cells.strata(pick, self.scores) for pick in picks)
        poi = float(stats.average_probability_of_improvement(a, b))
        guard_c, guard_b = self.arm_guards(cells, picks)
        measured = (
            f"IQM difference on normalised {self.claim.metric} = {diff.format(signed=True)}; "
            f"P(improvement) {poi:.2f}; gains: candidate {guard_c.estimate:.2f}, "
            f"baseline {guard_b.estimate:.2f}{self.tuning_note(cells, picks)}"
        )
        details = {"iqm_difference": diff.estimate, "poi": poi}
        return self.finish(diff, measured, cells, details, {REPRODUCED: [guard_c], CONTRADICTED: [guard_b]})


class Competitive(TwoArmRule):
    r"""``competitive`` (non-inferiority): the candidate loses less than a share of what the baseline learnt.

    .. math::

        T = D + \text{margin} \cdot G_b, \qquad
        D = \mathrm{IQM}(\text{candidate}) - \mathrm{IQM}(\text{baseline})

    where ``G_b`` is the IQM of the baseline's gains, so the margin is a fraction of what the baseline
    learnt, never more than it learnt. Reproduced if T's lower bound is above 0 (the candidate loses
    less than ``margin · G_b``), contradicted if T's upper bound is below 0. ``D`` and ``G_b`` are
    bootstrapped together.

    Guard: the baseline must have learnt whatever the outcome (its gain sets the margin).

    Tests claims such as "ADOPT is competitive with or better than Adam in PPO on MuJoCo" (Taniguchi
    et al. 2024), and the same of AdaBelief, AdamSSM and δ-GClip against Adam.
    """

    kind = "competitive"

    @property
    def margin(self) -> float:
        return self.claim.margin or 0.0

    @property
    def effect(self) -> str:
        return (
            f"IQM(candidate) − IQM(baseline) + {self.margin:g} × baseline's IQM gain, "
            f"normalised{self.at_best}"
        )

    def compare(self, cells: _Cells, runs: list[RunLike]) -> Verdict:
        margin = self.margin
        # Each arm's runs as (2, runs) arrays (scores, gains), bootstrapped together.
        t = self.tuned_interval(cells, self.scores_and_gains, margin)
        diff = self.tuned_interval(cells, self.scores)
        picks = self.picks(cells, margin)
        a, b = (cells.strata(pick, self.scores) for pick in picks)
        guard_b = self.guard("the baseline", cells, [picks[1]])
        gain_b = float(stats.pooled_iqm(cells.strata(picks[1], self.scores_and_gains))[1])
        measured = (
            f"IQM difference on normalised {self.claim.metric} = {diff.format(signed=True)}, "
            f"margin −{margin:g} × baseline's gain {gain_b:.3f} = −{margin * gain_b:.3f}; "
            f"difference + margin {t.format(signed=True, digits=3)}; gains: baseline "
            f"{guard_b.estimate:.2f}; P(improvement) "
            f"{float(stats.average_probability_of_improvement(a, b)):.2f}{self.tuning_note(cells, picks)}"
        )
        details = {"iqm_difference": diff.estimate, "gain_baseline": gain_b}
        return self.finish(t, measured, cells, details, {REPRODUCED: [guard_b], CONTRADICTED: [guard_b]})


def _spread(groups: list[Strata]) -> np.ndarray:
    """max − min over groups of the pooled IQM of row 0 (the scores) of each group's strata."""
    iqms = np.stack([stats.pooled_iqm(strata)[0] for strata in groups])
    return iqms.max(axis=0) - iqms.min(axis=0)


class Robust(GroupedRule):
    r"""``robust`` (to a hyperparameter): the candidate's score varies little across its groups.

    The spread of an arm is the max − min of the normalised-score IQMs of its groups (runs grouped by
    ``group_by``, default ``setting``):

    .. math::

        S = \max_g \mathrm{IQM}_g - \min_g \mathrm{IQM}_g

    With a baseline the effect is ``S(baseline) − S(candidate)``: reproduced above 0, contradicted
    below 0 (give both arms the same number of values: the max − min of more noisy IQMs is larger by
    chance). Without one,

    .. math::

        T = \text{margin} \cdot \max_g G_g - S(\text{candidate})

    the margin a fraction of the best group's gain ``G_g``: reproduced if T's lower bound is above 0,
    contradicted if its upper bound is below 0. Both intervals are bias-corrected (a max − min of
    IQMs is biased upwards in resamples).

    Guard: reproduced needs every group of the candidate to have learnt; contradicted, every group of
    the baseline, or without one the candidate's best group.

    Tests claims such as "ADOPT's PPO returns are more robust to β2 than Adam's" (Taniguchi et al.
    2024: ADOPT converges for any β2, Adam can fail for small β2).
    """

    kind = "robust"
    no_common_task = "no task has finished runs at every value of {key}"

    @property
    def effect(self) -> str:
        if self.claim.baseline:
            return f"spread of IQM across {self.key}: baseline − candidate"
        return f"{self.claim.margin or 0.0:g} × best gain − spread of IQM across {self.key}"

    def arms(self, candidate: list[RunLike], baseline: list[RunLike]) -> dict[str, dict[str, list[RunLike]]]:
        arms = super().arms(candidate, baseline)
        if self.claim.baseline is None:
            del arms["baseline"]
        return arms

    def group_values(self, runs: list[RunLike]) -> Callable[[list[RunLike]], np.ndarray]:
        return self.scores_and_gains

    def compare(self, groups: _Groups) -> Verdict:
        if self.claim.baseline:
            return self._against_baseline(groups)
        return self._alone(groups)

    def _against_baseline(self, groups: _Groups) -> Verdict:
        key, metric = groups.key, self.claim.metric
        guards_c, guards_b = self.group_guards(groups, "candidate"), self.group_guards(groups, "baseline")
        interval = self.baseline_minus_candidate(groups, _spread, bias_correct=True)
        spread_c, spread_b = float(_spread(groups.candidate)), float(_spread(groups.baseline))
        n_c, n_b = len(groups.candidate), len(groups.baseline)
        measured = (
            f"IQM spread across {key} on normalised {metric}: candidate {spread_c:.2f} "
            f"({n_c} values), baseline {spread_b:.2f} ({n_b} values); "
            f"baseline − candidate {interval.format(signed=True)}; smallest gain: candidate "
            f"{_smallest_gain(guards_c):.2f}, baseline {_smallest_gain(guards_b):.2f}"
        )
        if n_b != n_c:
            measured += " (unequal numbers of values: the arm with more has a larger spread by chance)"
        details = {"spread_candidate": spread_c, "spread_baseline": spread_b}
        guards = {REPRODUCED: guards_c, CONTRADICTED: guards_b}
        return self.finish(interval, measured, groups.cells, details, guards)

    def _alone(self, groups: _Groups) -> Verdict:
        margin = self.claim.margin or 0.0

        def allowed_minus_spread(samples: list[Strata]) -> np.ndarray:
            best = np.max(np.stack([stats.pooled_iqm(g)[1] for g in samples]), axis=0)
            return margin * best - _spread(samples)

        interval = self.interval(groups.strata, allowed_minus_spread, bias_correct=True)
        guards_c = self.group_guards(groups, "candidate")
        spread_c = float(_spread(groups.candidate))
        group_gains = [float(stats.pooled_iqm(g)[1]) for g in groups.candidate]
        best_index = int(np.argmax(group_gains))
        best_gain = group_gains[best_index]
        measured = (
            f"IQM spread across {groups.n_candidate} values of {groups.key} on normalised "
            f"{self.claim.metric}: {spread_c:.3f}, "
            f"allowed {margin:g} × best gain {best_gain:.3f} = {margin * best_gain:.3f}; "
            f"allowed − spread {interval.format(signed=True, digits=3)}"
        )
        details = {"spread_candidate": spread_c, "best_gain": best_gain}
        guards = {REPRODUCED: guards_c, CONTRADICTED: [guards_c[best_index]]}
        return self.finish(interval, measured, groups.cells, details, guards)


class FewerInstabilities(TwoArmRule):
    r"""``fewer_instabilities``: the candidate's runs are less unstable than the baseline's.

    The measure per run is ``metric``: ``instabilities`` (return collapses + loss spikes + NaN events, a
    diverged run counting at least one), one of those, ``diverged`` (the fraction of runs that
    diverged) or ``late_std`` (the spread of the normalised return over the last quarter of training).

    .. math::

        E = \mathrm{mean}(\text{baseline}) - \mathrm{mean}(\text{candidate})

    per run, pooled over tasks: reproduced above 0, contradicted below 0.

    Guard: reproduced needs the candidate to have learnt (gains of the late return), contradicted the
    baseline: a policy that never learns never collapses.

    Tests claims such as "Adam with β1 close to β2 has fewer training instabilities than with β2 ≫ β1"
    (Ma, Wu & E 2020).
    """

    kind = "fewer_instabilities"

    @property
    def effect(self) -> str:
        return f"mean {self.claim.metric} per run: baseline − candidate"

    def has_data(self, run: RunLike) -> bool:
        return math.isfinite(stability_value(run, self.claim.metric, self.normaliser))

    def compare(self, cells: _Cells, runs: list[RunLike]) -> Verdict:
        metric = self.claim.metric

        def values(cell: list[RunLike]) -> np.ndarray:
            return stability_values(cell, metric, self.normaliser)

        a, b = cells.strata("candidate", values), cells.strata("baseline", values)
        if any(len(s) == 0 for s in (*a, *b)):
            return self.no_data(f"runs lack the stability measure {metric!r} in metrics.json", runs)
        diff = stats.mean_difference_interval(b, a, **self.boot)
        mean_a, mean_b = float(stats.pooled_mean(a)), float(stats.pooled_mean(b))
        guard_c, guard_b = self.arm_guards(cells)
        measured = (
            f"mean {metric} per run: candidate {mean_a:.3g}, baseline {mean_b:.3g}; "
            f"baseline − candidate {diff.format(signed=True)}; gains on the {LEARNING_SCORE}: candidate "
            f"{guard_c.estimate:.2f}, baseline {guard_b.estimate:.2f}"
        )
        details = {"mean_candidate": mean_a, "mean_baseline": mean_b}
        return self.finish(diff, measured, cells, details, {REPRODUCED: [guard_c], CONTRADICTED: [guard_b]})


def _curve_distance(groups: list[Strata]) -> np.ndarray:
    """Mean |IQM curve gap| over pairs of groups, steps (axis 0) and tasks."""
    n_tasks = len(groups[0])
    per_task = []
    for t in range(n_tasks):
        curves = [stats.iqm(group[t], axis=-1) for group in groups]
        gaps = [np.mean(np.abs(x - y), axis=0) for x, y in itertools.combinations(curves, 2)]
        per_task.append(np.mean(gaps, axis=0))
    return np.mean(per_task, axis=0)


class ClosestCurves(GroupedRule):
    r"""``closest_curves`` (a scaling rule): the candidate's curves stay closer together across its groups.

    Each arm's runs are grouped by ``group_by`` (default ``kappa``); the distance of an arm is the mean
    absolute gap between the IQM curves (normalised return against samples, on the steps every run
    reached) of every pair of groups, averaged over steps and tasks:

    .. math::

        d = \mathrm{mean}_{\text{tasks}}\ \mathrm{mean}_{g < h}\ \mathrm{mean}_{\text{steps}}
            \left|\mathrm{IQM}_g(\text{step}) - \mathrm{IQM}_h(\text{step})\right|

    Effect ``d(baseline) − d(candidate)``: reproduced above 0, contradicted below 0.

    Guard: reproduced needs every group of the candidate to have learnt (gains of the late return),
    contradicted every group of the baseline: flat curves are trivially close.

    Tests claims such as "with the square-root rule, PPO return curves against samples stay closer
    across minibatch sizes than with no scaling" (Malladi et al. 2022).
    """

    kind = "closest_curves"
    no_common_task = "no task has evaluated runs at every value of {key}"

    @property
    def effect(self) -> str:
        return f"curve distance across {self.key}: baseline − candidate"

    def has_data(self, run: RunLike) -> bool:
        return bool(np.isfinite(np.asarray(run.returns, dtype=float)).any())

    def group_values(self, runs: list[RunLike]) -> Callable[[list[RunLike]], np.ndarray] | None:
        grid = common_grid(runs)
        if len(grid) < 2:
            return None

        def values(cell: list[RunLike]) -> np.ndarray:
            return curve_matrix(cell, grid, self.normaliser).T  # (steps, runs): runs on the last axis

        return values

    def compare(self, groups: _Groups) -> Verdict:
        interval = self.baseline_minus_candidate(groups, _curve_distance)
        dist_c, dist_b = float(_curve_distance(groups.candidate)), float(_curve_distance(groups.baseline))
        guards_c, guards_b = self.group_guards(groups, "candidate"), self.group_guards(groups, "baseline")
        measured = (
            f"mean gap between normalised IQM curves across {groups.key}: "
            f"candidate {dist_c:.3f}, baseline {dist_b:.3f}; "
            f"baseline − candidate {interval.format(signed=True, digits=3)}; smallest gain on "
            f"the {LEARNING_SCORE}: candidate {_smallest_gain(guards_c):.2f}, baseline "
            f"{_smallest_gain(guards_b):.2f}"
        )
        details = {"distance_candidate": dist_c, "distance_baseline": dist_b}
        guards = {REPRODUCED: guards_c, CONTRADICTED: guards_b}
        return self.finish(interval, measured, groups.cells, details, guards)


RULES: dict[str, type[Rule]] = {
    rule.kind: rule for rule in (Better, Competitive, Robust, FewerInstabilities, ClosestCurves)
}
"""The rule of each claim kind (:data:`rlopt.config.claims.KINDS`)."""
if set(RULES) != set(KINDS):  # pragma: no cover - a kind added to rlopt.config.claims needs its rule here
    raise ImportError(f"claim kinds without a rule: {sorted(set(KINDS) - set(RULES))}")


def evaluate(
    claim: Claim,
    records: Sequence[RunLike],
    *,
    normaliser: Normaliser | None = None,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
    each_task: bool = True,
) -> Verdict:
    """Test ``claim`` on the finished runs among ``records`` by its kind's rule (:data:`RULES`).

    Unfinished runs, and runs without the claim's metric, are ignored.

    Args:
        claim: The claim.
        records: Every run of the study (any state).
        normaliser: Per-task reference scores; default :meth:`Normaliser.from_runs` over ``records``.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed (the verdict is deterministic given it).
        each_task: Also judge each task alone (:attr:`Verdict.per_task`), for the report's details.

    Raises:
        ConfigError: if a selector key is known to no run.
    """
    claim.check_keys(records)
    normaliser = normaliser or Normaliser.from_runs(records)
    rule = RULES[claim.kind](claim, normaliser, n_resamples, seed, each_task)
    usable = [r for r in records if is_usable(r) and rule.has_data(r)]
    candidate = [r for r in usable if claim.candidate.matches(r)]
    baseline = [r for r in usable if claim.baseline.matches(r)] if claim.baseline else []
    return rule.judge(candidate, baseline)
