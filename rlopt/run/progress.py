"""Progress of one training run: a rich bar on a terminal, one line per evaluation otherwise.

Both show env steps, steps/s, the last evaluation return and the time left, counting evaluation:

- steps/s is env steps done over the wall time since training started, evaluation included (what the
  final summary reports);
- the time left is ``(steps left) / (training steps/s, evaluation excluded)`` plus the evaluations still
  to come times the mean duration of those done so far (before the first one, training time only).

On a terminal (``stdout`` a TTY) the bar goes to stderr and says ``evaluating`` while an evaluation,
the final one included, runs; otherwise each evaluation prints one flushed line to ``stdout``, e.g.
``progress: 10,000/20,000 steps (50%), 312 steps/s, eval return 1,234.5, ETA 0:00:41``, so that a run
piped to a file or ``tee`` shows it is alive.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text
from stable_baselines3.common.callbacks import BaseCallback

from rlopt.run.evaluation import EvalPoint

UPDATE_EVERY_S = 0.2
"""Least seconds between two updates of the bar's step count (a lock and a dict update per step cost)."""


class Estimate:
    """Steps/s and time left of a run whose evaluations are part of the wall time (see the module)."""

    def __init__(self, total: int, evaluations: int, clock: Any = time.perf_counter) -> None:
        self.total = total
        self.evaluations = evaluations
        self.clock = clock
        self.start = clock()
        self.steps = 0
        self.evaluated = 0
        self.eval_time = 0.0
        self._eval_began: float | None = None

    def eval_started(self) -> None:
        self._eval_began = self.clock()

    def eval_done(self, duration: float) -> None:
        self._eval_began = None
        self.evaluated += 1
        self.eval_time += duration

    @property
    def evaluating(self) -> bool:
        return self._eval_began is not None

    def steps_per_s(self, now: float | None = None) -> float | None:
        elapsed = (self.clock() if now is None else now) - self.start
        return self.steps / elapsed if elapsed > 0 and self.steps else None

    def seconds_left(self, now: float | None = None) -> float | None:
        now = self.clock() if now is None else now
        in_eval = now - self._eval_began if self._eval_began is not None else 0.0
        train_time = now - self.start - self.eval_time - in_eval
        if self.steps <= 0 or train_time <= 0:
            return None
        left = max(0, self.total - self.steps) / (self.steps / train_time)
        if self.evaluated:
            evals_left = max(0, self.evaluations - self.evaluated)
            left += max(0.0, evals_left * self.eval_time / self.evaluated - in_eval)
        return left


def _clock_text(seconds: float | None) -> str:
    return "-:--:--" if seconds is None else str(timedelta(seconds=round(seconds)))


class _Rate(ProgressColumn):
    def __init__(self, estimate: Estimate) -> None:
        super().__init__()
        self.estimate = estimate

    def render(self, task: Task) -> Text:
        rate = self.estimate.steps_per_s()
        return Text("-- steps/s" if rate is None else f"{rate:,.0f} steps/s", style="progress.data.speed")


class _Left(ProgressColumn):
    def __init__(self, estimate: Estimate) -> None:
        super().__init__()
        self.estimate = estimate

    def render(self, task: Task) -> Text:
        if task.finished and not self.estimate.evaluating:
            return Text(_clock_text(time.perf_counter() - self.estimate.start), style="progress.elapsed")
        return Text(f"ETA {_clock_text(self.estimate.seconds_left())}", style="progress.remaining")


class ProgressCallback(BaseCallback):
    """Show a run's progress (see the module docstring); close it after the final evaluation.

    Args:
        total: env steps of the run.
        description: shown first (algorithm, task, optimizer).
        evaluations: evaluations the run will make, the final one included (for the time left).
        bar: a rich bar on ``console`` (default stderr); ``False``: one line per evaluation on ``stream``.
        console: the bar's console.
        stream: where the lines go (default ``sys.stdout``).
    """

    def __init__(
        self,
        total: int,
        description: str,
        evaluations: int,
        bar: bool,
        console: Console | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        super().__init__(verbose=0)
        self.total = total
        self.description = description
        self.bar = bar
        self.console = console
        self.stream = stream
        self.estimate = Estimate(total, evaluations)
        self._progress: Progress | None = None
        self._task: Any = None
        self._last_eval = "-"
        self._last_update = 0.0

    def _on_training_start(self) -> None:
        self.estimate.start = time.perf_counter()
        if not self.bar:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(self.estimate),
            TextColumn("{task.fields[state]}"),
            _Left(self.estimate),
            console=self.console or Console(stderr=True),
            refresh_per_second=4,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=self.total, state=self._state())

    def _state(self) -> str:
        return "evaluating" if self.estimate.evaluating else f"eval {self._last_eval}"

    def on_eval_start(self, timesteps: int) -> None:
        self.estimate.steps = timesteps
        self.estimate.eval_started()
        self._update()

    def on_eval(self, point: EvalPoint) -> None:
        self.estimate.steps = point.timesteps
        self.estimate.eval_done(point.duration_s)
        self._last_eval = f"{point.mean_return:,.1f}"
        self._update()
        if not self.bar:
            self._print_line()

    def _print_line(self) -> None:
        done = self.estimate.steps
        rate = self.estimate.steps_per_s()
        left = self.estimate.seconds_left()
        finished = done >= self.total and self.estimate.evaluated >= self.estimate.evaluations
        tail = (
            f"done in {_clock_text(time.perf_counter() - self.estimate.start)}"
            if finished
            else (f"ETA {_clock_text(left)}")
        )
        percent = 100 * min(done, self.total) // max(1, self.total)
        line = (
            f"progress: {done:,}/{self.total:,} steps ({percent}%), "
            f"{'-' if rate is None else f'{rate:,.0f}'} steps/s, eval return {self._last_eval}, {tail}"
        )
        stream = self.stream or sys.stdout
        print(line, file=stream, flush=True)

    def _update(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=self.estimate.steps, state=self._state())

    def _on_step(self) -> bool:
        self.estimate.steps = self.num_timesteps
        if self._progress is not None:
            now = time.perf_counter()
            if now - self._last_update >= UPDATE_EVERY_S:
                self._last_update = now
                self._update()
        return True

    def close(self) -> None:
        """Show the final state and stop the bar (idempotent)."""
        if self._progress is not None:
            self._update()
            self._progress.stop()
            self._progress = None
