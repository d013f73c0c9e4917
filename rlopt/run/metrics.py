"""The per-run metric of a training run, defined once, and the scoring rule of a diverged run.

A run's evaluation returns (the mean return of each evaluation, in order) give its two scores:
``final_return``, the last, and ``auc``, their mean (the normalised area under the curve).
``metrics.json`` (:class:`rlopt.run.train.TrainSummary`), the trial objective
(:func:`rlopt.study.objective.run_value`) and the report (:func:`rlopt.analysis.scores.run_score`) all
take them from :func:`run_metric`, so the three agree to the last bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RUN_METRICS = ("final_return", "auc")
"""The per-run scores: the last evaluation return, and the mean of them all."""

DIVERGED_RULE = (
    "a diverged run's remaining evaluations, up to its budget, score the task's random-policy "
    "return (envs/*.yaml), or its lowest evaluated return for a task no suite lists"
)


def run_metric(metric: str, returns: Sequence[float]) -> float:
    """A run's ``final_return`` (its last evaluation return) or ``auc`` (their mean) from ``returns``.

    Args:
        metric: one of :data:`RUN_METRICS`.
        returns: the run's mean evaluation returns, in order; at least one.

    Raises:
        ValueError: an unknown ``metric``, or no returns.
    """
    if metric not in RUN_METRICS:
        raise ValueError(f"per-run metric {metric!r} is not one of: {', '.join(RUN_METRICS)}")
    if not len(returns):
        raise ValueError(f"a run without evaluations has no {metric}")
    return float(returns[-1]) if metric == "final_return" else float(np.mean(returns))


def planned_evaluations(timesteps: int, every: int) -> int:
    """Evaluations a full run makes: every ``every`` steps, and once more at the end if that is not one."""
    return timesteps // every + (1 if timesteps % every else 0)


def continue_diverged(task: str, returns: Sequence[float], timesteps: int, every: int) -> list[float]:
    """The evaluation returns of a run that diverged, continued to its budget by :data:`DIVERGED_RULE`.

    Args:
        task: the run's task.
        returns: its mean evaluation returns up to the divergence (possibly none).
        timesteps: its budget in env steps.
        every: its evaluation interval in env steps.

    Returns:
        ``returns`` followed by the floor value at every evaluation it did not reach (empty if the floor
        is unknown: a task no suite lists, and no evaluation before the divergence).
    """
    from rlopt.config.suites import find_task
    from rlopt.errors import ConfigError

    try:
        floor = float(find_task(task).random_return)
    except ConfigError:
        if not returns:
            return []
        floor = float(min(returns))
    missing = max(1 if not returns else 0, planned_evaluations(timesteps, every) - len(returns))
    return [*map(float, returns), *[floor] * missing]


