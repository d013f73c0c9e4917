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
      margin: 0.05                                             # normalised-score units

A *selector* (``candidate``, ``baseline``) picks runs: a mapping of ``optimizer``, ``setting``, ``task``,
``seed``, ``trial`` or any key of the run's params (``betas``, ``kappa``, ``scaling_rule``; ``params.``
prefix optional; ``beta1``, ``beta2``, ... pick one entry of ``betas``) to a value or a list of accepted
values; a list of mappings matches a run that matches any of them (e.g. ``[{scaling_rule: sqrt},
{kappa: 1}]``).

Kinds, and when a verdict is ``reproduced`` / ``contradicted`` (else ``inconclusive at this budget``):

- ``better``: P(candidate > baseline) on ``metric``, averaged over tasks. Reproduced if the interval's
  lower bound is above 0.5, contradicted if its upper bound is below 0.5.
- ``competitive`` (non-inferiority): IQM(candidate) − IQM(baseline) of normalised scores. Reproduced if
  the lower bound is above −margin, contradicted if the upper bound is below −margin.
- ``robust`` (to a hyperparameter): the spread (max − min) of the normalised-score IQMs of the
  candidate's groups (runs grouped by ``group_by``, default ``setting``). With a baseline the effect is
  spread(baseline) − spread(candidate): reproduced above 0, contradicted below 0 (give both arms the same
  number of values: the max − min of more noisy IQMs is larger by chance). Without one, the spread
  itself against ``margin``: reproduced if the upper bound is below the margin, contradicted if the lower
  bound is above it.
- ``fewer_instabilities``: mean per run of an instability measure (``instabilities`` = return collapses
  + loss spikes + NaN events, a diverged run counting at least one; one of those; ``diverged``, the
  fraction of runs that diverged; or ``late_std``, the spread of the normalised return over the last
  quarter of training), effect mean(baseline) − mean(candidate): reproduced above 0, contradicted below 0.
- ``closest_curves`` (a scaling rule): each arm's runs grouped by ``group_by`` (default ``kappa``); the
  distance of an arm is the mean absolute gap between the IQM curves (normalised return against
  samples) of every pair of groups, averaged over steps and tasks. Effect distance(baseline) −
  distance(candidate): reproduced above 0, contradicted below 0.

Whatever the interval, a cell (arm or group × task) with fewer than ``min_runs`` finished runs
(default 3) makes the verdict inconclusive: the bootstrap cannot be trusted with fewer seeds. A
``competitive`` claim is also inconclusive when the baseline's IQM is not clearly (lower bound) above
the margin, and a ``robust`` claim without baseline when no group's IQM is: at such a budget a policy
that learnt nothing would pass the test too.
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
from rlopt.errors import ConfigError
from rlopt.scores import (
    SCORE_METRICS,
    STABILITY_METRICS,
    Normaliser,
    RunLike,
    by_task,
    common_grid,
    curve_matrix,
    is_usable,
    run_score,
    scores,
    stability_value,
    stability_values,
)

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
)


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
        margin: Non-inferiority margin (``competitive``) or largest acceptable spread (``robust``
            without baseline), in normalised-score units.
        group_by: Selector key whose values form the groups of ``robust`` and ``closest_curves``.
        paper_says: What the paper reports as evidence, for the verdict table.
        confidence: Confidence level of the intervals.
        min_runs: Fewest finished runs per cell for a verdict other than inconclusive.
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
    min_runs: int = 3

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
            if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < math.inf:
                raise ConfigError(
                    f"{where}.margin must be a number >= 0 (normalised-score units), got {margin!r}"
                )
            margin = float(margin)
        needs_margin = kind == "competitive" or (kind == "robust" and baseline is None)
        if needs_margin and margin is None:
            raise ConfigError(
                f"{where}: kind {kind!r}"
                + (" without a baseline" if kind == "robust" else "")
                + " needs 'margin', a number >= 0 in normalised-score units (e.g. 0.05)"
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
        min_runs = d.get("min_runs", 3)
        if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 2:
            raise ConfigError(f"{where}.min_runs must be an integer >= 2, got {min_runs!r}")
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
        effect: What was measured, e.g. ``P(candidate > baseline)``.
        interval: Its estimate and confidence interval (None when there was no data).
        measured: One line with the effect, its interval and any supporting numbers.
        reason: Why the outcome follows from the interval (the rule applied).
        runs: How many finished runs of each arm were used, per how many tasks.
    """

    claim: Claim
    outcome: str
    effect: str
    interval: stats.Interval | None
    measured: str
    reason: str
    runs: str = ""
    details: Mapping[str, float] = field(default_factory=dict)


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


def _no_data(claim: Claim, effect: str, why: str) -> Verdict:
    return Verdict(claim, INCONCLUSIVE, effect, None, "no data", why)


def _finish(
    claim: Claim,
    effect: str,
    interval: stats.Interval,
    measured: str,
    threshold: float,
    reproduced_if: str,
    cells: _Cells,
    details: Mapping[str, float] | None = None,
    vacuous: str | None = None,
) -> Verdict:
    outcome, reason = decide(interval, threshold, reproduced_if)
    if outcome == REPRODUCED and vacuous:
        reason, outcome = f"{reason}, but {vacuous}", INCONCLUSIVE
    smallest = cells.smallest()
    if outcome != INCONCLUSIVE and smallest < claim.min_runs:
        reason = f"{reason}, but the smallest cell has {smallest} finished run(s) (min_runs {claim.min_runs})"
        outcome = INCONCLUSIVE
    conf = f"{claim.confidence:.0%} CI"
    return Verdict(
        claim,
        outcome,
        effect,
        interval,
        f"{measured}; brackets: {conf}",
        reason,
        cells.describe(),
        dict(details or {}),
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
    boot = {"n_resamples": n_resamples, "confidence": claim.confidence, "seed": seed}
    evaluator = {
        "better": _better,
        "competitive": _competitive,
        "robust": _robust,
        "fewer_instabilities": _fewer_instabilities,
        "closest_curves": _closest_curves,
    }[claim.kind]
    return evaluator(claim, candidate, baseline, normaliser, boot)


def _two_arms(candidate: Sequence[RunLike], baseline: Sequence[RunLike]) -> _Cells:
    return _Cells.of({"candidate": candidate, "baseline": baseline})


def _better(claim: Claim, candidate: list, baseline: list, normaliser: Normaliser, boot: dict) -> Verdict:
    effect = f"P({claim.candidate.describe()} > {claim.baseline.describe() if claim.baseline else ''})"
    cells = _two_arms(candidate, baseline)
    if not cells.tasks:
        return _no_data(claim, effect, "no task has finished runs of both arms")

    def values(runs: list[RunLike]) -> np.ndarray:
        return scores(runs, claim.metric, normaliser)

    a, b = cells.strata("candidate", values), cells.strata("baseline", values)
    poi = stats.poi_interval(a, b, **boot)
    diff = stats.iqm_difference_interval(a, b, **boot)
    measured = (
        f"P(improvement) on {claim.metric} = {poi.format()}; "
        f"IQM difference (normalised) {diff.format(signed=True)}"
    )
    return _finish(claim, effect, poi, measured, 0.5, "above", cells, {"iqm_difference": diff.estimate})


def _competitive(
    claim: Claim, candidate: list, baseline: list, normaliser: Normaliser, boot: dict
) -> Verdict:
    effect = "IQM(candidate) − IQM(baseline), normalised"
    cells = _two_arms(candidate, baseline)
    if not cells.tasks:
        return _no_data(claim, effect, "no task has finished runs of both arms")

    def values(runs: list[RunLike]) -> np.ndarray:
        return scores(runs, claim.metric, normaliser)

    a, b = cells.strata("candidate", values), cells.strata("baseline", values)
    diff = stats.iqm_difference_interval(a, b, **boot)
    poi = stats.average_probability_of_improvement(a, b)
    margin = claim.margin or 0.0
    base = stats.iqm_interval(b, **boot)
    measured = (
        f"IQM difference on normalised {claim.metric} = {diff.format(signed=True)}, margin −{margin:g}; "
        f"baseline IQM {base.format()}; P(improvement) {float(poi):.2f}"
    )
    vacuous = None
    if not base.low > margin:
        vacuous = (
            f"the baseline's IQM is not clearly above the margin {margin:g}, so a policy scoring 0 "
            "(random, or the worst evaluation seen) would pass as well: nothing was learnt to compare"
        )
    return _finish(claim, effect, diff, measured, -margin, "above", cells, {"poi": float(poi)}, vacuous)


def _groups(runs: Sequence[RunLike], key: str) -> dict[str, list[RunLike]]:
    out: dict[Any, list[RunLike]] = {}
    for run in runs:
        out.setdefault(_hashable(record_value(run, key)), []).append(run)
    return {f"{key}={_describe_value(k)}": v for k, v in sorted(out.items(), key=lambda kv: str(kv[0]))}


def _spread(groups: list[list[np.ndarray]]) -> np.ndarray:
    iqms = np.stack([stats.pooled_iqm(strata) for strata in groups])
    return iqms.max(axis=0) - iqms.min(axis=0)


def _robust(claim: Claim, candidate: list, baseline: list, normaliser: Normaliser, boot: dict) -> Verdict:
    key = claim.group_by or "setting"
    arms = {"candidate": _groups(candidate, key)}
    if claim.baseline is not None:
        arms["baseline"] = _groups(baseline, key)
    effect = (
        f"spread of IQM across {key}: baseline − candidate"
        if claim.baseline
        else f"spread of IQM across {key}"
    )
    few = [arm for arm, groups in arms.items() if len(groups) < 2]
    if few:
        return _no_data(
            claim, effect, f"{' and '.join(few)} need(s) finished runs at two or more values of {key}"
        )
    flat = {f"{arm}: {name}": runs for arm, groups in arms.items() for name, runs in groups.items()}
    cells = _Cells.of(flat)
    if not cells.tasks:
        return _no_data(claim, effect, f"no task has finished runs at every value of {key}")

    def values(runs: list[RunLike]) -> np.ndarray:
        return scores(runs, claim.metric, normaliser)

    order = {arm: [f"{arm}: {name}" for name in groups] for arm, groups in arms.items()}
    strata = [cells.strata(name, values) for arm in arms for name in order[arm]]
    n_candidate = len(order["candidate"])

    def statistic(groups: list[list[np.ndarray]]) -> np.ndarray:
        spread_c = _spread(groups[:n_candidate])
        return _spread(groups[n_candidate:]) - spread_c if claim.baseline else spread_c

    est, low, high = stats.stratified_bootstrap(strata, statistic, **boot)
    interval = stats.Interval(float(est), float(low), float(high), claim.confidence)
    spread_c = float(_spread(strata[:n_candidate]))
    if claim.baseline:
        spread_b = float(_spread(strata[n_candidate:]))
        measured = (
            f"IQM spread across {key} on normalised {claim.metric}: candidate {spread_c:.2f} "
            f"({n_candidate} values), baseline {spread_b:.2f} ({len(strata) - n_candidate} values); "
            f"baseline − candidate {interval.format(signed=True)}"
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
        )
    margin = claim.margin or 0.0
    best = max((stats.iqm_interval(g, **boot) for g in strata[:n_candidate]), key=lambda i: i.estimate)
    measured = (
        f"IQM spread across {n_candidate} values of {key} on normalised {claim.metric}: {interval.format()}, "
        f"margin {margin:g}; best value's IQM {best.format()}"
    )
    vacuous = None
    if not best.low > margin:
        vacuous = (
            f"no value of {key} has an IQM clearly above the margin {margin:g}: settings that all learn "
            "nothing have a small spread too"
        )
    return _finish(
        claim, effect, interval, measured, margin, "below", cells, {"spread_candidate": spread_c}, vacuous
    )


def _fewer_instabilities(
    claim: Claim, candidate: list, baseline: list, normaliser: Normaliser, boot: dict
) -> Verdict:
    effect = f"mean {claim.metric} per run: baseline − candidate"
    cells = _two_arms(candidate, baseline)
    if not cells.tasks:
        return _no_data(claim, effect, "no task has finished runs of both arms")

    def values(runs: list[RunLike]) -> np.ndarray:
        return stability_values(runs, claim.metric, normaliser)

    a, b = cells.strata("candidate", values), cells.strata("baseline", values)
    if any(len(s) == 0 for s in (*a, *b)):
        return _no_data(claim, effect, f"runs lack the stability measure {claim.metric!r} in metrics.json")
    diff = stats.mean_difference_interval(b, a, **boot)
    mean_a, mean_b = float(stats.pooled_mean(a)), float(stats.pooled_mean(b))
    measured = (
        f"mean {claim.metric} per run: candidate {mean_a:.3g}, baseline {mean_b:.3g}; "
        f"baseline − candidate {diff.format(signed=True)}"
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
    )


def _curve_distance(groups: list[list[np.ndarray]]) -> np.ndarray:
    """Mean |IQM curve gap| over pairs of groups, steps (axis 0) and tasks."""
    n_tasks = len(groups[0])
    per_task = []
    for t in range(n_tasks):
        curves = [stats.iqm(group[t], axis=-1) for group in groups]
        gaps = [np.mean(np.abs(x - y), axis=0) for x, y in itertools.combinations(curves, 2)]
        per_task.append(np.mean(gaps, axis=0))
    return np.mean(per_task, axis=0)


def _closest_curves(
    claim: Claim, candidate: list, baseline: list, normaliser: Normaliser, boot: dict
) -> Verdict:
    key = claim.group_by or "kappa"
    effect = f"curve distance across {key}: baseline − candidate"
    arms = {"candidate": _groups(candidate, key), "baseline": _groups(baseline, key)}
    few = [arm for arm, groups in arms.items() if len(groups) < 2]
    if few:
        return _no_data(
            claim, effect, f"{' and '.join(few)} need(s) finished runs at two or more values of {key}"
        )
    flat = {f"{arm}: {name}": runs for arm, groups in arms.items() for name, runs in groups.items()}
    cells = _Cells.of(flat)
    grid = common_grid([r for runs in flat.values() for r in runs])
    if not cells.tasks or len(grid) < 2:
        return _no_data(claim, effect, f"no task has evaluated runs at every value of {key}")

    def values(runs: list[RunLike]) -> np.ndarray:
        return curve_matrix(runs, grid, normaliser).T  # (steps, runs): runs on the last axis

    order = {arm: [f"{arm}: {name}" for name in groups] for arm, groups in arms.items()}
    strata = [cells.strata(name, values) for arm in arms for name in order[arm]]
    n_candidate = len(order["candidate"])

    def statistic(groups: list[list[np.ndarray]]) -> np.ndarray:
        return _curve_distance(groups[n_candidate:]) - _curve_distance(groups[:n_candidate])

    est, low, high = stats.stratified_bootstrap(strata, statistic, **boot)
    interval = stats.Interval(float(est), float(low), float(high), claim.confidence)
    dist_c, dist_b = (
        float(_curve_distance(strata[:n_candidate])),
        float(_curve_distance(strata[n_candidate:])),
    )
    measured = (
        f"mean gap between normalised IQM curves across {key}: "
        f"candidate {dist_c:.3f}, baseline {dist_b:.3f}; "
        f"baseline − candidate {interval.format(signed=True, digits=3)}"
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
    )
