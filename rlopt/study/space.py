"""From an arm of a study to Optuna trial parameters and back to a typed :class:`Setting`.

Trial parameters live in a well-scaled space: a searched beta is the parameter ``1-beta2`` drawn on a
log scale (so 0.9, 0.99, 0.999 are equally far apart), a searched lr or eps is drawn on a log scale,
a list of values is a categorical parameter, and an explicit list of settings is the categorical
parameter ``setting`` (their labels). The values an optimizer really gets are in the
:class:`Setting`, which the trial stores as user attributes.

Grid studies use :class:`optuna.samplers.GridSampler` over :func:`grid_search_space`, which maps
trial number ``i < grid size`` to grid point ``i`` (Optuna >= 4.4), so concurrent workers never share a
point.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna

from rlopt.config.study import BETA_KEYS, NUMERIC_KEYS, SHORT_NAMES, Arm, Range, format_value, grid_points
from rlopt.config.yaml import merge

SETTING_PARAM = "setting"


@dataclass(frozen=True)
class Setting:
    """One concrete setting of an arm: what every run of a trial uses.

    Attributes:
        arm: label of the arm.
        optimizer: registry name.
        label: short human label, e.g. ``adopt b2=0.9999``.
        values: the values that vary within the arm (``lr``, ``beta2``, ``kappa``...).
        lr, betas, eps, weight_decay: the optimizer's hyperparameters before any batch-size scaling
            (``None``: the default of the training run; see :mod:`rlopt.study.plan` for the scaling).
        extra: further optimizer arguments.
        kappa: batch-size multiplier; the agent's ``batch_size`` is multiplied by it.
        scaling_rule: how ``kappa`` rescales the optimizer's hyperparameters.
        overrides: agent hyperparameters (study, arm and setting merged).
    """

    arm: str
    optimizer: str
    label: str
    values: Mapping[str, float]
    lr: float | None
    betas: tuple[float, ...] | None
    eps: float | None
    weight_decay: float | None
    extra: Mapping[str, Any] = field(default_factory=dict)
    kappa: float = 1.0
    scaling_rule: str = "none"
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def user_attrs(self) -> dict[str, Any]:
        """The setting as recorded on the trial (JSON-able; ``None``: the run's default)."""
        return {
            "arm": self.arm,
            "optimizer": self.optimizer,
            "setting": self.label,
            "lr": self.lr,
            "betas": list(self.betas) if self.betas is not None else None,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "extra": {k: v for k, v in self.extra.items()},
            "kappa": self.kappa,
            "scaling_rule": self.scaling_rule,
            "values": dict(self.values),
            "overrides": dict(self.overrides),
        }


def param_name(key: str, arm: Arm) -> str:
    """Name of the Optuna parameter of ``key``: ``1-beta2`` for a searched beta, else ``key``."""
    if key in BETA_KEYS and key in arm.ranges:
        return f"1-{key}"
    return key


def make_setting(arm: Arm, values: Mapping[str, Any]) -> Setting:
    """The setting of ``arm`` with ``values`` (numeric keys, optional ``label``/``overrides``)."""
    from rlopt.optim import get_spec

    numeric = {k: float(v) for k, v in values.items() if k in NUMERIC_KEYS}
    merged = {**arm.fixed, **numeric}
    betas: tuple[float, ...] | None = None
    beta_keys = BETA_KEYS[: arm.n_betas]
    if any(k in merged for k in beta_keys):
        defaults = get_spec(arm.optimizer).betas
        betas = tuple(merged.get(k, defaults[i]) for i, k in enumerate(beta_keys))
    label = values.get("label") or " ".join(
        [arm.label] + [f"{SHORT_NAMES[k]}={format_value(k, v)}" for k, v in numeric.items()]
    )
    return Setting(
        arm=arm.label, optimizer=arm.optimizer, label=str(label), values=numeric,
        lr=merged.get("lr"), betas=betas, eps=merged.get("eps"), weight_decay=merged.get("weight_decay"),
        extra=dict(arm.extra), kappa=merged.get("kappa", 1.0), scaling_rule=arm.scaling_rule,
        overrides=merge(arm.overrides, values.get("overrides", {})),
    )


def finite_settings(arm: Arm) -> list[Setting]:
    """Every setting of a finite arm, in file order."""
    return [make_setting(arm, point) for point in grid_points(arm)]


def corner_settings(arm: Arm) -> list[Setting]:
    """Settings that bound what ``arm`` can produce: every grid point with each range at either end."""
    ends = [[(key, r.low), (key, r.high)] for key, r in arm.ranges.items()]
    out = []
    for point in grid_points(arm):
        for combo in itertools.product(*ends) if ends else [()]:
            out.append(make_setting(arm, {**point, **dict(combo)}))
    return out


def grid_search_space(arm: Arm) -> dict[str, list[Any]]:
    """The :class:`~optuna.samplers.GridSampler` search space of a finite arm."""
    if arm.settings:
        return {SETTING_PARAM: [s.label for s in finite_settings(arm)]}
    return {key: list(values) for key, values in arm.grid.items()}


def suggest_setting(trial: optuna.Trial, arm: Arm) -> Setting:
    """Ask ``trial`` for the arm's varying values and build the setting.

    Lists are categorical parameters, explicit settings the categorical parameter ``setting``, ranges
    float parameters on a log scale (betas as ``1-beta``).
    """
    values: dict[str, Any] = {}
    if arm.settings:
        by_label = {s.label: point for s, point in zip(finite_settings(arm), grid_points(arm), strict=True)}
        values.update(by_label[trial.suggest_categorical(SETTING_PARAM, list(by_label))])
    for key, choices in arm.grid.items():
        values[key] = trial.suggest_categorical(key, list(choices))
    for key, rng in arm.ranges.items():
        values[key] = _suggest_range(trial, arm, key, rng)
    if arm.settings and arm.ranges:
        values.pop("label", None)
    return make_setting(arm, values)


def _suggest_range(trial: optuna.Trial, arm: Arm, key: str, rng: Range) -> float:
    name = param_name(key, arm)
    if key in BETA_KEYS:
        return 1.0 - trial.suggest_float(name, 1.0 - rng.high, 1.0 - rng.low, log=True)
    return trial.suggest_float(name, rng.low, rng.high, log=rng.log)
