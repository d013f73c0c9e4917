"""A study worker: take the next trial from the shared storage, run it, tell Optuna, repeat.

Each optimizer entry ("arm") of a study is its own Optuna study, ``<study>/<arm>``, so its sampler only
learns from its own trials and every optimizer gets its own trial budget. A worker loops:

1. Under the claim lock (:func:`rlopt.study.storage.claim_lock`): fail trials whose heartbeat stopped, queue
   a retry of every failed trial (:func:`rlopt.study.retries.queue_retries`), then take a queued retry
   if there is one, else ask for a new trial of the arm with the fewest trials, if that arm has budget
   left. The trial's heartbeat thread starts and its setting is drawn and recorded (user attributes)
   before the lock is released, so a worker killed at any point leaves a trial that goes stale, and a
   live one never does: everything slow (importing torch, SB3, MuJoCo) happened before the claim.
2. Move in the runs that the trials it retries finished, then run the other (task, seed) runs in
   processes (:mod:`rlopt.study.pool`), reporting the across-run aggregate at each evaluation
   step; when the pruner says so, all of its runs stop.
3. Tell the outcome (user attribute ``outcome``): COMPLETE with the objective (``complete``, or
   ``diverged`` when a run diverged: the objective scores it by the rule of
   :func:`rlopt.run.metrics.continue_diverged`); PRUNED by the pruner; FAIL with a ``reason`` when
   a run crashed or could not be written (retried as in step 1).

A worker whose trial was taken over (its heartbeat was found stale, so another worker failed it and runs
its retry) drops the trial quietly and goes on.

When no trial is left to take but some are still running elsewhere, the worker waits: one of them may
go stale and come back as a retry. It returns when every arm has its trials finished.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from rlopt.config.study import Arm, StudySpec
from rlopt.errors import ConfigError
from rlopt.interrupts import raise_if_interrupted
from rlopt.run.folder import plan_identity
from rlopt.run.metrics import DIVERGED_RULE, continue_diverged
from rlopt.study import looks
from rlopt.study.objective import aggregate, run_value
from rlopt.study.plan import resolved_hparams, run_keys, train_config, trial_folder
from rlopt.study.pool import RunResult, execute_runs
from rlopt.study.retries import adopt_finished_runs, queue_retries, retried_numbers
from rlopt.study.samplers import make_pruner, make_sampler
from rlopt.study.space import Setting, suggest_setting
from rlopt.study.storage import claim_lock, open_storage

if TYPE_CHECKING:
    from rlopt.run.config import TrainConfig, TrainPlan

log = logging.getLogger(__name__)

# The worker writes heartbeats itself (Optuna's own loop, Study.optimize, cannot hold the claim lock).
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, module="rlopt")
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, module="optuna")

# A worker with nothing to claim while others run polls this often: it stays to retry a dead worker's
# trial, and it must notice quickly when the last trial ends, or it holds up `rlopt study run` (with
# short trials, a 10 s poll cost 2 workers most of their speed-up). A poll is one cheap storage query.
WAIT_POLL_S = 1.0


def arm_study_name(spec_name: str, arm_label: str) -> str:
    """The Optuna study of one arm: ``<study>/<arm>``."""
    return f"{spec_name}/{arm_label}"


@dataclass
class Claimed:
    arm: Arm
    study: optuna.Study
    trial: optuna.Trial
    setting: Setting
    heartbeat: _Heartbeat = field(repr=False)


def default_parallel_runs(workers: int) -> int:
    """Runs of one trial at once: the cores shared among the workers (at least one)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def arm_counts(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, int, int]:
    """(consumed, waiting, running) trials of an arm; a failed trial that was retried is not consumed."""
    retried = retried_numbers(trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    consumed = sum(t.state != TrialState.WAITING and t.number not in retried for t in trials)
    return consumed, waiting, running


class Worker:
    """One process taking trials of a study until none is left.

    Args:
        spec: the validated study.
        url: storage URL.
        study_dir: the study folder (run folders go below it).
        worker: index of this worker (offsets sampler seeds).
        parallel_runs: runs of one trial at once.
        invocation: id of the ``rlopt study run`` command this worker belongs to (each command gets
            ``heartbeat.max_retry`` retries per unfinished trial); default: a new one.
        reuse_runs_from: folders of studies whose finished runs, where one is the same run as one of
            a trial's, are copied instead of trained (:mod:`rlopt.study.shared_runs`), the first folder
            first; empty: none.
    """

    def __init__(
        self,
        spec: StudySpec,
        url: str,
        study_dir: Path,
        worker: int = 0,
        parallel_runs: int | None = None,
        invocation: str | None = None,
        reuse_runs_from: tuple[Path, ...] = (),
    ) -> None:
        import rlopt.run.train  # noqa: F401  (the slow imports, before any trial is claimed)
        from rlopt.run.folder import versions

        self.invocation = invocation or uuid.uuid4().hex
        self.spec = spec
        self.url = url
        self.study_dir = study_dir
        self.worker = worker
        self.parallel_runs = parallel_runs or spec.parallel_runs or default_parallel_runs(1)
        self.storage = open_storage(url, spec.heartbeat.interval, spec.heartbeat.grace_period)
        self.studies = {
            arm.label: optuna.load_study(
                study_name=arm_study_name(spec.name, arm.label), storage=self.storage,
                sampler=make_sampler(spec, arm, worker), pruner=make_pruner(spec))
            for arm in spec.arms
        }
        self.trials_run = 0
        self.reuse_runs_from = reuse_runs_from
        self.versions = versions() if reuse_runs_from else {}

    def run(self) -> int:
        """Take and run trials until the study is done; returns how many trials this worker ran."""
        while True:
            raise_if_interrupted()
            claimed, running = self._claim()
            if claimed is not None:
                try:
                    self._run_trial(claimed)
                    self.trials_run += 1
                except UpdateFinishedTrialError:
                    log.warning(
                        "%s trial %d was taken over by another worker (its heartbeat was found "
                        "stale); dropped here, its retry runs elsewhere",
                        claimed.arm.label,
                        claimed.trial.number,
                    )
                finally:
                    claimed.heartbeat.stop()
            elif running:
                time.sleep(min(WAIT_POLL_S, float(self.spec.heartbeat.interval)))
            else:
                return self.trials_run

    def _claim(self) -> tuple[Claimed | None, int]:
        with claim_lock(self.url, self.spec.name):
            running_total = 0
            candidates = []
            if self.spec.seed_looks and self._look_moved():
                return None, 0  # another command judged this look: run_study starts the next one
            for arm in self.spec.arms:
                study = self.studies[arm.label]
                optuna.storages.fail_stale_trials(study)
                queue_retries(study, self.invocation, self.spec.heartbeat.max_retry)
                if self.spec.seed_looks:
                    looks.queue_extensions(study, len(self.spec.seeds))
                consumed, waiting, running = arm_counts(study.get_trials(deepcopy=False))
                running_total += running
                if waiting or consumed < self.spec.trials_for(arm):
                    candidates.append((0 if waiting else 1, consumed, arm))
            if not candidates:
                return None, running_total
            _, _, arm = min(candidates, key=lambda c: (c[0], c[1]))
            study = self.studies[arm.label]
            trial = study.ask()
            heartbeat = _Heartbeat(self.storage, trial, self.spec.heartbeat.interval)
            try:
                setting = suggest_setting(trial, arm)
                self._record_setting(trial, arm, setting)
            except Exception as exc:
                heartbeat.stop()
                self.storage.set_trial_user_attr(trial._trial_id, "outcome", "invalid")
                self.storage.set_trial_user_attr(trial._trial_id, "reason", f"{type(exc).__name__}: {exc}")
                study.tell(trial, state=TrialState.FAIL)
                raise
            return Claimed(arm, study, trial, setting, heartbeat), running_total

    def _look_moved(self) -> bool:
        """Whether the study's look is no longer the one this worker runs (sequential seeds)."""
        study = self.studies[self.spec.arms[0].label]
        study_look = looks.current_look(study)
        return looks.is_final(study) or self.spec.seed_looks[study_look] != len(self.spec.seeds)

    def _record_setting(self, trial: optuna.Trial, arm: Arm, setting: Setting) -> None:
        keys = run_keys(self.spec)
        folder = trial_folder(setting, trial.number)
        attrs = setting.user_attrs()
        attrs.update(resolved_hparams(self.spec, setting))
        attrs.pop("name", None)
        attrs.update({
            "tasks": list(self.spec.tasks),
            "seeds": list(self.spec.seeds),
            "run_dirs": [f"{folder}/{key.folder()}" for key in keys],
            "worker": f"{socket.gethostname()}:{os.getpid()}",
            "outcome": "running",
            "reason": "",
        })
        for key, value in attrs.items():
            trial.set_user_attr(key, value)

    def _run_trial(self, claimed: Claimed) -> None:
        spec, trial = self.spec, claimed.trial
        keys = run_keys(spec)
        plans = self._plans(claimed)
        reporter = _Reporter(spec, trial, keys_tasks=[k.task for k in keys],
                             label=f"{claimed.arm.label} trial {trial.number} ({claimed.setting.label})",
                             run_names=[f"{k.task} seed {k.seed}" for k in keys],
                             budgets=[p.timesteps for p in plans])  # the same in a config and its plan
        start = time.perf_counter()
        try:
            results, copied = self._reused_results(claimed, plans)
            todo = [i for i, r in enumerate(results) if r is None]
            earlier = len(plans) - len(todo) - copied
            log.info(
                "%s trial %d (%s): %d runs%s%s",
                claimed.arm.label,
                trial.number,
                claimed.setting.label,
                len(plans),
                f", {earlier} of them finished by an earlier attempt" if earlier else "",
                f", {copied} copied from another study" if copied else "",
            )
            for i, result in enumerate(results):
                if result is not None:
                    for step, value in zip(result.timesteps, result.returns, strict=True):
                        reporter.on_point(i, step, value)
            fresh = execute_runs(
                [plans[i] for i in todo],
                self.parallel_runs,
                lambda j, step, value: reporter.on_point(todo[j], step, value),
            )
            for j, result in zip(todo, fresh, strict=True):
                result.index = j
                results[j] = result
        except UpdateFinishedTrialError:
            raise
        except BaseException as exc:
            self._fail(claimed, f"interrupted ({type(exc).__name__})")
            raise
        self._finish(
            claimed, reporter, plans, [r for r in results if r is not None], time.perf_counter() - start
        )

    def _plans(self, claimed: Claimed) -> list[TrainPlan | TrainConfig]:
        """The validated plan of each run of the trial, in :func:`run_keys` order: the one validation of
        the run, whose plan then serves the identity check of runs an earlier attempt finished, the run
        itself (:func:`rlopt.run.train.run_training` trains a plan as it is) and a diverged run's score.

        A config that does not validate (its run folder cannot be made...) stays a config: its run fails
        in its process as it would have, with the same reason, and the trial is failed and retried.
        """
        folder = self.study_dir / trial_folder(claimed.setting, claimed.trial.number)
        out: list[TrainPlan | TrainConfig] = []
        for key in run_keys(self.spec):
            config = train_config(self.spec, claimed.setting, key, folder / key.folder())
            try:
                out.append(config.validate())
            except ConfigError:
                out.append(config)
        return out

    def _reused_results(
        self, claimed: Claimed, plans: list[TrainPlan | TrainConfig]
    ) -> tuple[list[RunResult | None], int]:
        """The runs earlier attempts of this trial finished (moved into place) and those copied from
        other studies (``reuse_runs_from``), None for the others; and how many were copied."""
        from rlopt.run.config import TrainPlan

        frozen = self.storage.get_trial(claimed.trial._trial_id)
        adopted = [False] * len(plans)
        if frozen.system_attrs.get("retry_history"):
            run_dirs = [str(Path(p.run_dir).relative_to(self.study_dir)) for p in plans]  # type: ignore[arg-type]
            expected = [
                plan_identity(p.as_config_json()) or {}
                if isinstance(p, TrainPlan)
                else {}  # a run that cannot be planned is not adopted: it fails as any run does
                for p in plans
            ]
            adopted = adopt_finished_runs(self.study_dir, frozen, claimed.study, run_dirs, expected)
        in_place = self._copy_shared_runs(plans, adopted) if self.reuse_runs_from else adopted
        copied = sum(now and not before for now, before in zip(in_place, adopted, strict=True))
        return self._results_in_place(plans, in_place), copied

    def _copy_shared_runs(self, plans: list[TrainPlan | TrainConfig], in_place: list[bool]) -> list[bool]:
        """Copy in each run not yet in place that another study under ``reuse_runs_from`` finished
        (:mod:`rlopt.study.shared_runs`); returns which runs are now in place."""
        from rlopt.run.config import TrainPlan
        from rlopt.run.folder import as_written
        from rlopt.study.shared_runs import copy_shared_run, finished_runs, run_match

        index: dict[str, tuple[Path, Path]] | None = None
        out = list(in_place)
        for i, plan in enumerate(plans):
            if out[i] or not isinstance(plan, TrainPlan):
                continue
            match = run_match(as_written(plan.as_config_json()), self.versions)
            if match is None:
                continue
            if index is None:  # (folder, run) of every finished run, by match; the first folder first
                index = {}
                for folder in self.reuse_runs_from:
                    for key, run_dir in finished_runs(folder).items():
                        index.setdefault(key, (folder, run_dir))
            found = index.get(json.dumps(match, sort_keys=True))
            if found is not None:
                copy_shared_run(found[1], Path(plan.run_dir), found[0])
                out[i] = True
        return out

    @staticmethod
    def _results_in_place(
        plans: list[TrainPlan | TrainConfig], in_place: list[bool]
    ) -> list[RunResult | None]:
        """The result of each run whose finished folder is in place (read from it), None for the others."""
        from rlopt.run.folder import read_eval_csv

        results: list[RunResult | None] = []
        for index, (plan, ready) in enumerate(zip(plans, in_place, strict=True)):
            if not ready:
                results.append(None)
                continue
            run_dir = Path(plan.run_dir)  # type: ignore[arg-type]
            metrics = json.loads((run_dir / "metrics.json").read_text())
            steps, returns = read_eval_csv(run_dir / "eval.csv")
            results.append(
                RunResult(
                    index,
                    status=str(metrics["status"]),
                    reason=str(metrics.get("reason", "")),
                    timesteps=[int(s) for s in steps],
                    returns=[float(r) for r in returns],
                )
            )
        return results

    def _fail(self, claimed: Claimed, reason: str) -> None:
        """Fail the trial (the next claim queues its retry, see :mod:`rlopt.study.retries`)."""
        trial = claimed.trial
        trial.set_user_attr("outcome", "failed")
        trial.set_user_attr("reason", reason)
        claimed.study.tell(trial, state=TrialState.FAIL)

    def _finish(
        self,
        claimed: Claimed,
        reporter: _Reporter,
        plans: list[TrainPlan | TrainConfig],
        results: list[RunResult],
        wall: float,
    ) -> None:
        trial, keys = claimed.trial, run_keys(self.spec)
        statuses = [r.status for r in results]
        trial.set_user_attr("run_status", statuses)
        failed = [(k, r) for k, r in zip(keys, results, strict=True) if r.status == "failed"]
        diverged = [(k, r) for k, r in zip(keys, results, strict=True) if r.status == "diverged"]
        label = f"{claimed.arm.label} trial {trial.number} ({claimed.setting.label})"
        if failed:
            key, result = failed[0]
            reason = f"{key.task} seed {key.seed}: {result.reason}"
            self._fail(claimed, reason)
            log.warning("%s failed: %s", label, reason)
            return
        if reporter.pruned_at is not None:
            trial.set_user_attr("outcome", "pruned")
            trial.set_user_attr("reason", f"pruned by the {self.spec.pruner.name} pruner at step "
                                          f"{reporter.pruned_at} (value {reporter.last_value:.6g})")
            claimed.study.tell(trial, state=TrialState.PRUNED)
            log.info("%s pruned at step %d (%.0f s)", label, reporter.pruned_at, wall)
            return
        value = self._objective(keys, plans, results)
        if not math.isfinite(value):
            self._fail(claimed, "no finite objective value (a run had no evaluation)")
            return
        outcome, reason = "complete", ""
        if diverged:
            key, result = diverged[0]
            outcome = "diverged"
            reason = (
                f"{len(diverged)} of {len(results)} runs diverged (scored by the diverged-run rule: "
                f"{DIVERGED_RULE}); first {key.task} seed {key.seed}: {result.reason}"
            )
        trial.set_user_attr("outcome", outcome)
        trial.set_user_attr("reason", reason)
        trial.set_user_attr("diverged_runs", len(diverged))
        claimed.study.tell(trial, value)
        log.log(
            logging.WARNING if diverged else logging.INFO,
            "%s %s: %s = %.6g (%.0f s)%s",
            label,
            outcome,
            self.spec.objective.metric,
            value,
            wall,
            f": {reason}" if diverged else "",
        )

    def _objective(self, keys: list[Any], plans: list[Any], results: list[RunResult]) -> float:
        """The trial's value: the objective aggregated over its runs, diverged runs continued."""
        values = []
        for key, plan, result in zip(keys, plans, results, strict=True):
            returns = result.returns
            if result.status == "diverged":
                returns = continue_diverged(key.task, returns, plan.timesteps, plan.eval_freq)
            if not returns:
                return math.nan
            values.append(run_value(self.spec.objective, key.task, returns))
        return aggregate(self.spec.objective, values)


class _Heartbeat:
    """Write a trial's heartbeat now and every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, storage: Any, trial: optuna.Trial, interval: float) -> None:
        self._stop = threading.Event()
        storage.record_heartbeat(trial._trial_id)  # no public id; the first beat before the claim ends

        def beat() -> None:
            while not self._stop.wait(interval):
                try:
                    storage.record_heartbeat(trial._trial_id)
                except Exception as exc:  # a storage hiccup must not kill the trial; the next beat retries
                    log.warning("heartbeat of trial %d failed: %s", trial.number, exc)

        self._thread = threading.Thread(target=beat, name=f"heartbeat-{trial.number}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _Reporter:
    """Report the across-run aggregate to the trial once every run has reached an evaluation index."""

    def __init__(self, spec: StudySpec, trial: optuna.Trial, keys_tasks: list[str], label: str = "",
                 run_names: list[str] | None = None, budgets: list[int | None] | None = None) -> None:
        self.spec = spec
        self.trial = trial
        self.tasks = keys_tasks
        self.label = label
        self.run_names = run_names or [f"run {i}" for i in range(len(keys_tasks))]
        self.budgets = budgets or [None] * len(keys_tasks)
        self.returns: list[list[float]] = [[] for _ in keys_tasks]
        self.steps: list[list[int]] = [[] for _ in keys_tasks]
        self.reported = 0
        self.pruned_at: int | None = None
        self.last_value = math.nan

    def on_point(self, index: int, timesteps: int, mean_return: float) -> bool:
        self.returns[index].append(mean_return)
        self.steps[index].append(timesteps)
        budget = self.budgets[index]
        log.info("%s: %s at %s%s env steps, eval return %.1f (run %d of %d)", self.label,
                 self.run_names[index], f"{timesteps:,}", f" of {budget:,}" if budget else "", mean_return,
                 index + 1, len(self.tasks))
        if not math.isfinite(mean_return):
            return False
        while all(len(r) > self.reported for r in self.returns):
            k = self.reported
            self.reported += 1
            values = [run_value(self.spec.objective, task, r[: k + 1])
                      for task, r in zip(self.tasks, self.returns, strict=True)]
            if not all(math.isfinite(v) for v in values):
                return False
            step = self.steps[0][k]
            self.last_value = aggregate(self.spec.objective, values)
            self.trial.report(self.last_value, step)
            if self.trial.should_prune():
                self.pruned_at = step
                return True
        return False
