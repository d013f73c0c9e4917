"""rlopt.analysis.scores: which runs count, raw and normalised scores, curves on a common grid."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from rlopt.analysis import scores
from rlopt.config.suites import find_task
from rlopt.errors import ConfigError


def record(
    status: str | None = "ok",
    trial_state: str = "COMPLETE",
    task: str = "Hopper-v5",
    steps: list[float] | None = None,
    returns: list[float] | None = None,
    **metrics: Any,
) -> Any:
    """A RunRecord-shaped object (fields of docs/CONTRACTS.md)."""
    steps = steps if steps is not None else [0.0, 500.0, 1000.0]
    returns = returns if returns is not None else [0.0, 10.0, 20.0]
    if status is not None:
        metrics["status"] = status
    return SimpleNamespace(
        study="s",
        trial=0,
        trial_state=trial_state,
        optimizer="adam",
        setting="",
        params={},
        task=task,
        seed=0,
        timesteps=np.array(steps),
        returns=np.array(returns),
        metrics=metrics,
        run_dir=Path("."),
    )


@pytest.mark.parametrize(
    ("status", "trial_state", "expected"),
    [
        ("ok", "RUNNING", "running"),  # a finished run of a trial still running its other runs: not yet
        ("ok", "FAIL", "failed"),  # a finished run of a trial that failed: it counts in the retry, not here
        ("ok", "PRUNED", "pruned"),
        ("ok", "DUPLICATE", "duplicate"),
        ("diverged", "COMPLETE", "diverged"),
        ("pruned", "PRUNED", "pruned"),
        (None, "PRUNED", "pruned"),
        (None, "FAIL", "failed"),
        (None, "RUNNING", "running"),
        (None, "COMPLETE", "running"),  # no metrics.json status yet
    ],
)
def test_run_state_counts_a_finished_run_only_in_a_complete_trial(
    status: str | None, trial_state: str, expected: str
) -> None:
    assert scores.run_state(record(status, trial_state)) == expected


def test_census_counts_every_state_and_flags_running_runs_as_partial() -> None:
    runs = [record("ok"), record("ok"), record("diverged"), record("pruned"), record(None, "RUNNING")]
    census = scores.RunCensus.of(runs)
    assert (census.total, census.usable, census.counts["pruned"], census.partial) == (5, 3, 1, True)
    assert census.describe() == "5 runs: 2 ok, 1 diverged, 1 pruned, 1 running"
    assert not scores.RunCensus.of(runs[:4]).partial


def test_census_says_how_many_running_runs_have_finished_and_wait_for_their_trial() -> None:
    # a campaign's trial holds its finished runs while its last runs train: they are "running", and the
    # reader is told they finished, not left to think nothing has
    runs = [record("ok"), record("ok", "RUNNING"), record("diverged", "RUNNING"), record(None, "RUNNING")]
    census = scores.RunCensus.of(runs)
    assert (census.usable, census.counts["running"], census.finished_running) == (1, 3, 2)
    assert census.describe() == (
        "4 runs: 1 ok, 3 running (2 of them finished, waiting for their trial to complete)")


def test_run_score_reads_metrics_and_falls_back_to_the_curve() -> None:
    assert scores.run_score(record(final_return=42.0), "final_return") == 42.0
    # a diverged run continues at the task's random-policy return (the trial objective's rule), whatever
    # its metrics say; without a config.json its schedule is unknown, so one evaluation is added
    random_return = find_task("Hopper-v5").random_return
    diverged = record("diverged", returns=[0.0, 8.0, float("nan")], final_return=8.0, auc=4.0)
    assert scores.run_score(diverged, "final_return") == pytest.approx(random_return)
    assert scores.run_score(diverged, "auc") == pytest.approx((0.0 + 8.0 + random_return) / 3)
    with pytest.raises(ConfigError, match="'best' is not one of: final_return, auc"):
        scores.run_score(diverged, "best")


def test_normaliser_from_references_accepts_both_forms_and_rejects_bad_ones() -> None:
    norm = scores.Normaliser.from_references({"A": (0, 200), "B": {"random": -100, "reference": 100}})
    assert norm("A", 50.0) == pytest.approx(0.25)
    assert norm("B", 0.0) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="no reference scores for task 'C' \\(have: A, B\\)"):
        norm("C", 1.0)
    with pytest.raises(ConfigError, match="task 'A' must be two different numbers"):
        scores.Normaliser.from_references({"A": (3, 3)})


def test_normaliser_from_suite_tasks_maps_random_to_zero_and_reference_to_one() -> None:
    task = SimpleNamespace(
        name="Hopper-v5", random_return=18.0, reference_return=2318.0, reference_source="zoo"
    )
    norm = scores.Normaliser.from_tasks([task])
    assert norm("Hopper-v5", np.array([18.0, 2318.0])) == pytest.approx([0.0, 1.0])
    assert "zoo" in norm.source


def test_normaliser_from_runs_spans_the_finished_runs_only() -> None:
    runs = [
        record(returns=[-5.0, 0.0, 5.0]),
        record(returns=[1.0, 15.0, 10.0]),
        record("pruned", returns=[99.0]),
    ]
    norm = scores.Normaliser.from_runs(runs)
    assert norm.bounds["Hopper-v5"] == (-5.0, 15.0)


def test_common_grid_stops_where_the_shortest_finished_run_stops() -> None:
    runs = [
        record(steps=[0, 500, 1000]),
        record(steps=[0, 250, 750], returns=[0.0, 1.0, 2.0]),
        record("diverged", steps=[0, 100], returns=[0.0, 1.0]),  # ends early but does not cut the grid
        record("pruned", steps=[0, 50], returns=[0.0, 1.0]),
    ]
    assert scores.common_grid(runs) == pytest.approx([0, 100, 250, 500, 750])


def test_curve_matrix_interpolates_and_continues_a_diverged_run_at_the_random_policy_return(
    tmp_path: Path,
) -> None:
    grid = np.array([0.0, 250.0, 500.0, 750.0, 1000.0])
    (tmp_path / "config.json").write_text(json.dumps({"timesteps": 1000, "evaluation": {"freq": 250}}))
    diverged = record("diverged", steps=[0.0, 250.0], returns=[0.0, 4.0])
    diverged.run_dir = tmp_path
    runs = [record(steps=[0.0, 250.0, 500.0, 750.0, 1000.0], returns=[0.0, 5.0, 10.0, 15.0, 20.0]), diverged]
    matrix = scores.curve_matrix(runs, grid, scores.Normaliser.from_references({"Hopper-v5": (0, 20)}))
    floor = find_task("Hopper-v5").random_return / 20
    assert matrix == pytest.approx(np.array([[0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.2, floor, floor, floor]]))
    # its score is that continued curve: final = the floor, auc = the mean over the planned evaluations
    assert scores.run_score(diverged, "final_return") == pytest.approx(floor * 20)
    assert scores.run_score(diverged, "auc") == pytest.approx((0.0 + 4.0 + 3 * floor * 20) / 5)


def test_mark_duplicates_keeps_the_first_run_of_each_cell() -> None:
    first, second, other = record(), record(), record(task="Ant-v5")
    second.trial = 7
    marked = scores.mark_duplicates([first, second, other])
    assert [scores.run_state(r) for r in marked] == ["ok", "duplicate", "ok"]
    assert marked[0] is first and marked[2] is other


def test_stability_values_sum_the_events_and_measure_late_variation() -> None:
    run = record(
        stability={"return_collapses": 2, "loss_spikes": 3, "nan_events": 0},
        steps=[0, 250, 500, 750, 1000],
        returns=[0.0, 5.0, 9.0, 10.0, 12.0],
    )
    assert scores.stability_value(run, "instabilities") == 5.0
    assert scores.stability_value(run, "loss_spikes") == 3.0
    assert scores.stability_value(run, "late_std") == pytest.approx(np.std([10.0, 12.0], ddof=1))
    assert np.isnan(scores.stability_value(record(), "return_collapses"))  # no stability recorded


def test_a_diverged_run_counts_as_at_least_one_nan_event() -> None:
    quiet = {"return_collapses": 1, "loss_spikes": 0, "nan_events": 0}
    assert scores.stability_value(record("diverged", stability=quiet), "instabilities") == 2.0
    assert scores.stability_value(record("ok", stability=quiet), "instabilities") == 1.0
    noisy = {"return_collapses": 0, "loss_spikes": 0, "nan_events": 3}
    assert scores.stability_value(record("diverged", stability=noisy), "instabilities") == 3.0
    assert scores.stability_value(record("diverged", stability=quiet), "diverged") == 1.0
    assert scores.stability_value(record("ok", stability=quiet), "diverged") == 0.0


def test_the_trial_objective_and_the_report_take_the_study_suites_references(tmp_path: Path) -> None:
    from rlopt.config.study import parse_spec
    from rlopt.study.objective import run_value

    suite = tmp_path / "own.yaml"  # Hopper-v5 with references unlike those of the first suite listing it
    suite.write_text(
        "name: own\ntasks:\n  Hopper-v5: {timesteps: 1000, eval_freq: 500, eval_episodes: 1,"
        " random_return: 0, random_source: made up, reference_return: 100, reference_source: made up}\n"
    )
    spec = parse_spec({"name": "s", "algorithm": "ppo", "suite": str(suite), "seeds": 1,
                       "optimizers": [{"optimizer": "adam"}], "objective": "normalized_score"})
    assert find_task("Hopper-v5").reference_return != 100
    assert run_value(spec.objective, "Hopper-v5", [10.0, 50.0]) == pytest.approx(0.5)
    norm = scores.normaliser_for([record()], suite=spec.data["suite"])
    assert norm.bounds == {"Hopper-v5": (0.0, 100.0)} and "suite own" in norm.source
    known = scores.normaliser_for([record()])
    assert known.bounds["Hopper-v5"] == (find_task("Hopper-v5").random_return,
                                         find_task("Hopper-v5").reference_return)
    assert "min–max" in scores.normaliser_for([record(task="NoSuchTask-v0")], suite=str(suite)).source
