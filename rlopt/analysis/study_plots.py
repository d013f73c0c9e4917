"""Optuna's plots of a study's arms (history, importances, slices), for ``rlopt study status``."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from rlopt import atomic
from rlopt.study.status import OpenedStudy

log = logging.getLogger(__name__)

def _is_grid(study: optuna.Study) -> bool:
    return study.user_attrs.get("sampler") == "grid"


def _plots(study: optuna.Study, skipped: list[str], label: str) -> list[tuple[str, Callable[[], Any]]]:
    """The Optuna plots this arm's trials define; why each other one is left out goes to ``skipped``."""
    from optuna.visualization import matplotlib as vis

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    params = sorted({p for t in complete for p in t.params})
    out: list[tuple[str, Callable[[], Any]]] = []
    if _is_grid(study):
        pass  # a grid's trial order is arbitrary: objective_by_setting.png shows every arm instead
    elif len(complete) >= 2:
        out.append(("history", lambda: vis.plot_optimization_history(study)))
    elif complete:
        skipped.append(f"{label} history: one finished trial (a single dot)")
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        out.append(("intermediate", lambda: vis.plot_intermediate_values(study)))
    if len(params) >= 2 and len(complete) >= 2:
        out.append(("importances", lambda: vis.plot_param_importances(study)))
        out.append(("parallel", lambda: vis.plot_parallel_coordinate(study)))
    betas = [p for p in params if p in ("beta1", "1-beta1")]
    betas += [p for p in params if p in ("beta2", "1-beta2")]
    if len(betas) == 2 and len(complete) >= 2:
        out.append(("contour_beta1_beta2", lambda: vis.plot_contour(study, params=betas)))
    return out


def _objective_by_setting(opened: OpenedStudy) -> Any:
    """One chart of a grid study: each finished trial's objective value by setting, a colour per arm."""
    from matplotlib.figure import Figure

    from rlopt.analysis.plots import colours

    rows: list[tuple[str, str, float]] = []
    order: dict[str, tuple[Any, ...]] = {}
    for k, (label, study) in enumerate(opened.arms.items()):
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.COMPLETE and t.value is not None:
                setting = str(t.user_attrs.get("setting", f"trial {t.number}"))
                rows.append((label, setting, float(t.value)))
                numbers = tuple(v for _, v in sorted(t.params.items()) if isinstance(v, (int, float)))
                order.setdefault(setting, (k, numbers, setting))
    if not rows:
        return None
    settings = sorted(order, key=lambda s: order[s])  # per arm, by the grid's values (β2 0.9, 0.99, ...)
    palette = colours(list(opened.arms))
    fig = Figure(figsize=(7.0, 1.2 + 0.32 * len(settings)))
    ax = fig.add_subplot()
    for label in opened.arms:
        points = [(settings.index(s), v) for a, s, v in rows if a == label]
        if points:
            ax.plot([v for _, v in points], [len(settings) - 1 - i for i, _ in points], "o",
                    color=palette[label], label=label)
    ax.set_yticks(range(len(settings))[::-1], settings, fontsize=8)
    first = next(iter(opened.arms.values()))
    ax.set(title=f"{opened.name}: objective of each finished trial (grid study)",
           xlabel=str(first.user_attrs.get("objective", "objective value")))
    ax.grid(axis="x", alpha=0.3)
    if len(opened.arms) > 1:
        ax.legend(fontsize=8, loc="best", title="arm")
    fig.tight_layout()
    return fig


def _label_intermediate(ax: Any, study: optuna.Study) -> None:
    """Optuna's intermediate-values plot in the study's words: the axes say what was reported when
    (``Step``/``Intermediate Value`` become environment steps and the objective so far), and up to nine
    trials get one distinct colour each (Optuna's tab20 pairs a dark and a light blue, then a dark and a
    light orange, from the second trial on; past nine, :func:`rlopt.analysis.plots.colours` is tab20 too)."""
    from matplotlib.colors import to_hex

    from rlopt.analysis.plots import colours

    ax.set_title("intermediate values (the objective at each evaluation)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"{study.user_attrs.get('objective', 'objective value')} so far")
    lines = [line for line in ax.get_lines() if to_hex(line.get_color()) != "#cccccc"]  # grey: infeasible
    palette = colours([str(k) for k in range(len(lines))])
    for k, line in enumerate(lines):
        line.set_color(palette[str(k)])
        line.set_alpha(0.9)
    if ax.get_legend() is not None:  # rebuilt, so its keys take the new colours; Optuna's placement
        ax.legend(bbox_to_anchor=(1.05, 1), loc="upper left", borderaxespad=0.0)


def _name_trials(ax: Any, study: optuna.Study) -> None:
    """Legend entries ``Trial3`` (Optuna's) become ``3: adam b2=0.99`` (the trial's setting)."""
    import re

    legend = ax.get_legend()
    if legend is None:
        return
    settings = {t.number: t.user_attrs.get("setting") for t in study.get_trials(deepcopy=False)}
    for text in legend.get_texts():
        match = re.fullmatch(r"Trial ?(\d+)", text.get_text())
        if match and settings.get(int(match.group(1))):
            text.set_text(f"{match.group(1)}: {settings[int(match.group(1))]}")


def write_plots(opened: OpenedStudy, console: Any = None) -> list[Path]:
    """Write Optuna's plots of every arm to ``<study>/plots/<arm>_<plot>.png``; skip undefined ones.

    Every plot's title starts with its arm. A grid study gets ``objective_by_setting.png`` (all arms on
    one chart) instead of per-arm optimisation histories. Each plot left out is named with the reason,
    one line on ``console`` when given (the log otherwise).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = opened.study_dir / "plots"
    written: list[Path] = []
    skipped: list[str] = []

    def save(figure: Any, name: str) -> None:
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.png"
        atomic.save_figure(figure, path, dpi=100, bbox_inches="tight")
        written.append(path)

    for label, study in opened.arms.items():
        for name, make in _plots(study, skipped, label):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    axes = make()
                except Exception as exc:  # an undefined plot (e.g. importances of constant params) is skipped
                    skipped.append(f"{label} {name}: {exc}")
                    continue
            first = axes.flat[0] if hasattr(axes, "flat") else axes
            figure = getattr(first, "figure", None)
            if figure is None:
                continue
            if name == "intermediate":
                _label_intermediate(first, study)
            _name_trials(first, study)
            if hasattr(axes, "flat"):
                figure.suptitle(f"{label}: {figure.get_suptitle() or name.replace('_', ' ')}")
            else:  # Optuna titles the importances on the left: moved to the centre, or both would overlap
                left = axes.get_title(loc="left")
                axes.set_title("", loc="left")
                axes.set_title(f"{label}: {axes.get_title() or left or name.replace('_', ' ')}")
            save(figure, f"{label}_{name}")
            plt.close(figure)
    if any(_is_grid(study) for study in opened.arms.values()):
        figure = _objective_by_setting(opened)
        if figure is not None:
            save(figure, "objective_by_setting")
            skipped.append("optimisation histories: a grid study tries each setting once, in no meaningful "
                           "order; objective_by_setting.png compares the settings instead")
    for line in skipped:
        if console is not None:
            console.print(f"plot skipped: {line}")
        else:
            log.info("plot skipped: %s", line)
    return written
