"""Optuna's plots of a study, written per arm and titled with it; plots the trials cannot define are
skipped with a reason, and a grid study gets one objective-by-setting chart instead of histories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from matplotlib.image import imread
from optuna.distributions import CategoricalDistribution, FloatDistribution

from rlopt.analysis import study_plots
from rlopt.analysis.study_plots import write_plots
from rlopt.study.status import OpenedStudy


def _searched_arm(n: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("sampler", "tpe")
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


def _grid_arm(optimizer: str, values: dict[float, float]) -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("sampler", "grid")
    study.set_user_attr("objective", "iqm of normalized_auc")
    distribution = {"beta2": CategoricalDistribution(list(values))}
    for beta2, value in values.items():
        study.add_trial(optuna.trial.create_trial(
            params={"beta2": beta2}, distributions=distribution, value=value,
            user_attrs={"setting": f"{optimizer} b2={beta2:g}"}))
    return study


@pytest.fixture
def titles(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The title each saved figure had (suptitle, axes titles left and centre), by file name."""
    seen: dict[str, str] = {}
    save = study_plots.atomic.save_figure

    def recording(figure, path, **kwargs):  # type: ignore[no-untyped-def]
        parts = [figure.get_suptitle(),
                 *(ax.get_title(loc=loc) for ax in figure.axes for loc in ("left", "center"))]
        seen[Path(path).name] = " | ".join(p for p in parts if p)
        return save(figure, path, **kwargs)

    monkeypatch.setattr(study_plots.atomic, "save_figure", recording)
    return seen


def test_plots_of_a_searched_arm_are_titled_with_the_arm_and_a_single_trial_history_is_skipped(
    tmp_path: Path, titles: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    from rich.console import Console

    single = optuna.create_study(direction="maximize")
    single.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0))
    opened = OpenedStudy("plots", tmp_path, "sqlite://", {"adam": _searched_arm(12), "adopt": single})
    written = {p.name for p in write_plots(opened, Console(width=200))}
    assert written == {
        "adam_history.png", "adam_intermediate.png", "adam_importances.png", "adam_parallel.png",
        "adam_contour_beta1_beta2.png",
    }
    assert all((tmp_path / "plots" / name).stat().st_size > 1000 for name in written)
    for name in written:
        assert titles[name].startswith("adam: "), (name, titles[name])
    assert "Optimization History" in titles["adam_history.png"]
    # Optuna's left-hand title of the importances is the one title, in the centre (they overlapped)
    assert titles["adam_importances.png"] == "adam: Hyperparameter Importances"
    assert "plot skipped: adopt history: one finished trial" in capsys.readouterr().out


def test_a_grid_study_gets_one_objective_by_setting_chart_instead_of_histories(
    tmp_path: Path, titles: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    from rich.console import Console

    adam = _grid_arm("adam", {0.9: 0.2, 0.999: 0.5})
    adopt = _grid_arm("adopt", {0.9: 0.4, 0.9999: 0.6})
    opened = OpenedStudy("beta2-grid", tmp_path, "sqlite://", {"adam": adam, "adopt": adopt})
    written = {p.name for p in write_plots(opened, Console(width=200))}
    assert written == {"objective_by_setting.png"}
    assert titles["objective_by_setting.png"] == "beta2-grid: objective of each finished trial (grid study)"
    out = capsys.readouterr().out
    assert "plot skipped: optimisation histories: a grid study tries each setting once" in out
    image = imread(tmp_path / "plots" / "objective_by_setting.png")
    assert image.shape[0] > 150  # four settings, one row each


def test_intermediate_values_are_labelled_with_steps_and_the_objective_and_each_trial_has_its_colour(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.colors import to_hex

    saved: dict[str, object] = {}
    save = study_plots.atomic.save_figure

    def recording(figure, path, **kwargs):  # type: ignore[no-untyped-def]
        saved[Path(path).name] = figure
        return save(figure, path, **kwargs)

    monkeypatch.setattr(study_plots.atomic, "save_figure", recording)
    arm = _searched_arm(4)
    arm.set_user_attr("objective", "iqm of final_return")
    write_plots(OpenedStudy("plots", tmp_path, "sqlite://", {"adam": arm}))
    ax = saved["adam_intermediate.png"].axes[0]  # type: ignore[attr-defined]
    assert ax.get_title() == "adam: intermediate values (the objective at each evaluation)"
    assert ax.get_xlabel() == "environment steps" and ax.get_ylabel() == "iqm of final_return so far"
    lines = [to_hex(line.get_color()) for line in ax.get_lines()]
    keys = [to_hex(line.get_color()) for line in ax.get_legend().get_lines()]
    assert len(set(lines)) == 4 and keys == lines  # distinct colours (not tab20's light/dark pairs)
