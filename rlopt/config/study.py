"""Study files as typed data: the schema of ``studies/*.yaml`` and its validation.

A study file says what is compared and how the comparison is run; a user writes a new one without
touching code. Every key, with its default::

    name: beta2-sweep                 # required; the folder runs/<name>/ and the Optuna study names
    description: ""                   # free text
    claim: {...}                      # the paper's claim under test (see rlopt.analysis.verdict); optional
    algorithm: ppo                    # ppo | sac
    tasks: [HalfCheetah-v5]           # Gymnasium ids ...
    suite: mujoco                     # ... or a suite: a name of envs/ or a path (budgets, references)
    seeds: 3                          # a count (seeds 0..n-1) or a list of seeds; each trial runs all;
                                      # or {initial: 5, max: 15, step: 5}: sequential seeds (SeedLooks)
    timesteps: 100000                 # per run; default with a suite: each task's budget
    evaluation: {every: 10000, episodes: 5}   # default with a suite: each task's schedule
    n_envs: 1                         # default: the agent file's
    device: cpu
    overrides: {n_steps: 512}         # agent hyperparameters (agents/<algo>.yaml keys, SB3 names)
    lr: 3.0e-4                        # study-wide learning rate (a value, list or range), see fairness
    optimizers:                       # the arms compared; each is its own Optuna study
      - optimizer: adam               # a name of the registry (rlopt optimizers)
        label: adam                   # default: the optimizer name; unique
        lr: 3.0e-4                    # value | list of values (grid) | {low, high, log} (search)
        beta1: 0.9                    # value | list | {low, high}: sampled in log(1 - beta) space
        beta2: [0.9, 0.99, 0.999, 0.9999]
        eps: 1.0e-5                   # value | list | {low, high, log}
        weight_decay: 0.0             # value | list | {low, high, log}
        betas: [0.9, 0.999]           # all betas at once, a fixed value only
        extra: {amsgrad: false}       # further optimizer arguments, fixed
        settings:                     # instead of lists: an explicit list of settings
          - {beta2: 0.99, label: "adam b2=0.99", overrides: {batch_size: 128}}
        kappa: [1, 4]                 # batch-size multiplier (value or list); batch_size *= kappa
        scaling_rule: sqrt            # sqrt | linear | none: how kappa rescales lr, betas, eps
        overrides: {}                 # agent hyperparameters of this arm only
    objective: {metric: final_return, aggregate: iqm}
    sampler: grid                     # grid | tpe | cmaes | random | qmc, or {name: tpe, seed: 0, ...}
    pruner: none                      # none | median | successive_halving | hyperband | percentile |
                                      # threshold, or {name: median, n_warmup_steps: 20000, ...}
    n_trials: 8                       # per arm; default for grids: the arm's grid size
    fairness: same_budget             # same_budget (equal lr-tuning budget per arm) | same_lr
    storage: null                     # default sqlite:///runs/<name>/study.db; or postgresql://...
    heartbeat: {interval: 20, grace_period: 120, max_retry: 3}
    parallel_runs: null               # runs of one trial at once; default: cores / workers
    save_model: false
    checkpoint_every: 50000           # env steps between checkpoints of each run (null: none); a run
                                      # stopped mid-way (killed worker, ended session) resumes from its last

Validation happens here, before anything is written; each error is one line naming the file, the key
and what would be accepted.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rlopt.config.yaml import merge
from rlopt.errors import ConfigError

DEFAULT_CHECKPOINT_EVERY = 50_000
"""A few minutes of PPO on a 2-core machine (~250 env steps/s per run), a checkpoint of a few MB."""

TOP_KEYS = (
    "name", "description", "claim", "algorithm", "tasks", "suite", "seeds", "timesteps", "evaluation",
    "n_envs", "device", "overrides", "lr", "optimizers", "objective", "sampler", "pruner", "n_trials",
    "fairness", "storage", "heartbeat", "parallel_runs", "save_model", "checkpoint_every",
)
ARM_KEYS = (
    "optimizer", "label", "lr", "beta1", "beta2", "beta3", "betas", "eps", "weight_decay", "extra",
    "settings", "kappa", "scaling_rule", "overrides",
)
SETTING_KEYS = (
    "label", "lr", "beta1", "beta2", "beta3", "betas", "eps", "weight_decay", "kappa", "overrides",
)
NUMERIC_KEYS = ("lr", "beta1", "beta2", "beta3", "eps", "weight_decay", "kappa")
BETA_KEYS = ("beta1", "beta2", "beta3")
RANGE_KEYS = ("low", "high", "log")
EVALUATION_KEYS = ("every", "episodes")
OBJECTIVE_KEYS = ("metric", "aggregate")
HEARTBEAT_KEYS = ("interval", "grace_period", "max_retry")

METRICS = ("final_return", "auc", "normalized_score", "normalized_auc")
"""``final_return``: last evaluation's mean return; ``auc``: mean over the evaluations; the
``normalized_`` ones put either on the suite's 0 (random) to 1 (reference) scale."""
AGGREGATES = ("iqm", "mean", "median")
FAIRNESS = ("same_budget", "same_lr")
SAMPLERS = ("grid", "tpe", "cmaes", "random", "qmc")
PRUNERS = ("none", "median", "successive_halving", "hyperband", "percentile", "threshold")
SCALING_RULES = ("sqrt", "linear", "none")
DEFAULT_HEARTBEAT = {"interval": 20, "grace_period": 120, "max_retry": 3}
MIN_GRACE_PERIOD_S = 10
"""Shortest accepted grace period: a heartbeat thread can miss beats for seconds on a loaded machine (a
SQLite write waiting for another process's lock, the scheduler), and a trial declared dead is run twice."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_SEEDS = 1000
MAX_SEED = 2**32 - 1
"""numpy's seed range."""
MAX_TIMESTEPS = 10**9
"""A budget beyond any run this suite can make (10^9 env steps is weeks of one core per run)."""
SHORT_NAMES = {"lr": "lr", "beta1": "b1", "beta2": "b2", "beta3": "b3", "eps": "eps",
               "weight_decay": "wd", "kappa": "kappa"}
"""Abbreviations used in setting labels (``adopt b2=0.9999``)."""


@dataclass(frozen=True)
class Range:
    """A search range of one hyperparameter (betas are sampled as ``1 - beta`` on a log scale)."""

    low: float
    high: float
    log: bool


@dataclass(frozen=True)
class Arm:
    """One optimizer entry of the study: the fixed values, grid lists and search ranges of its settings.

    The code's "arm" (docs/CONTRACTS.md, "What arm names"): each entry has its own Optuna study and may
    have many settings, each a report's row.

    Attributes:
        label: unique name of the arm (the Optuna study is ``<study>/<label>``).
        optimizer: registry name.
        fixed: scalar values (keys of :data:`NUMERIC_KEYS`).
        grid: lists of values, expanded as a product (ordered as in the file).
        ranges: search ranges.
        settings: explicit settings (each a mapping of scalar values, optional ``label``/``overrides``).
        extra: further optimizer arguments.
        scaling_rule: how ``kappa`` rescales the optimizer's hyperparameters.
        overrides: agent hyperparameters of this arm (already merged over the study's).
        n_betas: how many betas the optimizer takes.
    """

    label: str
    optimizer: str
    fixed: Mapping[str, float]
    grid: Mapping[str, tuple[float, ...]]
    ranges: Mapping[str, Range]
    settings: tuple[Mapping[str, Any], ...]
    extra: Mapping[str, Any]
    scaling_rule: str
    overrides: Mapping[str, Any]
    n_betas: int

    @property
    def is_finite(self) -> bool:
        """True if the arm has no search range (a grid sampler can enumerate it)."""
        return not self.ranges

    @property
    def grid_size(self) -> int:
        """Number of distinct settings of a finite arm (explicit settings, or the product of lists)."""
        if self.settings:
            return len(self.settings)
        return math.prod(len(v) for v in self.grid.values())

    def lr_candidates(self) -> int | None:
        """How many learning rates a grid arm tries (None for a searched lr)."""
        if "lr" in self.ranges:
            return None
        if self.settings:
            return len({s.get("lr", self.fixed.get("lr")) for s in self.settings})
        return len(self.grid.get("lr", (0.0,)))


@dataclass(frozen=True)
class Evaluation:
    """Evaluation schedule; ``None`` takes the suite's (or the training defaults)."""

    every: int | None = None
    episodes: int | None = None


@dataclass(frozen=True)
class Objective:
    """What a trial reports: ``metric`` per run, aggregated over the trial's tasks and seeds.

    Attributes:
        metric: one of :data:`METRICS`.
        aggregate: one of :data:`AGGREGATES`.
        suite: the study's ``suite:`` as written in the file, whose reference scores the ``normalized_``
            metrics use (``None``: the first known suite listing each task;
            :func:`rlopt.config.suites.reference_task`).
    """

    metric: str = "final_return"
    aggregate: str = "iqm"
    suite: str | None = None

    @property
    def normalized(self) -> bool:
        return self.metric.startswith("normalized_")


@dataclass(frozen=True)
class Component:
    """An Optuna sampler or pruner by name, with keyword arguments of the Optuna class."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Heartbeat:
    """A trial silent for ``grace_period`` seconds is failed and retried, up to ``max_retry`` times per
    ``rlopt study run`` command (a crashed run's trial likewise)."""

    interval: int = DEFAULT_HEARTBEAT["interval"]
    grace_period: int = DEFAULT_HEARTBEAT["grace_period"]
    max_retry: int = DEFAULT_HEARTBEAT["max_retry"]


@dataclass(frozen=True)
class StudySpec:
    """A validated study file. See the module docstring for the meaning of each field."""

    name: str
    path: Path | None
    description: str
    claim: Any
    algorithm: str
    tasks: tuple[str, ...]
    suite: str | None
    seeds: tuple[int, ...]
    timesteps: int | None
    evaluation: Evaluation
    n_envs: int | None
    device: str
    overrides: Mapping[str, Any]
    arms: tuple[Arm, ...]
    objective: Objective
    sampler: Component
    pruner: Component
    n_trials: int | None
    fairness: str
    storage: str | None
    heartbeat: Heartbeat
    parallel_runs: int | None
    save_model: bool
    data: Mapping[str, Any]
    """The file's data as read (recorded with the study)."""
    checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY
    """Env steps between two checkpoints of each run (:mod:`rlopt.run.checkpoint`); ``None``: none. A
    run that stopped (its worker killed, its session ended) continues from its last checkpoint, bit
    for bit, when its trial is retried; checkpoints never change what a run computes."""
    seed_looks: tuple[int, ...] = ()
    """Sequential seeds (``seeds: {initial, max, step}``): the seeds per cell at each look, increasing,
    the last ``len(seeds)``; empty for a fixed set of seeds. See :mod:`rlopt.study.looks`."""

    def arm(self, label: str) -> Arm:
        for arm in self.arms:
            if arm.label == label:
                return arm
        raise ConfigError(f"Unknown arm {label!r} of study {self.name!r} (accepted: "
                          f"{', '.join(a.label for a in self.arms)})")

    def trials_for(self, arm: Arm) -> int:
        """Trials of ``arm``: ``n_trials``, or for a grid the arm's grid size."""
        if self.n_trials is not None:
            return self.n_trials
        return arm.grid_size

    def planned_runs(self) -> int:
        """Runs the study asks for: trials per arm x tasks x seeds."""
        return sum(self.trials_for(arm) for arm in self.arms) * len(self.tasks) * len(self.seeds)

    def identity(self) -> dict[str, Any]:
        """What a resumed study must share with the one in storage (budget and sampler may not change)."""
        keep = ("algorithm", "tasks", "suite", "seeds", "timesteps", "evaluation", "n_envs", "overrides",
                "lr", "optimizers", "objective", "fairness", "save_model")
        out = {k: self.data.get(k) for k in keep}
        out["sampler"] = self.sampler.name
        return out

    def at_look(self, look: int) -> StudySpec:
        """The study as its workers run it at look ``look`` of :attr:`seed_looks`: the first
        ``seed_looks[look]`` seeds."""
        return replace(self, seeds=self.seeds[: self.seed_looks[look]])


class Where:
    """Location in the file for error messages: ``<file>: <key path>: <message>``."""

    def __init__(self, file: str, path: str = "") -> None:
        self.file = file
        self.path = path

    def __truediv__(self, key: str | int) -> Where:
        if isinstance(key, int):
            return Where(self.file, f"{self.path}[{key}]")
        return Where(self.file, f"{self.path}.{key}" if self.path else key)

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.path}: {message}" if self.path else f"{self.file}: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_keys(where: Where, data: Mapping[str, Any], accepted: Sequence[str]) -> None:
    for key in data:
        if key not in accepted:
            close = difflib.get_close_matches(str(key), accepted, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise (where / str(key)).error(f"unknown key ({hint}accepted: {', '.join(accepted)})")


def _mapping(where: Where, value: Any, accepted: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(f"expected a mapping with keys {', '.join(accepted)}, got {value!r}")
    _check_keys(where, value, accepted)
    return value


def _int(where: Where, value: Any, minimum: int = 1) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise where.error(f"{value!r} is not accepted (accepted: an integer >= {minimum})")
    return value


def _setting_label(where: Where, value: Any) -> str:
    """A setting's label: text with a letter or digit and no path separator (it names run folders)."""
    label = _text(where, value)
    if not re.search(r"[A-Za-z0-9]", label) or re.search(r"[/\\\x00-\x1f]", label):
        raise where.error(f"{label!r} is not accepted (accepted: text with a letter or digit and no '/', "
                          "'\\' or control characters, e.g. 'adam b2=0.99')")
    return label


def _text(where: Where, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.error(f"{value!r} is not accepted (accepted: non-empty text)")
    return value.strip()


def _choice(where: Where, value: Any, accepted: Sequence[str]) -> str:
    if not isinstance(value, str) or value.lower() not in accepted:
        close = difflib.get_close_matches(str(value), accepted, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise where.error(f"{value!r} is not accepted (accepted: {', '.join(accepted)}){hint}")
    return value.lower()


def _check_scalar(where: Where, key: str, value: Any) -> float:
    """One value of hyperparameter ``key``, checked against its domain."""
    if not _is_number(value):
        raise where.error(f"{value!r} is not a number (accepted: {_domain(key)})")
    value = float(value)
    ok = {
        "lr": value > 0, "eps": value > 0, "weight_decay": value >= 0, "kappa": value > 0,
    }.get(key, 0.0 <= value < 1.0)
    if not ok:
        raise where.error(f"{value!r} is outside the accepted values ({_domain(key)})")
    return value


def _domain(key: str) -> str:
    return {
        "lr": "a number > 0", "eps": "a number > 0", "weight_decay": "a number >= 0",
        "kappa": "a number > 0",
    }.get(key, "0 <= beta < 1")


def _parse_numeric(where: Where, key: str, value: Any) -> float | tuple[float, ...] | Range:
    """A value, a list of values (a grid dimension) or a ``{low, high, log}`` range."""
    if isinstance(value, Mapping):
        if key == "kappa":
            raise where.error("a range is not accepted for kappa (accepted: a number or a list of numbers)")
        accepted = ("low", "high") if key.startswith("beta") else RANGE_KEYS
        _check_keys(where, value, accepted)
        for bound in ("low", "high"):
            if bound not in value:
                raise where.error(f"a range needs 'low' and 'high' (accepted keys: {', '.join(accepted)})")
        low = _check_scalar(where / "low", key, value["low"])
        high = _check_scalar(where / "high", key, value["high"])
        if not low < high:
            raise where.error(f"impossible range: low={low!r} is not below high={high!r}")
        if key.startswith("beta"):
            return Range(low, high, log=True)
        log = value.get("log", low > 0)
        if not isinstance(log, bool):
            raise (where / "log").error(f"{log!r} is not accepted (accepted: true or false)")
        if log and low <= 0:
            raise (where / "log").error(f"a log range needs low > 0, got low={low!r} (accepted: log: false)")
        return Range(low, high, log=log)
    if isinstance(value, list):
        if not value:
            raise where.error("an empty list is not accepted (accepted: one or more values)")
        values = tuple(_check_scalar(where / i, key, v) for i, v in enumerate(value))
        if len(set(values)) != len(values):
            raise where.error(f"{list(values)} repeats a value (accepted: distinct values)")
        return values[0] if len(values) == 1 else values
    return _check_scalar(where, key, value)


def format_value(key: str, value: float) -> str:
    """Short text of a hyperparameter value for labels."""
    if key.startswith("beta"):
        return f"{value:.6g}"
    return f"{value:.3g}"


def _parse_arm(
    where: Where, data: Any, study_lr: Any, study_overrides: Mapping[str, Any], fairness: str,
    file_where: Where,
) -> Arm:
    data = _mapping(where, data, ARM_KEYS)
    spec, label = _arm_optimizer(where, data, fairness)
    n_betas = len(spec.betas)
    fixed, grid, ranges = _arm_values(where, data, spec, study_lr, file_where)
    settings: tuple[Mapping[str, Any], ...] = ()
    if "settings" in data:
        if grid:
            raise (where / "settings").error(
                f"give either settings or lists of values ({', '.join(grid)}), not both")
        settings = _parse_settings(where / "settings", data["settings"], spec, ranges, fairness)
    extra = _arm_extra(where / "extra", data.get("extra", {}), spec)
    scaling_rule = _arm_scaling_rule(where, data, fixed, grid, settings)
    overrides = merge(study_overrides, _overrides(where / "overrides", data.get("overrides", {})))
    return Arm(
        label=label, optimizer=spec.name, fixed=fixed, grid=grid, ranges=ranges, settings=settings,
        extra=extra, scaling_rule=scaling_rule, overrides=overrides, n_betas=n_betas,
    )


def _arm_optimizer(where: Where, data: Mapping[str, Any], fairness: str) -> tuple[Any, str]:
    """The entry's optimizer (its registry spec) and label; keys the optimizer does not take are refused."""
    from rlopt.optim import get_spec

    if "optimizer" not in data:
        raise where.error("missing 'optimizer' (accepted: a name listed by `rlopt optimizers`)")
    try:
        spec = get_spec(data["optimizer"])
    except ValueError as exc:
        raise (where / "optimizer").error(str(exc)) from exc
    label = _text(where / "label", data.get("label", spec.name))
    if not _NAME.match(label):
        raise (where / "label").error(f"{label!r} is not accepted (accepted: letters, digits, '_', '.', '-')")
    n_betas = len(spec.betas)
    beta_keys = BETA_KEYS[:n_betas]
    for key in BETA_KEYS[n_betas:]:
        if key in data:
            meaning = ", ".join(spec.beta_names) or "none"
            raise (where / key).error(f"optimizer {spec.name!r} takes {n_betas} betas ({meaning}); "
                                      f"accepted: {', '.join(beta_keys) or 'no beta keys'}")
    if "eps" in data and spec.eps is None:
        raise (where / "eps").error(f"optimizer {spec.name!r} has no eps (accepted: leave it out)")
    if fairness == "same_lr" and "lr" in data:
        raise (where / "lr").error("fairness same_lr gives every optimizer the study's top-level lr "
                                   "(accepted: remove it here, set the top-level lr)")
    return spec, label


def _arm_values(
    where: Where, data: Mapping[str, Any], spec: Any, study_lr: Any, file_where: Where,
) -> tuple[dict[str, float], dict[str, tuple[float, ...]], dict[str, Range]]:
    """The entry's hyperparameters (the study's lr unless it gives one) split into fixed values, grid
    lists and search ranges."""
    n_betas = len(spec.betas)
    beta_keys = BETA_KEYS[:n_betas]
    raw: dict[str, Any] = {k: data[k] for k in NUMERIC_KEYS if k in data}
    if "lr" not in raw and study_lr is not None:
        raw["lr"] = study_lr
    if "betas" in data:
        betas = data["betas"]
        if any(k in data for k in beta_keys):
            raise (where / "betas").error("give either betas or beta1/beta2..., not both")
        if not isinstance(betas, list) or len(betas) != n_betas:
            raise (where / "betas").error(
                f"{betas!r} is not accepted (accepted: a list of {n_betas} fixed numbers: "
                f"{', '.join(spec.beta_names)}; for a grid or range use {', '.join(beta_keys)})")
        for i, (key, beta) in enumerate(zip(beta_keys, betas, strict=True)):
            raw[key] = _check_scalar(where / "betas" / i, key, beta)

    fixed: dict[str, float] = {}
    grid: dict[str, tuple[float, ...]] = {}
    ranges: dict[str, Range] = {}
    for key, value in raw.items():
        here = file_where / "lr" if key == "lr" and "lr" not in data else where / key
        parsed = _parse_numeric(here, key, value)
        if isinstance(parsed, Range):
            ranges[key] = parsed
        elif isinstance(parsed, tuple):
            grid[key] = parsed
        else:
            fixed[key] = parsed
    return fixed, grid, ranges


def _parse_settings(
    where: Where, value: Any, spec: Any, ranges: Mapping[str, Range], fairness: str,
) -> tuple[Mapping[str, Any], ...]:
    """An entry's explicit ``settings:``, each a mapping of scalar values, ``label`` and ``overrides``."""
    if not isinstance(value, list) or not value:
        raise where.error("expected a non-empty list of settings (mappings)")
    n_betas = len(spec.betas)
    beta_keys = BETA_KEYS[:n_betas]
    accepted = tuple(k for k in SETTING_KEYS if k not in BETA_KEYS[n_betas:])
    settings = []
    for i, entry in enumerate(value):
        sw = where / i
        entry = _mapping(sw, entry, accepted)
        setting: dict[str, Any] = {}
        if fairness == "same_lr" and "lr" in entry:
            raise (sw / "lr").error("fairness same_lr gives every optimizer the study's top-level lr "
                                    "(accepted: remove it here)")
        if "betas" in entry:
            if not isinstance(entry["betas"], list) or len(entry["betas"]) != n_betas:
                raise (sw / "betas").error(
                    f"expected a list of {n_betas} numbers ({', '.join(spec.beta_names)})")
            for j, (key, beta) in enumerate(zip(beta_keys, entry["betas"], strict=True)):
                setting[key] = _check_scalar(sw / "betas" / j, key, beta)
        for key in NUMERIC_KEYS:
            if key in entry:
                if key in ranges:
                    raise (sw / key).error(f"{key} is searched over a range for this arm; "
                                           "a setting cannot fix it")
                setting[key] = _check_scalar(sw / key, key, entry[key])
        if "label" in entry:
            setting["label"] = _setting_label(sw / "label", entry["label"])
        if "overrides" in entry:
            setting["overrides"] = _overrides(sw / "overrides", entry["overrides"])
        settings.append(setting)
    return tuple(settings)


def _arm_extra(where: Where, extra: Any, spec: Any) -> dict[str, Any]:
    """Further optimizer arguments of an entry: a mapping of arguments the optimizer takes."""
    if not isinstance(extra, Mapping):
        raise where.error(f"expected a mapping of optimizer arguments, got {extra!r}")
    unknown = sorted(set(extra) - set(spec.extra))
    if unknown:
        raise (where / unknown[0]).error(
            f"unknown argument of optimizer {spec.name!r} "
            f"(accepted: {', '.join(sorted(spec.extra)) or 'none'})")
    return dict(extra)


def _arm_scaling_rule(
    where: Where, data: Mapping[str, Any], fixed: Mapping[str, float],
    grid: Mapping[str, tuple[float, ...]], settings: Sequence[Mapping[str, Any]],
) -> str:
    """The entry's scaling rule: required as soon as some setting has ``kappa != 1``."""
    from rlopt.optim.scaling import RULES

    kappas = [fixed.get("kappa")] + list(grid.get("kappa", ())) + [s.get("kappa") for s in settings]
    uses_kappa = any(k is not None and k != 1.0 for k in kappas)
    if uses_kappa and "scaling_rule" not in data:
        raise (where / "scaling_rule").error(
            f"kappa != 1 needs a scaling rule (accepted: {', '.join(RULES)})")
    return _choice(where / "scaling_rule", data.get("scaling_rule", "none"), SCALING_RULES)


def _overrides(where: Where, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise where.error(f"expected a mapping of agent hyperparameters (SB3 names), got {value!r}")
    return dict(value)


def _parse_component(where: Where, value: Any, accepted: Sequence[str], default: str) -> Component:
    if value is None:
        return Component(default)
    if isinstance(value, str):
        return Component(_choice(where, value, accepted))
    if not isinstance(value, Mapping) or "name" not in value:
        raise where.error(f"expected a name ({', '.join(accepted)}) or a mapping with 'name' and "
                          f"arguments of the Optuna class, got {value!r}")
    name = _choice(where / "name", value["name"], accepted)
    return Component(name, {k: v for k, v in value.items() if k != "name"})


def _parse_tasks(where: Where, data: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None]:
    from rlopt.config.suites import check_task, load_suite

    if ("tasks" in data) == ("suite" in data):
        raise where.error("give exactly one of 'tasks' (a list of Gymnasium ids) or 'suite' "
                          "(a name of envs/*.yaml)")
    if "suite" in data:
        written = _text(where / "suite", data["suite"]).strip()
        try:
            suite = load_suite(written)
        except ConfigError as exc:
            raise (where / "suite").error(str(exc)) from exc
        return tuple(suite.task_names), written  # a name or a path: what load_suite takes again
    tasks = data["tasks"]
    if isinstance(tasks, str):
        tasks = [tasks]
    if not isinstance(tasks, list) or not tasks:
        raise (where / "tasks").error("expected a non-empty list of Gymnasium ids, e.g. [HalfCheetah-v5]")
    out = []
    for i, task in enumerate(tasks):
        try:
            out.append(check_task(task))
        except ConfigError as exc:
            raise (where / "tasks" / i).error(str(exc)) from exc
    if len(set(out)) != len(out):
        raise (where / "tasks").error(f"{out} repeats a task (accepted: distinct tasks)")
    return tuple(out), None


def _bounded(where: Where, value: Any, minimum: int, maximum: int, what: str) -> int:
    number = _int(where, value, minimum=minimum)
    if number > maximum:
        raise where.error(f"{value!r} is not accepted (accepted: {what}, {minimum} to {maximum:,})")
    return number


SEED_LOOK_KEYS = ("initial", "max", "step")


def _parse_seeds(where: Where, value: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(seeds, looks)``: a count or list of seeds (no looks), or ``{initial, max, step}`` (seeds
    ``0..max-1``, looks at ``initial, initial + step, ..., max``)."""
    if isinstance(value, Mapping):
        _mapping(where, value, SEED_LOOK_KEYS)
        for key in SEED_LOOK_KEYS:
            if key not in value:
                raise where.error(
                    f"missing {key!r} (accepted: {{initial: 5, max: 15, step: 5}}: seeds per cell at the "
                    "first look, at most, and added per look)"
                )
        initial = _bounded(where / "initial", value["initial"], 2, MAX_SEEDS, "seeds at the first look")
        most = _bounded(where / "max", value["max"], initial, MAX_SEEDS, "seeds per cell, at least initial")
        step = _bounded(where / "step", value["step"], 1, MAX_SEEDS, "seeds added per look")
        looks = (*range(initial, most, step), most)
        return tuple(range(most)), looks
    return _parse_seed_list(where, value), ()


def _parse_seed_list(where: Where, value: Any) -> tuple[int, ...]:
    if isinstance(value, list):
        if not value:
            raise where.error("an empty list is not accepted (accepted: a count >= 1 or a list of seeds)")
        if len(value) > MAX_SEEDS:
            raise where.error(f"a list of {len(value)} seeds is not accepted (accepted: at most {MAX_SEEDS})")
        seeds = tuple(_bounded(where / i, s, 0, MAX_SEED, "a seed") for i, s in enumerate(value))
        if len(set(seeds)) != len(seeds):
            raise where.error(f"{list(seeds)} repeats a seed (accepted: distinct seeds)")
        return seeds
    return tuple(range(_bounded(where, value, 1, MAX_SEEDS, "a number of seeds")))


def _parse_claim(where: Where, value: Any) -> Any:
    """The ``claim:`` section, validated by :func:`rlopt.analysis.verdict.claims_from_config`."""
    from rlopt.config.claims import claims_from_config

    try:
        return claims_from_config(value, where="claim")
    except ConfigError as exc:
        raise where.error(str(exc)) from exc


def _check_storage_url(where: Where, value: Any) -> str:
    from rlopt.config.storage import check_url

    try:
        return check_url(_text(where, value))
    except ConfigError as exc:
        raise where.error(str(exc)) from exc


def parse_spec(data: Any, file: str = "<study>", path: Path | None = None) -> StudySpec:
    """Validate the data of a study file.

    Args:
        data: the parsed YAML.
        file: how the file is named in error messages.
        path: the file, if any.

    Raises:
        ConfigError: one line naming the file, the key and what is accepted.
    """
    from rlopt.config.agents import check_algo

    top = Where(file)
    if not isinstance(data, Mapping):
        raise top.error(f"expected a mapping of study keys ({', '.join(TOP_KEYS)})")
    _check_keys(top, data, TOP_KEYS)
    for key in ("name", "algorithm", "optimizers", "seeds"):
        if key not in data:
            raise top.error(f"missing required key {key!r}")
    name = _text(top / "name", data["name"])
    if not _NAME.match(name):
        raise (top / "name").error(f"{name!r} is not accepted (accepted: letters, digits, '_', '.', '-'; "
                                   "it names the folder runs/<name>/)")
    try:
        algorithm = check_algo(data["algorithm"])
    except ConfigError as exc:
        raise (top / "algorithm").error(str(exc)) from exc
    tasks, suite = _parse_tasks(top, data)
    seeds, seed_looks = _parse_seeds(top / "seeds", data["seeds"])
    timesteps, evaluation = _parse_budget(top, data, suite)
    n_envs = _int(top / "n_envs", data["n_envs"]) if data.get("n_envs") is not None else None
    device = _text(top / "device", data.get("device", "cpu"))
    overrides = _overrides(top / "overrides", data.get("overrides", {}))
    fairness = _choice(top / "fairness", data.get("fairness", "same_budget"), FAIRNESS)
    arms = _parse_arms(top, data, overrides, fairness)
    objective = _parse_objective(top, data, tasks, suite)
    sampler, pruner, n_trials = _parse_search(top, data, arms, fairness)
    heartbeat = _parse_heartbeat(top / "heartbeat", data["heartbeat"]) if "heartbeat" in data else Heartbeat()
    storage = _check_storage_url(top / "storage", data["storage"]) if data.get("storage") else None
    parallel_runs = (_int(top / "parallel_runs", data["parallel_runs"])
                     if data.get("parallel_runs") is not None else None)
    save_model = data.get("save_model", False)
    if not isinstance(save_model, bool):
        raise (top / "save_model").error(f"{save_model!r} is not accepted (accepted: true or false)")
    checkpoint_every = data.get("checkpoint_every", DEFAULT_CHECKPOINT_EVERY)
    if checkpoint_every is not None and (
        not isinstance(checkpoint_every, int) or isinstance(checkpoint_every, bool) or checkpoint_every < 1
    ):
        raise (top / "checkpoint_every").error(
            f"{checkpoint_every!r} is not accepted (accepted: env steps, an integer >= 1; or null)")
    claim = _parse_claim(top / "claim", data["claim"]) if data.get("claim") is not None else ()
    description = str(data.get("description") or "").strip()

    spec = StudySpec(
        name=name, path=path, description=description, claim=claim, algorithm=algorithm, tasks=tasks,
        suite=suite, seeds=seeds, timesteps=timesteps, evaluation=evaluation, n_envs=n_envs, device=device,
        overrides=overrides, arms=arms, objective=objective, sampler=sampler, pruner=pruner,
        n_trials=n_trials, fairness=fairness, storage=storage, heartbeat=heartbeat,
        parallel_runs=parallel_runs, save_model=save_model, data=dict(data), seed_looks=seed_looks,
        checkpoint_every=checkpoint_every,
    )
    _check_claim_arms(top / "claim", spec)
    if seed_looks:
        _check_sequential(top / "seeds", spec)
    return spec


def _check_sequential(where: Where, spec: StudySpec) -> None:
    """Sequential seeds stop when the claim is decided, extend the same cells, and score every look."""
    if not spec.claim:
        raise where.error("sequential seeds need a 'claim:' section, whose verdict decides when to stop "
                          "(accepted: a count or list of seeds without one)")
    if spec.sampler.name != "grid":
        raise where.error(f"sequential seeds need sampler: grid, not {spec.sampler.name!r} (more seeds "
                          "extend the same cells; a search's trials are not cells)")
    if spec.pruner.name != "none":
        raise where.error(f"sequential seeds need pruner: none, not {spec.pruner.name!r} (a pruned cell "
                          "has no verdict to extend)")


def _parse_budget(top: Where, data: Mapping[str, Any], suite: str | None) -> tuple[int | None, Evaluation]:
    """``timesteps`` and ``evaluation``: required with ``tasks``, a suite gives each task's own."""
    timesteps = None
    if "timesteps" in data:
        timesteps = _bounded(top / "timesteps", data["timesteps"], 1, MAX_TIMESTEPS, "env steps per run")
    elif suite is None:
        raise top.error("missing required key 'timesteps' "
                        "(needed with 'tasks'; a suite gives each task's budget)")
    evaluation = Evaluation()
    if "evaluation" in data:
        ev = _mapping(top / "evaluation", data["evaluation"], EVALUATION_KEYS)
        evaluation = Evaluation(
            every=_int(top / "evaluation" / "every", ev["every"]) if "every" in ev else None,
            episodes=_int(top / "evaluation" / "episodes", ev["episodes"]) if "episodes" in ev else None,
        )
    if evaluation.every is not None and timesteps is not None and evaluation.every > timesteps:
        raise (top / "evaluation" / "every").error(
            f"{evaluation.every} is more than the budget of {timesteps} env steps, so the only evaluation "
            f"would be the final one (accepted: 1 to {timesteps})")
    if suite is None and evaluation.every is None:
        raise (top / "evaluation").error("missing 'every' (env steps between evaluations; "
                                          "needed with 'tasks', a suite gives each task's schedule)")
    return timesteps, evaluation


def _parse_arms(
    top: Where, data: Mapping[str, Any], overrides: Mapping[str, Any], fairness: str,
) -> tuple[Arm, ...]:
    """The ``optimizers:`` entries (after the study-wide ``lr``), each with a unique label."""
    study_lr = data.get("lr")
    if study_lr is not None:
        _parse_numeric(top / "lr", "lr", study_lr)
    elif fairness == "same_lr":
        raise top.error("fairness same_lr needs a top-level 'lr' (a value, list or range shared by all "
                        "optimizers)")
    arms_data = data["optimizers"]
    if not isinstance(arms_data, list) or not arms_data:
        raise (top / "optimizers").error("expected a non-empty list of optimizer entries, e.g. "
                                         "[{optimizer: adam}, {optimizer: adopt}]")
    arms = tuple(
        _parse_arm(top / "optimizers" / i, arm, study_lr, overrides, fairness, top)
        for i, arm in enumerate(arms_data)
    )
    labels = [a.label for a in arms]
    for i, label in enumerate(labels):
        if labels.index(label) != i:
            raise (top / "optimizers" / i / "label").error(
                f"{label!r} is used by two entries (accepted: a unique label per entry, e.g. {label}-2)")
    return arms


def _parse_objective(
    top: Where, data: Mapping[str, Any], tasks: Sequence[str], suite: str | None
) -> Objective:
    """``objective:``; several tasks need a normalised metric, which needs reference scores of each.
    ``suite``: the study's suite as written (:func:`_parse_tasks`), whose references the metric uses."""
    objective = Objective(suite=suite)
    if "objective" in data:
        obj = data["objective"]
        if isinstance(obj, str):
            obj = {"metric": obj}
        obj = _mapping(top / "objective", obj, OBJECTIVE_KEYS)
        objective = Objective(
            metric=_choice(top / "objective" / "metric", obj.get("metric", "final_return"), METRICS),
            aggregate=_choice(top / "objective" / "aggregate", obj.get("aggregate", "iqm"), AGGREGATES),
            suite=suite,
        )
    if len(tasks) > 1 and not objective.normalized:
        raise (top / "objective" / "metric").error(
            f"{objective.metric} would mix raw returns of {len(tasks)} tasks "
            "(accepted with several tasks: normalized_score, normalized_auc)")
    if objective.normalized:
        from rlopt.config.suites import reference_task

        for task in tasks:
            try:
                reference_task(task, suite)
            except ConfigError as exc:
                raise (top / "objective" / "metric").error(str(exc)) from exc
    return objective


def _parse_search(
    top: Where, data: Mapping[str, Any], arms: Sequence[Arm], fairness: str,
) -> tuple[Component, Component, int | None]:
    """Sampler, pruner and ``n_trials``, checked against the entries (a grid enumerates them; fairness
    same_budget gives each entry as many learning rates)."""
    sampler = _parse_component(top / "sampler", data.get("sampler"), SAMPLERS, "grid")
    pruner = _parse_component(top / "pruner", data.get("pruner"), PRUNERS, "none")
    n_trials = _int(top / "n_trials", data["n_trials"]) if data.get("n_trials") is not None else None
    if sampler.name == "grid":
        for i, arm in enumerate(arms):
            if arm.ranges:
                key = next(iter(arm.ranges))
                raise (top / "optimizers" / i / key).error(
                    "a range needs a search sampler "
                    "(accepted with sampler grid: a value or a list of values)")
            if n_trials is not None and n_trials > arm.grid_size:
                raise (top / "n_trials").error(
                    f"{n_trials} is more than the {arm.grid_size} grid points of {arm.label!r} "
                    f"(accepted: at most {arm.grid_size}, or leave it out for the whole grid)")
    elif n_trials is None:
        raise top.error(f"missing 'n_trials' (trials per optimizer; required with sampler {sampler.name})")
    if fairness == "same_budget":
        budgets = {a.label: (a.lr_candidates() if sampler.name == "grid" else n_trials) for a in arms}
        if len(set(budgets.values())) > 1:
            desc = ", ".join(f"{k}: {v}" for k, v in budgets.items())
            raise (top / "fairness").error(
                f"same_budget needs the same number of learning rates per optimizer, got {desc} "
                "(accepted: equal lr lists, or fairness same_lr)")
    return sampler, pruner, n_trials


def _parse_heartbeat(where: Where, value: Any) -> Heartbeat:
    """``heartbeat:``, its grace period long enough that a live worker is not taken for dead."""
    hb = _mapping(where, value, HEARTBEAT_KEYS)
    values = {**DEFAULT_HEARTBEAT, **hb}
    heartbeat = Heartbeat(
        interval=_int(where / "interval", values["interval"]),
        grace_period=_int(where / "grace_period", values["grace_period"]),
        max_retry=_int(where / "max_retry", values["max_retry"], minimum=0),
    )
    least = max(MIN_GRACE_PERIOD_S, 3 * heartbeat.interval)
    if heartbeat.grace_period < least:
        raise (where / "grace_period").error(
            f"{heartbeat.grace_period} is too short for interval {heartbeat.interval}: a live worker on "
            f"a loaded machine would be taken for dead (accepted: >= {MIN_GRACE_PERIOD_S} s and >= 3 "
            f"intervals, here >= {least})"
        )
    return heartbeat


def _check_claim_arms(where: Where, spec: StudySpec) -> None:
    """A claim's candidate and baseline must be able to pick runs of this study: an ``optimizer`` or
    ``arm`` they name must be one of its optimizer entries (else the study would run for nothing)."""
    claims = spec.claim if isinstance(spec.claim, (list, tuple)) else [spec.claim]
    known = {"optimizer": sorted({a.optimizer for a in spec.arms}), "arm": sorted(a.label for a in spec.arms)}
    for i, claim in enumerate(claims):
        at = where / i if len(claims) > 1 else where
        for role in ("candidate", "baseline"):
            selector = getattr(claim, role, None)
            for alternative in getattr(selector, "alternatives", ()):
                for key, accepted in known.items():
                    wanted = alternative.get(key)
                    values = wanted if isinstance(wanted, list) else [wanted]
                    missing = [v for v in values if wanted is not None and v not in accepted]
                    if missing:
                        raise (at / role / key).error(
                            f"{missing[0]!r} is not an optimizer entry of this study, so the claim would "
                            f"have no {role} runs (accepted: {', '.join(map(str, accepted))})")


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate the study file at ``path``.

    Raises:
        ConfigError: one line naming the file, the key and what is accepted.
    """
    from rlopt.config.yaml import read_yaml

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a study file (accepted: a path to a studies/*.yaml)")
    if not path.is_file():
        raise ConfigError(f"{path}: no such study file (accepted: a path to a studies/*.yaml file)")
    return parse_spec(read_yaml(path, "study file"), file=str(path), path=path)


def grid_points(arm: Arm) -> list[dict[str, Any]]:
    """The settings of a finite arm as mappings of the varying values, in file order."""
    if arm.settings:
        return [dict(s) for s in arm.settings]
    keys = list(arm.grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(arm.grid[k] for k in keys))]
