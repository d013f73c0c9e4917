"""How far a study got (rlopt.analysis.progress): one meaning of "complete" for the claims table and the
campaign's resume, for fixed and sequential seeds. The real sequential study is in test_study_looks.py;
here the looks are those :mod:`rlopt.study.looks` records, on plain run records."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _study_files import spec_with

from rlopt.analysis.progress import claim_arms, claim_progress, progress_of
from rlopt.analysis.scores import Normaliser
from rlopt.config.claims import Claim
from rlopt.config.study import parse_spec
from rlopt.records import RunRecord
from rlopt.study.looks import LookResult

CLAIM = {"statement": "ADOPT beats Adam", "source": "test", "kind": "better",
         "candidate": {"optimizer": "adopt"}, "baseline": {"optimizer": "adam"}, "min_runs": 2}


def _runs(n: int, status: str = "ok", trial_state: str = "COMPLETE", *, arm: str = "adam",
          first_seed: int = 0, trial: int = 0) -> list[RunRecord]:
    return [RunRecord("s", trial, trial_state, arm, arm, {"arm": arm}, "InvertedPendulum-v5", seed,
                      np.zeros(1), np.zeros(1), {"status": status})
            for seed in range(first_seed, first_seed + n)]


def _look(look: int, seeds: int, final: bool) -> dict[str, Any]:
    return LookResult(look, seeds, ("inconclusive at this budget",), ("r",), final).as_attr()


def test_a_fixed_seed_study_is_complete_when_every_planned_run_counts() -> None:
    spec = parse_spec(spec_with(seeds=2))  # 2 arms x 1 task x 2 seeds
    assert spec.planned_runs() == 4
    assert progress_of(spec, _runs(4), [], 0).describe() == "4 of 4 (complete)"
    partial = progress_of(spec, _runs(3) + _runs(1, status="running"), [], 0)
    assert (partial.counted, partial.asked, partial.complete) == (3, 4, False)
    assert partial.describe() == "3 of 4 (partial)"
    # finished runs of a trial still training: they count when it completes, and the table says so
    training = progress_of(spec, _runs(2, trial_state="RUNNING") + _runs(1, status="running",
                                                                         trial_state="RUNNING"), [], 0)
    assert (training.counted, training.waiting) == (0, 2)
    assert training.describe() == "0 of 4 (partial; 2 more finished, waiting for their trial to complete)"
    # a finished run of a failed trial does not count (its retry will)
    assert not progress_of(spec, _runs(3) + _runs(1, trial_state="FAIL"), [], 0).complete


def test_a_second_run_of_a_cell_is_not_counted_twice() -> None:
    # the statistics take one run per (setting, task, seed) (mark_duplicates): so do the study's counts
    grid = parse_spec(spec_with(seeds=2))
    twice = _runs(3) + _runs(1, first_seed=2, trial=1)  # seed 2 twice, seed 3 never
    progress = progress_of(grid, twice, [], 0)
    assert (progress.counted, progress.duplicates, progress.complete) == (3, 1, False)
    assert progress.describe() == "3 of 4 (partial; 1 second run of a cell, not counted)"
    # a sampler's study ends with its trials, whatever it drew: complete, its second run said apart
    drawn = parse_spec(spec_with(seeds=2, sampler="random", n_trials=1,
                                 optimizers=[{"optimizer": "adam", "beta1": {"low": 0.8, "high": 0.9}},
                                             {"optimizer": "adopt", "beta1": {"low": 0.8, "high": 0.9}}]))
    assert drawn.planned_runs() == 4
    progress = progress_of(drawn, twice, [], 0)
    assert (progress.counted, progress.complete) == (3, True)
    assert progress.describe() == "3 of 4 (complete; 1 second run of a cell, not counted)"


@pytest.mark.parametrize(("looks", "look", "counted", "expected"), [
    ([], 0, 4, "4 of 4 (partial, look 1 of 2, 2 seeds per cell, up to 4)"),  # not judged yet
    ([_look(0, 2, False)], 1, 4, "4 of 8 (partial, look 2 of 2, 4 seeds per cell, up to 4)"),
    ([_look(0, 2, True)], 0, 4, "4 of 4 (complete, stopped at look 1 of 2, 2 seeds per cell, up to 4)"),
    ([_look(0, 2, False), _look(1, 4, True)], 1, 8,
     "8 of 8 (complete, stopped at look 2 of 2, 4 seeds per cell, up to 4)"),
])
def test_a_sequential_study_asks_for_its_looks_seeds_and_is_complete_when_it_stopped(
        looks: list[dict[str, Any]], look: int, counted: int, expected: str) -> None:
    spec = parse_spec(spec_with(seeds={"initial": 2, "max": 4, "step": 2}, claim=CLAIM))
    assert progress_of(spec, _runs(counted), looks, look).describe() == expected


SUITE = Normaliser.from_references({"InvertedPendulum-v5": (5.0, 1000.0)})
"""References that do not move with the runs, as a suite's (the campaign's studies all have one)."""


def test_a_claim_is_settled_once_every_run_of_the_entries_it_compares_counts() -> None:
    # the SAC study of claims 6 and 8: one claim per optimizer against one Adam arm, the trials in turn
    spec = parse_spec(spec_with(
        optimizers=[{"optimizer": "adam"}, {"optimizer": "adopt"}, {"optimizer": "adan"}],
        claim=[CLAIM, {**CLAIM, "statement": "Adan beats Adam", "candidate": {"optimizer": "adan"}}]))
    adopt, adan = spec.claim
    assert [a.label for a in claim_arms(spec, adopt)] == ["adam", "adopt"]
    both = _runs(2, arm="adam") + _runs(2, arm="adopt")
    settled = claim_progress(spec, adopt, both, SUITE)
    assert (settled.counted, settled.asked, settled.settled) == (4, 4, True)
    assert settled.describe() == "this claim's 4 of 4 runs all in: verdict final"
    pending = claim_progress(spec, adan, both, SUITE)  # Adan's trial has not run: Adam's 2 of its 4
    assert (pending.counted, pending.asked, pending.settled) == (2, 4, False)
    assert pending.describe() == "this claim's runs: 2 of 4"
    # a run still training, or a second run of a cell (a duplicate counts once), leaves it open
    training = _runs(2, arm="adam") + _runs(1, arm="adopt") + _runs(1, status="running", arm="adopt",
                                                                          first_seed=1)
    assert not claim_progress(spec, adopt, training, SUITE).settled
    twice = _runs(2, arm="adam") + _runs(1, arm="adopt") + _runs(1, arm="adopt", trial=1)
    assert claim_progress(spec, adopt, twice, SUITE).counted == 3
    # scores normalised over the study's own runs move with every run added: never final early
    assert not claim_progress(spec, adopt, both, Normaliser.from_runs(both)).settled


def test_a_claim_of_a_sequential_study_is_never_settled_before_its_study() -> None:
    # a later look may add seeds to its arms, however complete they are at this look
    spec = parse_spec(spec_with(seeds={"initial": 2, "max": 4, "step": 2}, claim=CLAIM))
    runs = _runs(4, arm="adam") + _runs(4, arm="adopt")
    assert not claim_progress(spec, Claim.from_dict(CLAIM), runs, SUITE).settled
