"""Claims from study files, and verdicts on constructed runs where the answer is known."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats

from rlopt.analysis.scores import Normaliser
from rlopt.analysis.verdict import CONTRADICTED, INCONCLUSIVE, REPRODUCED, evaluate
from rlopt.config.claims import Claim, claims_from_config
from rlopt.errors import ConfigError

TASKS = ("Hopper-v5", "Walker2d-v5")
REFS = Normaliser.from_references({t: (0.0, 100.0) for t in TASKS})
BOOT: dict[str, Any] = {"normaliser": REFS, "n_resamples": 300, "seed": 0}


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


def run(
    optimizer: str,
    task: str,
    seed: int,
    final: float,
    *,
    setting: str = "",
    status: str = "ok",
    curve: list[float] | None = None,
    stability: dict[str, int] | None = None,
    **params: Any,
) -> Run:
    returns = np.array(curve if curve is not None else [0.0, final / 2, final], dtype=float)
    steps = np.linspace(0.0, 1000.0, len(returns))
    metrics = {
        "status": status,
        "final_return": final,
        "auc": float(np.mean(returns)) if len(returns) else float("nan"),
        "stability": stability or {"return_collapses": 0, "loss_spikes": 0, "nan_events": 0},
    }
    trial_state = {"ok": "COMPLETE", "diverged": "COMPLETE", "pruned": "PRUNED"}.get(status, "RUNNING")
    return Run(
        "s", seed, trial_state, optimizer, setting or optimizer, params, task, seed, steps, returns, metrics
    )


def arm(optimizer: str, finals: list[float], tasks: tuple[str, ...] = TASKS, **kwargs: Any) -> list[Run]:
    return [run(optimizer, t, s, f, **kwargs) for t in tasks for s, f in enumerate(finals)]


def claim(kind: str, **extra: Any) -> Claim:
    d = {
        "statement": "A beats B",
        "source": "Paper 2024",
        "kind": kind,
        "candidate": {"optimizer": "a"},
        "baseline": {"optimizer": "b"},
        **extra,
    }
    return Claim.from_dict(d)


LOW = [10.0, 12.0, 14.0, 16.0, 18.0]
HIGH = [60.0, 62.0, 64.0, 66.0, 68.0]
NOISE = [10.0, 40.0, 20.0, 50.0, 30.0]
NOISE2 = [15.0, 45.0, 25.0, 35.0, 28.0]


@pytest.mark.parametrize(
    ("cand", "base", "expected"),
    [(HIGH, LOW, REPRODUCED), (LOW, HIGH, CONTRADICTED), (NOISE, NOISE2, INCONCLUSIVE)],
)
def test_better_follows_the_iqm_difference_interval(cand: list, base: list, expected: str) -> None:
    verdict = evaluate(claim("better"), arm("a", cand) + arm("b", base), **BOOT)
    assert verdict.outcome == expected
    assert (
        verdict.interval is not None
        and verdict.interval.low <= verdict.interval.estimate <= verdict.interval.high
    )
    expected_difference = (np.mean(sorted(cand)[1:4]) - np.mean(sorted(base)[1:4])) / 100
    assert verdict.interval.estimate == pytest.approx(expected_difference)
    assert "IQM difference" in verdict.measured and "P(improvement)" in verdict.measured
    assert "95% CI" in verdict.measured


def test_a_clear_win_with_too_few_seeds_is_inconclusive() -> None:
    verdict = evaluate(claim("better"), arm("a", HIGH[:4]) + arm("b", LOW[:4]), **BOOT)
    assert verdict.interval is not None and verdict.interval.low > 0
    assert verdict.outcome == INCONCLUSIVE
    assert "min_runs 5" in verdict.reason


def test_unfinished_runs_do_not_enter_the_verdict() -> None:
    finished = arm("a", HIGH) + arm("b", LOW)
    unfinished = arm("a", [-500.0] * 5, status="pruned") + arm("a", [-500.0] * 2, status="running")
    with_unfinished = evaluate(claim("better"), finished + unfinished, **BOOT)
    assert with_unfinished.outcome == REPRODUCED
    assert with_unfinished.interval == evaluate(claim("better"), finished, **BOOT).interval


def test_a_diverged_run_scores_its_last_evaluation() -> None:
    diverged = [run("a", t, 9, float("nan"), status="diverged", curve=[0.0, 5.0]) for t in TASKS]
    verdict = evaluate(claim("better"), arm("a", [70.0] * 5) + diverged + arm("b", [50.0] * 5), **BOOT)
    # each task: 5 of 6 candidate runs beat all 5 baseline runs, the diverged one (score 5) loses to all
    assert verdict.details["poi"] == pytest.approx(5 / 6)
    assert "candidate 12, baseline 10" in verdict.runs


@pytest.mark.parametrize(
    ("cand", "base", "margin", "expected"),
    [
        (HIGH, HIGH, 0.2, REPRODUCED),  # identical: difference 0 > -0.2 x 0.64 (what the baseline learnt)
        (LOW, HIGH, 0.2, CONTRADICTED),  # 50 points (0.5 normalised) worse, far beyond 0.2 x 0.64
        (NOISE, NOISE2, 0.02, INCONCLUSIVE),
    ],
)
def test_competitive_follows_the_iqm_difference_and_the_margin(
    cand: list, base: list, margin: float, expected: str
) -> None:
    verdict = evaluate(claim("competitive", margin=margin), arm("a", cand) + arm("b", base), **BOOT)
    assert verdict.outcome == expected
    assert f"margin −{margin:g} × baseline's gain" in verdict.measured
    assert verdict.details["gain_baseline"] == pytest.approx(np.mean(sorted(base)[1:4]) / 100)


def test_competitive_is_inconclusive_when_the_baseline_learnt_less_than_the_margin() -> None:
    untrained = [1.0, 1.5, 2.0, 2.5, 3.0]  # 0.01-0.03 normalised: a random policy is within the margin
    verdict = evaluate(claim("competitive", margin=0.05), arm("a", untrained) + arm("b", untrained), **BOOT)
    assert verdict.interval is not None and verdict.interval.low > -0.05
    assert verdict.outcome == INCONCLUSIVE
    assert "nothing was learnt" in verdict.reason


def settings(optimizer: str, finals_by_setting: dict[float, list[float]]) -> list[Run]:
    return [
        r
        for b2, finals in finals_by_setting.items()
        for r in arm(optimizer, finals, setting=f"{optimizer} b2={b2}", betas=[0.9, b2])
    ]


def five(*values: float) -> list[float]:
    return (
        [v + d for v in values for d in (0.0, 1.0, 2.0, 3.0, 4.0)][:5] if len(values) == 1 else list(values)
    )


FLAT = {0.9: five(40.0), 0.99: five(40.5), 0.999: five(41.0)}
STEEP = {0.9: five(5.0), 0.99: five(40.0), 0.999: five(80.0)}
NOISY = {
    0.9: [10.0, 60.0, 35.0, 25.0, 45.0],
    0.99: [20.0, 55.0, 30.0, 40.0, 35.0],
    0.999: [15.0, 50.0, 40.0, 30.0, 20.0],
}
NOISY2 = {
    0.9: [12.0, 58.0, 33.0, 27.0, 43.0],
    0.99: [25.0, 52.0, 30.0, 44.0, 31.0],
    0.999: [18.0, 45.0, 40.0, 26.0, 22.0],
}


@pytest.mark.parametrize(
    ("cand", "base", "expected"),
    [(FLAT, STEEP, REPRODUCED), (STEEP, FLAT, CONTRADICTED), (NOISY, NOISY2, INCONCLUSIVE)],
)
def test_robust_compares_the_spread_across_settings_with_the_baseline(
    cand: dict, base: dict, expected: str
) -> None:
    verdict = evaluate(claim("robust"), settings("a", cand) + settings("b", base), **BOOT)
    assert verdict.outcome == expected
    assert "3 values" in verdict.measured


@pytest.mark.parametrize(("finals", "expected"), [(FLAT, REPRODUCED), (STEEP, CONTRADICTED)])
def test_robust_without_baseline_compares_the_spread_with_the_margin(finals: dict, expected: str) -> None:
    c = Claim.from_dict(
        {
            "statement": "s",
            "source": "p",
            "kind": "robust",
            "candidate": {"optimizer": "a"},
            "group_by": "betas",
            "margin": 0.2,
        }
    )
    verdict = evaluate(c, settings("a", finals), **BOOT)
    assert verdict.outcome == expected


def test_robust_without_baseline_is_inconclusive_when_no_setting_learnt() -> None:
    c = Claim.from_dict(
        {"statement": "s", "source": "p", "kind": "robust", "candidate": {"optimizer": "a"}, "margin": 0.2}
    )
    flat_and_untrained = {0.9: five(1.0), 0.99: five(1.5)}
    verdict = evaluate(c, settings("a", flat_and_untrained), **BOOT)
    assert verdict.outcome == INCONCLUSIVE
    assert "learnt too little" in verdict.reason


def unstable(optimizer: str, collapses: list[int]) -> list[Run]:
    return [
        run(optimizer, t, s, 50.0, stability={"return_collapses": c, "loss_spikes": 1, "nan_events": 0})
        for t in TASKS
        for s, c in enumerate(collapses)
    ]


@pytest.mark.parametrize(
    ("cand", "base", "expected"),
    [
        ([0, 0, 0, 0, 0], [3, 4, 5, 3, 4], REPRODUCED),
        ([3, 4, 5, 3, 4], [0, 0, 0, 0, 0], CONTRADICTED),
        ([0, 0, 0, 0, 0], [0, 0, 0, 0, 0], INCONCLUSIVE),  # no instabilities anywhere: difference exactly 0
    ],
)
def test_fewer_instabilities_follows_the_difference_of_mean_counts(
    cand: list, base: list, expected: str
) -> None:
    verdict = evaluate(claim("fewer_instabilities"), unstable("a", cand) + unstable("b", base), **BOOT)
    assert verdict.outcome == expected
    assert verdict.claim.metric == "instabilities"


def scaled(rule: str, kappas: dict[int, list[float]], noise: float, seed: int) -> list[Run]:
    rng = np.random.default_rng(seed)
    runs = []
    for kappa, curve in kappas.items():
        for task in TASKS:
            for s in range(5):
                points = np.array(curve) + rng.normal(0.0, noise, len(curve))
                runs.append(
                    run(
                        "adam",
                        task,
                        s,
                        float(points[-1]),
                        setting=f"{rule} k={kappa}",
                        curve=list(points),
                        scaling_rule=rule,
                        kappa=kappa,
                    )
                )
    return runs


SAME = {1: [0.0, 30.0, 60.0, 80.0], 4: [0.0, 31.0, 61.0, 79.0], 16: [0.0, 29.0, 59.0, 81.0]}
APART = {1: [0.0, 30.0, 60.0, 80.0], 4: [0.0, 10.0, 20.0, 30.0], 16: [0.0, 50.0, 90.0, 95.0]}


@pytest.mark.parametrize(
    ("cand", "base", "noise", "expected"),
    [(SAME, APART, 1.0, REPRODUCED), (APART, SAME, 1.0, CONTRADICTED), (SAME, SAME, 20.0, INCONCLUSIVE)],
)
def test_closest_curves_compares_the_gaps_between_batch_sizes(
    cand: dict, base: dict, noise: float, expected: str
) -> None:
    c = Claim.from_dict(
        {
            "statement": "sqrt rule keeps curves together",
            "source": "Malladi 2022",
            "kind": "closest_curves",
            "candidate": {"scaling_rule": "sqrt"},
            "baseline": {"scaling_rule": "none"},
        }
    )
    verdict = evaluate(c, scaled("sqrt", cand, noise, 1) + scaled("none", base, noise, 2), **BOOT)
    assert verdict.outcome == expected
    assert verdict.details["distance_candidate"] >= 0


def test_runs_without_the_metric_are_left_out() -> None:
    # a pruned run has no final value; it is left out, not scored
    no_eval = [run("a", t, 7, float("nan"), status="pruned", curve=[]) for t in TASKS]
    verdict = evaluate(claim("better"), arm("a", HIGH) + no_eval + arm("b", LOW), **BOOT)
    assert verdict.outcome == REPRODUCED
    assert "candidate 10, baseline 10" in verdict.runs


def test_a_run_that_diverged_before_any_evaluation_counts_at_the_random_policy_return() -> None:
    # the diverged-run rule: it scores the task's random-policy return (a failure of its setting)
    diverged = [run("a", t, 7, float("nan"), status="diverged", curve=[]) for t in TASKS]
    verdict = evaluate(claim("better"), arm("a", HIGH) + diverged + arm("b", LOW), **BOOT)
    assert "candidate 12, baseline 10" in verdict.runs


def test_no_matching_runs_is_inconclusive_not_an_error() -> None:
    verdict = evaluate(claim("better"), arm("a", HIGH), **BOOT)
    assert verdict.outcome == INCONCLUSIVE
    assert verdict.interval is None


def test_verdict_is_deterministic_given_the_seed() -> None:
    runs = arm("a", NOISE) + arm("b", NOISE2)
    assert evaluate(claim("better"), runs, **BOOT) == evaluate(claim("better"), runs, **BOOT)


def test_selector_lists_and_alternatives_match_as_documented() -> None:
    c = Claim.from_dict(
        {
            "statement": "s",
            "source": "p",
            "kind": "better",
            "candidate": [{"scaling_rule": "sqrt"}, {"kappa": 1}],
            "baseline": {"optimizer": ["b", "c"], "betas": [0.9, 0.999]},
        }
    )
    assert c.candidate.matches(run("x", "T", 0, 1.0, scaling_rule="none", kappa=1))
    assert c.candidate.matches(run("x", "T", 0, 1.0, scaling_rule="sqrt", kappa=4))
    assert not c.candidate.matches(run("x", "T", 0, 1.0, scaling_rule="none", kappa=4))
    assert c.baseline is not None
    assert c.baseline.matches(run("c", "T", 0, 1.0, betas=(0.9, 0.999)))
    assert not c.baseline.matches(run("c", "T", 0, 1.0, betas=(0.9, 0.99)))
    assert not c.baseline.matches(run("d", "T", 0, 1.0, betas=(0.9, 0.999)))


def test_a_selector_may_select_an_entry_unless_a_key_it_names_rules_it_out() -> None:
    # which optimizer entries of a study a claim can draw runs from (rlopt.analysis.progress.claim_arms)
    c = Claim.from_dict(
        {
            "statement": "s",
            "source": "p",
            "kind": "better",
            "candidate": [{"scaling_rule": "sqrt"}, {"optimizer": ["b", "c"], "beta2": 0.999}],
            "baseline": {"beta2": 0.99},
        }
    )
    assert c.candidate.may_select({"optimizer": "a", "scaling_rule": "sqrt"})
    assert c.candidate.may_select({"optimizer": "c", "scaling_rule": "none"})  # its betas are unknown
    assert not c.candidate.may_select({"optimizer": "a", "scaling_rule": "none"})
    assert not c.candidate.may_select({"optimizer": "d", "scaling_rule": "linear"})
    assert c.baseline is not None and c.baseline.may_select({"optimizer": "d", "scaling_rule": "none"})


def test_beta_keys_pick_one_entry_of_the_betas() -> None:
    c = Claim.from_dict({**BASE, "candidate": {"beta2": [0.99, 0.999]}})
    assert c.candidate.matches(run("a", "T", 0, 1.0, betas=[0.9, 0.999]))
    assert not c.candidate.matches(run("a", "T", 0, 1.0, betas=[0.9, 0.9999]))
    assert not c.candidate.matches(run("a", "T", 0, 1.0, betas=[0.9]))
    assert not c.candidate.matches(run("a", "T", 0, 1.0))


def test_robust_across_beta2_groups_runs_by_the_second_beta() -> None:
    c = Claim.from_dict(
        {
            "statement": "s",
            "source": "p",
            "kind": "robust",
            "candidate": {"optimizer": "a"},
            "baseline": {"optimizer": "b"},
            "group_by": "beta2",
        }
    )
    verdict = evaluate(c, settings("a", FLAT) + settings("b", STEEP), **BOOT)
    assert verdict.outcome == REPRODUCED
    assert "across beta2" in verdict.measured
    # grouped rules judge each task alone too; here both tasks hold the same runs, so the same verdict
    hopper, walker = verdict.per_task.split("; ")
    assert hopper.startswith("Hopper-v5: +") and hopper.endswith(", reproduced")
    assert walker.removeprefix("Walker2d-v5") == hopper.removeprefix("Hopper-v5")
    # the simulation asks for the outcome only
    assert not evaluate(c, settings("a", FLAT) + settings("b", STEEP), **BOOT, each_task=False).per_task


def test_a_selector_key_no_run_has_is_a_config_error() -> None:
    c = Claim.from_dict(
        {
            "statement": "s",
            "source": "p",
            "kind": "better",
            "candidate": {"optimiser": "a"},
            "baseline": {"optimizer": "b"},
        }
    )
    with pytest.raises(ConfigError, match="'optimiser' matches no run"):
        evaluate(c, arm("a", HIGH) + arm("b", LOW), **BOOT)


BASE = {
    "statement": "s",
    "source": "p",
    "kind": "better",
    "candidate": {"optimizer": "a"},
    "baseline": {"optimizer": "b"},
}


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"colour": "red"}, "unknown key 'colour'; accepted keys: statement"),
        ({"kind": "faster"}, "claim.kind: 'faster' is not one of: better, competitive, robust"),
        ({"baseline": None}, "kind 'better' needs a 'baseline'"),
        ({"kind": "competitive"}, "needs 'margin'"),
        ({"margin": 0.1}, "margin is not used by kind 'better'"),
        (
            {"metric": "loss_spikes"},
            "metric: 'loss_spikes' is not accepted for kind 'better'; accepted: final_return",
        ),
        ({"statement": None}, "missing 'statement'"),
        ({"candidate": {}}, "claim.candidate must be a non-empty mapping"),
        ({"candidate": "adopt"}, "claim.candidate must be a non-empty mapping"),
        ({"confidence": 95}, "confidence must be a number in"),
        ({"min_runs": 1}, "min_runs must be an integer >= 2"),
        ({"kind": "competitive", "margin": -0.1}, "margin must be a number in [0, 1]"),
        ({"kind": "competitive", "margin": 5}, "margin must be a number in [0, 1] (a fraction of what"),
        ({"min_gain": -1}, "min_gain must be a number in [0, 1)"),
        ({"paper_timesteps": 0}, "paper_timesteps must be a positive number of env steps"),
        ({"group_by": "kappa"}, "group_by is not used by kind 'better'"),
        ({"kind": "robust", "tune_by": "lr"}, "tune_by is not used by kind 'robust'; it applies to: better"),
        ({"tune_by": 3}, "tune_by must be a selector key such as 'lr', got 3"),
    ],
)
def test_bad_claims_name_the_key_and_what_is_accepted(change: dict, match: str) -> None:
    d = {**BASE, **change}
    with pytest.raises(ConfigError, match=re.escape(match)):
        Claim.from_dict({k: v for k, v in d.items() if v is not None})


def tuned(optimizer: str, finals_by_lr: dict[float, list[float]]) -> list[Run]:
    return [r for lr, finals in finals_by_lr.items() for r in arm(optimizer, finals, lr=lr)]


def iqm(values: list[float]) -> float:
    return float(scipy.stats.trim_mean(values, 0.25))


def test_tuned_arms_are_compared_at_each_arms_best_learning_rate() -> None:
    """tune_by: lr: each arm counts at its best lr (picked on the runs), not averaged over its grid."""
    cand = tuned("a", {0.03: LOW, 0.1: HIGH, 0.3: NOISE})
    base = tuned("b", {1e-4: NOISE2, 3e-4: [v + 5 for v in LOW], 1e-3: LOW})
    verdict = evaluate(claim("better", tune_by="lr"), cand + base, **BOOT)
    assert verdict.interval is not None
    # the estimate: the best lr's IQM of each arm (a: 0.1, b: 1e-4), normalised by the 0-100 references
    assert verdict.interval.estimate == pytest.approx((iqm(HIGH) - iqm(NOISE2)) / 100)
    assert "tuned by lr over 3/3 values" in verdict.measured
    assert "candidate lr=0.1, baseline lr=0.0001" in verdict.measured
    assert verdict.outcome == REPRODUCED and "candidate 30 in 3 groups" in verdict.runs
    # pooled over the grids (no tune_by), the same runs compare arms averaged over arbitrary lr ranges
    pooled = evaluate(claim("better"), cand + base, **BOOT)
    assert pooled.interval is not None and pooled.interval.estimate != verdict.interval.estimate


def test_a_tuned_interval_is_wider_than_the_picked_pair_alone() -> None:
    """The picks are made on the same runs, so the bounds are Bonferroni over the lrs: never narrower
    than the plain interval of the two picked lrs' runs, and equal to it with one lr per arm."""
    cand = tuned("a", {0.03: NOISE, 0.1: [v + 3 for v in NOISE], 0.3: NOISE2})
    base = tuned("b", {1e-4: NOISE2, 3e-4: NOISE, 1e-3: LOW})
    tuned_verdict = evaluate(claim("competitive", margin=0.2, tune_by="lr"), cand + base, **BOOT)
    picked = [r for r in cand if r.params["lr"] == 0.1] + [r for r in base if r.params["lr"] == 3e-4]
    plain = evaluate(claim("competitive", margin=0.2), picked, **BOOT)
    assert tuned_verdict.interval is not None and plain.interval is not None
    assert tuned_verdict.interval.estimate == pytest.approx(plain.interval.estimate)
    assert tuned_verdict.interval.low < plain.interval.low
    assert tuned_verdict.interval.high > plain.interval.high
    one_lr = evaluate(claim("competitive", margin=0.2, tune_by="lr"), picked, **BOOT)
    assert one_lr.interval == plain.interval


def test_a_tuned_claim_needs_every_lr_of_both_arms_on_every_task() -> None:
    """An lr run on one task only (a partial study) leaves that task out rather than mixing grids."""
    cand = tuned("a", {0.03: HIGH, 0.1: HIGH}) + arm("a", HIGH, tasks=TASKS[:1], lr=0.3)
    base = tuned("b", {1e-4: LOW, 3e-4: LOW, 1e-3: LOW})
    verdict = evaluate(claim("better", tune_by="lr"), cand + base, **BOOT)
    assert "on 1 task(s)" in verdict.runs and TASKS[1] in verdict.runs
    alone = evaluate(claim("better", tune_by="lr"), base, **BOOT)  # the candidate has not started
    assert alone.outcome == INCONCLUSIVE and "no task has finished runs of both arms" in alone.reason


def test_a_verdict_does_not_depend_on_the_order_runs_are_listed_in() -> None:
    """The bootstrap resamples positions; a report (run folders) and `rlopt verdict` (the exported CSV)
    list an arm of two settings in different orders, and gave claim 4 different intervals."""
    runs = tuned("a", {0.1: NOISE, 0.3: NOISE2}) + tuned("b", {0.1: NOISE2, 0.3: LOW})
    shuffled = [runs[i] for i in np.random.default_rng(0).permutation(len(runs))]
    for kind, extra in (("better", {}), ("competitive", {"margin": 0.2})):
        verdicts = [evaluate(claim(kind, **extra), order, **BOOT) for order in (runs, shuffled, runs[::-1])]
        assert verdicts[0].interval == verdicts[1].interval == verdicts[2].interval


def test_claims_section_may_be_one_claim_or_a_list() -> None:
    assert len(claims_from_config(BASE)) == 1
    assert [c.kind for c in claims_from_config([BASE, {**BASE, "kind": "fewer_instabilities"}])] == [
        "better",
        "fewer_instabilities",
    ]
    assert claims_from_config(None) == ()
    with pytest.raises(ConfigError, match=r"claim\[1\]: unknown key"):
        claims_from_config([BASE, {**BASE, "x": 1}])


def test_a_verdict_states_its_budget_against_the_paper() -> None:
    runs = arm("a", HIGH) + arm("b", LOW)
    sub = evaluate(claim("better", paper_timesteps=1_000_000), runs, **BOOT)
    assert sub.outcome == REPRODUCED and sub.sub_budget is True
    assert sub.budget == "sub-budget: 1,000 steps per run, 0.1% of the paper's 1,000,000"
    assert sub.label.startswith("reproduced (sub-budget: ")
    full = evaluate(claim("better", paper_timesteps=1000), runs, **BOOT)
    assert full.sub_budget is False and full.budget == "1,000 steps per run, 100% of the paper's 1,000"
    unknown = evaluate(claim("better"), runs, **BOOT)
    assert unknown.sub_budget is None and "the paper's budget is unknown" in unknown.budget


def test_an_ant_like_initial_score_is_not_learning() -> None:
    # Both arms start at 22 (an untrained Ant policy already scores above random) and stay there; the
    # baseline drifts down: "above random" and "better", but nothing was learnt.
    flat = [run("a", t, s, 22.0, curve=[22.0, 22.0, 22.0]) for t in TASKS for s in range(5)]
    down = [run("b", t, s, 5.0, curve=[22.0, 12.0, 5.0]) for t in TASKS for s in range(5)]
    verdict = evaluate(claim("better"), flat + down, **BOOT)
    assert verdict.interval is not None and verdict.interval.low > 0
    assert verdict.outcome == INCONCLUSIVE
    assert verdict.reason.startswith("nothing was learnt at this budget: the candidate learnt too little")


def test_a_task_where_nothing_was_learnt_does_not_ride_on_the_other_tasks_gains() -> None:
    # Claim 1's shape: on Hopper both arms learn and the candidate clearly more; on Walker2d both start
    # at 22 and end below it (PPO falling back). Pooled, the candidate is "better" with a pooled gain
    # far above min_gain, but on Walker2d it learnt nothing: the verdict cannot speak for both tasks.
    hopper = arm("a", HIGH, tasks=("Hopper-v5",)) + arm("b", LOW, tasks=("Hopper-v5",))
    walker = [run(o, "Walker2d-v5", s, 15.0 + s, curve=[22.0, 30.0, 15.0 + s])
              for o in "ab" for s in range(5)]
    verdict = evaluate(claim("better"), hopper + walker, **BOOT)
    assert verdict.interval is not None and verdict.interval.low > 0  # the interval alone: reproduced
    assert verdict.outcome == INCONCLUSIVE
    assert verdict.reason.startswith(
        "nothing was learnt at this budget: the candidate learnt too little on Walker2d-v5: IQM gain of its "
        "late return over its initial score -0.05 there, not above min_gain 0.1"
    )
    # the same rule on each task alone, as the details line shows it: what the pooled verdict rests on
    hopper_alone, walker_alone = verdict.per_task.split("; ")
    assert hopper_alone.startswith("Hopper-v5: +0.50 [") and hopper_alone.endswith(", reproduced")
    assert walker_alone.startswith("Walker2d-v5: +0.00 [")
    assert walker_alone.endswith("inconclusive at this budget (nothing was learnt: the candidate learnt too "
                                 "little: IQM gain of its late return over its initial score -0.05, estimate "
                                 "not above min_gain 0.1)")
    # the same runs where Walker2d learns too: the guard lets the verdict through
    learning = [run(o, "Walker2d-v5", s, f, curve=[0.0, f / 2, f])
                for o, finals in (("a", HIGH), ("b", LOW)) for s, f in enumerate(finals)]
    assert evaluate(claim("better"), hopper + learning, **BOOT).outcome == REPRODUCED


def test_learning_is_judged_on_the_late_return_not_on_one_last_evaluation() -> None:
    # 8 evaluations, so the last quarter of training holds the last two. The candidate learns to ~60 and
    # its last evaluation alone dips to its start (one bad evaluation of a few episodes): it learnt.
    rising = [0.0, 20.0, 40.0, 50.0, 55.0, 60.0, 62.0]
    dipped = [run("a", t, s, 0.0, curve=[*rising, 0.0]) for t in TASKS for s in range(5)]
    base = arm("b", LOW)
    assert evaluate(claim("better", metric="auc"), dipped + base, **BOOT).outcome == REPRODUCED
    # 12 evaluations (the last quarter: the last three). The candidate falls back to its start and its
    # very last evaluation spikes to 24-28: a lucky evaluation does not make a run that learnt.
    fell = [run("a", t, s, 24.0 + s, curve=[0.0, 40, 60, 60, 40, 20, 10, 5, 2, 0, 0, 24.0 + s])
            for t in TASKS for s in range(5)]
    verdict = evaluate(claim("better", metric="auc"), fell + base, **BOOT)
    assert verdict.interval is not None and verdict.interval.low > 0  # the interval alone: reproduced
    assert verdict.outcome == INCONCLUSIVE
    assert "candidate learnt too little: IQM gain of its late return over its initial score" in verdict.reason


def test_issue_13_competitive_case_is_inconclusive() -> None:
    # baseline ~0.070, candidate ~0.025 normalised: the candidate reaches a third of a baseline that
    # itself learnt less than min_gain.
    cand = arm("a", [2.3, 2.4, 2.5, 2.6, 2.7])
    base = arm("b", [6.8, 6.9, 7.0, 7.1, 7.2])
    verdict = evaluate(claim("competitive", margin=0.05), cand + base, **BOOT)
    assert verdict.outcome == INCONCLUSIVE
    assert "the baseline learnt too little" in verdict.reason


def test_every_inconclusive_verdict_gives_a_one_line_reason() -> None:
    cases = [
        evaluate(claim("better"), arm("a", HIGH), **BOOT),
        evaluate(claim("better"), arm("a", NOISE) + arm("b", NOISE2), **BOOT),
        evaluate(claim("better"), arm("a", HIGH[:4]) + arm("b", LOW[:4]), **BOOT),
        evaluate(claim("competitive", margin=0.2), arm("a", [1.0] * 5) + arm("b", [1.0] * 5), **BOOT),
    ]
    for verdict in cases:
        assert verdict.outcome == INCONCLUSIVE
        assert verdict.reason and "\n" not in verdict.reason
