"""Periodic evaluation of the deterministic policy on a separate env, reported as :class:`EvalPoint`.

The evaluation env copies the training ``VecNormalize`` statistics before each evaluation and never
updates them (``sync_envs_normalization``); returns are the raw episode returns from ``Monitor``
(``evaluate_policy(..., return_episode_rewards=True)``).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, sync_envs_normalization

from rlopt.diagnostics import StabilityTracker

EVAL_CSV_COLUMNS = (
    "timesteps",
    "mean_return",
    "std_return",
    "min_return",
    "max_return",
    "n_episodes",
    "wall_time_s",
)


@dataclass(frozen=True)
class EvalPoint:
    """One evaluation: ``timesteps`` (global env steps when it ran) and the episode returns."""

    timesteps: int
    mean_return: float
    std_return: float
    returns: tuple[float, ...]
    wall_time_s: float

    def csv_row(self) -> list[Any]:
        return [
            self.timesteps,
            self.mean_return,
            self.std_return,
            min(self.returns),
            max(self.returns),
            len(self.returns),
            round(self.wall_time_s, 3),
        ]


class EvalCallback(BaseCallback):
    """Evaluate every ``freq`` env steps; append to ``eval.csv``, TensorBoard and call ``on_eval``.

    If ``on_eval`` raises, the exception is kept in :attr:`on_eval_error` and propagates (training stops).

    Args:
        eval_env: the evaluation env (see :func:`rlopt.envs.make_eval_env`).
        freq: env steps between evaluations (at the first step at or past each multiple of ``freq``).
        episodes: episodes per evaluation.
        csv_path: ``eval.csv`` of the run, header already written.
        writer: a ``SummaryWriter`` or ``None``.
        stability: the run's tracker (return collapses).
        on_eval: the caller's hook, or ``None``.
        start_time: ``time.perf_counter()`` at the start of training.
    """

    def __init__(
        self,
        eval_env: VecEnv,
        freq: int,
        episodes: int,
        csv_path: Path,
        writer: Any,
        stability: StabilityTracker,
        on_eval: Callable[[EvalPoint], Any] | None,
        start_time: float,
    ) -> None:
        super().__init__(verbose=0)
        self.eval_env = eval_env
        self.freq = freq
        self.episodes = episodes
        self.csv_path = csv_path
        self.writer = writer
        self.stability = stability
        self.on_eval = on_eval
        self.start_time = start_time
        self.points: list[EvalPoint] = []
        self.on_eval_error: BaseException | None = None
        self.listeners: list[Callable[[EvalPoint], None]] = []
        self._next = freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.freq + 1) * self.freq
            self.evaluate()
        return True

    def evaluate(self) -> EvalPoint:
        """Run one evaluation now and report it."""
        sync_envs_normalization(self.training_env, self.eval_env)
        returns, _ = evaluate_policy(
            self.model,
            self.eval_env,
            n_eval_episodes=self.episodes,
            deterministic=True,
            return_episode_rewards=True,
        )
        values = np.asarray(returns, dtype=np.float64)
        point = EvalPoint(
            timesteps=int(self.num_timesteps),
            mean_return=float(values.mean()),
            std_return=float(values.std()),
            returns=tuple(float(v) for v in values),
            wall_time_s=time.perf_counter() - self.start_time,
        )
        self.points.append(point)
        with self.csv_path.open("a", newline="") as fh:
            csv.writer(fh).writerow(point.csv_row())
        self.stability.observe_return(point.mean_return)
        if self.writer is not None:
            self.writer.add_scalar("eval/mean_return", point.mean_return, point.timesteps)
            self.writer.add_scalar("eval/std_return", point.std_return, point.timesteps)
            self.writer.add_scalar(
                "stability/return_collapses", self.stability.return_collapses, point.timesteps
            )
            self.writer.flush()
        for listener in self.listeners:
            listener(point)
        if self.on_eval is not None:
            try:
                self.on_eval(point)
            except BaseException as exc:
                self.on_eval_error = exc
                raise
        return point
