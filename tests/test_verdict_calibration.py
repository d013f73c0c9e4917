"""The verdict rules on simulated studies with a known truth (fast version of scripts/calibrate_verdicts.py).

Under the null at the boundary of each claim kind, the rate of "reproduced" must not exceed the nominal
2.5% plus 3 Monte-Carlo standard errors; every degenerate case (nothing learnt, flat curves, too few
seeds) must come out inconclusive in every simulated study.
"""

from __future__ import annotations

import pytest

from rlopt.analysis import simulation as vs

NOMINAL = 0.025
SCENARIOS = {s.name: s for s in vs.scenarios()}
NULLS = [name for name, s in SCENARIOS.items() if s.truth == "null"]
DEGENERATE = [name for name, s in SCENARIOS.items() if s.truth == "degenerate"]
STUDIES = {"robust": 80, "closest_curves": 60}
"""Fewer studies for the slower kinds (many groups); the others get 150."""


@pytest.mark.parametrize("name", NULLS)
def test_false_reproduced_rate_at_the_null_is_within_nominal(name: str) -> None:
    scenario = SCENARIOS[name]
    studies = STUDIES.get(scenario.kind, 150)
    rates = vs.simulate(scenario, studies, n_resamples=150, seed=7)
    assert rates.reproduced_rate <= NOMINAL + 3 * rates.mc_se, (name, rates.reproduced, studies)


@pytest.mark.parametrize("name", DEGENERATE)
def test_degenerate_cases_are_never_reproduced(name: str) -> None:
    rates = vs.simulate(SCENARIOS[name], 15, n_resamples=150, seed=3)
    assert rates.reproduced == 0 and rates.contradicted == 0, (name, rates.example)
    assert rates.example


def test_a_clear_effect_is_detected() -> None:
    """The test is not passed by a rule that never says reproduced."""
    rates = vs.simulate(SCENARIOS["fewer_instabilities/effect"], 40, n_resamples=150, seed=1)
    assert rates.reproduced_rate > 0.4


def test_sequential_design_spends_fewer_seeds_on_a_clear_effect() -> None:
    scenario = vs.Scenario(
        "clear",
        "better",
        "effect",
        vs._claim("better", metric="final_return"),
        (vs._one("cand", vs.RunModel(mean=0.8, sd=0.05, fail=0.0)), vs._one("base", vs.RunModel(fail=0.0))),
    )
    judge = vs.sequential_judge((5, 10, 15), 150)
    rates = vs.simulate(scenario, 10, n_resamples=150, seeds=15, judge=judge)
    assert rates.reproduced == 10 and rates.seeds_spent == 5.0
