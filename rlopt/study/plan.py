"""The training runs of one trial: a :class:`~rlopt.study.space.Setting` x tasks x seeds -> TrainConfigs.

Every run of a trial gets its folder under the study folder,
``<study>/<arm>/trial_<n>-<setting>/<task>_seed<s>/`` (e.g. ``adopt/trial_0003-b2=0.999/Hopper-v5_seed1``),
so ``tensorboard --logdir runs/<study>`` shows every trial's runs side by side, named by setting.

A batch-size multiplier ``kappa`` multiplies the agent's ``batch_size`` (after overrides) and rescales
the optimizer's lr, betas and eps with :func:`rlopt.optim.scaling.scale_hyperparameters`, starting from
the values the run would use at ``kappa = 1`` (the agent's own learning rate when the study gives none).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rlopt.config.study import StudySpec, Where
from rlopt.errors import ConfigError
from rlopt.paths import safe_name
from rlopt.study.space import Setting


@dataclass(frozen=True)
class RunKey:
    """One run of a trial."""

    task: str
    seed: int

    def folder(self) -> str:
        return f"{self.task}_seed{self.seed}"


def run_keys(spec: StudySpec) -> list[RunKey]:
    """Every (task, seed) a trial runs, tasks first."""
    return [RunKey(task, seed) for task in spec.tasks for seed in spec.seeds]


def trial_folder(setting: Setting, number: int) -> str:
    """``<arm>/trial_0003-b2=0.999``, relative to the study folder (the setting readable in TensorBoard)."""
    label = setting.label
    if label.startswith(setting.arm):
        label = label[len(setting.arm):]
    arm, suffix = safe_name(setting.arm, keep="="), safe_name(label.strip(), keep="=")[:80]
    return f"{arm}/trial_{number:04d}" + (f"-{suffix}" if suffix else "")


def _budget(spec: StudySpec, task: str) -> tuple[int, int | None, int | None]:
    """Timesteps, eval_freq and eval_episodes of ``task``: the study's, else the suite's."""
    timesteps, every, episodes = spec.timesteps, spec.evaluation.every, spec.evaluation.episodes
    if spec.suite is not None:
        from rlopt.config.suites import load_suite

        suite_task = load_suite(spec.suite).task(task)
        timesteps = timesteps or suite_task.timesteps
        every = every or suite_task.eval_freq
        episodes = episodes or suite_task.eval_episodes
    assert timesteps is not None
    return timesteps, every, episodes


def _default_batch_size(algo: str) -> int:
    from rlopt.config.agents import algo_class

    return int(inspect.signature(algo_class(algo)).parameters["batch_size"].default)


def train_config(spec: StudySpec, setting: Setting, key: RunKey, run_dir: Path | None) -> Any:
    """The :class:`rlopt.run.config.TrainConfig` of one run of ``setting``.

    Raises:
        ConfigError: the setting cannot be trained (bad hyperparameter, scaling rule out of range...).
    """
    from rlopt.run.config import TrainConfig

    timesteps, every, episodes = _budget(spec, key.task)
    config = TrainConfig(
        algo=spec.algorithm, env=key.task, optimizer=setting.optimizer, lr=setting.lr,
        betas=setting.betas, eps=setting.eps, weight_decay=setting.weight_decay,
        optimizer_extra=dict(setting.extra), seed=key.seed, timesteps=timesteps, device=spec.device,
        n_envs=spec.n_envs, run_dir=run_dir, overrides=dict(setting.overrides), eval_freq=every,
        save_model=spec.save_model, checkpoint_every=spec.checkpoint_every, resume=run_dir is not None,
    )
    if episodes is not None:
        config = replace(config, eval_episodes=episodes)
    if setting.kappa == 1.0:
        return config
    from rlopt.optim.scaling import scale_hyperparameters

    plan = config.validate()
    base = plan.optimizer
    try:
        given = {"lr": base.lr, "betas": base.betas, "eps": base.eps, "weight_decay": base.weight_decay,
                 **base.extra}
        scaled = scale_hyperparameters(base.name, given, setting.kappa, setting.scaling_rule)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    batch = int(plan.agent.kwargs.get("batch_size", _default_batch_size(spec.algorithm)))
    scaled_batch = round(batch * setting.kappa)
    if scaled_batch < 2:
        raise ConfigError(f"kappa={setting.kappa:g} makes batch_size {batch} -> {scaled_batch} "
                          "(accepted: a kappa giving batch_size >= 2)")
    if spec.algorithm == "ppo":
        rollout = int(plan.agent.kwargs.get("n_steps", 2048)) * plan.n_envs
        if scaled_batch > rollout:
            raise ConfigError(
                f"kappa={setting.kappa:g} makes batch_size {scaled_batch} larger than the rollout "
                f"n_steps*n_envs = {rollout} on {key.task} (accepted: kappa <= {rollout / batch:g}, or a "
                "larger n_steps in the overrides)")
    extra = {k: v for k, v in scaled.items() if k not in ("lr", "betas", "eps", "weight_decay")}
    return replace(
        config, lr=scaled["lr"], betas=tuple(scaled["betas"]), eps=scaled["eps"],
        weight_decay=scaled["weight_decay"], optimizer_extra=extra,
        overrides={**config.overrides, "batch_size": scaled_batch},
    )


def check_run_configs(spec: StudySpec, setting: Setting) -> None:
    """Validate the run of ``setting`` on every task (nothing is written).

    Raises:
        ConfigError: naming the bad value and what is accepted.
    """
    for task in spec.tasks:
        train_config(spec, setting, RunKey(task, spec.seeds[0]), None).validate()


def resolved_hparams(spec: StudySpec, setting: Setting) -> dict[str, Any]:
    """The optimizer hyperparameters the first task's runs really use (after defaults and scaling)."""
    plan = train_config(spec, setting, RunKey(spec.tasks[0], spec.seeds[0]), None).validate()
    return plan.optimizer.as_dict()


def check_agents_build(spec: StudySpec) -> None:
    """Build, once per distinct (task, agent hyperparameters), the agent every setting would train.

    ``rlopt train`` refuses a bad agent hyperparameter by building the agent; a study must refuse it
    the same way before it writes anything, or every trial would fail at run time. Also refused: a
    budget that a PPO rollout (``n_steps * n_envs`` steps before each update) overruns, or under which
    SAC makes no gradient step (``learning_starts``).

    Raises:
        ConfigError: naming the setting, the task and the bad value.
    """
    import json
    import warnings

    from rlopt.run.train import _build
    from rlopt.study.space import corner_settings

    seen: set[str] = set()
    for arm in spec.arms:
        for setting in corner_settings(arm):
            for task in spec.tasks:
                config = train_config(spec, setting, RunKey(task, spec.seeds[0]), None)
                plan = config.validate()
                key = json.dumps([task, plan.n_envs, plan.agent.kwargs], sort_keys=True, default=repr)
                if key in seen:
                    continue
                seen.add(key)
                where = f"setting {setting.label!r} on {task}"
                _check_budget(plan, where)
                try:
                    with warnings.catch_warnings():  # SB3's advice on odd sizes: the error says what matters
                        warnings.simplefilter("ignore")
                        env, eval_env, _ = _build(plan)
                except ConfigError as exc:
                    raise ConfigError(f"{where}: {exc}") from exc
                env.close()
                eval_env.close()


def _check_budget(plan: Any, where: str) -> None:
    kwargs = plan.agent.kwargs
    if plan.agent.algo == "ppo":
        rollout = int(kwargs.get("n_steps", 2048)) * plan.n_envs
        if rollout > plan.timesteps:
            raise ConfigError(f"{where}: n_steps * n_envs = {rollout:,} is more than the budget of "
                              f"{plan.timesteps:,} env steps: PPO collects a whole rollout before each "
                              "update, so the first one alone would overrun the budget (accepted: n_steps * "
                              "n_envs <= timesteps)")
    elif plan.agent.algo == "sac":
        starts = int(kwargs.get("learning_starts", 100))
        if starts >= plan.timesteps:
            raise ConfigError(f"{where}: learning_starts = {starts:,} is not below the budget of "
                              f"{plan.timesteps:,} env steps, so no gradient step would run (accepted: "
                              "learning_starts < timesteps)")


def check_plan(spec: StudySpec, file: str | None = None) -> None:
    """The dry run of a study before anything is written: build its sampler and pruner, resolve every
    setting an arm can produce (range ends for searched values) and every run config.

    Parsing (:func:`rlopt.config.study.parse_spec`) checks what the file says; this checks that the
    pipeline can run it, so it lives with the pipeline.

    Raises:
        ConfigError: one line naming the file (``file``, default the spec's path), the key and what is
            accepted.
    """
    top = Where(file or (str(spec.path) if spec.path else "<study>"))
    _check_components(top, spec)
    _check_settings(top, spec)


def _check_components(top: Where, spec: StudySpec) -> None:
    """Build the sampler and pruner once so a bad Optuna argument fails here, naming the key."""
    from rlopt.study.samplers import make_pruner, make_sampler

    builders = (("sampler", lambda: make_sampler(spec, spec.arms[0])), ("pruner", lambda: make_pruner(spec)))
    for key, build in builders:
        try:
            build()
        except ConfigError as exc:
            raise (top / key).error(str(exc)) from exc


def _check_settings(top: Where, spec: StudySpec) -> None:
    """Resolve every setting an arm can produce (range ends for searched values) and every run config."""
    from rlopt.study.space import corner_settings

    for i, arm in enumerate(spec.arms):
        labels = [s.label for s in corner_settings(arm)] if arm.is_finite else []
        for j, label in enumerate(labels):
            if labels.index(label) != j:
                key = "settings" if arm.settings else "label"
                raise (top / "optimizers" / i / key).error(
                    f"two settings are labelled {label!r} (accepted: a distinct label per setting)")
        for setting in corner_settings(arm):
            try:
                check_run_configs(spec, setting)
            except ValueError as exc:
                raise (top / "optimizers" / i).error(f"setting {setting.label!r}: {exc}") from exc


