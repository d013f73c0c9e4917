"""One training run: a :class:`TrainConfig` in, a run folder and a :class:`TrainSummary` out.

``run_training(config, on_eval=None)`` validates everything first (optimizer through
``rlopt.optim.resolve``, agent hyperparameters against the SB3 signatures, task, device, run folder),
then builds the envs and the agent with the optimizer injected everywhere (:mod:`rlopt.run.agent`); only
then is the run folder created. Bad input raises :class:`rlopt.errors.ConfigError` and leaves nothing
behind. The run then learns, evaluates every ``eval_freq`` env steps (:mod:`rlopt.run.evaluation`), logs
optimizer and stability diagnostics to TensorBoard (:mod:`rlopt.run.diagnostics`) and finalises
``metrics.json`` whatever happens:

- ``ok``: the budget was spent;
- ``diverged``: NaN/Inf parameters (the summary is returned, nothing is raised);
- ``pruned`` / ``stopped``: ``on_eval`` raised (``optuna.TrialPruned`` -> ``pruned``) or the user
  interrupted; the exception propagates;
- ``failed``: any other exception, which propagates.

Example:
    >>> summary = run_training(TrainConfig(algo="ppo", env="HalfCheetah-v5", optimizer="adopt",
    ...                                    betas=(0.9, 0.9999), timesteps=100_000, seed=0))
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat, configure
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rlopt.config.agents import AgentHparams, check_algo, initial_learning_rate, resolve_agent, sb3_defaults
from rlopt.config.suites import check_task
from rlopt.errors import ConfigError
from rlopt.optim import ResolvedOptimizer, get_spec, resolve
from rlopt.optim._compiled import FUSED_BREAK_EVEN
from rlopt.run.agent import agent_optimizers, build_agent, effective_extra, gradient_clipping
from rlopt.run.diagnostics import DiagnosticsCallback, Diverged, StabilityThresholds, StabilityTracker
from rlopt.run.envs import make_eval_env, make_train_env
from rlopt.run.evaluation import EvalCallback, EvalPoint
from rlopt.run.folder import jsonable, start_run_folder, write_json
from rlopt.run.metrics import run_metric
from rlopt.run.tensorboard import write_hparams_end, write_hparams_start

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda", "auto")
SAC_DIAGNOSTICS_INTERVAL = 1000
PARAMETER_CHECK_EVERY = 100
"""Env steps between two checks for non-finite parameters (PPO: every rollout, being longer)."""
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

    def validate(self) -> TrainPlan:
        """Resolve and check every field; raise :class:`ConfigError` naming the first bad value."""
        return _plan(self)

    def to_cli_args(self) -> list[str]:
        """``rlopt train`` arguments that reproduce this config."""
        args = [
            "--algo",
            self.algo,
            "--env",
            self.env,
            "--optimizer",
            self.optimizer,
            "--seed",
            str(self.seed),
            "--device",
            self.device,
        ]
        for flag, value in (
            ("--lr", self.lr),
            ("--eps", self.eps),
            ("--weight-decay", self.weight_decay),
            ("--timesteps", self.timesteps),
            ("--n-envs", self.n_envs),
            ("--threads", self.threads),
            ("--eval-freq", self.eval_freq),
            ("--eval-episodes", self.eval_episodes),
        ):
            if value is not None:
                args += [flag, repr(value) if isinstance(value, float) else str(value)]
        if self.betas is not None:
            args += ["--betas", ",".join(repr(float(b)) for b in self.betas)]
        for key, value in _flatten(self.overrides).items():
            args += ["--set", f"{key}={_yaml_scalar(value)}"]
        for key, value in _flatten(self.optimizer_extra).items():
            args += ["--optimizer-arg", f"{key}={_yaml_scalar(value)}"]
        if self.run_dir is not None:
            args += ["--run-dir", str(self.run_dir)]
        if self.save_model:
            args.append("--save-model")
        return args


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


@dataclass
class TrainSummary:
    """What a run produced; :meth:`metrics` is ``metrics.json``."""

    status: str
    reason: str
    run_dir: Path
    evaluations: list[EvalPoint]
    stability: dict[str, int]
    timesteps_done: int
    wall_time_s: float
    eval_time_s: float = 0.0
    """Of ``wall_time_s``, the seconds spent evaluating."""
    gradient_steps: int = 0
    """Optimizer steps of the policy (PPO) or the critic (SAC): 0 if SAC never passed ``learning_starts``."""

    @property
    def returns(self) -> list[float]:
        """The mean return of each evaluation, in order."""
        return [p.mean_return for p in self.evaluations]

    @property
    def final_return(self) -> float | None:
        """The last evaluation's mean return (:func:`rlopt.run.metrics.run_metric`)."""
        return run_metric("final_return", self.returns) if self.evaluations else None

    @property
    def best_return(self) -> float | None:
        return max(self.returns) if self.evaluations else None

    @property
    def auc(self) -> float | None:
        """Mean evaluation return over the evaluation points (normalised area under the curve,
        :func:`rlopt.run.metrics.run_metric`)."""
        return run_metric("auc", self.returns) if self.evaluations else None

    @property
    def steps_per_s(self) -> float:
        return self.timesteps_done / self.wall_time_s if self.wall_time_s > 0 else 0.0

    def metrics(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "final_return": self.final_return,
            "best_return": self.best_return,
            "auc": self.auc,
            "stability": self.stability,
            "timesteps_done": self.timesteps_done,
            "wall_time_s": round(self.wall_time_s, 3),
            "steps_per_s": round(self.steps_per_s, 1),
            "n_evaluations": len(self.evaluations),
            "eval_time_s": round(self.eval_time_s, 3),
            "eval_share": round(self.eval_time_s / self.wall_time_s, 4) if self.wall_time_s > 0 else 0.0,
            "gradient_steps": self.gradient_steps,
        }


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


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def default_run_dir(algo: str, env: str, optimizer: str, seed: int) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / "train" / _safe_name(f"{algo}-{env}-{optimizer}-s{seed}-{stamp}")
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
    algo = check_algo(config.algo)
    task = check_task(config.env)
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
    agent = resolve_agent(algo, task, config.overrides, lr=None if config.lr is None else float(config.lr))
    timesteps = (
        agent.n_timesteps if config.timesteps is None else _positive_int(config.timesteps, "timesteps")
    )
    n_envs = agent.n_envs if config.n_envs is None else _positive_int(config.n_envs, "n_envs")
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
    if config.diagnostics_interval is not None:
        interval = _positive_int(config.diagnostics_interval, "diagnostics_interval")
    elif algo == "ppo":
        interval = int(agent.kwargs.get("n_steps", 2048)) * n_envs
    else:
        interval = SAC_DIAGNOSTICS_INTERVAL
    if config.run_dir is None:
        run_dir = default_run_dir(algo, task, optimizer.name, config.seed)
    else:
        run_dir = Path(config.run_dir)
        if not run_dir.exists():
            from rlopt.paths import check_folder_can_be_made

            check_folder_can_be_made(run_dir, "run folder")
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise ConfigError(
                f"Run folder {str(run_dir)!r} already exists and is not empty "
                "(accepted: a new or empty folder)"
            )
    return TrainPlan(
        config=config,
        agent=agent,
        optimizer=optimizer,
        timesteps=timesteps,
        n_envs=n_envs,
        threads=threads,
        eval_freq=eval_freq,
        eval_episodes=eval_episodes,
        run_dir=run_dir,
        device=device,
        diagnostics_interval=interval,
        fused_auto=fused_auto,
    )


def _build(plan: TrainPlan) -> tuple[VecEnv, VecEnv, Any]:
    """Envs and agent; a failure caused by the hyperparameters becomes a ConfigError."""
    agent = plan.agent
    gamma = float(agent.kwargs.get("gamma", 0.99))
    env = eval_env = None
    try:
        env = make_train_env(agent.task, plan.n_envs, plan.config.seed, agent.normalize, gamma)
        eval_env = make_eval_env(agent.task, plan.config.seed, env)
        model = build_agent(agent, env, plan.optimizer, plan.config.seed, plan.device)
    except (TypeError, ValueError, AssertionError, KeyError) as exc:
        for e in (env, eval_env):
            if e is not None:
                e.close()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"Invalid {agent.algo.upper()} setup for {agent.task}: {first}") from exc
    return env, eval_env, model


def _tb_writer(logger: Logger) -> Any:
    for fmt in logger.output_formats:
        if isinstance(fmt, TensorBoardOutputFormat):
            return fmt.writer
    return None


def sac_learning_starts(plan: TrainPlan) -> int | None:
    """SAC's ``learning_starts`` (SB3 trains only once ``num_timesteps`` exceeds it); PPO: None."""
    if plan.agent.algo != "sac":
        return None
    return int(plan.agent.kwargs.get("learning_starts", sb3_defaults("sac")["learning_starts"]))


class StepCounter:
    """Counts ``optimizer.step()`` calls through a step post-hook (removed by :meth:`close`)."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.count = 0
        self._handle = optimizer.register_step_post_hook(self._count)

    def _count(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.count += 1

    def close(self) -> None:
        self._handle.remove()


def _params_finite(model: Any) -> bool:
    params = list(model.policy.parameters())
    if getattr(model, "log_ent_coef", None) is not None:
        params.append(model.log_ent_coef)
    return all(bool(torch.isfinite(p).all()) for p in params)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)``, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def distribution_checks_off(off: bool) -> Iterator[None]:
    """Turn torch.distributions' argument validation off for the block (if ``off``), then restore it.

    PPO's parameters change only in ``train()`` and are scanned for NaN/Inf at every rollout start and
    after the last update, so the per-call checks of every action distribution (5% of a PPO
    HalfCheetah run, ``scripts/bench_training.py``) catch nothing more there. SAC keeps them: its
    parameters change at every step and are scanned every :data:`PARAMETER_CHECK_EVERY` steps.
    """
    if not off:
        yield
        return
    previous = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)


def _looks_diverged(exc: BaseException, model: Any) -> bool:
    """Non-finite parameters, or torch.distributions rejecting NaN/Inf policy outputs."""
    if isinstance(exc, KeyboardInterrupt):
        return False
    if not _params_finite(model):
        return True
    return isinstance(exc, ValueError) and "found invalid values" in str(exc)


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _stop_status(exc: BaseException, from_on_eval: bool) -> str:
    if from_on_eval:
        try:
            import optuna

            if isinstance(exc, optuna.TrialPruned):
                return "pruned"
        except ImportError:
            pass
        return "stopped"
    return "stopped" if isinstance(exc, KeyboardInterrupt) else "failed"


def run_training(config: TrainConfig, on_eval: Callable[[EvalPoint], Any] | None = None) -> TrainSummary:
    """Train one agent as ``config`` says and write its run folder (see the module docstring).

    Args:
        config: the run.
        on_eval: called with every :class:`EvalPoint`; raising stops training (status ``pruned`` for
            ``optuna.TrialPruned``, else ``stopped``) and the exception propagates.

    Raises:
        ConfigError: bad input, before anything is written.
    """
    plan = config.validate()
    with torch_threads(plan.threads):
        return _train(plan, on_eval)


def _train(plan: TrainPlan, on_eval: Callable[[EvalPoint], Any] | None) -> TrainSummary:
    config = plan.config
    starts = sac_learning_starts(plan)
    if starts is not None and plan.expected_timesteps <= starts:
        log.warning(
            "SAC's learning_starts is %d but the run has %d env steps: no gradient step will run "
            "(raise --timesteps above it or lower it, e.g. --set learning_starts=%d)",
            starts,
            plan.expected_timesteps,
            max(0, plan.timesteps // 10),
        )
    env, eval_env, model = _build(plan)
    run_dir = plan.run_dir
    config_json = plan.as_config_json()
    command = config.command or shlex.join(
        ["rlopt", "train", *replace(config, run_dir=run_dir).to_cli_args()]
    )
    try:
        start_run_folder(run_dir, config_json, command)
    except BaseException:
        env.close()
        eval_env.close()
        raise
    log.info(
        "%s on %s with %s (agent: %s); run folder %s",
        plan.agent.algo.upper(),
        plan.agent.task,
        plan.optimizer.name,
        plan.agent.source,
        run_dir,
    )

    # the event files lie in the run folder itself, so TensorBoard names the run by it (rlopt.run.tensorboard)
    logger = configure(str(run_dir), ["tensorboard"])
    model.set_logger(logger)
    writer = _tb_writer(logger)
    write_hparams_start(writer, plan.hparams(), ("eval/mean_return", "eval/std_return"))
    logger.record(
        "config",
        "```json\n" + json.dumps(jsonable(config_json), indent=2) + "\n```",
        exclude=("stdout", "log", "json", "csv"),
    )
    logger.dump(0)

    stability = StabilityTracker(config.stability)
    start = time.perf_counter()
    evaluator = EvalCallback(
        eval_env,
        plan.eval_freq,
        plan.eval_episodes,
        run_dir / "eval.csv",
        writer,
        stability,
        on_eval,
        start,
    )
    diagnostics = DiagnosticsCallback(
        agent_optimizers(model),
        writer,
        stability,
        plan.agent.algo,
        measure_pre_clip=gradient_clipping(plan.agent, plan.optimizer)["agent"] is not None,
        interval=plan.diagnostics_interval,
        sample_every=config.diagnostics_sample_every,
        check_every=PARAMETER_CHECK_EVERY,
    )
    steps = StepCounter(agent_optimizers(model)["policy" if plan.agent.algo == "ppo" else "critic"])
    callbacks: list[Any] = [diagnostics, evaluator]
    progress = None
    if config.progress:
        from rlopt.run.progress import ProgressCallback

        progress = ProgressCallback(
            plan.timesteps,
            f"{plan.agent.algo} {plan.agent.task} {plan.optimizer.name}",
            plan.expected_evaluations,
            bar=sys.stdout.isatty(),
        )
        evaluator.starting.append(progress.on_eval_start)
        evaluator.listeners.append(progress.on_eval)
        callbacks.append(progress)

    status, reason, pending = "ok", "", None
    try:
        with distribution_checks_off(plan.agent.algo == "ppo"):
            model.learn(total_timesteps=plan.timesteps, callback=CallbackList(callbacks))
        if not _params_finite(model):  # the last update is followed by no rollout start to check it
            raise Diverged(f"non-finite parameters after the last update, at {model.num_timesteps} env steps")
    except Diverged as exc:
        status, reason = "diverged", str(exc)
    except BaseException as exc:
        from_on_eval = exc is evaluator.on_eval_error
        diagnostics.count_nan_events()
        if not from_on_eval and _looks_diverged(exc, model):
            status, reason = "diverged", f"non-finite parameters or outputs ({_one_line(exc)})"
        else:
            status = _stop_status(exc, from_on_eval)
            reason = _one_line(exc)
            pending = exc
    finally:
        diagnostics.close()

    try:
        if status == "ok" and (not evaluator.points or evaluator.points[-1].timesteps < model.num_timesteps):
            try:
                with distribution_checks_off(plan.agent.algo == "ppo"):
                    evaluator.evaluate()
            except BaseException as exc:
                status = _stop_status(exc, exc is evaluator.on_eval_error)
                reason, pending = _one_line(exc), exc
            finally:
                if progress is not None:
                    progress.close()
        if progress is not None:
            progress.close()
        wall = time.perf_counter() - start
        if status == "ok":
            reason = f"trained {model.num_timesteps} env steps, {steps.count} gradient steps"
            if starts is not None and model.num_timesteps <= starts:
                reason += f" (SAC's learning_starts={starts} was not passed)"
        diagnostics.write_stability(model.num_timesteps)
        summary = TrainSummary(
            status=status,
            reason=reason,
            run_dir=run_dir,
            evaluations=list(evaluator.points),
            stability=stability.as_dict(),
            timesteps_done=int(model.num_timesteps),
            wall_time_s=wall,
            eval_time_s=evaluator.eval_time_s,
            gradient_steps=steps.count,
        )
        if config.save_model and status != "diverged":
            model.save(run_dir / "model.zip")
            if isinstance(model.get_env(), VecNormalize):
                model.get_env().save(str(run_dir / "vecnormalize.pkl"))
        write_json(run_dir / "metrics.json", summary.metrics())
        write_hparams_end(writer, status)
    finally:
        steps.close()
        logger.close()
        env.close()
        eval_env.close()
    if pending is not None:
        raise pending
    return summary
