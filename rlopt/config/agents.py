"""Agent hyperparameters as data: ``agents/<algo>.yaml`` per task, ``--set`` overrides, validation.

An agent file maps Gymnasium task ids to entries. An entry holds SB3 constructor arguments of the
algorithm (``PPO``/``SAC``) plus a few keys of its own, as in rl-baselines3-zoo:

- ``source`` (required): where the values come from.
- ``normalize``: ``true`` wraps the training env in ``VecNormalize`` (zoo semantics: obs and reward,
  ``gamma`` taken from the agent), or a mapping ``{norm_obs: bool, norm_reward: bool}``.
- ``n_envs``: number of parallel training envs; ``n_timesteps``: the budget the values were tuned for.
- ``policy``: only ``MlpPolicy``.

Values stay data until :func:`to_sb3_kwargs` turns them into objects: schedules are strings like
``lin_3e-4`` (mapped through :data:`SCHEDULES`), activations are names like ``relu`` (mapped through
:data:`ACTIVATIONS`); nothing is ``eval()``-ed. The optimizer is never taken from an agent file (no
``optimizer_class``/``optimizer_kwargs``): it always comes from rlopt's training config.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from rlopt.config.data import data_file
from rlopt.config.yaml import load, merge, read_yaml
from rlopt.errors import ConfigError

log = logging.getLogger(__name__)

ALGOS = ("ppo", "sac")

ACTIVATIONS: dict[str, str] = {
    "tanh": "Tanh",
    "relu": "ReLU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "gelu": "GELU",
    "silu": "SiLU",
}
"""Activation names of agent files -> ``torch.nn`` classes (by name: torch loads only when an agent is
built, so that validating a file stays quick)."""

SCHEDULES = ("lin", "const")
"""Schedule kinds: the zoo's ``lin_<v>`` is v * progress_remaining (1 at the start, 0 at the end);
``const_<v>`` is v."""

SCHEDULE_KEYS = frozenset({"learning_rate", "clip_range", "clip_range_vf"})
"""SB3 arguments that accept a number or a schedule string."""

OWN_KEYS = frozenset({"source", "normalize", "n_envs", "n_timesteps", "policy"})
"""Keys of an agent entry that are not SB3 constructor arguments."""

_NOT_DATA = frozenset(
    {
        "self",
        "policy",
        "env",
        "tensorboard_log",
        "verbose",
        "seed",
        "device",
        "_init_setup_model",
        "rollout_buffer_class",
        "replay_buffer_class",
        "action_noise",
    }
)
_POLICY_NOT_DATA = frozenset(
    {
        "self",
        "observation_space",
        "action_space",
        "lr_schedule",
        "features_extractor_class",
        "features_extractor_kwargs",
    }
)
_OPTIMIZER_KEYS = frozenset({"optimizer_class", "optimizer_kwargs"})
_SB3_DEFAULT_TIMESTEPS = 1_000_000


@cache
def algo_class(algo: str) -> type:
    """The SB3 class of ``algo`` (``ppo`` or ``sac``)."""
    from stable_baselines3 import PPO, SAC

    return {"ppo": PPO, "sac": SAC}[check_algo(algo)]


def check_algo(algo: Any) -> str:
    if not isinstance(algo, str) or algo.lower() not in ALGOS:
        raise ConfigError(f"Unknown algorithm {algo!r} (accepted: {', '.join(ALGOS)})")
    return algo.lower()


@cache
def sb3_defaults(algo: str) -> dict[str, Any]:
    params = inspect.signature(algo_class(algo)).parameters
    return {k: p.default for k, p in params.items() if k not in _NOT_DATA}


@cache
def _policy_defaults(algo: str) -> dict[str, Any]:
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.sac.policies import SACPolicy

    cls = {"ppo": ActorCriticPolicy, "sac": SACPolicy}[algo]
    params = inspect.signature(cls).parameters
    return {k: p.default for k, p in params.items() if k not in _POLICY_NOT_DATA | _OPTIMIZER_KEYS}


@dataclass(frozen=True)
class AgentHparams:
    """Resolved hyperparameters of one agent on one task, as data (JSON-able).

    Attributes:
        algo: ``ppo`` or ``sac``.
        task: Gymnasium id.
        source: where the values come from (agent file entry, or SB3 defaults).
        n_envs: parallel training envs.
        n_timesteps: the budget the values were tuned for (the default training budget).
        normalize: ``VecNormalize`` flags ``{"norm_obs", "norm_reward"}``, or ``None`` for no wrapper.
        kwargs: SB3 constructor arguments (schedules as strings, activations as names).
    """

    algo: str
    task: str
    source: str
    n_envs: int
    n_timesteps: int
    normalize: dict[str, bool] | None
    kwargs: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "algo": self.algo,
            "task": self.task,
            "source": self.source,
            "n_envs": self.n_envs,
            "n_timesteps": self.n_timesteps,
            "normalize": self.normalize,
            "hyperparameters": self.kwargs,
        }


def agent_file(algo: str) -> Path:
    """``agents/<algo>.yaml``: the user's (``RLOPT_DATA``) or the one shipped with rlopt."""
    return data_file("agents", f"{check_algo(algo)}.yaml")


@cache
def _load_agent_file(path: Path) -> dict[str, dict[str, Any]]:
    data = read_yaml(path, "agent file")
    tasks = data.get("tasks") if isinstance(data, dict) else None
    if not isinstance(tasks, dict) or not all(isinstance(e, dict) for e in tasks.values()):
        raise ConfigError(f"{path}: expected a 'tasks' mapping of task id -> hyperparameters")
    return tasks


def known_tasks(algo: str) -> list[str]:
    """Tasks with an entry in ``agents/<algo>.yaml``."""
    return sorted(_load_agent_file(agent_file(algo)))


def parse_set(items: Iterable[str], flag: str = "--set") -> dict[str, Any]:
    """Parse ``key=value`` strings (values as YAML, :mod:`rlopt.config.yaml`) into a nested mapping.

    Dots in keys nest. ``flag`` (``--set``, ``--optimizer-arg``) names the option in errors.

    Example:
        >>> parse_set(["n_steps=64", "policy_kwargs.net_arch=[16]", "learning_rate=3e-4"])
        {'n_steps': 64, 'policy_kwargs': {'net_arch': [16]}, 'learning_rate': 0.0003}
    """
    example = "n_steps=64 or policy_kwargs.net_arch=[16]" if flag == "--set" else "gamma=0.25"
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"Malformed {flag} {item!r} (accepted: key=value, e.g. {example})")
        value = load(raw, f"Malformed {flag} {item!r}: the value") if raw.strip() else None
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"Malformed {flag} {item!r}: {part!r} is set both as a value and a mapping")
            node = child
        if leaf in node:
            raise ConfigError(f"Malformed {flag} {item!r}: {key} is given twice")
        node[leaf] = value
    return out


def parse_schedule(value: Any, name: str) -> tuple[str, float]:
    """``3e-4`` -> ``("const", 3e-4)``; ``"lin_3e-4"`` -> ``("lin", 3e-4)``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return "const", float(value)
    if isinstance(value, str) and "_" in value:
        kind, _, number = value.partition("_")
        if kind in SCHEDULES:
            try:
                return kind, float(number)
            except ValueError:
                pass
    raise ConfigError(
        f"Invalid {name}: {value!r} (accepted: a number, or a schedule "
        f"{' / '.join(f'{k}_<number>' for k in SCHEDULES)}, e.g. lin_3e-4)"
    )


def format_schedule(kind: str, value: float) -> float | str:
    return value if kind == "const" else f"{kind}_{value!r}"


def _check_type(key: str, value: Any, default: Any, algo: str) -> None:
    if value is None or default is None or isinstance(default, str):
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
        accepted = "true or false"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if key == "train_freq":
            ok = ok or (
                isinstance(value, (list, tuple))
                and len(value) == 2
                and isinstance(value[0], int)
                and value[1] in ("step", "episode")
            )
            accepted = "an integer or [integer, step|episode]"
        else:
            accepted = "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        accepted = "a number"
    else:
        return
    if not ok:
        raise ConfigError(f"Invalid {algo.upper()} hyperparameter {key}={value!r} (accepted: {accepted})")


def _check_policy_kwargs(algo: str, policy_kwargs: Any) -> None:
    if not isinstance(policy_kwargs, dict):
        raise ConfigError(f"Invalid policy_kwargs: {policy_kwargs!r} (accepted: a mapping)")
    accepted = _policy_defaults(algo)
    for key, value in policy_kwargs.items():
        if key in _OPTIMIZER_KEYS:
            raise ConfigError(
                f"policy_kwargs.{key} is not accepted: the optimizer comes from rlopt's --optimizer/--lr/"
                "--betas/--eps/--weight-decay"
            )
        if key not in accepted:
            names = ", ".join(sorted(accepted))
            raise ConfigError(f"Unknown policy_kwargs key {key!r} for {algo.upper()} (accepted: {names})")
        if key == "activation_fn" and value not in ACTIVATIONS:
            raise ConfigError(f"Unknown activation_fn {value!r} (accepted: {', '.join(ACTIVATIONS)})")


def _check_normalize(value: Any) -> dict[str, bool] | None:
    if value is None or value is False:
        return None
    if value is True:
        return {"norm_obs": True, "norm_reward": True}
    if (
        isinstance(value, dict)
        and set(value) <= {"norm_obs", "norm_reward"}
        and all(isinstance(v, bool) for v in value.values())
    ):
        return {"norm_obs": value.get("norm_obs", True), "norm_reward": value.get("norm_reward", True)}
    raise ConfigError(
        f"Invalid normalize: {value!r} (accepted: true, false, or {{norm_obs: bool, norm_reward: bool}})"
    )


def resolve_agent(
    algo: str,
    task: str,
    overrides: Mapping[str, Any] | None = None,
    lr: float | None = None,
) -> AgentHparams:
    """Look up ``task`` in ``agents/<algo>.yaml``, apply ``overrides``, validate every name and type.

    A task without an entry falls back to SB3's defaults (logged). ``lr``, when given, replaces the
    initial value of the learning-rate schedule and keeps its shape (``lin_7.3e-4`` with lr=1e-3 becomes
    ``lin_0.001``); giving both ``lr`` and a ``learning_rate`` override is an error.

    Raises:
        ConfigError: naming the bad key or value and what is accepted.
    """
    algo = check_algo(algo)
    entry = _entry(algo, task, overrides, lr)
    kwargs = _sb3_kwargs(algo, entry, lr)
    policy = entry.get("policy", "MlpPolicy")
    if policy != "MlpPolicy":
        raise ConfigError(f"Unsupported policy {policy!r} (accepted: MlpPolicy)")
    n_envs = entry.get("n_envs", 1)
    n_timesteps = entry.get("n_timesteps", _SB3_DEFAULT_TIMESTEPS)
    for name, value in (("n_envs", n_envs), ("n_timesteps", n_timesteps)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"Invalid {name}: {value!r} in {agent_file(algo)} (accepted: an integer >= 1)")
    return AgentHparams(
        algo=algo,
        task=task,
        source=entry["source"],
        n_envs=int(n_envs),
        n_timesteps=int(n_timesteps),
        normalize=_check_normalize(entry.get("normalize")),
        kwargs=kwargs,
    )


def _entry(algo: str, task: str, overrides: Mapping[str, Any] | None, lr: float | None) -> dict[str, Any]:
    """The agent file's entry of ``task`` (or SB3's defaults) with ``overrides`` merged in."""
    tasks = _load_agent_file(agent_file(algo))
    if task in tasks:
        entry = copy.deepcopy(tasks[task])
        if not isinstance(entry.get("source"), str):
            raise ConfigError(f"{agent_file(algo)}: entry {task!r} needs a 'source' string")
    else:
        log.warning("no %s entry for %s in %s: using SB3 defaults", algo.upper(), task, agent_file(algo))
        entry = {"source": f"SB3 {algo.upper()} defaults (no entry for {task} in agents/{algo}.yaml)"}
    overrides = dict(overrides or {})
    for key in ("n_envs", "n_timesteps", "source"):
        if key in overrides:
            hint = {"n_envs": "--n-envs", "n_timesteps": "--timesteps"}.get(key, "the agent file")
            raise ConfigError(f"--set {key} is not accepted (use {hint})")
    if lr is not None and "learning_rate" in overrides:
        raise ConfigError("Give the learning rate once: --lr or --set learning_rate, not both")
    return merge(entry, overrides)


def _sb3_kwargs(algo: str, entry: Mapping[str, Any], lr: float | None) -> dict[str, Any]:
    """The SB3 constructor arguments of an entry, each name and type checked; ``lr`` replaces the
    initial learning rate and keeps the schedule's shape."""
    defaults = sb3_defaults(algo)
    accepted = sorted(set(defaults) | OWN_KEYS - {"source"})
    kwargs: dict[str, Any] = {}
    for key, value in entry.items():
        if key in OWN_KEYS:
            continue
        if key in _OPTIMIZER_KEYS:
            raise ConfigError(f"{key} is not accepted: the optimizer comes from rlopt's --optimizer")
        if key not in defaults:
            names = ", ".join(accepted)
            raise ConfigError(f"Unknown {algo.upper()} hyperparameter {key!r} (accepted: {names})")
        if key in SCHEDULE_KEYS and value is not None:
            value = format_schedule(*parse_schedule(value, key))
        else:
            _check_type(key, value, defaults[key], algo)
        if key == "policy_kwargs":
            _check_policy_kwargs(algo, value)
        kwargs[key] = value

    kind, initial = parse_schedule(kwargs.get("learning_rate", defaults["learning_rate"]), "learning_rate")
    if lr is not None:
        initial = lr
    kwargs["learning_rate"] = format_schedule(kind, initial)
    return kwargs


def initial_learning_rate(hparams: AgentHparams) -> float:
    """Learning rate at the start of training (the schedule at progress_remaining = 1)."""
    return parse_schedule(hparams.kwargs["learning_rate"], "learning_rate")[1]


def to_sb3_kwargs(hparams: AgentHparams) -> dict[str, Any]:
    """Turn the data in ``hparams.kwargs`` into SB3 constructor arguments (schedules, activation classes)."""
    out = copy.deepcopy(hparams.kwargs)
    for key in SCHEDULE_KEYS & set(out):
        if out[key] is not None:
            kind, value = parse_schedule(out[key], key)
            out[key] = value if kind == "const" else _linear_schedule(value)
    if isinstance(out.get("train_freq"), list):
        out["train_freq"] = tuple(out["train_freq"])
    policy_kwargs = dict(out.get("policy_kwargs") or {})
    if "activation_fn" in policy_kwargs:
        import torch.nn as nn

        policy_kwargs["activation_fn"] = getattr(nn, ACTIVATIONS[policy_kwargs["activation_fn"]])
    out["policy_kwargs"] = policy_kwargs
    return out


def _linear_schedule(value: float) -> Callable[[float], float]:
    """The zoo's ``lin_<value>``: ``value * progress_remaining``."""
    from stable_baselines3.common.utils import LinearSchedule

    return LinearSchedule(value, 0.0, 1.0)
