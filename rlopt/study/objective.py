"""The number a trial reports to Optuna: one value per run, aggregated over the trial's tasks and seeds.

Per run, from its evaluation returns so far: ``final_return`` (the last) or ``auc`` (their mean, the
normalised area under the curve), both :func:`rlopt.run.metrics.run_metric`, or either on the 0 (random
policy) to 1 (reference) scale of the study's suite (:func:`rlopt.config.suites.reference_task`: the
references its report takes too).
Across runs: the IQM (25%-trimmed mean, :func:`rlopt.stats.iqm`), the mean or the median. The same
function gives the intermediate values (at each evaluation) and the final value, so a pruner compares
like with like.

A diverged run is a result, not a missing value: its curve is continued to its budget by
:func:`continue_diverged` (:data:`DIVERGED_RULE`), so a setting that diverges scores below one that learns
instead of keeping its last evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlopt.config.study import Objective
from rlopt.run.metrics import run_metric


def run_value(objective: Objective, task: str, returns: Sequence[float]) -> float:
    """The objective's per-run value from the mean evaluation returns ``returns`` (in order)."""
    final = objective.metric in ("final_return", "normalized_score")
    raw = run_metric("final_return" if final else "auc", returns)
    if objective.normalized:
        from rlopt.config.suites import normalized_score

        return float(normalized_score(task, raw, objective.suite))  # the references the report takes
    return raw


def aggregate(objective: Objective, values: Sequence[float]) -> float:
    """Aggregate per-run values over the trial's runs (IQM, mean or median)."""
    array = np.asarray(values, dtype=float)
    if objective.aggregate == "iqm":
        from rlopt.stats import iqm

        return float(iqm(array))
    if objective.aggregate == "median":
        return float(np.median(array))
    return float(np.mean(array))
