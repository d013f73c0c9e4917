"""Claims from the papers, written as data: the typed, validated form of a study file's ``claim:``.

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

Kinds (:data:`KINDS`, each with the metrics it accepts) and the keys they use; the rule of each, its
guard against runs that learnt nothing and the paper claim it tests are in :mod:`rlopt.analysis.verdict`:

- ``better``, ``competitive`` (needs ``margin``), ``fewer_instabilities``: a candidate and a baseline.
- ``robust``: ``group_by`` (default ``setting``); with a baseline, or alone with a ``margin``.
- ``closest_curves``: ``group_by`` (default ``kappa``), a candidate and a baseline.

``better`` and ``competitive`` accept ``tune_by`` (e.g. ``lr``): each arm is a tuning grid over that key's
values, and each arm is represented by its best value (:class:`rlopt.analysis.verdict.TwoArmRule`), so
an optimizer is compared at its tuned setting, not averaged over a grid whose range is arbitrary.

This module parses and matches; it imports nothing of rlopt but :mod:`rlopt.errors`, so every layer
that reads study files can use it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from rlopt.errors import ConfigError

SCORE_METRICS = ("final_return", "auc")
"""The per-run scores a claim may compare (:data:`rlopt.analysis.scores.SCORE_METRICS`)."""
STABILITY_METRICS = ("instabilities", "return_collapses", "loss_spikes", "nan_events", "diverged", "late_std")
"""The instability measures a claim may compare (:data:`rlopt.analysis.scores.STABILITY_METRICS`)."""
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
TUNED_KINDS = ("better", "competitive")
"""The kinds that accept ``tune_by`` (two arms compared on a score)."""
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
    "tune_by",
    "confidence",
    "min_runs",
    "min_gain",
    "paper_timesteps",
)
DEFAULT_CONFIDENCE = 0.95
"""Confidence level of a claim's intervals (:data:`rlopt.stats.DEFAULT_CONFIDENCE`)."""
DEFAULT_MIN_RUNS = 5
DEFAULT_MIN_GAIN = 0.1


class Selectable(Protocol):
    """What a selector reads of a run: ``params``, and the fields named in :data:`RECORD_FIELDS` (by name).

    A :class:`rlopt.records.RunRecord` has them all.
    """

    @property
    def params(self) -> Mapping[str, Any]: ...


def describe_value(value: Any) -> str:
    """A selector value as the verdict table shows it: ``0.9999``, ``[0.9, 0.999]``."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(describe_value(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(wanted, (list, tuple)):
        return len(value) == len(wanted) and all(_same(v, w) for v, w in zip(value, wanted, strict=True))
    if isinstance(value, (int, float)) and isinstance(wanted, (int, float)) and not isinstance(value, bool):
        return math.isclose(float(value), float(wanted), rel_tol=1e-9, abs_tol=1e-12)
    return value == wanted or str(value) == str(wanted)


def _wanted(value: Any, wanted: Any) -> bool:
    """A selector value matches ``wanted``, or one of them where ``wanted`` is a list."""
    return _same(value, wanted) or (isinstance(wanted, list) and any(_same(value, w) for w in wanted))


_BETA_KEY = re.compile(r"^beta([1-9])$")


def _missing(record: Selectable, key: str) -> bool:
    return key not in RECORD_FIELDS and record_value(record, key) is None


def record_value(record: Selectable, key: str) -> Any:
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

    def matches(self, record: Selectable) -> bool:
        """Whether the run belongs to this arm."""
        return any(self._matches_one(record, alternative) for alternative in self.alternatives)

    def may_select(self, known: Mapping[str, Any]) -> bool:
        """Whether this selector can pick a run whose keys in ``known`` have these values, whatever its
        other keys (betas, lr...) turn out to be: e.g. which optimizer entries of a study, known by
        ``{"optimizer": ..., "scaling_rule": ...}``, a claim may draw runs from."""
        return any(
            all(_wanted(known[key], wanted) for key, wanted in alternative.items() if key in known)
            for alternative in self.alternatives
        )

    @staticmethod
    def _matches_one(record: Selectable, alternative: Mapping[str, Any]) -> bool:
        return all(
            not _missing(record, key) and _wanted(record_value(record, key), wanted)
            for key, wanted in alternative.items()
        )

    def describe(self) -> str:
        """``"optimizer=adopt"``, alternatives joined by ``" or "``."""
        return " or ".join(
            ", ".join(f"{k}={describe_value(v)}" for k, v in alternative.items())
            for alternative in self.alternatives
        )


def _number(
    where: str, value: Any, accepted: Callable[[float], bool], what: str, *, integer: bool = False
) -> Any:
    """``value`` if it is a number (an int when ``integer``, never a bool) that ``accepted`` takes."""
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not accepted(value):
        raise ConfigError(f"{where} must be {what}, got {value!r}")
    return value


@dataclass(frozen=True)
class Claim:
    """One claim of a paper and how this study tests it (module docstring; rules in
    :mod:`rlopt.analysis.verdict`).

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
        tune_by: Selector key (e.g. ``lr``) whose values are each arm's tuning grid (``better``,
            ``competitive``): each arm counts at its best value, chosen on these runs.
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
    tune_by: str | None = None
    paper_says: str = ""
    confidence: float = DEFAULT_CONFIDENCE
    min_runs: int = DEFAULT_MIN_RUNS
    min_gain: float = DEFAULT_MIN_GAIN
    paper_timesteps: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "claim") -> Claim:
        """Validate a claim read from a study file.

        Raises:
            ConfigError: naming the bad key or value and what would be accepted.
        """
        _check_claim_keys(d, where)
        kind, metric = _parse_kind_and_metric(d, where)
        candidate = Selector.from_config(d["candidate"], f"{where}.candidate")
        baseline = Selector.from_config(d["baseline"], f"{where}.baseline") if d.get("baseline") else None
        if baseline is None and kind != "robust":
            raise ConfigError(f"{where}: kind {kind!r} needs a 'baseline' selector, e.g. {{optimizer: adam}}")
        confidence, min_runs, min_gain, paper = _parse_decision_options(d, where)
        return cls(
            statement=d["statement"].strip(),
            source=d["source"].strip(),
            kind=kind,
            candidate=candidate,
            baseline=baseline,
            metric=metric,
            margin=_parse_margin(d, where, kind, baseline),
            group_by=_parse_group_by(d, where, kind),
            tune_by=_parse_tune_by(d, where, kind),
            paper_says=str(d.get("paper_says", "")).strip(),
            confidence=confidence,
            min_runs=min_runs,
            min_gain=min_gain,
            paper_timesteps=paper,
        )

    def check_keys(self, records: Sequence[Selectable]) -> None:
        """Raise ConfigError for a selector, group_by or tune_by key that no run has (most likely a typo)."""
        if not records:
            return
        keys = set(self.candidate.keys) | (self.baseline.keys if self.baseline else set())
        keys |= {key for key in (self.group_by, self.tune_by) if key}
        for key in sorted(keys):
            if all(_missing(r, key) for r in records):
                params = sorted({p for r in records for p in (r.params or {})})
                raise ConfigError(
                    f"claim key {key!r} matches no run; runs have: {', '.join(RECORD_FIELDS + tuple(params))}"
                )


def _check_claim_keys(d: Any, where: str) -> None:
    """A mapping of known keys, with the required ones present and the text ones text."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(CLAIM_KEYS)}, got {d!r}")
    unknown = [k for k in d if k not in CLAIM_KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; accepted keys: {', '.join(CLAIM_KEYS)}")
    for key in ("statement", "source", "kind", "candidate"):
        if d.get(key) in (None, ""):
            raise ConfigError(f"{where}: missing {key!r} (required keys: statement, source, kind, candidate)")
    for key in ("statement", "source", "paper_says"):
        if key in d and not isinstance(d[key], str):
            raise ConfigError(f"{where}.{key} must be text, got {d[key]!r}")


def _parse_kind_and_metric(d: Mapping[str, Any], where: str) -> tuple[str, str]:
    """``kind`` (one of KINDS) and its ``metric`` (the kind's first metric by default)."""
    kind = d["kind"]
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of: {', '.join(KINDS)}")
    metric = d.get("metric", KINDS[kind][0])
    if metric not in KINDS[kind]:
        raise ConfigError(
            f"{where}.metric: {metric!r} is not accepted for kind {kind!r}; "
            f"accepted: {', '.join(KINDS[kind])}"
        )
    return kind, metric


def _parse_group_by(d: Mapping[str, Any], where: str, kind: str) -> str | None:
    """``group_by``: a selector key, defaulted for the kinds that group (robust, closest_curves) only."""
    group_by = d.get("group_by", DEFAULT_GROUP_BY.get(kind))
    if kind not in DEFAULT_GROUP_BY and "group_by" in d:
        raise ConfigError(
            f"{where}.group_by is not used by kind {kind!r}; it applies to: robust, closest_curves"
        )
    if group_by is not None and (not isinstance(group_by, str) or not group_by):
        raise ConfigError(
            f"{where}.group_by must be a selector key such as 'setting' or 'kappa', got {group_by!r}"
        )
    return group_by


def _parse_tune_by(d: Mapping[str, Any], where: str, kind: str) -> str | None:
    """``tune_by``: a selector key, for the kinds that compare two arms on a score only."""
    if "tune_by" not in d:
        return None
    tune_by = d["tune_by"]
    if kind not in TUNED_KINDS:
        raise ConfigError(
            f"{where}.tune_by is not used by kind {kind!r}; it applies to: {', '.join(TUNED_KINDS)}"
        )
    if not isinstance(tune_by, str) or not tune_by:
        raise ConfigError(f"{where}.tune_by must be a selector key such as 'lr', got {tune_by!r}")
    return tune_by


def _parse_decision_options(d: Mapping[str, Any], where: str) -> tuple[float, int, float, int | None]:
    """``(confidence, min_runs, min_gain, paper_timesteps)``, defaulted and range-checked."""
    confidence = _number(
        f"{where}.confidence",
        d.get("confidence", DEFAULT_CONFIDENCE),
        lambda c: 0 < c < 1,
        "a number in (0, 1) such as 0.95",
    )
    min_runs = _number(
        f"{where}.min_runs",
        d.get("min_runs", DEFAULT_MIN_RUNS),
        lambda n: n >= 2,
        "an integer >= 2",
        integer=True,
    )
    min_gain = _number(
        f"{where}.min_gain",
        d.get("min_gain", DEFAULT_MIN_GAIN),
        lambda g: 0 <= g < 1,
        "a number in [0, 1) (normalised-score units)",
    )
    paper = d.get("paper_timesteps")
    if paper is not None:
        _number(
            f"{where}.paper_timesteps",
            paper,
            lambda p: 0 < p < math.inf,
            "a positive number of env steps per run",
        )
    return float(confidence), min_runs, float(min_gain), None if paper is None else int(paper)


def _parse_margin(d: Mapping[str, Any], where: str, kind: str, baseline: Selector | None) -> float | None:
    """``margin``: required by ``competitive`` and by ``robust`` without a baseline, refused elsewhere."""
    margin = d.get("margin")
    if margin is not None:
        margin = float(
            _number(
                f"{where}.margin",
                margin,
                lambda m: 0 <= m <= 1,
                "a number in [0, 1] (a fraction of what the baseline, or the best group, learnt)",
            )
        )
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
    return margin


def claims_from_config(value: Any, where: str = "claim") -> tuple[Claim, ...]:
    """One claim mapping, or a list of them, from a study file (None or empty gives no claims)."""
    if value in (None, [], {}):
        return ()
    if isinstance(value, list):
        return tuple(Claim.from_dict(d, f"{where}[{i}]") for i, d in enumerate(value))
    return (Claim.from_dict(value, where),)


def per_look_confidence(confidence: float, looks: int) -> float:
    """The confidence of each look's interval in a sequential design of ``looks`` planned looks:
    ``1 − (1 − confidence)/looks``, so each side's error ``(1 − confidence)/2`` is split evenly over the
    looks (Bonferroni): the chance of a false verdict at any look is at most the fixed design's,
    whatever the looks' correlation (:mod:`rlopt.study.looks`, ``rlopt.analysis.simulation``)."""
    return 1.0 - (1.0 - confidence) / looks


def claims_at_looks(claims: Sequence[Claim], looks: int) -> tuple[Claim, ...]:
    """``claims`` with their confidence spent over ``looks`` looks (the same claims when ``looks`` <= 1)."""
    if looks <= 1:
        return tuple(claims)
    return tuple(replace(c, confidence=per_look_confidence(c.confidence, looks)) for c in claims)
