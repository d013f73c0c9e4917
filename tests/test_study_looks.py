"""Sequential seeds (``seeds: {initial, max, step}``): a real study run look by look, and its pieces.

The real study is too small for any agent to learn, so every look is inconclusive: it runs both looks,
and the second look's cells must reuse the first look's runs, not train them again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from _study_files import arm_trials, run_rlopt, spec_with, write_study
from optuna.trial import TrialState

from rlopt.analysis.progress import study_progress
from rlopt.config.claims import claims_at_looks, per_look_confidence
from rlopt.config.study import load_spec, parse_spec
from rlopt.errors import ConfigError
from rlopt.study import looks

CLAIM = {
    "statement": "ADOPT beats Adam",
    "source": "test",
    "kind": "better",
    "candidate": {"optimizer": "adopt"},
    "baseline": {"optimizer": "adam"},
    "min_runs": 2,
}
SEQUENTIAL = {"initial": 2, "max": 4, "step": 2}


def test_seed_looks_run_from_initial_by_step_to_max() -> None:
    spec = parse_spec(spec_with(seeds={"initial": 2, "max": 5, "step": 2}, claim=CLAIM))
    assert spec.seeds == (0, 1, 2, 3, 4)
    assert spec.seed_looks == (2, 4, 5)
    assert spec.at_look(0).seeds == (0, 1) and spec.at_look(2).seeds == spec.seeds
    assert parse_spec(spec_with(seeds=3)).seed_looks == ()


BAD = [
    ({"seeds": {"initial": 2, "max": 4}, "claim": CLAIM}, "seeds: missing 'step'", "initial: 5, max: 15"),
    ({"seeds": {**SEQUENTIAL, "size": 3}, "claim": CLAIM}, "seeds.size: unknown key", "initial, max, step"),
    ({"seeds": {**SEQUENTIAL, "initial": 1}, "claim": CLAIM}, "seeds.initial: 1", ">= 2"),
    ({"seeds": {**SEQUENTIAL, "max": 1}, "claim": CLAIM}, "seeds.max: 1", ">= 2"),
    ({"seeds": {**SEQUENTIAL, "step": 0}, "claim": CLAIM}, "seeds.step: 0", ">= 1"),
    ({"seeds": {**SEQUENTIAL, "max": 10_000}, "claim": CLAIM}, "seeds.max: 10000", "2 to 1,000"),
    ({"seeds": SEQUENTIAL}, "seeds: sequential seeds need a 'claim:' section", "a count or list"),
    ({"seeds": SEQUENTIAL, "claim": CLAIM, "pruner": "median"}, "seeds: sequential seeds need pruner: none",
     "'median'"),
    ({"seeds": SEQUENTIAL, "claim": CLAIM, "sampler": "random", "n_trials": 1},
     "seeds: sequential seeds need sampler: grid", "'random'"),
]


@pytest.mark.parametrize(("change", "where", "accepted"), BAD, ids=[b[1][:48] for b in BAD])
def test_bad_sequential_seeds_are_one_line_naming_the_key(change: dict[str, Any], where: str,
                                                          accepted: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_spec(spec_with(**change), file="studies/bad.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("studies/bad.yaml: ")
    assert where in message and accepted in message, message


def test_per_look_confidence_spends_the_error_evenly_over_the_looks() -> None:
    assert per_look_confidence(0.95, 1) == pytest.approx(0.95)
    assert per_look_confidence(0.95, 3) == pytest.approx(1 - 0.05 / 3)
    spec = parse_spec(spec_with(seeds={"initial": 2, "max": 6, "step": 2}, claim=CLAIM))
    (claim,) = claims_at_looks(spec.claim, len(spec.seed_looks))
    assert claim.confidence == pytest.approx(1 - 0.05 / 3)
    assert claims_at_looks(spec.claim, 1) == spec.claim


def _study_with_a_complete_cell(tmp_path: Path) -> optuna.Study:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'db.sqlite'}", study_name="s/adam",
                                direction="maximize")
    dist = optuna.distributions.CategoricalDistribution(["a"])
    study.add_trial(optuna.create_trial(params={"p": "a"}, distributions={"p": dist}, value=1.0,
                                        user_attrs={"seeds": [0, 1], "run_dirs": ["adam/t0/T_seed0"]}))
    return study


def test_a_look_queues_one_extension_per_cell_and_only_once(tmp_path: Path) -> None:
    study = _study_with_a_complete_cell(tmp_path)
    assert looks.queue_extensions(study, 2) == 0  # the cell already has 2 seeds
    assert looks.queue_extensions(study, 4) == 1
    assert looks.queue_extensions(study, 4) == 0  # the cell is extended: its copy is queued
    first, copy = study.get_trials()
    assert copy.state == TrialState.WAITING and copy.params == first.params
    assert copy.system_attrs["retry_history"] == [first.number]
    assert copy.system_attrs[looks.EXTENDS_ATTR] == first.number


def test_recording_a_look_moves_every_arm_on_once_and_a_final_one_stops(tmp_path: Path) -> None:
    study = _study_with_a_complete_cell(tmp_path)
    undecided = looks.LookResult(0, 2, ("inconclusive at this budget",), ("r",), final=False)
    assert looks.record_look([study], undecided)
    assert looks.current_look(study) == 1 and not looks.is_final(study)
    assert not looks.record_look([study], undecided)  # a second command judging look 0 records nothing
    decided = looks.LookResult(1, 4, ("reproduced",), ("r",), final=True)
    assert looks.record_look([study], decided)
    assert looks.current_look(study) == 1 and looks.is_final(study)
    assert [h["seeds"] for h in looks.history(study)] == [2, 4]


SEQUENTIAL_STUDY = """\
claim: {statement: ADOPT beats Adam, source: test, kind: better, candidate: {optimizer: adopt},
        baseline: {optimizer: adam}, min_runs: 2}
"""


@pytest.mark.slow
def test_a_sequential_study_extends_its_cells_reusing_their_runs_then_stops(tmp_path: Path) -> None:
    path = write_study(tmp_path, "seq", "  - optimizer: adam\n  - optimizer: adopt\n",
                       extra=SEQUENTIAL_STUDY)
    # the study's tasks come from a suite file given by path, whose name is not a known suite's: each
    # look normalises its scores with that file's references, as the report does
    suite = tmp_path / "pendulum-suite.yaml"
    suite.write_text("name: pendulum-only\ntasks:\n  InvertedPendulum-v5: {timesteps: 256, eval_freq: 128, "
                     "eval_episodes: 2, random_return: 5, random_source: x, reference_return: 1000, "
                     "reference_source: own refs}\n")
    path.write_text(path.read_text().replace("seeds: 2", "seeds: {initial: 2, max: 4, step: 2}")
                    .replace("tasks: [InvertedPendulum-v5]", f"suite: {suite}"))
    runs = tmp_path / "runs"
    done = run_rlopt("study", "run", path, "--runs-dir", runs, "--no-plots", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    log = done.stderr
    assert "look 1 (2 seeds per cell): inconclusive" in log and "extending every cell" in log, log[-3000:]
    assert "look 2 (4 seeds per cell): inconclusive" in log and "stopping here" in log, log[-3000:]
    url = f"sqlite:///{runs / 'seq' / 'study.db'}"
    for arm in ("adam", "adopt"):
        trials = arm_trials(url, "seq", arm)
        assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
        first, extended = trials
        assert first.user_attrs["seeds"] == [0, 1] and extended.user_attrs["seeds"] == [0, 1, 2, 3]
        assert extended.system_attrs[looks.EXTENDS_ATTR] == first.number
        # The first look's runs moved into the extension: nothing is listed twice, nothing retrained.
        assert not any((runs / "seq" / d).exists() for d in first.user_attrs["run_dirs"])
        assert all((runs / "seq" / d / "metrics.json").is_file() for d in extended.user_attrs["run_dirs"])
        reused = f"{arm} trial {extended.number} ({arm}): 4 runs, 2 of them finished by an earlier attempt"
        assert reused in log
    assert log.count("reusing the finished run") == 4

    again = run_rlopt("study", "run", path, "--runs-dir", runs, "--no-plots", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "look" not in again.stderr.replace("looks", "")  # nothing judged or run again
    assert [len(arm_trials(url, "seq", arm)) for arm in ("adam", "adopt")] == [2, 2]

    status = run_rlopt("study", "status", runs / "seq", cwd=tmp_path)
    assert status.returncode == 0, status.stderr[-3000:]
    assert "finished 2" in status.stdout  # one cell per arm: the extended trials are not counted again
    assert "look 2 (4 seeds per cell) inconclusive at this budget; stopped" in " ".join(status.stdout.split())

    report = run_rlopt("report", runs / "seq", cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (runs / "seq" / "report" / "report.md").read_text()
    assert "Sequential seeds: looks at 2, 4 seeds per cell" in text
    assert "look 2 (4 seeds per cell): inconclusive at this budget" in text
    # each look's verdict with its reason (its interval), so a report made during a later look still
    # says what the earlier one measured
    judged = r"look 1 \(2 seeds per cell\): inconclusive at this budget \([^)]*interval \["
    assert re.search(judged, text), text[:2000]
    assert "97.5% CI" in text  # 95% spent over two looks
    assert "Partial data" not in text and "not here" not in report.stderr

    # what the claims table and the campaign's resume read: complete, 2 cells x 4 seeds counted
    records, progress = study_progress(load_spec(path), runs / "seq")
    assert len(records) == 8 and (runs / "seq" / "study.db").is_file()
    assert progress.describe() == "8 of 8 (complete, stopped at look 2 of 2, 4 seeds per cell, up to 4)"
