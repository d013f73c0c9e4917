"""Claims from the papers, written as data, and their verdicts computed from confidence intervals.

A study file's ``claim:`` section (one mapping or a list of them) says what is tested::

    claim:
      statement: ADOPT is competitive with or better than Adam in PPO on MuJoCo
      source: Taniguchi et al. 2024 (NeurIPS), appendix figure on HalfCheetah and Ant
      paper_says: ADOPT's return curves at or above Adam's     # optional
      kind: competitive
      candidate: {optimizer: adopt}
      baseline: {optimizer: adam}
      metric: final_return                                     # optional, default per kind
      margin: 0.2                  # competitive: a fraction of what the baseline learnt
      paper_timesteps: 1000000     # optional: the paper's steps per run, to state the budget fraction
      min_gain: 0.1                # optional: what "learnt" means, in normalised-score units
      min_runs: 5                  # optional: fewest finished runs per cell

A *selector* (``candidate``, ``baseline``) picks runs: a mapping of ``optimizer``, ``setting``, ``task``,
``seed``, ``trial`` or any key of the run's params (``betas``, ``kappa``, ``scaling_rule``; ``params.``
prefix optional; ``beta1``, ``beta2``, ... pick one entry of ``betas``) to a value or a list of accepted
values; a list of mappings matches a run that matches any of them (e.g. ``[{scaling_rule: sqrt},
{kappa: 1}]``).

**Scores and gains.** Scores are normalised per task (0 = random policy or worst evaluation seen, 1 =
reference). A run's *gain* is its score minus its floor, ``max(0, normalised first evaluation)``
(:func:`rlopt.analysis.scores.floor_score`): what it learnt beyond the floor of the scale *and* beyond its initial
policy (Ant's untrained policy already scores 0.2). An arm (or group) *has learnt* when the lower bound
of the IQM of its gains is above ``min_gain`` (default 0.1: a tenth of the way from random to the
reference); kinds without a score metric measure gains on ``final_return``.

**Intervals.** Every interval of a verdict is a stratified-bootstrap *t* interval (:mod:`rlopt.stats`,
``method="t"``) at ``confidence`` (default 95%, so 2.5% on each side): at 5 runs per task the percentile
interval was anti-conservative (3–6% one-sided error where 2.5% was meant) and BCa worse. The rates of
every rule below are measured by simulation (:mod:`rlopt.analysis.simulation`,
``scripts/calibrate_verdicts.py``).

Kinds, and when a verdict is ``reproduced`` / ``contradicted`` (else ``inconclusive at this budget``):

- ``better``: the effect is ``D = IQM(candidate) − IQM(baseline)`` of normalised ``metric`` (pooled
  over tasks). Reproduced if D's lower bound is above 0, contradicted if its upper bound is below 0.
  P(improvement) is reported but does not decide: it says how often the candidate wins, not by how
  much (a 0.001 edge in every seed gives P = 1), and its bootstrap at 5 runs per task takes few values
  and was anti-conservative.
- ``competitive`` (non-inferiority): ``T = D + margin · G_b`` where ``G_b`` is the IQM of the baseline's
  gains, so the margin is a fraction of what the baseline learnt, never more than it learnt.
  Reproduced if T's lower bound is above 0 (the candidate loses less than ``margin · G_b``),
  contradicted if T's upper bound is below 0. ``D`` and ``G_b`` are bootstrapped together.
- ``robust`` (to a hyperparameter): the spread (max − min) of the normalised-score IQMs of an arm's
  groups (runs grouped by ``group_by``, default ``setting``). With a baseline the effect is
  spread(baseline) − spread(candidate): reproduced above 0, contradicted below 0 (give both arms the
  same number of values: the max − min of more noisy IQMs is larger by chance). Without one, ``T =
  margin · max_g G_g − spread``, the margin a fraction of the best group's gain: reproduced if T's
  lower bound is above 0, contradicted if its upper bound is below 0.
- ``fewer_instabilities``: mean per run of an instability measure (``instabilities`` = return collapses
  + loss spikes + NaN events, a diverged run counting at least one; one of those; ``diverged``, the
  fraction of runs that diverged; or ``late_std``, the spread of the normalised return over the last
  quarter of training), effect mean(baseline) − mean(candidate): reproduced above 0, contradicted below 0.
- ``closest_curves`` (a scaling rule): each arm's runs grouped by ``group_by`` (default ``kappa``); the
  distance of an arm is the mean absolute gap between the IQM curves (normalised return against
  samples) of every pair of groups, averaged over steps and tasks. Effect distance(baseline) −
  distance(candidate): reproduced above 0, contradicted below 0.

**Guards** (each turns the outcome into *inconclusive*, with a one-line reason):

- *Nothing learnt.* A verdict credits one arm with something (reproduced: the candidate is better,
  competitive, robust, stable, has close curves; contradicted: the baseline is), and that arm must have
  learnt: for ``better`` and ``fewer_instabilities`` the credited arm, for ``robust`` and
  ``closest_curves`` every group of it (``robust`` without baseline, when contradicted: its best group),
  for ``competitive`` the baseline whatever the outcome (its gain sets the margin). Otherwise
  *nothing was learnt at this budget*: flat curves are close, a policy that never learns never
  collapses, and settings that all learn nothing have no spread.
- *Too few runs.* A cell (arm or group × task) with fewer than ``min_runs`` finished runs (default 5).
- *Budget.* Every verdict states the steps per run as a fraction of ``paper_timesteps`` and is labelled
  *sub-budget* below it; without that key it says the paper's budget is unknown.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    run_score,
    scores,
    stability_value,
    stability_values,
)
from rlopt.errors import ConfigError

REPRODUCED = "reproduced"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive at this budget"

CURVE_METRIC = "return_curve"
KINDS: dict[str, tuple[str, ...]] = {
    "better": SCORE_METRICS,
    "competitive": SCORE_METRICS,
    "robust": SCORE_METRICS,
    "fewer_instabilities": STABILITY_METRICS,
    "closest_curves": (CURVE_METRIC,),
}
"""Each kind and the metrics it accepts (the first is the default)."""

DEFAULT_GROUP_BY = {"robust": "setting", "closest_curves": "kappa"}
RECORD_FIELDS = ("optimizer", "setting", "task", "seed", "trial")
CLAIM_KEYS = (
    "statement",
    "source",
    "paper_says",
    "kind",
    "candidate",
    "baseline",
    "metric",
    "margin",
    "group_by",
    "confidence",
    "min_runs",
    "min_gain",
    "paper_timesteps",
)
DEFAULT_MIN_RUNS = 5
DEFAULT_MIN_GAIN = 0.1
VERDICT_METHOD = "t"
"""The bootstrap interval of every verdict (see :mod:`rlopt.stats`)."""
LEARNING_METRIC = "final_return"
"""The score whose gain says whether runs learnt, for kinds whose metric is not a score."""


def _describe_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_describe_value(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return len(value) == len(wanted) and all(_same(v, w) for v, w in zip(value, wanted, strict=True))
    if isinstance(value, (int, float)) and isinstance(wanted, (int, float)) and not isinstance(value, bool):
        return math.isclose(float(value), float(wanted), rel_tol=1e-9, abs_tol=1e-12)
    return value == wanted or str(value) == str(wanted)


_BETA_KEY = re.compile(r"^beta([1-9])$")


def _missing(record: RunLike, key: str) -> bool:
    return key not in RECORD_FIELDS and record_value(record, key) is None


def record_value(record: RunLike, key: str) -> Any:
    """The value of a selector key on a run: a record field, else a params entry (None if absent).

    ``beta1``, ``beta2``, ... not in params read ``params["betas"][0]``, ``[1]``, ...
    """
    if key in RECORD_FIELDS:
        return getattr(record, key)
    params = record.params or {}
    name = key.removeprefix("params.")
    if name in params:
        return params[name]
    beta = _BETA_KEY.match(name)
    betas = params.get("betas")
    if beta and isinstance(betas, (list, tuple)) and int(beta.group(1)) <= len(betas):
        return betas[int(beta.group(1)) - 1]
    return None


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class Selector:
    """Which runs form an arm: any of ``alternatives`` matches, each requiring all its keys to match."""

    alternatives: tuple[Mapping[str, Any], ...]

    @classmethod
    def from_config(cls, value: Any, where: str) -> Selector:
        """From a mapping or a non-empty list of mappings (see the module docstring)."""
        alternatives = value if isinstance(value, list) else [value]
        if not alternatives or not all(isinstance(a, Mapping) and a for a in alternatives):
            raise ConfigError(
                f"{where} must be a non-empty mapping such as {{optimizer: adopt}} or a list of them, "
                f"got {value!r}"
            )
        for alternative in alternatives:
            for key in alternative:
                if not isinstance(key, str) or not key:
                    raise ConfigError(f"{where}: selector keys must be names, got {key!r}")
        return cls(tuple(dict(a) for a in alternatives))

    @property
    def keys(self) -> set[str]:
        return {key for alternative in self.alternatives for key in alternative}

    def matches(self, record: RunLike) -> bool:
        """Whether the run belongs to this arm."""
        return any(self._matches_one(record, alternative) for alternative in self.alternatives)

    @staticmethod
    def _matches_one(record: RunLike, alternative: Mapping[str, Any]) -> bool:
        for key, wanted in alternative.items():
            if _missing(record, key):
                return False
            value = record_value(record, key)
            if not (
                _same(value, wanted) or (isinstance(wanted, list) and any(_same(value, w) for w in wanted))
            ):
                return False
        return True

    def describe(self) -> str:
        """``"optimizer=adopt"``, alternatives joined by ``" or "``."""
        return " or ".join(
            ", ".join(f"{k}={_describe_value(v)}" for k, v in alternative.items())
            for alternative in self.alternatives
        )


@dataclass(frozen=True)
class Claim:
    """One claim of a paper and how this study tests it (see the module docstring for the kinds).

    Attributes:
        statement: The claim in one sentence.
        source: The paper (and figure/table) it comes from.
        kind: ``better | competitive | robust | fewer_instabilities | closest_curves``.
        candidate: The runs of the method the claim is about.
        baseline: The runs it is compared with (optional for ``robust``).
        metric: What is compared; default per kind (``final_return``, ``instabilities``, ``return_curve``).
        margin: Non-inferiority margin (``competitive``, a fraction of the baseline's IQM gain) or
            largest acceptable spread (``robust`` without baseline, a fraction of the best group's gain).
        group_by: Selector key whose values form the groups of ``robust`` and ``closest_curves``.
        paper_says: What the paper reports as evidence, for the verdict table.
        confidence: Confidence level of the intervals.
        min_runs: Fewest finished runs per cell for a verdict other than inconclusive.
        min_gain: The lower bound an arm's IQM gain must exceed for the arm to count as having learnt
            (normalised-score units).
        paper_timesteps: The paper's env steps per run, or None when unknown.
    """

    statement: str
    source: str
    kind: str
    candidate: Selector
    baseline: Selector | None = None
    metric: str = ""
    margin: float | None = None
    group_by: str | None = None
    paper_says: str = ""
    confidence: float = stats.DEFAULT_CONFIDENCE
    min_runs: int = DEFAULT_MIN_RUNS
    min_gain: float = DEFAULT_MIN_GAIN
    paper_timesteps: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "claim") -> Claim:
        """Validate a claim read from a study file.

        Raises:
            ConfigError: naming the bad key or value and what would be accepted.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"{where} must be a mapping with keys {', '.join(CLAIM_KEYS)}, got {d!r}")
        unknown = [k for k in d if k not in CLAIM_KEYS]
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r}; accepted keys: {', '.join(CLAIM_KEYS)}")
        for key in ("statement", "source", "kind", "candidate"):
            if d.get(key) in (None, ""):
                raise ConfigError(
                    f"{where}: missing {key!r} (required keys: statement, source, kind, candidate)"
                )
        for key in ("statement", "source", "paper_says"):
            if key in d and not isinstance(d[key], str):
                raise ConfigError(f"{where}.{key} must be text, got {d[key]!r}")
        kind = d["kind"]
        if kind not in KINDS:
            raise ConfigError(f"{where}.kind: {kind!r} is not one of: {', '.join(KINDS)}")
        metric = d.get("metric", KINDS[kind][0])
        if metric not in KINDS[kind]:
            raise ConfigError(
                f"{where}.metric: {metric!r} is not accepted for kind {kind!r}; "
                f"accepted: {', '.join(KINDS[kind])}"
            )
        candidate = Selector.from_config(d["candidate"], f"{where}.candidate")
        baseline = Selector.from_config(d["baseline"], f"{where}.baseline") if d.get("baseline") else None
        if baseline is None and kind != "robust":
            raise ConfigError(f"{where}: kind {kind!r} needs a 'baseline' selector, e.g. {{optimizer: adam}}")
        margin = d.get("margin")
        if margin is not None:
            if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= 1:
                raise ConfigError(
                    f"{where}.margin must be a number in [0, 1] (a fraction of what the baseline, or the "
                    f"best group, learnt), got {margin!r}"
                )
            margin = float(margin)
        needs_margin = kind == "competitive" or (kind == "robust" and baseline is None)
        if needs_margin and margin is None:
            raise ConfigError(
                f"{where}: kind {kind!r}"
                + (" without a baseline" if kind == "robust" else "")
                + " needs 'margin', a fraction in [0, 1] of what was learnt (e.g. 0.2)"
            )
        if not needs_margin and margin is not None:
            raise ConfigError(
                f"{where}.margin is not used by kind {kind!r}; it applies to 'competitive' and to 'robust' "
                "without a baseline"
            )
        group_by = d.get("group_by", DEFAULT_GROUP_BY.get(kind))
        if kind not in DEFAULT_GROUP_BY and "group_by" in d:
            raise ConfigError(
                f"{where}.group_by is not used by kind {kind!r}; it applies to: robust, closest_curves"
            )
        if group_by is not None and (not isinstance(group_by, str) or not group_by):
            raise ConfigError(
                f"{where}.group_by must be a selector key such as 'setting' or 'kappa', got {group_by!r}"
            )
        confidence = d.get("confidence", stats.DEFAULT_CONFIDENCE)
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
            raise ConfigError(
                f"{where}.confidence must be a number in (0, 1) such as 0.95, got {confidence!r}"
            )
        min_runs = d.get("min_runs", DEFAULT_MIN_RUNS)
        if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 2:
            raise ConfigError(f"{where}.min_runs must be an integer >= 2, got {min_runs!r}")
        min_gain = d.get("min_gain", DEFAULT_MIN_GAIN)
        if isinstance(min_gain, bool) or not isinstance(min_gain, (int, float)) or not 0 <= min_gain < 1:
            raise ConfigError(
                f"{where}.min_gain must be a number in [0, 1) (normalised-score units), got {min_gain!r}"
            )
        paper = d.get("paper_timesteps")
        if paper is not None and (
            isinstance(paper, bool) or not isinstance(paper, (int, float)) or not 0 < paper < math.inf
        ):
            raise ConfigError(
                f"{where}.paper_timesteps must be a positive number of env steps per run, got {paper!r}"
            )
        return cls(
            statement=d["statement"].strip(),
            source=d["source"].strip(),
            kind=kind,
            candidate=candidate,
            baseline=baseline,
            metric=metric,
            margin=margin,
            group_by=group_by,
            paper_says=str(d.get("paper_says", "")).strip(),
            confidence=float(confidence),
            min_runs=min_runs,
            min_gain=float(min_gain),
            paper_timesteps=None if paper is None else int(paper),
        )

    def check_keys(self, records: Sequence[RunLike]) -> None:
        """Raise ConfigError for a selector or group_by key that no run has (most likely a typo)."""
        if not records:
            return
        keys = set(self.candidate.keys) | (self.baseline.keys if self.baseline else set())
        if self.group_by:
            keys.add(self.group_by)
        for key in sorted(keys):
            if all(_missing(r, key) for r in records):
                params = sorted({p for r in records for p in (r.params or {})})
                raise ConfigError(
                    f"claim key {key!r} matches no run; runs have: {', '.join(RECORD_FIELDS + tuple(params))}"
                )


def claims_from_config(value: Any, where: str = "claim") -> tuple[Claim, ...]:
    """One claim mapping, or a list of them, from a study file (None or empty gives no claims)."""
    if value in (None, [], {}):
        return ()
    if isinstance(value, list):
        return tuple(Claim.from_dict(d, f"{where}[{i}]") for i, d in enumerate(value))
    return (Claim.from_dict(value, where),)


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

    def strata(self, name: str, values: Callable[[list[RunLike]], np.ndarray]) -> list[np.ndarray]:
        return [values(self.groups[name][task]) for task in self.tasks]

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


def _no_data(claim: Claim, effect: str, why: str, runs: Sequence[RunLike] = ()) -> Verdict:
    budget, sub = budget_of(claim, runs)
    return Verdict(claim, INCONCLUSIVE, effect, None, "no data", why, budget=budget, sub_budget=sub)


class _Guard:
    """Whether an arm (or group) learnt: the lower bound of the IQM of its gains against ``min_gain``.

    The interval is computed only when a verdict needs the guard (most verdicts are inconclusive by
    their own interval), and not at all when the estimate itself is not above ``min_gain`` (the t
    interval is centred on it, so its lower bound cannot be).
    """

    def __init__(self, who: str, strata: list[np.ndarray], min_gain: float, boot: Mapping[str, Any]) -> None:
        self.who = who
        self.strata = strata
        self.min_gain = min_gain
        self.boot = boot
        usable = bool(strata) and all(s.size for s in strata)
        self.estimate = float(stats.pooled_iqm(strata)) if usable else math.nan
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
    def learnt(self) -> bool:
        return self.estimate > self.min_gain and self.interval.defined and self.interval.low > self.min_gain

    def failure(self) -> str:
        shown = self.interval.format() if self.interval.defined else f"{self.estimate:.2f}"
        return (
            f"{self.who} learnt too little: IQM gain of {LEARNING_METRIC} over its initial score {shown}, "
            f"{'lower bound' if self.interval.defined else 'estimate'} not above min_gain {self.min_gain:g}"
        )


def _first_failure(guards: Sequence[_Guard]) -> str | None:
    failed = [g for g in guards if not g.learnt]
    if not failed:
        return None
    more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
    return failed[0].failure() + more


def _finish(
    claim: Claim,
    effect: str,
    interval: stats.Interval,
    measured: str,
    threshold: float,
    reproduced_if: str,
    cells: _Cells,
    details: Mapping[str, float] | None = None,
    guards: Mapping[str, Sequence[_Guard]] | None = None,
) -> Verdict:
    """Apply the rule, then the guards: nothing learnt (per outcome), then too few runs."""
    outcome, reason = decide(interval, threshold, reproduced_if)
    failure = _first_failure((guards or {}).get(outcome, ()))
    if failure:
        reason = f"nothing was learnt at this budget: {failure} (the interval alone: {outcome}, {reason})"
        outcome = INCONCLUSIVE
    elif outcome == INCONCLUSIVE:
        # Say so when the arm a reproduced verdict would credit did not learn (estimates only: no bootstrap).
        flat = [g for g in (guards or {}).get(REPRODUCED, ()) if not g.estimate > g.min_gain]
        if flat:
            reason = f"{reason}; nothing was learnt at this budget: {flat[0].failure()}"
    smallest = cells.smallest()
    if outcome != INCONCLUSIVE and smallest < claim.min_runs:
        reason = f"{reason}, but the smallest cell has {smallest} finished run(s) (min_runs {claim.min_runs})"
        outcome = INCONCLUSIVE
    conf = f"{claim.confidence:.0%} CI"
    budget, sub = budget_of(claim, cells.runs())
    return Verdict(
        claim,
        outcome,
        effect,
        interval,
        f"{measured}; brackets: {conf}",
        reason,
        cells.describe(),
        dict(details or {}),
        budget,
        sub,
    )


def _has_data(record: RunLike, claim: Claim, normaliser: Normaliser) -> bool:
    """Whether the run carries the claim's metric (e.g. a run diverged before its first evaluation)."""
    if claim.kind == "closest_curves":
        return bool(np.isfinite(np.asarray(record.returns, dtype=float)).any())
    if claim.kind == "fewer_instabilities":
        return math.isfinite(stability_value(record, claim.metric, normaliser))
    return math.isfinite(run_score(record, claim.metric))


def evaluate(
    claim: Claim,
    records: Sequence[RunLike],
    *,
    normaliser: Normaliser | None = None,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Verdict:
    """Test ``claim`` on the finished runs among ``records``; unfinished runs are ignored.

    Args:
        claim: The claim.
        records: Every run of the study (any state).
        normaliser: Per-task reference scores; default :meth:`Normaliser.from_runs` over ``records``.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed (the verdict is deterministic given it).

    Raises:
        ConfigError: if a selector key is known to no run.
    """
    claim.check_keys(records)
    normaliser = normaliser or Normaliser.from_runs(records)
    usable = [r for r in records if is_usable(r) and _has_data(r, claim, normaliser)]
    candidate = [r for r in usable if claim.candidate.matches(r)]
    baseline = [r for r in usable if claim.baseline.matches(r)] if claim.baseline else []
    rules = _Rules(claim, normaliser, n_resamples, seed)
    evaluator = {
        "better": rules.better,
        "competitive": rules.competitive,
        "robust": rules.robust,
        "fewer_instabilities": rules.fewer_instabilities,
        "closest_curves": rules.closest_curves,
    }[claim.kind]
    return evaluator(candidate, baseline)


def _two_arms(candidate: Sequence[RunLike], baseline: Sequence[RunLike]) -> _Cells:
    return _Cells.of({"candidate": candidate, "baseline": baseline})


def _groups(runs: Sequence[RunLike], key: str) -> dict[str, list[RunLike]]:
    out: dict[Any, list[RunLike]] = {}
    for run in runs:
        out.setdefault(_hashable(record_value(run, key)), []).append(run)
    return {f"{key}={_describe_value(k)}": v for k, v in sorted(out.items(), key=lambda kv: str(kv[0]))}


def _spread(groups: list[list[np.ndarray]]) -> np.ndarray:
    """max − min over groups of the pooled IQM of row 0 (the scores) of each group's strata."""
    iqms = np.stack([stats.pooled_iqm(strata)[0] for strata in groups])
    return iqms.max(axis=0) - iqms.min(axis=0)


def _curve_distance(groups: list[list[np.ndarray]]) -> np.ndarray:
    """Mean |IQM curve gap| over pairs of groups, steps (axis 0) and tasks."""
    n_tasks = len(groups[0])
    per_task = []
    for t in range(n_tasks):
        curves = [stats.iqm(group[t], axis=-1) for group in groups]
        gaps = [np.mean(np.abs(x - y), axis=0) for x, y in itertools.combinations(curves, 2)]
        per_task.append(np.mean(gaps, axis=0))
    return np.mean(per_task, axis=0)


@dataclass(frozen=True)
class _Rules:
    """The rule of each kind (module docstring), sharing the claim, the normaliser and the bootstrap."""

    claim: Claim
    normaliser: Normaliser
    n_resamples: int
    seed: int

    @property
    def boot(self) -> dict[str, Any]:
        return {
            "n_resamples": self.n_resamples,
            "confidence": self.claim.confidence,
            "seed": self.seed,
            "method": VERDICT_METHOD,
        }

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
        """Whether the runs of the named groups (pooled, per task) learnt: gains of the final return."""
        strata = [
            np.concatenate(
                [gains(cells.groups[name][task], LEARNING_METRIC, self.normaliser) for name in names]
            )
            for task in cells.tasks
        ]
        return _Guard(who, strata, self.claim.min_gain, self.boot)

    def group_guards(self, arm: str, cells: _Cells, names: Sequence[str]) -> list[_Guard]:
        return [self.guard(f"{arm} {name.split(': ', 1)[1]}", cells, [name]) for name in names]

    def better(self, candidate: list, baseline: list) -> Verdict:
        claim = self.claim
        effect = "IQM(candidate) − IQM(baseline), normalised"
        cells = _two_arms(candidate, baseline)
        if not cells.tasks:
            return _no_data(claim, effect, "no task has finished runs of both arms", candidate + baseline)
        a, b = cells.strata("candidate", self.scores), cells.strata("baseline", self.scores)
        diff = stats.iqm_difference_interval(a, b, **self.boot)
        poi = float(stats.average_probability_of_improvement(a, b))
        guard_c, guard_b = (
            self.guard("the candidate", cells, ["candidate"]),
            self.guard("the baseline", cells, ["baseline"]),
        )
        measured = (
            f"IQM difference on normalised {claim.metric} = {diff.format(signed=True)}; "
            f"P(improvement) {poi:.2f}; gains: candidate {guard_c.estimate:.2f}, "
            f"baseline {guard_b.estimate:.2f}"
        )
        return _finish(
            claim,
            effect,
            diff,
            measured,
            0.0,
            "above",
            cells,
            {"iqm_difference": diff.estimate, "poi": poi},
            {REPRODUCED: [guard_c], CONTRADICTED: [guard_b]},
        )

    def competitive(self, candidate: list, baseline: list) -> Verdict:
        claim = self.claim
        margin = claim.margin or 0.0
        effect = f"IQM(candidate) − IQM(baseline) + {margin:g} × baseline's IQM gain, normalised"
        cells = _two_arms(candidate, baseline)
        if not cells.tasks:
            return _no_data(claim, effect, "no task has finished runs of both arms", candidate + baseline)
        # Both arms as (2, runs) arrays (scores, gains): scipy broadcasts the samples to one shape.
        a = cells.strata("candidate", self.scores_and_gains)
        b = cells.strata("baseline", self.scores_and_gains)

        def statistic(g: list[list[np.ndarray]]) -> np.ndarray:
            base = stats.pooled_iqm(g[1])
            return stats.pooled_iqm(g[0])[0] - base[0] + margin * base[1]

        est, low, high = stats.stratified_bootstrap([a, b], statistic, **self.boot)
        t = stats.Interval(float(est), float(low), float(high), claim.confidence)
        diff = stats.iqm_difference_interval([s[0] for s in a], [s[0] for s in b], **self.boot)
        guard_b = self.guard("the baseline", cells, ["baseline"])
        gain_b = float(stats.pooled_iqm([s[1] for s in b]))
        measured = (
            f"IQM difference on normalised {claim.metric} = {diff.format(signed=True)}, "
            f"margin −{margin:g} × baseline's gain {gain_b:.3f} = −{margin * gain_b:.3f}; "
            f"difference + margin {t.format(signed=True, digits=3)}; gains: baseline "
            f"{guard_b.estimate:.2f}; P(improvement) "
            f"{float(stats.average_probability_of_improvement([s[0] for s in a], [s[0] for s in b])):.2f}"
        )
        return _finish(
            claim,
            effect,
            t,
            measured,
            0.0,
            "above",
            cells,
            {"iqm_difference": diff.estimate, "gain_baseline": gain_b},
            {REPRODUCED: [guard_b], CONTRADICTED: [guard_b]},
        )

    def robust(self, candidate: list, baseline: list) -> Verdict:
        claim = self.claim
        key = claim.group_by or "setting"
        arms = {"candidate": _groups(candidate, key)}
        if claim.baseline is not None:
            arms["baseline"] = _groups(baseline, key)
        effect = (
            f"spread of IQM across {key}: baseline − candidate"
            if claim.baseline
            else f"{claim.margin or 0.0:g} × best gain − spread of IQM across {key}"
        )
        few = [arm for arm, groups in arms.items() if len(groups) < 2]
        if few:
            return _no_data(
                claim,
                effect,
                f"{' and '.join(few)} need(s) finished runs at two or more values of {key}",
                candidate + baseline,
            )
        flat = {f"{arm}: {name}": runs for arm, groups in arms.items() for name, runs in groups.items()}
        cells = _Cells.of(flat)
        if not cells.tasks:
            return _no_data(
                claim, effect, f"no task has finished runs at every value of {key}", candidate + baseline
            )
        order = {arm: [f"{arm}: {name}" for name in groups] for arm, groups in arms.items()}
        strata = [cells.strata(name, self.scores_and_gains) for arm in arms for name in order[arm]]
        n_candidate = len(order["candidate"])
        guards_c = self.group_guards("the candidate at", cells, order["candidate"])
        spread_c = float(_spread(strata[:n_candidate]))
        if claim.baseline:

            def statistic(groups: list[list[np.ndarray]]) -> np.ndarray:
                return _spread(groups[n_candidate:]) - _spread(groups[:n_candidate])

            est, low, high = stats.stratified_bootstrap(strata, statistic, **self.boot, bias_correct=True)
            interval = stats.Interval(float(est), float(low), float(high), claim.confidence)
            spread_b = float(_spread(strata[n_candidate:]))
            guards_b = self.group_guards("the baseline at", cells, order["baseline"])
            measured = (
                f"IQM spread across {key} on normalised {claim.metric}: candidate {spread_c:.2f} "
                f"({n_candidate} values), baseline {spread_b:.2f} ({len(strata) - n_candidate} values); "
                f"baseline − candidate {interval.format(signed=True)}; smallest gain: candidate "
                f"{min(g.estimate for g in guards_c):.2f}, baseline "
                f"{min(g.estimate for g in guards_b):.2f}"
            )
            if len(strata) - n_candidate != n_candidate:
                measured += " (unequal numbers of values: the arm with more has a larger spread by chance)"
            return _finish(
                claim,
                effect,
                interval,
                measured,
                0.0,
                "above",
                cells,
                {"spread_candidate": spread_c, "spread_baseline": spread_b},
                {REPRODUCED: guards_c, CONTRADICTED: guards_b},
            )
        margin = claim.margin or 0.0

        def allowed_minus_spread(groups: list[list[np.ndarray]]) -> np.ndarray:
            best = np.max(np.stack([stats.pooled_iqm(g)[1] for g in groups]), axis=0)
            return margin * best - _spread(groups)

        est, low, high = stats.stratified_bootstrap(
            strata, allowed_minus_spread, **self.boot, bias_correct=True
        )
        interval = stats.Interval(float(est), float(low), float(high), claim.confidence)
        group_gains = [float(stats.pooled_iqm(g)[1]) for g in strata[:n_candidate]]
        best_index = int(np.argmax(group_gains))
        best_gain, best = group_gains[best_index], guards_c[best_index]
        measured = (
            f"IQM spread across {n_candidate} values of {key} on normalised {claim.metric}: {spread_c:.3f}, "
            f"allowed {margin:g} × best gain {best_gain:.3f} = {margin * best_gain:.3f}; "
            f"allowed − spread {interval.format(signed=True, digits=3)}"
        )
        return _finish(
            claim,
            effect,
            interval,
            measured,
            0.0,
            "above",
            cells,
            {"spread_candidate": spread_c, "best_gain": best_gain},
            {REPRODUCED: guards_c, CONTRADICTED: [best]},
        )

    def fewer_instabilities(self, candidate: list, baseline: list) -> Verdict:
        claim = self.claim
        effect = f"mean {claim.metric} per run: baseline − candidate"
        cells = _two_arms(candidate, baseline)
        if not cells.tasks:
            return _no_data(claim, effect, "no task has finished runs of both arms", candidate + baseline)

        def values(runs: list[RunLike]) -> np.ndarray:
            return stability_values(runs, claim.metric, self.normaliser)

        a, b = cells.strata("candidate", values), cells.strata("baseline", values)
        if any(len(s) == 0 for s in (*a, *b)):
            return _no_data(
                claim,
                effect,
                f"runs lack the stability measure {claim.metric!r} in metrics.json",
                candidate + baseline,
            )
        diff = stats.mean_difference_interval(b, a, **self.boot)
        mean_a, mean_b = float(stats.pooled_mean(a)), float(stats.pooled_mean(b))
        guard_c, guard_b = (
            self.guard("the candidate", cells, ["candidate"]),
            self.guard("the baseline", cells, ["baseline"]),
        )
        measured = (
            f"mean {claim.metric} per run: candidate {mean_a:.3g}, baseline {mean_b:.3g}; "
            f"baseline − candidate {diff.format(signed=True)}; gains on {LEARNING_METRIC}: candidate "
            f"{guard_c.estimate:.2f}, baseline {guard_b.estimate:.2f}"
        )
        return _finish(
            claim,
            effect,
            diff,
            measured,
            0.0,
            "above",
            cells,
            {"mean_candidate": mean_a, "mean_baseline": mean_b},
            {REPRODUCED: [guard_c], CONTRADICTED: [guard_b]},
        )

    def closest_curves(self, candidate: list, baseline: list) -> Verdict:
        claim = self.claim
        key = claim.group_by or "kappa"
        effect = f"curve distance across {key}: baseline − candidate"
        arms = {"candidate": _groups(candidate, key), "baseline": _groups(baseline, key)}
        few = [arm for arm, groups in arms.items() if len(groups) < 2]
        if few:
            return _no_data(
                claim,
                effect,
                f"{' and '.join(few)} need(s) finished runs at two or more values of {key}",
                candidate + baseline,
            )
        flat = {f"{arm}: {name}": runs for arm, groups in arms.items() for name, runs in groups.items()}
        cells = _Cells.of(flat)
        grid = common_grid([r for runs in flat.values() for r in runs])
        if not cells.tasks or len(grid) < 2:
            return _no_data(
                claim, effect, f"no task has evaluated runs at every value of {key}", candidate + baseline
            )

        def values(runs: list[RunLike]) -> np.ndarray:
            return curve_matrix(runs, grid, self.normaliser).T  # (steps, runs): runs on the last axis

        order = {arm: [f"{arm}: {name}" for name in groups] for arm, groups in arms.items()}
        strata = [cells.strata(name, values) for arm in arms for name in order[arm]]
        n_candidate = len(order["candidate"])

        def statistic(groups: list[list[np.ndarray]]) -> np.ndarray:
            return _curve_distance(groups[n_candidate:]) - _curve_distance(groups[:n_candidate])

        est, low, high = stats.stratified_bootstrap(strata, statistic, **self.boot)
        interval = stats.Interval(float(est), float(low), float(high), claim.confidence)
        dist_c, dist_b = (
            float(_curve_distance(strata[:n_candidate])),
            float(_curve_distance(strata[n_candidate:])),
        )
        guards_c = self.group_guards("the candidate at", cells, order["candidate"])
        guards_b = self.group_guards("the baseline at", cells, order["baseline"])
        measured = (
            f"mean gap between normalised IQM curves across {key}: "
            f"candidate {dist_c:.3f}, baseline {dist_b:.3f}; "
            f"baseline − candidate {interval.format(signed=True, digits=3)}; smallest gain on "
            f"{LEARNING_METRIC}: candidate {min(g.estimate for g in guards_c):.2f}, baseline "
            f"{min(g.estimate for g in guards_b):.2f}"
        )
        return _finish(
            claim,
            effect,
            interval,
            measured,
            0.0,
            "above",
            cells,
            {"distance_candidate": dist_c, "distance_baseline": dist_b},
            {REPRODUCED: guards_c, CONTRADICTED: guards_b},
        )
