"""The options of ``rlopt train``, written once: each names the :class:`~rlopt.run.config.TrainConfig` field
it sets, its help, and how its text becomes the field's value and back.

:mod:`rlopt.cli.train` builds its parser from :data:`TRAIN_FLAGS` and its config with
:func:`config_values`; :func:`config_argv` writes a config back as the same options (``command.txt``,
:meth:`TrainConfig.to_cli_args`), so a run's command repeats it. Fields without a flag (``progress``,
``command``, the diagnostics settings) are not part of a run's command line. This module imports no
training code, so building the ``rlopt`` parser stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rlopt.errors import ConfigError


@dataclass(frozen=True)
class Flag:
    """One ``rlopt train`` option.

    Attributes:
        name: the option, e.g. ``--weight-decay``.
        field: the :class:`~rlopt.run.config.TrainConfig` field it sets.
        help: the ``--help`` text.
        kind: ``value`` (one value), ``pairs`` (repeatable ``KEY=VALUE``, values as YAML, into a mapping)
            or ``switch`` (on when given).
        type: turns a ``value``'s text into the field's value (``None``: :attr:`parse` does).
        parse: turns the parsed option into the field's value (after ``type``), raising ``ConfigError``.
        text: writes a ``value`` field's value as the option's text.
    """

    name: str
    field: str
    help: str
    kind: str = "value"
    type: Callable[[str], Any] | None = str
    parse: Callable[[Any], Any] | None = None
    text: Callable[[Any], str] | None = None

    def to_args(self, value: Any) -> list[str]:
        """The option with ``value`` as command-line words; none when ``value`` is unset."""
        if self.kind == "switch":
            return [self.name] if value else []
        if self.kind == "pairs":
            pairs = _flatten(value)
            return [word for key, v in pairs.items() for word in (self.name, f"{key}={_yaml_scalar(v)}")]
        if value is None:
            return []
        return [self.name, (self.text or _number_text)(value)]


def _number_text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def parse_betas(text: str) -> tuple[float, ...]:
    """``0.9,0.999`` -> ``(0.9, 0.999)``."""
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"Invalid --betas {text!r} (accepted: comma-separated numbers in [0, 1), e.g. 0.9,0.999)"
        ) from None


def _betas_text(betas: Any) -> str:
    return ",".join(repr(float(b)) for b in betas)


def _pairs(flag: str) -> Callable[[list[str]], dict[str, Any]]:
    def parse(items: list[str]) -> dict[str, Any]:
        from rlopt.config.agents import parse_set

        return parse_set(items, flag=flag)

    return parse


# In the order command lines are written (command.txt); ``--help`` lists them so too.
TRAIN_FLAGS: tuple[Flag, ...] = (
    Flag("--algo", "algo", "ppo or sac (default: ppo)"),
    Flag("--env", "env", "Gymnasium task id (default: HalfCheetah-v5)"),
    Flag("--optimizer", "optimizer", "registry name, see `rlopt optimizers` (default: adam)"),
    Flag(
        "--seed",
        "seed",
        "seeds the agent, its networks and the training envs (the evaluation env gets seed + 1000003); "
        "on the CPU the same seed and options repeat the same run (default: 0)",
        type=int,
    ),
    Flag("--device", "device", "cpu, cuda or auto (default: cpu)"),
    Flag(
        "--lr", "lr", "initial learning rate (default: the agent's; its schedule shape is kept)", type=float
    ),
    Flag(
        "--eps",
        "eps",
        "optimizer eps (default: the optimizer's, Adam 1e-8; SB3's PPO would use 1e-5)",
        type=float,
    ),
    Flag("--weight-decay", "weight_decay", "default: the optimizer's", type=float),
    Flag(
        "--timesteps", "timesteps", "env steps (default: the budget of the agent's hyperparameters)", type=int
    ),
    Flag("--n-envs", "n_envs", "parallel training envs (default: the agent's)", type=int),
    Flag(
        "--threads",
        "threads",
        "torch CPU threads (default: 1, fastest for these network sizes, see README Performance)",
        type=int,
    ),
    Flag(
        "--eval-freq",
        "eval_freq",
        "env steps between evaluations, plus one after the last update "
        "(default: max(20000, timesteps/20), which keeps evaluation under 10%% of the run)",
        type=int,
    ),
    Flag(
        "--eval-episodes",
        "eval_episodes",
        "episodes per evaluation, deterministic policy on a separate env (default: 5)",
        type=int,
    ),
    Flag(
        "--betas",
        "betas",
        "comma-separated betas (default: the optimizer's)",
        parse=parse_betas,
        text=_betas_text,
    ),
    Flag(
        "--set",
        "overrides",
        "agent hyperparameter, value as YAML (repeatable), e.g. n_steps=256 or "
        "policy_kwargs.net_arch=[64,64]",
        kind="pairs",
        type=None,
        parse=_pairs("--set"),
    ),
    Flag(
        "--optimizer-arg",
        "optimizer_extra",
        "further optimizer argument, value as YAML (repeatable), e.g. gamma=0.25",
        kind="pairs",
        type=None,
        parse=_pairs("--optimizer-arg"),
    ),
    Flag(
        "--run-dir",
        "run_dir",
        "run folder (default: runs/train/<algo>-<env>-<optimizer>-s<seed>-<timestamp>)",
        type=Path,
    ),
    Flag("--save-model", "save_model", "also write model.zip (+ vecnormalize.pkl)", kind="switch", type=None),
    Flag(
        "--checkpoint-every",
        "checkpoint_every",
        "env steps between two checkpoints of the whole training state (checkpoint.pt; default: none)",
        type=int,
    ),
    Flag(
        "--resume",
        "resume",
        "continue the run in --run-dir from its checkpoint.pt, bit for bit (the other options must be "
        "the run's own: command.txt has them)",
        kind="switch",
        type=None,
    ),
)


def config_values(parsed: Mapping[str, Any]) -> dict[str, Any]:
    """``TrainConfig`` keyword arguments from parsed options (``{field: value}``; ``None``, ``[]`` or
    ``False``: not given, so the config's default applies).

    Raises:
        ConfigError: a value that does not parse (``--betas``, ``--set``, ``--optimizer-arg``).
    """
    values: dict[str, Any] = {}
    for flag in TRAIN_FLAGS:
        value = parsed.get(flag.field)
        if value is None or value is False or (flag.kind == "pairs" and not value):
            continue
        values[flag.field] = flag.parse(value) if flag.parse is not None else value
    return values


def config_argv(config: Any) -> list[str]:
    """The ``rlopt train`` options that make ``config`` (a ``TrainConfig``)."""
    return [word for flag in TRAIN_FLAGS for word in flag.to_args(getattr(config, flag.field))]


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()
