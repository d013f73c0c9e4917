"""Study files: validation of every key, grid expansion, search spaces in a well-scaled space."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from _study_files import spec_with

from rlopt.config.study import load_spec, parse_spec
from rlopt.errors import ConfigError
from rlopt.study.plan import check_plan
from rlopt.study.samplers import make_pruner, make_sampler
from rlopt.study.space import finite_settings, grid_search_space, suggest_setting


def validated(data: dict[str, Any], file: str = "<study>") -> Any:
    """What ``rlopt study run`` checks before it writes anything: the file's values, then the dry run."""
    spec = parse_spec(data, file=file)
    check_plan(spec, file)
    return spec


def test_minimal_study_takes_documented_defaults() -> None:
    spec = parse_spec(spec_with())
    assert spec.seeds == (0, 1)
    assert spec.sampler.name == "grid" and spec.pruner.name == "none"
    assert spec.objective.metric == "final_return" and spec.objective.aggregate == "iqm"
    assert spec.fairness == "same_budget"
    assert [spec.trials_for(a) for a in spec.arms] == [1, 1]
    assert [s.label for a in spec.arms for s in finite_settings(a)] == ["adam", "adopt"]


def test_grid_lists_expand_as_a_product_with_readable_labels() -> None:
    spec = parse_spec(spec_with(optimizers=[
        {"optimizer": "adam", "beta1": [0.9, 0.95], "beta2": [0.9, 0.99, 0.999, 0.9999], "lr": 3e-4},
    ]))
    arm = spec.arms[0]
    settings = finite_settings(arm)
    assert len(settings) == 8 == spec.trials_for(arm)
    assert settings[0].label == "adam b1=0.9 b2=0.9"
    assert settings[-1].betas == (0.95, 0.9999)
    assert all(s.lr == 3e-4 for s in settings)
    assert grid_search_space(arm) == {"beta1": [0.9, 0.95], "beta2": [0.9, 0.99, 0.999, 0.9999]}


def test_explicit_settings_keep_their_labels_and_overrides() -> None:
    spec = parse_spec(spec_with(optimizers=[{
        "optimizer": "adam", "scaling_rule": "sqrt",
        "settings": [{"kappa": 1}, {"kappa": 2, "label": "adam x2", "overrides": {"n_epochs": 3}}],
    }]))
    arm = spec.arms[0]
    first, second = finite_settings(arm)
    assert (first.label, first.kappa) == ("adam kappa=1", 1.0)
    assert (second.label, second.kappa, second.overrides["n_epochs"]) == ("adam x2", 2.0, 3)
    assert second.overrides["n_steps"] == 64  # the study's overrides are merged in
    assert grid_search_space(arm) == {"setting": ["adam kappa=1", "adam x2"]}


def test_grid_sampler_covers_every_grid_point_once() -> None:
    spec = parse_spec(spec_with(optimizers=[{"optimizer": "adopt", "beta2": [0.9, 0.99, 0.999, 0.9999]}]))
    arm = spec.arms[0]
    study = optuna.create_study(sampler=make_sampler(spec, arm), direction="maximize")
    seen = []
    for _ in range(spec.trials_for(arm)):
        trial = study.ask()
        seen.append(suggest_setting(trial, arm).betas)
        study.tell(trial, 0.0)
    assert sorted(seen) == [(0.9, b) for b in (0.9, 0.99, 0.999, 0.9999)]


def test_searched_betas_are_drawn_in_log_one_minus_beta_space() -> None:
    spec = parse_spec(spec_with(
        sampler={"name": "random", "seed": 3}, n_trials=200,
        optimizers=[{"optimizer": "adam", "beta2": {"low": 0.9, "high": 0.9999},
                     "lr": {"low": 1e-5, "high": 1e-2}}],
    ))
    arm = spec.arms[0]
    study = optuna.create_study(sampler=make_sampler(spec, arm), direction="maximize")
    betas, lrs = [], []
    for _ in range(200):
        trial = study.ask()
        setting = suggest_setting(trial, arm)
        assert trial.params["1-beta2"] == pytest.approx(1 - setting.betas[1])
        betas.append(setting.betas[1])
        lrs.append(setting.lr)
        study.tell(trial, 0.0)
    assert all(0.9 <= b <= 0.9999 for b in betas) and all(1e-5 <= lr <= 1e-2 for lr in lrs)
    # log-uniform in 1-beta: about a third of the draws fall in each decade of 1-beta
    per_decade = [sum(10.0 ** -(d + 1) < 1 - b <= 10.0 ** -d for b in betas) for d in (1, 2, 3)]
    assert all(40 <= n <= 95 for n in per_decade), per_decade
    assert study.trials[0].distributions["1-beta2"].log


def test_scientific_notation_without_a_dot_reads_as_a_number(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: sci\nalgorithm: ppo\ntasks: [InvertedPendulum-v5]\nseeds: 1\ntimesteps: 256\n"
        "evaluation: {every: 128}\noptimizers:\n  - {optimizer: adam, lr: 3e-4, eps: 1e-5}\n"
    )
    spec = load_spec(path)
    assert spec.arms[0].fixed == {"lr": 3e-4, "eps": 1e-5}


def test_samplers_and_pruners_are_optunas_own_classes() -> None:
    spec = parse_spec(spec_with(sampler={"name": "tpe", "n_startup_trials": 3, "seed": 1},
                                pruner={"name": "median", "n_warmup_steps": 128}, n_trials=4))
    sampler = make_sampler(spec, spec.arms[0], worker=2)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert isinstance(make_pruner(spec), optuna.pruners.MedianPruner)
    for name, cls in (("cmaes", optuna.samplers.CmaEsSampler), ("qmc", optuna.samplers.QMCSampler),
                      ("random", optuna.samplers.RandomSampler)):
        assert isinstance(make_sampler(parse_spec(spec_with(sampler=name, n_trials=2)), spec.arms[0]), cls)
    for name, cls in (("hyperband", optuna.pruners.HyperbandPruner),
                      ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
                      ("none", optuna.pruners.NopPruner)):
        assert isinstance(make_pruner(parse_spec(spec_with(pruner=name))), cls)


@pytest.mark.parametrize("sampler", ["tpe", "cmaes", "random", "qmc"])
def test_every_searching_sampler_samples_lr_and_beta2_within_their_ranges(sampler: str) -> None:
    """Real Optuna studies: each sampler proposes settings over a 2-parameter space (CMA-ES needs 2+)."""
    arm_data = {"optimizer": "adam", "lr": {"low": 1e-5, "high": 1e-3}, "beta2": {"low": 0.9, "high": 0.9999}}
    spec = parse_spec(spec_with(sampler={"name": sampler, "seed": 3}, optimizers=[arm_data], n_trials=8))
    arm = spec.arms[0]
    study = optuna.create_study(sampler=make_sampler(spec, arm), direction="maximize")
    settings = []
    for _ in range(8):
        trial = study.ask()
        setting = suggest_setting(trial, arm)
        study.tell(trial, -abs(np.log10(setting.lr) + 4) - abs(np.log10(1 - setting.betas[1]) + 3))
        settings.append(setting)
    lrs = [s.lr for s in settings]
    beta2s = [s.betas[1] for s in settings]
    assert all(1e-5 <= lr <= 1e-3 for lr in lrs) and all(0.9 <= b <= 0.9999 for b in beta2s)
    assert len(set(lrs)) == 8 and len(set(beta2s)) == 8, "the sampler repeated a setting"
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_suite_gives_tasks_and_requires_a_normalised_objective() -> None:
    with pytest.raises(ConfigError, match=r"objective\.metric: final_return would mix raw returns"):
        parse_spec(spec_with(tasks=None, timesteps=None, evaluation=None, suite="smoke"))
    spec = parse_spec(spec_with(tasks=None, timesteps=None, evaluation=None, suite="smoke",
                                objective={"metric": "normalized_score"}))
    assert spec.tasks == ("InvertedPendulum-v5", "HalfCheetah-v5") and spec.timesteps is None


def adam(**values: Any) -> dict[str, Any]:
    return {"optimizers": [{"optimizer": "adam", **values}]}


BAD = [
    # (change, fragment naming the key, fragment saying what is accepted)
    ({"sampeler": "tpe"}, "sampeler: unknown key (did you mean 'sampler'?", "accepted: name,"),
    ({"optimizers": [{"optimizer": "adamx"}]}, "optimizers[0].optimizer: Unknown optimizer 'adamx'",
     "accepted:"),
    (adam(beta2=1.2), "optimizers[0].beta2: 1.2", "0 <= beta < 1"),
    (adam(beta1=[0.9, 1.0]), "optimizers[0].beta1[1]: 1.0", "0 <= beta < 1"),
    ({**adam(lr={"low": 1e-2, "high": 1e-4}), "sampler": "tpe", "n_trials": 2},
     "optimizers[0].lr: impossible range", "not below high"),
    (adam(lr={"low": 1e-4, "high": 1e-2}),
     "optimizers[0].lr: a range needs a search sampler", "accepted with sampler grid"),
    (adam(beta3=0.9), "optimizers[0].beta3", "accepted: beta1, beta2"),
    ({"optimizers": [{"optimizer": "sgd", "eps": 1e-8}]}, "optimizers[0].eps: optimizer 'sgd' has no eps",
     "leave"),
    (adam(betas2=[0.9]), "optimizers[0].betas2: unknown key", "accepted:"),
    (adam(extra={"nope": 1}), "optimizers[0].extra.nope", "accepted:"),
    ({"optimizers": [{"optimizer": "adam"}, {"optimizer": "adam"}]}, "optimizers[1].label: 'adam' is used",
     "unique label"),
    ({"optimizers": [{"optimizer": "adam", "kappa": 2}]}, "optimizers[0].scaling_rule: kappa != 1", "sqrt"),
    ({"optimizers": [{"optimizer": "adam", "kappa": 20, "scaling_rule": "sqrt", "beta2": 0.9}]},
     "kappa*(1-beta)", "accepted: kappa <"),
    ({"tasks": ["HalfCheeta-v5"]}, "tasks[0]: Unknown task 'HalfCheeta-v5'", "accepted:"),
    ({"tasks": None}, "give exactly one of 'tasks'", "'suite'"),
    ({"suite": "nosuch", "tasks": None}, "suite: Unknown suite 'nosuch'", "accepted:"),
    ({"algorithm": "dqn"}, "algorithm: Unknown algorithm 'dqn'", "ppo, sac"),
    ({"sampler": "bayes"}, "sampler: 'bayes' is not accepted", "grid, tpe, cmaes, random, qmc"),
    ({"sampler": {"name": "tpe", "n_startup": 3}, "n_trials": 2}, "sampler: 'n_startup' is not an argument",
     "n_startup_trials"),
    ({"pruner": "early"}, "pruner: 'early' is not accepted", "median"),
    ({"sampler": "tpe"}, "missing 'n_trials'", "required with sampler tpe"),
    ({"n_trials": 3}, "n_trials: 3 is more than the 1 grid points", "at most 1"),
    ({"seeds": 0}, "seeds: 0 is not accepted", "integer >= 1"),
    ({"seeds": [1, 1]}, "seeds: [1, 1] repeats a seed", "distinct"),
    ({"timesteps": None}, "missing required key 'timesteps'", "suite"),
    ({"objective": {"metric": "reward"}}, "objective.metric: 'reward' is not accepted", "final_return, auc"),
    ({"fairness": "same_lr"}, "fairness same_lr needs a top-level 'lr'", "shared"),
    ({"fairness": "same_lr", "lr": 3e-4, "optimizers": [{"optimizer": "adam", "lr": 1e-3}]},
     "optimizers[0].lr: fairness same_lr", "top-level lr"),
    ({"optimizers": [{"optimizer": "adam", "lr": [1e-4, 3e-4]}, {"optimizer": "adopt"}]},
     "fairness: same_budget needs the same number of learning rates", "adam: 2, adopt: 1"),
    ({"storage": "mongodb://x"}, "storage: unsupported storage", "postgresql://"),
    ({"overrides": {"n_stepz": 64}}, "Unknown PPO hyperparameter 'n_stepz'", "accepted:"),
    ({"heartbeat": {"interval": 10, "grace_period": 5}}, "heartbeat.grace_period: 5 is too short", ">= 30"),
    ({"heartbeat": {"interval": 1, "grace_period": 4}}, "heartbeat.grace_period: 4 is too short", ">= 10 s"),
    ({"claim": {"statement": "x", "source": "y", "kind": "better"}}, "claim:", "candidate"),
    ({"checkpoint_every": 0}, "checkpoint_every: 0 is not accepted", "integer >= 1; or null"),
    ({"checkpoint_every": "often"}, "checkpoint_every: 'often' is not accepted", "or null"),
]


@pytest.mark.parametrize(("change", "where", "accepted"), BAD, ids=[b[1][:40] for b in BAD])
def test_bad_value_is_one_line_naming_file_key_and_accepted_values(change: dict[str, Any], where: str,
                                                                   accepted: str) -> None:
    with pytest.raises(ConfigError) as info:
        validated(spec_with(**change), file="studies/bad.yaml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("studies/bad.yaml: ")
    assert where in message and accepted in message, message


def test_same_lr_fairness_gives_every_arm_the_top_level_lr() -> None:
    spec = parse_spec(spec_with(fairness="same_lr", lr=[1e-4, 3e-4]))
    assert [[s.lr for s in finite_settings(a)] for a in spec.arms] == [[1e-4, 3e-4], [1e-4, 3e-4]]


def test_nan_or_bool_values_are_not_numbers() -> None:
    for bad in (math.nan, True, "0.9"):
        with pytest.raises(ConfigError, match="beta2"):
            parse_spec(spec_with(optimizers=[{"optimizer": "adam", "beta2": bad}]))


def test_settings_with_the_same_label_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"optimizers\[0\]\.settings: two settings are labelled 'adam'"):
        validated(spec_with(optimizers=[{"optimizer": "adam", "settings": [
            {"overrides": {"n_epochs": 2}}, {"overrides": {"n_epochs": 3}}]}]))
