"""Optuna samplers and pruners by name, with the study file's options passed to Optuna's own classes.

``sampler: {name: tpe, n_startup_trials: 5}`` builds ``optuna.samplers.TPESampler(n_startup_trials=5)``;
an argument the class does not take is a one-line error listing the ones it does.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import optuna

from rlopt.config.study import Arm, StudySpec
from rlopt.errors import ConfigError
from rlopt.study.space import grid_search_space


class QueueGridSampler(optuna.samplers.GridSampler):
    """``GridSampler`` for trials taken with ``ask()``: the worker loop, not the sampler, ends the study.

    ``GridSampler.after_trial`` calls ``study.stop()`` once the grid is covered, which raises outside
    ``Study.optimize``; rlopt's workers count finished grid points themselves.
    """

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None


SAMPLER_CLASSES: Mapping[str, Callable[[], type]] = {
    "grid": lambda: QueueGridSampler,
    "tpe": lambda: optuna.samplers.TPESampler,
    "cmaes": lambda: optuna.samplers.CmaEsSampler,
    "random": lambda: optuna.samplers.RandomSampler,
    "qmc": lambda: optuna.samplers.QMCSampler,
}
PRUNER_CLASSES: Mapping[str, Callable[[], type]] = {
    "none": lambda: optuna.pruners.NopPruner,
    "median": lambda: optuna.pruners.MedianPruner,
    "successive_halving": lambda: optuna.pruners.SuccessiveHalvingPruner,
    "hyperband": lambda: optuna.pruners.HyperbandPruner,
    "percentile": lambda: optuna.pruners.PercentilePruner,
    "threshold": lambda: optuna.pruners.ThresholdPruner,
}
PER_WORKER_SEED = ("tpe", "random", "cmaes")
"""Samplers whose seed is offset per worker: with one seed, workers that see the same finished trials
would propose the same point. QMC keeps one seed: its sequence is shared, indexed by trial."""


def _build(kind: str, name: str, cls: type, fixed: Mapping[str, Any], options: Mapping[str, Any]) -> Any:
    accepted = [p for p in inspect.signature(cls).parameters if p not in fixed]
    for key in options:
        if key not in accepted:
            raise ConfigError(
                f"{key!r} is not an argument of {cls.__name__} ({kind} {name}; "
                f"accepted: {', '.join(accepted)})"
            )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**fixed, **options)
    except (TypeError, ValueError) as exc:
        arguments = ", ".join(f"{k}={v!r}" for k, v in options.items())
        raise ConfigError(f"{cls.__name__}({arguments}): {exc}") from exc


def make_sampler(spec: StudySpec, arm: Arm, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler of ``arm``'s Optuna study (a grid sampler over the arm's own grid)."""
    name = spec.sampler.name
    options = dict(spec.sampler.options)
    fixed: dict[str, Any] = {}
    if name == "grid":
        fixed["search_space"] = grid_search_space(arm)
        options.setdefault("seed", 0)
    if name in PER_WORKER_SEED and options.get("seed") is not None:
        if not isinstance(options["seed"], int):
            raise ConfigError(f"seed {options['seed']!r} is not accepted (accepted: an integer)")
        options["seed"] += worker
    if name == "tpe":
        options.setdefault("constant_liar", True)
    return _build("sampler", name, SAMPLER_CLASSES[name](), fixed, options)


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The pruner of every arm's Optuna study."""
    name = spec.pruner.name
    return _build("pruner", name, PRUNER_CLASSES[name](), {}, dict(spec.pruner.options))
