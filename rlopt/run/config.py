"""What one training run is: a :class:`TrainConfig` as given, validated into a :class:`TrainPlan`.

``TrainConfig.validate()`` resolves and checks every field (optimizer through ``rlopt.optim.resolve``,
agent hyperparameters against the SB3 signatures, task, device, run folder) and fills in every default
(budget, envs, evaluation schedule, diagnostics window, ``fused="auto"``, run folder), raising
:class:`rlopt.errors.ConfigError` naming the first bad value; nothing is written. The plan is what
``config.json`` records (:meth:`TrainPlan.as_config_json`) and what :func:`rlopt.run.train.run_training`
builds and trains. A config's ``rlopt train`` command line is :meth:`TrainConfig.to_cli_args`.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlopt.config.agents import AgentHparams, check_algo, initial_learning_rate, resolve_agent, sb3_defaults
from rlopt.config.suites import check_task
from rlopt.errors import ConfigError
from rlopt.optim import ResolvedOptimizer, get_spec, resolve
from rlopt.optim._compiled import FUSED_BREAK_EVEN
from rlopt.paths import check_folder_can_be_made, safe_name
from rlopt.run.agent import effective_extra, gradient_clipping
from rlopt.run.checkpoint import CHECKPOINT_FILE
from rlopt.run.diagnostics import StabilityThresholds
from rlopt.run.flags import config_argv
from rlopt.run.folder import jsonable

DEVICES = ("cpu", "cuda", "auto")
SAC_DIAGNOSTICS_INTERVAL = 1000
DEFAULT_EVALUATIONS = 20
"""At most this many scheduled evaluations by default: every ``timesteps // 20`` env steps..."""
EVAL_MIN_FREQ = 20_000
"""...but never more often than every 20,000 env steps (rl-zoo evaluates every 25k, SB3's EvalCallback
every 10k calls). Measured on PPO HalfCheetah (2x256, 1 thread, ``scripts/bench_evaluation.py``): an
evaluation episode (1,000 steps) costs as much as 75-140 training steps, so 5 episodes every 10k steps
took 9.9% of a 20k run (with the evaluation after the last update), every 20k steps 3.6% of a 20k
run and 3.7% of a 200k run (the schedule before, every timesteps/20 steps: 41.7% at 20k)."""
DEFAULT_EVAL_EPISODES = 5
"""Episodes per evaluation unless asked otherwise. With :data:`EVAL_MIN_FREQ` this keeps evaluation
under 10% of a run's wall time (``scripts/bench_evaluation.py``; README, Performance)."""
DEFAULT_THREADS = 1
"""Torch threads per run unless asked otherwise (``scripts/bench_threads.py``)."""


@dataclass
class TrainConfig:
    """Everything that defines one training run (validated by :meth:`validate`)."""

    algo: str = "ppo"
    """``ppo`` or ``sac``."""
    env: str = "HalfCheetah-v5"
    """Gymnasium task id; hyperparameters come from ``agents/<algo>.yaml`` (SB3 defaults if absent)."""
    optimizer: str = "adam"
    """Registry name (``rlopt optimizers``), or ``pytorch_optimizer:<name>``."""
    lr: float | None = None
    """Initial learning rate; ``None``: the agent's (its schedule shape is kept either way)."""
    betas: tuple[float, ...] | None = None
    """The optimizer's betas; ``None``: the optimizer's defaults."""
    eps: float | None = None
    """The optimizer's eps; ``None``: the optimizer's default (Adam 1e-8; SB3's PPO would use 1e-5)."""
    weight_decay: float | None = None
    """``None``: the optimizer's default."""
    optimizer_extra: dict[str, Any] = field(default_factory=dict)
    """Further optimizer arguments (e.g. ``{"gamma": 0.1}`` for dgclip). For the rules with a compiled
    kernel (adopt, adan, adabelief, adamssm) ``fused`` defaults to ``"auto"``: ``True`` when the run's
    :func:`expected_gradient_steps` reach :data:`rlopt.optim._compiled.FUSED_BREAK_EVEN`, else ``False``
    (the choice is in ``config.json``, ``optimizer.fused_auto``)."""
    seed: int = 0
    timesteps: int | None = None
    """Env steps to train for; ``None``: the budget the agent's hyperparameters were tuned for."""
    device: str = "cpu"
    """``cpu``, ``cuda`` (or ``cuda:N``) or ``auto``."""
    n_envs: int | None = None
    """Parallel training envs; ``None``: the agent file's (1 if absent)."""
    threads: int | None = None
    """Torch CPU threads for the run (``torch.set_num_threads``, restored afterwards); ``None``:
    :data:`DEFAULT_THREADS`."""
    run_dir: Path | None = None
    """``None``: ``runs/train/<algo>-<env>-<optimizer>-s<seed>-<timestamp>``."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Agent hyperparameters replacing the agent file's (nested dicts merge, e.g. ``policy_kwargs``)."""
    eval_freq: int | None = None
    """Env steps between evaluations; ``None``: ``max(20_000, timesteps // 20)`` (and always one after
    the last update)."""
    eval_episodes: int | None = None
    """Episodes per evaluation; ``None``: :data:`DEFAULT_EVAL_EPISODES`."""
    save_model: bool = False
    """Also write ``model.zip`` (and ``vecnormalize.pkl`` when the env is normalised)."""
    progress: bool = False
    """Show a rich progress bar on stderr."""
    diagnostics_interval: int | None = None
    """Env steps per diagnostics window; ``None``: every rollout (PPO), 1000 steps (SAC)."""
    diagnostics_sample_every: int = 8
    """Measure update/parameter norms on every this-many-th optimizer update (1: all of them)."""
    stability: StabilityThresholds = field(default_factory=StabilityThresholds)
    command: str | None = None
    """The command that started the run (for ``command.txt``); ``None``: an equivalent ``rlopt train``."""
    checkpoint_every: int | None = None
    """Env steps between two checkpoints of the whole training state (``checkpoint.pt`` in the run folder,
    :mod:`rlopt.run.checkpoint`), at the first rollout start at or past each multiple; ``None``: none."""
    resume: bool = False
    """Continue the run in ``run_dir`` from its ``checkpoint.pt`` (the config must be the same run), bit
    for bit as if it had not stopped; a folder without a checkpoint is started as a new run."""

    def validate(self) -> TrainPlan:
        """Resolve and check every field; raise :class:`ConfigError` naming the first bad value."""
        return _plan(self)

    def to_cli_args(self) -> list[str]:
        """``rlopt train`` arguments that reproduce this config (:data:`rlopt.run.flags.TRAIN_FLAGS`)."""
        return config_argv(self)


@dataclass(frozen=True)
class TrainPlan:
    """A validated :class:`TrainConfig`: every default filled in, every name checked."""

    config: TrainConfig
    agent: AgentHparams
    optimizer: ResolvedOptimizer
    timesteps: int
    n_envs: int
    threads: int
    eval_freq: int
    eval_episodes: int
    run_dir: Path
    device: str
    diagnostics_interval: int
    fused_auto: dict[str, Any] | None = None
    """How ``fused="auto"`` was decided (rules with a compiled kernel only), ``None`` where it was not."""

    def as_config_json(self) -> dict[str, Any]:
        spec = get_spec(self.optimizer.name)
        roles = ["policy"] if self.agent.algo == "ppo" else ["actor", "critic", "ent_coef"]
        return {
            "algo": self.agent.algo,
            "env": self.agent.task,
            "seed": self.config.seed,
            "timesteps": self.timesteps,
            "n_envs": self.n_envs,
            "device": self.device,
            "threads": self.threads,
            "optimizer": {
                **self.optimizer.as_dict(),
                "extra_effective": effective_extra(self.optimizer),
                "class": f"{spec.cls.__module__}.{spec.cls.__qualname__}",
                "source": spec.source,
                "paper": spec.paper,
                "injected_into": roles,
                "fused_auto": self.fused_auto,
            },
            "agent": {**self.agent.as_dict(), "sb3_defaults_used": _sb3_defaults_used(self.agent)},
            "gradient_clipping": gradient_clipping(self.agent, self.optimizer),
            "evaluation": {
                "freq": self.eval_freq,
                "episodes": self.eval_episodes,
                "deterministic": True,
                "expected_evaluations": self.expected_evaluations,
                "schedule": self.eval_schedule,
            },
            "diagnostics": {
                "interval": self.diagnostics_interval,
                "sample_every": self.config.diagnostics_sample_every,
                **self.config.stability.as_dict(),
            },
            "overrides": self.config.overrides,
            "save_model": self.config.save_model,
            "checkpoint_every": self.config.checkpoint_every,
            "run_dir": str(self.run_dir),
        }

    @property
    def expected_timesteps(self) -> int:
        """Env steps ``learn`` will have done: PPO finishes its last rollout, SAC steps all envs at once."""
        chunk = (
            int(self.agent.kwargs.get("n_steps", 2048)) * self.n_envs
            if self.agent.algo == "ppo"
            else (self.n_envs)
        )
        return -(-self.timesteps // chunk) * chunk

    @property
    def expected_evaluations(self) -> int:
        """Evaluations of the run, the one after the last update included (unless the schedule hit it)."""
        done = self.expected_timesteps
        return done // self.eval_freq + (1 if done % self.eval_freq else 0)

    @property
    def eval_schedule(self) -> str:
        """How the evaluation schedule was chosen, in words (``config.json``)."""
        freq = (
            "--eval-freq as given"
            if self.config.eval_freq is not None
            else f"every max({EVAL_MIN_FREQ}, timesteps // {DEFAULT_EVALUATIONS}) env steps (default)"
        )
        episodes = "as given" if self.config.eval_episodes is not None else "(default)"
        return f"{freq}, and after the last update; {self.eval_episodes} episodes {episodes}"

    def hparams(self) -> dict[str, Any]:
        """Flat hyperparameters for TensorBoard's HParams dashboard (filter runs by optimizer, betas...);
        its columns are :data:`rlopt.run.tensorboard.HPARAM_COLUMNS`, then the ``opt_<key>`` extras."""
        out: dict[str, Any] = {
            "optimizer": self.optimizer.name,
            **{f"beta{index + 1}": beta for index, beta in enumerate(self.optimizer.betas)},
            "lr": self.optimizer.lr,
            "env": self.agent.task,
            "seed": self.config.seed,
            "algo": self.agent.algo,
            "eps": self.optimizer.eps,  # None (SGD...): no value, a blank cell
            "weight_decay": self.optimizer.weight_decay,
            "clipping": gradient_clipping(self.agent, self.optimizer)["summary"],
            "timesteps": self.timesteps,
            "n_envs": self.n_envs,
        }
        for key, value in sorted(effective_extra(self.optimizer).items()):
            if isinstance(value, (int, float, str, bool)) and key not in ("foreach", "fused"):
                out[f"opt_{key}"] = value
        return out



def _sb3_defaults_used(agent: AgentHparams) -> dict[str, Any]:
    return {k: jsonable(v) for k, v in sb3_defaults(agent.algo).items() if k not in agent.kwargs}


def _positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"Invalid {name}: {value!r} (accepted: an integer >= 1)")
    return value


def _check_device(device: Any) -> str:
    if not isinstance(device, str) or not re.fullmatch(r"cpu|auto|cuda(:\d+)?", device):
        raise ConfigError(f"Invalid device {device!r} (accepted: {', '.join(DEVICES)}, cuda:N)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"Invalid device {device!r}: CUDA is not available here (accepted: cpu, auto)")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def default_run_dir(algo: str, env: str, optimizer: str, seed: int) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / "train" / safe_name(f"{algo}-{env}-{optimizer}-s{seed}-{stamp}")
    candidate, n = base, 1
    while candidate.exists():
        candidate, n = base.with_name(f"{base.name}-{n}"), n + 1
    return candidate


def _has_compiled_rule(name: str) -> bool:
    """Whether ``name`` is one of rlopt's rules with a compiled kernel (its ``fused`` option is boolean)."""
    try:
        spec = get_spec(name)
    except (ValueError, KeyError):
        return False  # resolve() reports the bad name
    return spec.source == "rlopt" and spec.extra.get("fused") is False


def _steps_per_train_call(agent: AgentHparams, n_envs: int) -> tuple[int, int]:
    """SAC's (env steps between two ``train`` calls, gradient steps per call) from its hyperparameters."""
    freq = agent.kwargs.get("train_freq", 1)
    every = int(freq[0] if isinstance(freq, (tuple, list)) else freq)
    if isinstance(freq, (tuple, list)) and len(freq) > 1 and str(freq[1]).startswith("episode"):
        every = 1000  # episodes of unknown length: MuJoCo's time limit
    env_steps = max(1, every) * n_envs
    gradient_steps = int(agent.kwargs.get("gradient_steps", 1))
    return env_steps, env_steps if gradient_steps < 0 else gradient_steps


def expected_gradient_steps(agent: AgentHparams, timesteps: int, n_envs: int) -> int:
    """Optimizer steps a run will take, from the agent's hyperparameters (PPO: at most, ``target_kl`` may
    stop epochs early).

    PPO: ``ceil(T / (n_steps n_envs))`` rollouts of ``n_epochs * ceil(n_steps n_envs / batch_size)``
    minibatch steps. SAC: ``train`` every ``train_freq`` steps once ``learning_starts`` is passed, with
    ``gradient_steps`` each (``-1``: as many as the env steps collected).
    """
    if agent.algo == "ppo":
        defaults = sb3_defaults("ppo")
        rollout = int(agent.kwargs.get("n_steps", defaults["n_steps"])) * n_envs
        batch = int(agent.kwargs.get("batch_size", defaults["batch_size"]))
        epochs = int(agent.kwargs.get("n_epochs", defaults["n_epochs"]))
        return -(-timesteps // rollout) * epochs * -(-rollout // batch)
    starts = int(agent.kwargs.get("learning_starts", sb3_defaults("sac")["learning_starts"]))
    every, per_call = _steps_per_train_call(agent, n_envs)
    done = -(-timesteps // n_envs) * n_envs
    return max(0, -(-(done - starts) // every)) * per_call


def _plan(config: TrainConfig) -> TrainPlan:
    """Check every field of ``config`` in the order of the form, filling in the defaults."""
    algo = check_algo(config.algo)
    task = check_task(config.env)
    _check_seed_overrides_lr(config)
    agent = resolve_agent(algo, task, config.overrides, lr=None if config.lr is None else float(config.lr))
    timesteps = (
        agent.n_timesteps if config.timesteps is None else _positive_int(config.timesteps, "timesteps")
    )
    n_envs = agent.n_envs if config.n_envs is None else _positive_int(config.n_envs, "n_envs")
    optimizer, fused_auto = _resolve_optimizer(config, agent, timesteps, n_envs)
    threads = DEFAULT_THREADS if config.threads is None else _positive_int(config.threads, "threads")
    eval_freq = (
        max(EVAL_MIN_FREQ, timesteps // DEFAULT_EVALUATIONS)
        if config.eval_freq is None
        else _positive_int(config.eval_freq, "eval_freq")
    )
    eval_episodes = (
        DEFAULT_EVAL_EPISODES
        if config.eval_episodes is None
        else _positive_int(config.eval_episodes, "eval_episodes")
    )
    _positive_int(config.diagnostics_sample_every, "diagnostics_sample_every")
    device = _check_device(config.device)
    interval = _diagnostics_interval(config, agent, n_envs)
    _check_checkpoints(config, agent)
    return TrainPlan(
        config=config,
        agent=agent,
        optimizer=optimizer,
        timesteps=timesteps,
        n_envs=n_envs,
        threads=threads,
        eval_freq=eval_freq,
        eval_episodes=eval_episodes,
        run_dir=_run_dir(config, algo, task, optimizer.name),
        device=device,
        diagnostics_interval=interval,
        fused_auto=fused_auto,
    )


def _check_seed_overrides_lr(config: TrainConfig) -> None:
    if not isinstance(config.seed, int) or isinstance(config.seed, bool) or config.seed < 0:
        raise ConfigError(f"Invalid seed: {config.seed!r} (accepted: an integer >= 0)")
    if not isinstance(config.overrides, Mapping):
        raise ConfigError(f"Invalid overrides: {config.overrides!r} (accepted: a mapping)")
    if config.lr is not None and (
        isinstance(config.lr, bool)
        or not isinstance(config.lr, (int, float))
        or not math.isfinite(config.lr)
        or config.lr <= 0
    ):
        raise ConfigError(f"Invalid learning rate: {config.lr!r} (accepted: a finite number > 0)")


def _resolve_optimizer(
    config: TrainConfig, agent: AgentHparams, timesteps: int, n_envs: int
) -> tuple[ResolvedOptimizer, dict[str, Any] | None]:
    """The run's optimizer, and how ``fused="auto"`` was decided (None where it was not)."""
    extra = dict(config.optimizer_extra)
    fused_auto: dict[str, Any] | None = None
    if _has_compiled_rule(config.optimizer) and extra.get("fused", "auto") == "auto":
        expected = expected_gradient_steps(agent, timesteps, n_envs)
        extra["fused"] = expected >= FUSED_BREAK_EVEN
        fused_auto = {
            "expected_gradient_steps": expected,
            "break_even": FUSED_BREAK_EVEN,
            "fused": extra["fused"],
        }
    try:
        optimizer = resolve(
            config.optimizer,
            lr=initial_learning_rate(agent),
            betas=config.betas,
            eps=config.eps,
            weight_decay=config.weight_decay,
            **extra,
        )
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc)) from exc
    return optimizer, fused_auto


def _diagnostics_interval(config: TrainConfig, agent: AgentHparams, n_envs: int) -> int:
    if config.diagnostics_interval is not None:
        return _positive_int(config.diagnostics_interval, "diagnostics_interval")
    if agent.algo == "ppo":
        return int(agent.kwargs.get("n_steps", 2048)) * n_envs
    return SAC_DIAGNOSTICS_INTERVAL


def _check_checkpoints(config: TrainConfig, agent: AgentHparams) -> None:
    if config.checkpoint_every is not None:
        _positive_int(config.checkpoint_every, "checkpoint_every")
        if agent.kwargs.get("use_sde"):
            raise ConfigError(
                "Invalid checkpoint_every with use_sde=True: gSDE redraws its noise before a checkpoint "
                "could be taken (accepted: no checkpoints, or use_sde=False)"
            )
    if config.resume and config.run_dir is None:
        raise ConfigError("Invalid resume without a run folder (accepted: --resume with --run-dir)")


def _run_dir(config: TrainConfig, algo: str, task: str, optimizer: str) -> Path:
    """The run folder: the one given, if it is new or empty (or, to resume, holds a checkpoint), else a
    new default one."""
    if config.run_dir is None:
        return default_run_dir(algo, task, optimizer, config.seed)
    run_dir = Path(config.run_dir)
    if not run_dir.exists():
        check_folder_can_be_made(run_dir, "run folder")
    if config.resume and (run_dir / CHECKPOINT_FILE).is_file():
        return run_dir
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        accepted = "a folder holding a checkpoint.pt, or a new or empty one" if config.resume else (
            "a new or empty folder, or --resume for a run with a checkpoint")
        raise ConfigError(
            f"Run folder {str(run_dir)!r} already exists and is not empty (accepted: {accepted})"
        )
    return run_dir


def sac_learning_starts(plan: TrainPlan) -> int | None:
    """SAC's ``learning_starts`` (SB3 trains only once ``num_timesteps`` exceeds it); PPO: None."""
    if plan.agent.algo != "sac":
        return None
    return int(plan.agent.kwargs.get("learning_starts", sb3_defaults("sac")["learning_starts"]))

