"""One training run: a :class:`~rlopt.run.config.TrainConfig` in, a run folder and a
:class:`TrainSummary` out.

``run_training(config, on_eval=None)`` validates everything first (:meth:`TrainConfig.validate`,
:mod:`rlopt.run.config`), then builds the envs and the agent with the optimizer injected everywhere
(:mod:`rlopt.run.agent`); only then is the run folder created. Bad input raises
:class:`rlopt.errors.ConfigError` and leaves nothing behind. The run then learns, evaluates every
``eval_freq`` env steps (:mod:`rlopt.run.evaluation`), logs optimizer and stability diagnostics to
TensorBoard (:mod:`rlopt.run.diagnostics`) and finalises ``metrics.json`` whatever happens, with the
status that :func:`_outcome` decides from what ended training:

- ``ok``: the budget was spent;
- ``diverged``: NaN/Inf parameters (the summary is returned, nothing is raised);
- ``pruned`` / ``stopped``: ``on_eval`` raised (``optuna.TrialPruned`` -> ``pruned``) or the user
  interrupted; the exception propagates;
- ``failed``: any other exception, which propagates.

With ``checkpoint_every`` the run writes ``checkpoint.pt`` at rollout starts (:mod:`rlopt.run.checkpoint`);
with ``resume`` a run folder holding one continues from it, bit for bit, after its identity is checked
(:func:`_checkpoint_to_resume`).

Example:
    >>> summary = run_training(TrainConfig(algo="ppo", env="HalfCheetah-v5", optimizer="adopt",
    ...                                    betas=(0.9, 0.9999), timesteps=100_000, seed=0))
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat, configure
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rlopt.errors import ConfigError
from rlopt.run import checkpoint as ckpt
from rlopt.run.agent import agent_optimizers, build_agent, gradient_clipping
from rlopt.run.config import TrainConfig, TrainPlan, sac_learning_starts
from rlopt.run.diagnostics import DiagnosticsCallback, Diverged, StabilityTracker
from rlopt.run.envs import make_eval_env, make_train_env
from rlopt.run.evaluation import EvalCallback, EvalPoint
from rlopt.run.folder import (
    config_identity,
    jsonable,
    plan_identity,
    read_json,
    rewrite_eval_csv,
    start_run_folder,
    versions,
    write_json,
)
from rlopt.run.metrics import run_metric
from rlopt.run.tensorboard import write_hparams_end, write_hparams_start

log = logging.getLogger(__name__)

PARAMETER_CHECK_EVERY = 100
"""Env steps between two checks for non-finite parameters (PPO: every rollout, being longer)."""


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
    resumed_from: tuple[int, ...] = ()
    """The env steps of the checkpoints the run was resumed from, in order (none: it never stopped).
    ``wall_time_s`` counts the time up to each of them, not the time lost after it."""

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
            "resumed_from": list(self.resumed_from),
        }


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


def run_training(
    config: TrainConfig | TrainPlan, on_eval: Callable[[EvalPoint], Any] | None = None
) -> TrainSummary:
    """Train one agent as ``config`` says and write its run folder (see the module docstring).

    Args:
        config: the run; a :class:`TrainPlan` (a config validated already, e.g. by a study worker that
            also needs the plan) is trained as it is, without validating again.
        on_eval: called with every :class:`EvalPoint`; raising stops training (status ``pruned`` for
            ``optuna.TrialPruned``, else ``stopped``) and the exception propagates.

    Raises:
        ConfigError: bad input, before anything is written.
    """
    plan = config if isinstance(config, TrainPlan) else config.validate()
    with torch_threads(plan.threads):
        return _train(plan, on_eval)


@dataclass
class _Loop:
    """The parts of a run that watch its training: evaluation, diagnostics, step count, progress."""

    stability: StabilityTracker
    evaluator: EvalCallback
    diagnostics: DiagnosticsCallback
    steps: StepCounter
    progress: Any
    start: float
    checkpoints: ckpt.CheckpointCallback | None = None
    resumed_from: tuple[int, ...] = ()

    @property
    def callbacks(self) -> CallbackList:
        parts: list[Any] = [self.diagnostics, self.evaluator]
        if self.progress is not None:
            parts.append(self.progress)
        if self.checkpoints is not None:  # last: the diagnostics check the parameters first
            parts.append(self.checkpoints)
        return CallbackList(parts)

    def close_progress(self) -> None:
        if self.progress is not None:
            self.progress.close()


def _train(plan: TrainPlan, on_eval: Callable[[EvalPoint], Any] | None) -> TrainSummary:
    _warn_no_gradient_step(plan)
    saved = _checkpoint_to_resume(plan)
    env, eval_env, model = _build(plan)
    try:
        if saved is not None:
            _restore(plan, model, env, eval_env, saved)
        else:
            config_json = _start_folder(plan)
    except BaseException:
        env.close()
        eval_env.close()
        raise
    if saved is None:
        logger, writer = _start_logging(plan, model, config_json)
    else:
        logger, writer = _resume_logging(plan, model, saved)
    loop = _watch(plan, model, eval_env, writer, on_eval, saved)
    try:
        error, in_final_evaluation = _learn(plan, model, loop)
        status, reason = _outcome(plan, model, loop, error, in_final_evaluation)
        summary = _finish(plan, model, loop, writer, status, reason)
    finally:
        loop.steps.close()
        logger.close()
        env.close()
        eval_env.close()
    if error is not None and status not in ("ok", "diverged"):
        raise error
    return summary


def _checkpoint_to_resume(plan: TrainPlan) -> dict[str, Any] | None:
    """The run folder's checkpoint when the run is to resume from it, checked to be the same run."""
    if not plan.config.resume:
        return None
    saved = ckpt.read_checkpoint(plan.run_dir)
    if saved is None:
        path = plan.run_dir / ckpt.CHECKPOINT_FILE
        if path.is_file():
            raise ConfigError(
                f"Invalid checkpoint {str(path)!r}: not of format {ckpt.FORMAT} "
                "(accepted: a checkpoint this rlopt wrote; or remove it and train the run anew)"
            )
        return None
    planned = plan_identity(plan.as_config_json())
    recorded = config_identity(read_json(plan.run_dir / "config.json"))
    if recorded != planned:
        differing = sorted(k for k in planned or {} if (recorded or {}).get(k) != (planned or {}).get(k))
        raise ConfigError(
            f"Invalid --resume of {str(plan.run_dir)!r}: its config.json is another run "
            f"({', '.join(differing)} differ; accepted: the options of its command.txt)"
        )
    return saved


def _restore(plan: TrainPlan, model: Any, env: VecEnv, eval_env: VecEnv, saved: dict[str, Any]) -> None:
    """Put the checkpoint into the freshly built agent and envs; the run folder goes back to it: its
    evaluations after the checkpoint are dropped and the resumed segment's versions recorded."""
    ckpt.restore_agent(model, agent_optimizers(model), saved["agent"])
    ckpt.restore_vec_env(env, saved["train_env"])
    ckpt.restore_vec_env(eval_env, saved["eval_env"])
    rewrite_eval_csv(plan.run_dir / "eval.csv", [p.csv_row() for p in _saved_points(saved)])
    recorded = read_json(plan.run_dir / "versions.json")
    segments = [*recorded.get("resumed", []), {"from_timesteps": int(saved["timesteps"]), **versions()}]
    write_json(plan.run_dir / "versions.json", {**recorded, "resumed": segments})
    write_json(plan.run_dir / "metrics.json", {"status": "running", "reason": "training (resumed)"})
    log.info("resuming %s from its checkpoint at %s env steps", plan.run_dir, f"{saved['timesteps']:,}")


def _warn_no_gradient_step(plan: TrainPlan) -> None:
    starts = sac_learning_starts(plan)
    if starts is not None and plan.expected_timesteps <= starts:
        log.warning(
            "SAC's learning_starts is %d but the run has %d env steps: no gradient step will run "
            "(raise --timesteps above it or lower it, e.g. --set learning_starts=%d)",
            starts,
            plan.expected_timesteps,
            max(0, plan.timesteps // 10),
        )


def _start_folder(plan: TrainPlan) -> dict[str, Any]:
    """Create the run folder with its config, command and versions; returns the ``config.json`` data."""
    config_json = plan.as_config_json()
    command = plan.config.command or shlex.join(
        ["rlopt", "train", *replace(plan.config, run_dir=plan.run_dir).to_cli_args()]
    )
    start_run_folder(plan.run_dir, config_json, command)
    log.info(
        "%s on %s with %s (agent: %s); run folder %s",
        plan.agent.algo.upper(),
        plan.agent.task,
        plan.optimizer.name,
        plan.agent.source,
        plan.run_dir,
    )
    return config_json


def _start_logging(plan: TrainPlan, model: Any, config_json: dict[str, Any]) -> tuple[Logger, Any]:
    """SB3's logger, writing TensorBoard events with the run's hyperparameters and config."""
    # the event files lie in the run folder itself, so TensorBoard names the run by it (rlopt.run.tensorboard)
    logger = configure(str(plan.run_dir), ["tensorboard"])
    model.set_logger(logger)
    writer = _tb_writer(logger)
    write_hparams_start(writer, plan.hparams(), ("eval/mean_return", "eval/std_return"))
    logger.record(
        "config",
        "```json\n" + json.dumps(jsonable(config_json), indent=2) + "\n```",
        exclude=("stdout", "log", "json", "csv"),
    )
    logger.dump(0)
    return logger, writer


def _resume_logging(plan: TrainPlan, model: Any, saved: dict[str, Any]) -> tuple[Logger, Any]:
    """SB3's logger for a resumed run, holding what it held at the checkpoint: TensorBoard drops the
    events the stopped run wrote after the checkpoint (``purge_step``: every event at the checkpoint's
    step was written before it), so every curve has one value per step."""
    from torch.utils.tensorboard import SummaryWriter

    output = TensorBoardOutputFormat(str(plan.run_dir))
    output.writer.close()
    output.writer = SummaryWriter(log_dir=str(plan.run_dir), purge_step=int(saved["timesteps"]) + 1)
    logger = Logger(str(plan.run_dir), [output])
    ckpt.restore_logger(logger, saved["logger"])
    model.set_logger(logger)
    return logger, output.writer


def _watch(
    plan: TrainPlan,
    model: Any,
    eval_env: VecEnv,
    writer: Any,
    on_eval: Callable[[EvalPoint], Any] | None,
    saved: dict[str, Any] | None = None,
) -> _Loop:
    """The callbacks of the run (in the state of ``saved``, a checkpoint, when resuming); the wall clock
    starts here."""
    stability = StabilityTracker(plan.config.stability)
    start = time.perf_counter() - (float(saved["elapsed_s"]) if saved is not None else 0.0)
    evaluator = EvalCallback(
        eval_env,
        plan.eval_freq,
        plan.eval_episodes,
        plan.run_dir / "eval.csv",
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
        sample_every=plan.config.diagnostics_sample_every,
        check_every=PARAMETER_CHECK_EVERY,
    )
    steps = StepCounter(agent_optimizers(model)["policy" if plan.agent.algo == "ppo" else "critic"])
    progress = None
    if plan.config.progress:
        from rlopt.run.progress import ProgressCallback

        progress = ProgressCallback(
            plan.timesteps,
            f"{plan.agent.algo} {plan.agent.task} {plan.optimizer.name}",
            plan.expected_evaluations,
            bar=sys.stdout.isatty(),
        )
        evaluator.starting.append(progress.on_eval_start)
        evaluator.listeners.append(progress.on_eval)
    loop = _Loop(stability, evaluator, diagnostics, steps, progress, start)
    if saved is not None:
        _load_loop(loop, saved)
    if plan.config.checkpoint_every is not None:
        loop.checkpoints = ckpt.CheckpointCallback(
            plan.config.checkpoint_every,
            lambda: _save_checkpoint(plan, model, eval_env, loop),
            start=int(saved["timesteps"]) if saved is not None else 0,
        )
    return loop


def _save_checkpoint(plan: TrainPlan, model: Any, eval_env: VecEnv, loop: _Loop) -> None:
    ckpt.write_checkpoint(
        plan.run_dir,
        {
            "timesteps": int(model.num_timesteps),
            "elapsed_s": time.perf_counter() - loop.start,
            "agent": ckpt.agent_state(model, agent_optimizers(model)),
            "train_env": ckpt.vec_env_state(model.get_env()),
            "eval_env": ckpt.vec_env_state(eval_env),
            "logger": ckpt.logger_state(model.logger),
            **_loop_state(loop),
        },
    )


def _loop_state(loop: _Loop) -> dict[str, Any]:
    """What the run's own bookkeeping must carry over a checkpoint."""
    return {
        "evaluations": [dataclasses.asdict(p) for p in loop.evaluator.points],
        "evaluator": loop.evaluator.state(),
        "stability": loop.stability.state(),
        "diagnostics": loop.diagnostics.state(),
        "gradient_steps": loop.steps.count,
        "resumed_from": list(loop.resumed_from),
    }


def _saved_points(saved: dict[str, Any]) -> list[EvalPoint]:
    return [EvalPoint(**{**p, "returns": tuple(p["returns"])}) for p in saved["evaluations"]]


def _load_loop(loop: _Loop, saved: dict[str, Any]) -> None:
    loop.evaluator.load_state(saved["evaluator"], _saved_points(saved))
    loop.stability.load_state(saved["stability"])
    loop.diagnostics.load_state(saved["diagnostics"])
    loop.steps.count = int(saved["gradient_steps"])
    loop.resumed_from = (*saved["resumed_from"], int(saved["timesteps"]))


def _learn(plan: TrainPlan, model: Any, loop: _Loop) -> tuple[BaseException | None, bool]:
    """Train, then evaluate once more if the last update was not evaluated.

    Returns:
        What ended the run early (None when the budget was spent), and whether it came from that final
        evaluation.
    """
    try:
        resuming = bool(loop.resumed_from)
        with distribution_checks_off(plan.agent.algo == "ppo"):
            # resumed: SB3 adds num_timesteps to the steps asked for, so the budget is the run's
            model.learn(
                total_timesteps=plan.timesteps - model.num_timesteps if resuming else plan.timesteps,
                callback=loop.callbacks,
                reset_num_timesteps=not resuming,
            )
        if not _params_finite(model):  # the last update is followed by no rollout start to check it
            raise Diverged(f"non-finite parameters after the last update, at {model.num_timesteps} env steps")
    except BaseException as exc:
        if not isinstance(exc, Diverged):
            loop.diagnostics.count_nan_events()
        return exc, False
    finally:
        loop.diagnostics.close()
    points = loop.evaluator.points
    try:
        if not points or points[-1].timesteps < model.num_timesteps:
            with distribution_checks_off(plan.agent.algo == "ppo"):
                loop.evaluator.evaluate()
    except BaseException as exc:
        return exc, True
    finally:
        loop.close_progress()
    return None, False


def _outcome(
    plan: TrainPlan, model: Any, loop: _Loop, error: BaseException | None, in_final_evaluation: bool
) -> tuple[str, str]:
    """The run's status and reason, from what ended it (the one place that decides them)."""
    if error is None:
        reason = f"trained {model.num_timesteps} env steps, {loop.steps.count} gradient steps"
        starts = sac_learning_starts(plan)
        if starts is not None and model.num_timesteps <= starts:
            reason += f" (SAC's learning_starts={starts} was not passed)"
        return "ok", reason
    if isinstance(error, Diverged):
        return "diverged", str(error)
    from_on_eval = error is loop.evaluator.on_eval_error
    if not in_final_evaluation and not from_on_eval and _looks_diverged(error, model):
        return "diverged", f"non-finite parameters or outputs ({_one_line(error)})"
    return _stop_status(error, from_on_eval), _one_line(error)


def _finish(plan: TrainPlan, model: Any, loop: _Loop, writer: Any, status: str, reason: str) -> TrainSummary:
    """Write the final files of the run folder: stability scalars, the model, ``metrics.json``."""
    loop.close_progress()
    wall = time.perf_counter() - loop.start
    loop.diagnostics.write_stability(model.num_timesteps)
    summary = TrainSummary(
        status=status,
        reason=reason,
        run_dir=plan.run_dir,
        evaluations=list(loop.evaluator.points),
        stability=loop.stability.as_dict(),
        timesteps_done=int(model.num_timesteps),
        wall_time_s=wall,
        eval_time_s=loop.evaluator.eval_time_s,
        gradient_steps=loop.steps.count,
        resumed_from=loop.resumed_from,
    )
    if status in ("ok", "diverged", "pruned"):  # nothing left to resume
        (plan.run_dir / ckpt.CHECKPOINT_FILE).unlink(missing_ok=True)
    if plan.config.save_model and status != "diverged":
        model.save(plan.run_dir / "model.zip")
        if isinstance(model.get_env(), VecNormalize):
            model.get_env().save(str(plan.run_dir / "vecnormalize.pkl"))
    write_json(plan.run_dir / "metrics.json", summary.metrics())
    write_hparams_end(writer, status)
    return summary
