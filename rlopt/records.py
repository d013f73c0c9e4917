"""The one run record: what a finished or running training run is to the analysis."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RunRecord:
    """One training run of a study (see docs/CONTRACTS.md).

    Attributes:
        study: study name.
        trial: trial number within its arm's Optuna study.
        trial_state: ``COMPLETE | PRUNED | FAIL | RUNNING``.
        optimizer: registry name.
        setting: short label of the trial's setting (``adopt b2=0.9999``).
        params: what the run's optimizer really got (``lr``, ``betas``, ``eps``, ``weight_decay`` and its
            extra arguments) plus ``kappa``, ``scaling_rule`` and ``arm`` (the optimizer entry's label).
        task: Gymnasium id.
        seed: the run's seed.
        timesteps: env steps of each evaluation.
        returns: mean evaluation return at each of those steps.
        metrics: ``metrics.json`` of the run (empty while it has none).
        run_dir: the run folder (``.`` for runs that have none: read from a runs CSV, or simulated).
    """

    study: str
    trial: int
    trial_state: str
    optimizer: str
    setting: str
    params: Mapping[str, Any]
    task: str
    seed: int
    timesteps: np.ndarray
    returns: np.ndarray
    metrics: Mapping[str, Any]
    run_dir: Path = Path(".")


