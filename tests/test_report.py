"""rlopt.analysis.report.write_report and `rlopt report` on constructed run records."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rlopt.analysis.report import write_report
from rlopt.analysis.scores import Normaliser
from rlopt.cli.main import main
from rlopt.config.claims import Claim

TASKS = ("Hopper-v5", "Walker2d-v5")
FAST: dict[str, Any] = {"n_resamples": 200, "seed": 0}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Run:
    """Same fields as rlopt.records.RunRecord (docs/CONTRACTS.md)."""

    study: str
    trial: int
    trial_state: str
    optimizer: str
    setting: str
    params: dict[str, Any]
    task: str
    seed: int
    timesteps: np.ndarray
    returns: np.ndarray
    metrics: dict[str, Any]
    run_dir: Path = field(default=Path("."))


def grid_study(
    beta1s: tuple[float, ...] = (0.8, 0.9), beta2s: tuple[float, ...] = (0.99, 0.999)
) -> list[Run]:
    """Adam and ADOPT over a β grid; ADOPT learns twice as fast, so it clearly wins."""
    rng = np.random.default_rng(0)
    runs = []
    trial = 0
    for optimizer, slope in (("adam", 10.0), ("adopt", 20.0)):
        for b1 in beta1s:
            for b2 in beta2s:
                for task in TASKS:
                    for seed in range(3):
                        returns = np.cumsum(rng.normal(slope, 2.0, 6))
                        metrics = {
                            "status": "ok",
                            "final_return": float(returns[-1]),
                            "auc": float(returns.mean()),
                            "stability": {
                                "return_collapses": int(seed == 0),
                                "loss_spikes": 0,
                                "nan_events": 0,
                            },
                        }
                        runs.append(
                            Run(
                                "grid",
                                trial,
                                "COMPLETE",
                                optimizer,
                                f"{optimizer} b1={b1:g} b2={b2:g}",
                                {"lr": 3e-4, "betas": [b1, b2]},
                                task,
                                seed,
                                np.linspace(0, 5000, 6),
                                returns,
                                metrics,
                            )
                        )
                        trial += 1
    return runs


def unfinished(runs: list[Run], state: str, final: float) -> Run:
    template = runs[0]
    status = {"PRUNED": "pruned", "FAIL": "failed"}.get(state)
    metrics = (
        {"status": status, "final_return": final, "reason": f"{state.lower()} at 2000 steps"}
        if status
        else {}
    )
    return replace(
        template,
        trial=1000 + len(runs),
        trial_state=state,
        seed=99,
        metrics=metrics,
        returns=np.array([final, final]),
        timesteps=np.array([0.0, 2000.0]),
    )


CLAIMS = [
    Claim.from_dict(
        {
            "statement": "ADOPT beats Adam",
            "source": "Taniguchi et al. 2024",
            "paper_says": "ADOPT's curves above Adam's",
            "kind": "better",
            "candidate": {"optimizer": "adopt"},
            "baseline": {"optimizer": "adam"},
            "min_runs": 3,  # 3 seeds per cell in grid_study
        }
    ),
    Claim.from_dict(
        {
            "statement": "Adam beats ADOPT",
            "source": "nobody",
            "kind": "better",
            "candidate": {"optimizer": "adam"},
            "baseline": {"optimizer": "adopt"},
            "min_runs": 3,
        }
    ),
]


@pytest.fixture(scope="module")
def grid_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    write_report(grid_study(), CLAIMS, out, command="rlopt study run studies/grid.yaml", **FAST)
    return out


EXPECTED_FIGURES = (
    "aggregate_iqm.png",
    "sample_efficiency.png",
    "curves_Hopper-v5.png",
    "curves_Walker2d-v5.png",
    "poi_matrix.png",
    "performance_profile.png",
    "beta_heatmap.png",
)


def test_report_writes_markdown_html_and_every_figure(grid_report: Path) -> None:
    for name in ("report.md", "report.html", *EXPECTED_FIGURES):
        assert (grid_report / name).stat().st_size > 0, name
    for name in EXPECTED_FIGURES:
        assert (grid_report / name).read_bytes().startswith(PNG_MAGIC), name
    md = (grid_report / "report.md").read_text()
    for name in EXPECTED_FIGURES:
        assert f"]({name})" in md


def test_html_embeds_every_figure_as_base64(grid_report: Path) -> None:
    page = (grid_report / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == len(EXPECTED_FIGURES)
    files = {(grid_report / name).read_bytes() for name in EXPECTED_FIGURES}
    assert {base64.b64decode(data) for data in embedded} == files
    assert not re.search(r'src="[^"]+\.png"', page)
    assert "<table>" in page


def test_markdown_has_the_verdict_table_with_computed_verdicts(grid_report: Path) -> None:
    md = (grid_report / "report.md").read_text()
    assert "| claim | what the paper says | what we measured | verdict |" in md
    row_win = next(line for line in md.splitlines() if line.startswith("| ADOPT beats Adam |"))
    row_loss = next(line for line in md.splitlines() if line.startswith("| Adam beats ADOPT |"))
    assert "ADOPT's curves above Adam's (Taniguchi et al. 2024)" in row_win
    assert "IQM difference on normalised final_return = +" in row_win and "P(improvement) 1.00" in row_win
    assert row_win.endswith("| **reproduced** (5,000 steps per run; the paper's budget is unknown) |")
    assert row_loss.endswith("| **contradicted** (5,000 steps per run; the paper's budget is unknown) |")


def test_report_states_the_budget_from_the_data(grid_report: Path) -> None:
    md = (grid_report / "report.md").read_text()
    assert "- tasks (2): Hopper-v5, Walker2d-v5" in md
    assert "- seeds (3): 0, 1, 2" in md
    assert "- settings (8) of 2 optimizer(s): adam, adopt" in md
    assert "- finished runs per cell (setting × task): 3" in md
    assert "last evaluation of the finished runs at 5,000 steps" in md
    assert "- command: `rlopt study run studies/grid.yaml`" in md
    assert "Partial data" not in md


def test_stability_table_counts_events_per_run(grid_report: Path) -> None:
    md = (grid_report / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| adam b1=0.8 b2=0.99 | 6 | 0 |"))
    # one collapse in seed 0 of each task: 2 collapses over 6 runs
    assert "| 0.33 [" in row


def test_partial_banner_is_shown_while_trials_are_running(tmp_path: Path) -> None:
    runs = grid_study()
    runs.append(unfinished(runs, "RUNNING", 0.0))
    md = write_report(runs, CLAIMS, tmp_path, **FAST).read_text()
    assert md.splitlines()[2].startswith("> **Partial data: the study is still running.**")
    assert "49 runs: 48 ok, 1 running" in md
    # the running run's evaluations so far are drawn, in a section of their own, in no statistic
    assert "## Runs in progress" in md and "](in_progress.png)" in md
    assert (tmp_path / "in_progress.png").read_bytes().startswith(PNG_MAGIC)


def test_pruned_and_failed_runs_are_counted_and_left_out_of_the_statistics(tmp_path: Path) -> None:
    runs = grid_study()
    # a pruned and a failed run, a run that finished (status ok) inside a trial that failed later, and a
    # second run of a cell that already has one: none of them may move a number
    orphan = replace(unfinished(runs, "FAIL", 1e6), seed=98, metrics={**runs[0].metrics, "final_return": 1e6})
    duplicate = replace(runs[0], trial=2000, returns=runs[0].returns * 100,
                        metrics={**runs[0].metrics, "final_return": 1e6, "auc": 1e6})
    with_excluded = [*runs, unfinished(runs, "PRUNED", -1e6), unfinished(runs, "FAIL", 1e6), orphan,
                     duplicate]
    refs = Normaliser.from_references({t: (0.0, 100.0) for t in TASKS})
    clean = write_report(runs, CLAIMS, tmp_path / "clean", normaliser=refs, **FAST).read_text()
    md = write_report(with_excluded, CLAIMS, tmp_path / "excl", normaliser=refs, **FAST).read_text()
    assert "Partial data" not in md
    assert "4 run(s) are left out of every statistic" in md
    assert "one per (setting, task, seed)" in md
    assert re.search(
        r"\| \d+ \| adam b1=0.8 b2=0.99 \| Hopper-v5 \| 99 \| pruned \| pruned at 2000 steps \|", md
    )
    assert re.search(r"\| \d+ \| adam b1=0.8 b2=0.99 \| Hopper-v5 \| 98 \| failed \|", md)
    assert re.search(r"\| 98 \| failed \| the run finished \(ok\); it counts once a complete trial holds it "
                     r"\(its trial is FAIL\) \|", md)
    first = runs[0]
    assert re.search(rf"\| 2000 \| adam b1=0.8 b2=0.99 \| {first.task} \| {first.seed} \| duplicate \|", md)

    def aggregate_row(text: str) -> list[str]:
        row = next(line for line in text.splitlines() if line.startswith("| adam b1=0.8 b2=0.99 | 2 |"))
        return row.split("|")

    assert aggregate_row(md)[5].strip() == "4"  # excluded column
    assert aggregate_row(md)[6:] == aggregate_row(clean)[6:]  # same IQMs and intervals


def report_figures(runs: list[Run], out: Path) -> dict[str, Any]:
    """Write the report of ``runs`` and return every figure it saved, by file name (the files are
    written as usual; the figures are kept to read their labels)."""
    from rlopt import atomic

    seen: dict[str, Any] = {}
    save = atomic.save_figure

    def recording(figure: Any, path: Path, **kwargs: Any) -> None:
        seen[Path(path).name] = figure
        save(figure, path, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(atomic, "save_figure", recording)
        write_report(runs, None, out, **FAST)
    return seen


BETA2S = (0.9, 0.99, 0.999, 0.9999)


@pytest.fixture(scope="module")
def beta2_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Adam and ADOPT at four β2 values (β1 fixed): eight settings, a 1-D β grid."""
    out = tmp_path_factory.mktemp("beta2")
    return out, report_figures(grid_study(beta1s=(0.9,), beta2s=BETA2S), out)


def test_a_one_beta_grid_gets_score_against_beta_per_optimizer_and_no_heatmap(
    beta2_report: tuple[Path, dict[str, Any]]
) -> None:
    tmp_path, figures = beta2_report
    assert not (tmp_path / "beta_heatmap.png").exists()
    md = (tmp_path / "report.md").read_text()
    assert "No claim is declared" in md
    assert "](beta2_sweep.png)" in md and "at each β2, a line per optimizer" in md
    final, auc = figures["beta2_sweep.png"].axes
    assert final.get_ylabel() == "IQM normalised final return" and auc.get_ylabel() == "IQM normalised AUC"
    for ax in (final, auc):
        assert ax.get_xscale() == "log" and ax.get_xlabel() == "β2 (log scale of 1 − β2)"
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0.9", "0.99", "0.999", "0.9999"]
        left, right = ax.get_xlim()
        assert left > right  # 1 − β2 decreases to the right: β2 grows to the right
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["adam", "adopt"]
    # ADOPT learns twice as fast in grid_study: its line lies above Adam's at every β2
    adam, adopt = (np.asarray(bars.lines[0].get_ydata()) for bars in final.containers)
    assert adam.shape == adopt.shape == (len(BETA2S),) and np.all(adopt > adam)


def test_curves_of_eight_settings_are_one_panel_each_a_row_per_optimizer_with_shared_axes(
    beta2_report: tuple[Path, dict[str, Any]]
) -> None:
    tmp_path, figures = beta2_report
    for name in ("sample_efficiency.png", "curves_Hopper-v5.png", "performance_profile.png"):
        panels = [ax for ax in figures[name].axes if ax.get_visible()]
        assert [ax.get_title() for ax in panels] == [f"{o} b1=0.9 b2={b:g}" for o in ("adam", "adopt")
                                                     for b in BETA2S], name
        assert all(panels[0].get_shared_y_axes().joined(panels[0], ax) for ax in panels[1:]), name
        assert all(panels[0].get_shared_x_axes().joined(panels[0], ax) for ax in panels[1:]), name
        # each panel: its setting in colour with its band, the row's three other settings in grey
        for ax in panels:
            coloured = [line for line in ax.get_lines() if line.get_color() != "0.7"]
            assert len(coloured) == 1 and len(ax.get_lines()) == len(BETA2S), name
            assert len(ax.collections) == 1  # one band
        # a β2 has one colour in both rows
        colours = [ax.get_title(loc="center") and ax.title.get_color() for ax in panels]
        assert colours[:4] == colours[4:] and len(set(colours[:4])) == len(BETA2S), name
    md = (tmp_path / "report.md").read_text()
    assert "one panel per setting, a row per optimizer entry of the study, shared axes" in md


def scaling_rule_study() -> list[Run]:
    """Adam as three study entries, one per scaling rule, each at κ ∈ {1/4, 1, 4} (claim 5's shape);
    the betas are those :func:`rlopt.optim.scaling.scale_hyperparameters` gives, so the sqrt rule's
    vary with κ and the other rules' stay (0.9, 0.999)."""
    from rlopt.optim.scaling import scale_hyperparameters

    rng = np.random.default_rng(1)
    runs = []
    for rule in ("linear", "none", "sqrt"):
        for kappa in (0.25, 1.0, 4.0):
            scaled = scale_hyperparameters("adam", {"lr": 3e-4, "betas": (0.9, 0.999)}, kappa, rule)
            params = {"lr": scaled["lr"], "betas": list(scaled["betas"]), "kappa": kappa,
                      "scaling_rule": rule, "arm": f"adam-{rule}"}
            for seed in range(3):
                returns = np.cumsum(rng.normal(10.0, 2.0, 6))
                metrics = {"status": "ok", "final_return": float(returns[-1]), "auc": float(returns.mean())}
                runs.append(Run("rules", len(runs), "COMPLETE", "adam", f"adam-{rule} kappa={kappa:g}",
                                params, "Hopper-v5", seed, np.linspace(0, 5000, 6), returns, metrics))
    return runs


def test_one_optimizer_with_an_entry_per_scaling_rule_gets_a_row_per_rule_and_no_beta_grid(
    tmp_path: Path,
) -> None:
    figures = report_figures(scaling_rule_study(), tmp_path)
    panels = [ax for ax in figures["curves_Hopper-v5.png"].axes if ax.get_visible()]
    # a row per rule: its three κ side by side, each panel showing the same rule's other κ in grey
    # (one optimizer's nine settings wrapped four to a row would mix the rules in a row)
    titles = [ax.get_title() for ax in panels]
    rules, kappas = ("linear", "none", "sqrt"), ("0.25", "1", "4")
    assert titles == [f"adam-{rule} kappa={k}" for rule in rules for k in kappas]
    for ax in panels:
        grey = [line for line in ax.get_lines() if line.get_color() == "0.7"]
        assert len(grey) == 2 and len(ax.get_lines()) == 3
    rows = sorted({round(ax.get_position().y0, 3) for ax in panels}, reverse=True)
    assert len(rows) == 3
    assert [round(ax.get_position().y0, 3) for ax in panels] == [y for y in rows for _ in range(3)]
    # the sqrt rule's betas follow from κ (β1 0.975 and 0.6 at κ 1/4 and 4), the others' are one pair:
    # no β figure, where pooling every rule's runs by betas drew a spurious diagonal "grid"
    assert not {"beta_heatmap.png", "beta1_sweep.png", "beta2_sweep.png"} & set(figures)
    assert "## β grid" not in (tmp_path / "report.md").read_text()


def test_five_optimizers_at_one_setting_each_share_rows_in_their_own_colours(tmp_path: Path) -> None:
    # the SAC study's shape: five optimizer entries of one setting each; a row per entry would stack
    # five one-panel rows with nothing in grey to compare each curve with
    runs = [replace(run, optimizer=name, setting=name, params={**run.params, "arm": name})
            for run in grid_study(beta1s=(0.9,), beta2s=(0.999,)) if run.optimizer == "adam"
            for name in ("adam", "adabelief", "adamssm", "adopt", "adan")]
    figures = report_figures(runs, tmp_path)
    from rlopt.analysis.plots import colours

    palette = colours(sorted({r.setting for r in runs}, key=str.lower))
    for name in ("sample_efficiency.png", "curves_Hopper-v5.png"):
        panels = [ax for ax in figures[name].axes if ax.get_visible()]
        assert [ax.get_title() for ax in panels] == ["adabelief", "adam", "adamssm", "adan", "adopt"], name
        assert len({round(ax.get_position().y0, 3) for ax in panels}) == 2, name  # 4 + 1, not 5 rows
        for ax in panels:
            grey = [line for line in ax.get_lines() if line.get_color() == "0.7"]
            coloured = [line for line in ax.get_lines() if line.get_color() != "0.7"]
            assert len(coloured) == 1 and len(grey) == 4, name  # the other four, on either row
            assert tuple(coloured[0].get_color()) == palette[ax.get_title()], name
        assert figures[name]._suptitle.get_text().endswith("(grey: the other settings of the figure)")


def test_two_settings_share_one_panel(tmp_path: Path) -> None:
    figures = report_figures(grid_study(beta1s=(0.9,), beta2s=(0.999,)), tmp_path)
    (panel,) = figures["sample_efficiency.png"].axes
    assert panel.get_title() == "IQM normalised return over all tasks"
    assert [t.get_text() for t in panel.get_legend().get_texts()] == [
        "adam b1=0.9 b2=0.999", "adopt b1=0.9 b2=0.999"]


def test_poi_matrix_axes_name_the_candidate_rows_and_baseline_columns(
    beta2_report: tuple[Path, dict[str, Any]]
) -> None:
    tmp_path, figures = beta2_report
    heat = figures["poi_matrix.png"].axes[0]
    assert heat.get_ylabel() == "candidate (row)" and heat.get_xlabel() == "baseline (column)"
    labels = [f"{o} b1=0.9 b2={b:g}" for o in ("adam", "adopt") for b in BETA2S]
    assert [t.get_text() for t in heat.get_yticklabels()] == labels
    assert [t.get_text() for t in heat.get_xticklabels()] == labels
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in heat.texts}
    assert cells[(4, 0)] == "1.00" and cells[(0, 4)] == "0.00"  # ADOPT (row 4) beats Adam (column 0)
    md = (tmp_path / "report.md").read_text()
    assert "candidate setting (row)" in md and "baseline setting (column)" in md


def test_report_of_a_study_with_no_runs_yet(tmp_path: Path) -> None:
    md = write_report([], CLAIMS, tmp_path, **FAST).read_text()
    assert "0 runs: none" in md
    assert "no run has finished yet" in md and "Runs in progress" not in md
    assert (
        md.count("| **inconclusive at this budget** (no evaluated runs; the paper's budget is unknown) |")
        == 2
    )
    assert (tmp_path / "report.html").is_file()


def test_report_command_rejects_a_missing_study_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "rlopt: error: no study at" in capsys.readouterr().err


def test_report_command_rejects_a_bad_claim_with_the_file_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "study.json").write_text("{}")
    bad = tmp_path / "bad.yaml"
    bad.write_text("claim: {statement: s, source: p, kind: faster, candidate: {optimizer: a}}\n")
    assert main(["report", str(tmp_path), "--study-file", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "rlopt: error: " in err and "claim.kind: 'faster' is not one of: better" in err


TINY_STUDY = """\
name: tiny-report
algorithm: ppo
tasks: [InvertedPendulum-v5]
seeds: 3
timesteps: 128
evaluation: {every: 64, episodes: 1}
overrides: {n_steps: 64, batch_size: 32, n_epochs: 1, policy_kwargs: {net_arch: [8]}}
claim:
  - statement: ADOPT beats Adam
    source: Taniguchi et al. 2024
    kind: better
    candidate: {optimizer: adopt}
    baseline: {optimizer: adam}
  - statement: Adam has fewer instabilities than SGD at lr 1e6
    source: common sense
    kind: fewer_instabilities
    candidate: {optimizer: adam}
    baseline: {optimizer: sgd}
optimizers:
  - optimizer: adam
  - optimizer: adopt
  - optimizer: sgd
    lr: 1.0e6
"""


@pytest.mark.slow
def test_report_of_a_real_tiny_study(tmp_path: Path) -> None:
    """`rlopt study run` then `rlopt report` by name: real PPO runs, one arm diverging."""
    import os
    import subprocess
    import sys

    (tmp_path / "tiny.yaml").write_text(TINY_STUDY)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def rlopt(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rlopt", *args], cwd=tmp_path, capture_output=True, text=True, env=env
        )

    study = rlopt("study", "run", "tiny.yaml", "--no-plots")
    assert study.returncode == 0, study.stderr[-2000:]
    report = rlopt("report", "tiny-report", "--resamples", "200")
    assert report.returncode == 0, report.stderr[-2000:]
    out = tmp_path / "runs" / "tiny-report" / "report"
    md = (out / "report.md").read_text()
    assert "- runs: 9 runs: 6 ok, 3 diverged" in md
    assert "- command: `rlopt study run tiny.yaml --no-plots`" in md
    assert "- timesteps per run: 128 (run configs)" in md
    assert "0 = uniform random policy, 1 = reference return" in md
    assert re.search(r"\| ADOPT beats Adam \| Taniguchi et al. 2024 \| IQM difference .* \| \*\*", md)
    assert next(
        line for line in md.splitlines() if line.startswith("| sgd | 3 | 3 |")
    )  # stability: all diverged
    fewer = next(line for line in md.splitlines() if line.startswith("| Adam has fewer instabilities"))
    # 128 steps on 3 seeds: Adam learnt nothing yet and min_runs is 5, so no verdict either way
    assert "| **inconclusive at this budget** (128 steps per run; the paper's budget is unknown) |" in fewer
    assert (out / "curves_InvertedPendulum-v5.png").read_bytes().startswith(PNG_MAGIC)
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_poi_matrix_diagonal_is_a_grey_dash_not_a_white_cell(
    beta2_report: tuple[Path, dict[str, Any]]
) -> None:
    from matplotlib.colors import to_rgba

    from rlopt.analysis.plots import DIAGONAL_GREY

    _, figures = beta2_report
    heat = figures["poi_matrix.png"].axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in heat.texts}
    n = 2 * len(BETA2S)
    assert all(cells[(i, i)] == "—" for i in range(n))
    assert heat.images[0].cmap.get_bad() == pytest.approx(to_rgba(DIAGONAL_GREY))  # 0.50 is near white


@pytest.fixture(scope="module")
def one_setting_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Adam over three β2 values against ADOPT at its β2 0.9999 only: four settings."""
    out = tmp_path_factory.mktemp("one-setting")
    runs = [r for r in grid_study(beta1s=(0.9,), beta2s=(0.99, 0.999, 0.9999))
            if r.optimizer == "adam" or r.params["betas"][1] == 0.9999]
    return out, report_figures(runs, out)


def test_an_optimizer_at_one_setting_is_a_diamond_on_the_beta_sweep_of_the_others(
    one_setting_report: tuple[Path, dict[str, Any]]
) -> None:
    tmp_path, figures = one_setting_report
    final, auc = figures["beta2_sweep.png"].axes
    for ax in (final, auc):
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["adam", "adopt (one setting)"]
        adam, adopt = (bars.lines[0] for bars in ax.containers)
        assert len(adam.get_xdata()) == 3 and adam.get_linestyle() == "-"
        assert len(adopt.get_xdata()) == 1 and adopt.get_marker() == "D" and adopt.get_linestyle() == "None"
        assert adopt.get_xdata()[0] == pytest.approx(1 - 0.9999, rel=0.5)  # at its own β2 (nudged aside)
        # ADOPT learns twice as fast in grid_study: its point lies above Adam's at the same β2
        assert adopt.get_ydata()[0] > adam.get_ydata()[-1]
    md = (tmp_path / "report.md").read_text()
    assert ('an optimizer run at one setting only is a single point at its own β2, marked "(one setting)"'
            in md)


def test_four_settings_share_a_panel_with_faint_outlined_bands_and_the_aggregate_uses_their_colours(
    one_setting_report: tuple[Path, dict[str, Any]]
) -> None:
    from rlopt.analysis.plots import SHARED_BAND_ALPHA

    _, figures = one_setting_report
    settings = [*(f"adam b1=0.9 b2={b}" for b in ("0.99", "0.999", "0.9999")), "adopt b1=0.9 b2=0.9999"]
    (panel,) = figures["sample_efficiency.png"].axes
    legend = panel.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == settings  # the band edges are not in the legend
    assert len(panel.get_lines()) == 3 * len(settings)  # each curve and its band's two dashed edges
    assert [band.get_alpha() for band in panel.collections] == [SHARED_BAND_ALPHA] * len(settings)
    curve_colours = {t.get_text(): line.get_color() for t, line in zip(legend.get_texts(), legend.get_lines(),
                                                                         strict=True)}
    (aggregate,) = figures["aggregate_iqm.png"].axes
    for tick in aggregate.get_yticklabels():
        assert tick.get_color() == curve_colours[tick.get_text()], tick.get_text()


def test_stability_counts_made_with_different_thresholds_are_flagged(tmp_path: Path) -> None:
    # claim 1's Adam HalfCheetah runs counted loss spikes at spike_factor 10, every later run at 50:
    # the report must say so rather than let "19 spikes per run against 0" read as a finding
    import json

    from rlopt.analysis.report import event_definitions
    from rlopt.records import RunRecord

    def run(optimizer: str, task: str, seed: int, **diagnostics: Any) -> RunRecord:
        folder = tmp_path / f"{optimizer}-{task}-{seed}"
        folder.mkdir()
        # the loss window follows the task's rollout size, so it differs by task and is not a definition
        cadence = {"interval": 512 if task == "HalfCheetah-v5" else 2048, "sample_every": 8}
        (folder / "config.json").write_text(json.dumps({"diagnostics": {**cadence, **diagnostics}}))
        return RunRecord("s", 0, "COMPLETE", optimizer, optimizer, {}, task, seed, np.array([1.0]),
                         np.array([0.0]), {"status": "ok"}, folder)

    new = {"spike_factor": 50.0, "spike_history": 50, "collapse_patience": 2}
    alike = [run(o, t, 0, **new) for o in ("adam", "adopt") for t in ("HalfCheetah-v5", "Ant-v5")]
    assert list(event_definitions(alike)) == [""]  # one definition: nothing to flag
    old = run("adam", "HalfCheetah-v5", 1, spike_factor=10.0, spike_history=20)
    groups = event_definitions([*alike, old])
    assert {k: len(v) for k, v in groups.items()} == {
        "collapse_patience=2, spike_factor=50.0, spike_history=50": 4,
        "collapse_patience=unset, spike_factor=10.0, spike_history=20": 1,
    }
    csv_run = replace(old, run_dir=Path("."))  # read from a runs CSV: no config.json, left out
    assert sum(map(len, event_definitions([*alike, csv_run]).values())) == 4


@pytest.mark.parametrize(
    ("x", "wanted", "unwanted"),
    [
        (np.linspace(20_000, 200_000, 10), {"100k", "200k"}, "000"),  # env steps: compact
        (np.linspace(0.0, 1.0, 11), {"0.0", "1.0"}, "m"),  # a fraction or τ: no "200m" (milli)
    ],
)
def test_curve_panels_label_env_steps_compactly(x: np.ndarray, wanted: set[str], unwanted: str) -> None:
    """Full step counts overlapped in the small-multiples panels (claim 7's report): 50k, 100k, ..."""
    from matplotlib.figure import Figure

    from rlopt.analysis import plots

    fig = Figure()
    ax = fig.add_subplot()
    ax.plot(x, x)
    plots._steps_axis(ax, x)
    fig.canvas.draw()
    labels = {t.get_text().replace("\u2212", "-") for t in ax.get_xticklabels() if t.get_text()}
    assert wanted <= labels and not any(unwanted in label for label in labels), labels
