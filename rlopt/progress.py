"""A rich progress bar for one training run: env steps, steps/s and the last evaluation return."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from stable_baselines3.common.callbacks import BaseCallback

from rlopt.evaluation import EvalPoint


class _StepsPerSecond(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- steps/s" if speed is None else f"{speed:,.0f} steps/s", style="progress.data.speed")


class ProgressCallback(BaseCallback):
    """Show training progress on ``console`` (stderr by default); ``on_eval`` updates the return shown."""

    def __init__(self, total: int, description: str, console: Console | None = None) -> None:
        super().__init__(verbose=0)
        self.total = total
        self.description = description
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None
        self._task: Any = None
        self._last_eval = "-"
        self._reported = 0

    def _on_training_start(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _StepsPerSecond(),
            TextColumn("eval {task.fields[last_eval]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            refresh_per_second=4,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=self.total, last_eval=self._last_eval)

    def on_eval(self, point: EvalPoint) -> None:
        self._last_eval = f"{point.mean_return:,.1f}"
        if self._progress is not None:
            self._progress.update(self._task, last_eval=self._last_eval)

    def _on_step(self) -> bool:
        if self._progress is not None:
            self._progress.update(self._task, advance=self.num_timesteps - self._reported)
            self._reported = self.num_timesteps
        return True

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
