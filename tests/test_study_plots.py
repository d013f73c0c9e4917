"""Optuna's plots of a study, written per arm; plots the trials cannot define are skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import FloatDistribution

from rlopt.study_status import OpenedStudy, write_plots


def _searched_arm(n: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    rng = np.random.default_rng(0)
    distributions = {"1-beta1": FloatDistribution(1e-3, 0.5, log=True),
                     "1-beta2": FloatDistribution(1e-4, 0.1, log=True),
                     "lr": FloatDistribution(1e-5, 1e-2, log=True)}
    for _ in range(n):
        params = {name: float(np.exp(rng.uniform(np.log(d.low), np.log(d.high))))
                  for name, d in distributions.items()}
        value = -abs(np.log10(params["lr"]) + 3.5) - abs(np.log10(params["1-beta2"]) + 2)
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=distributions, value=value,
            intermediate_values={128: value - 1.0, 256: value}))
    return study


def test_plots_of_a_searched_arm_include_importances_and_the_beta_contour(tmp_path: Path) -> None:
    single = optuna.create_study(direction="maximize")
    single.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0))
    opened = OpenedStudy("plots", tmp_path, "sqlite://", {"adam": _searched_arm(12), "adopt": single})
    written = {p.name for p in write_plots(opened)}
    assert written == {
        "adam_history.png", "adam_intermediate.png", "adam_importances.png", "adam_parallel.png",
        "adam_contour_beta1_beta2.png", "adopt_history.png",
    }
    assert all((tmp_path / "plots" / name).stat().st_size > 1000 for name in written)
