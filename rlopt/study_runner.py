"""A study worker: take the next trial from the shared storage, run it, tell Optuna, repeat.

Each optimizer entry ("arm") of a study is its own Optuna study, ``<study>/<arm>``, so its sampler only
learns from its own trials and every optimizer gets its own trial budget. A worker loops:

1. Under the claim lock (:func:`rlopt.storage.claim_lock`): fail trials whose heartbeat stopped (their
   copies are queued by ``RetryHeartbeatStaleTrialCallback``), then take a queued retry if there is one,
   else ask for a new trial of the arm with the fewest trials, if that arm has budget left. The
   trial's setting is drawn and recorded (user attributes) and its first heartbeat written before the
   lock is released, so a worker killed at any point leaves a trial that goes stale.
2. Run the trial's (task, seed) runs in processes (:mod:`rlopt.trial_execution`), reporting the
   across-run aggregate at each evaluation step; when the pruner says so, all of its runs stop.
3. Tell the outcome: COMPLETE with the objective; PRUNED (pruned, or a run diverged: user attribute
   ``outcome``); FAIL with a ``reason`` when a run crashed.

When no trial is left to take but some are still running elsewhere, the worker waits: one of them may
go stale and come back as a retry. It returns when every arm has its trials finished.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from rlopt.search_space import Setting, suggest_setting
from rlopt.storage import claim_lock, open_storage
from rlopt.study_optuna import make_pruner, make_sampler
from rlopt.study_spec import Arm, StudySpec
from rlopt.trial_execution import RunResult, execute_runs
from rlopt.trial_objective import aggregate, run_value
from rlopt.trial_runs import resolved_hparams, run_keys, train_config, trial_folder

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


def default_parallel_runs(workers: int) -> int:
    """Runs of one trial at once: the cores shared among the workers (at least one)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _retried_numbers(trials: list[optuna.trial.FrozenTrial]) -> set[int]:
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def arm_counts(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, int, int]:
    """(consumed, waiting, running) trials of an arm; a failed trial that was retried is not consumed."""
    retried = _retried_numbers(trials)
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
    """

    def __init__(self, spec: StudySpec, url: str, study_dir: Path, worker: int = 0,
                 parallel_runs: int | None = None) -> None:
        self.spec = spec
        self.url = url
        self.study_dir = study_dir
        self.worker = worker
        self.parallel_runs = parallel_runs or spec.parallel_runs or default_parallel_runs(1)
        self.storage = open_storage(url, spec.heartbeat.interval, spec.heartbeat.grace_period,
                                    spec.heartbeat.max_retry)
        self.studies = {
            arm.label: optuna.load_study(
                study_name=arm_study_name(spec.name, arm.label), storage=self.storage,
                sampler=make_sampler(spec, arm, worker), pruner=make_pruner(spec))
            for arm in spec.arms
        }
        self.trials_run = 0

    def run(self) -> int:
        """Take and run trials until the study is done; returns how many trials this worker ran."""
        while True:
            claimed, running = self._claim()
            if claimed is not None:
                self._run_trial(claimed)
                self.trials_run += 1
            elif running:
                time.sleep(min(WAIT_POLL_S, float(self.spec.heartbeat.interval)))
            else:
                return self.trials_run

    def _claim(self) -> tuple[Claimed | None, int]:
        with claim_lock(self.url, self.spec.name):
            running_total = 0
            candidates = []
            for arm in self.spec.arms:
                study = self.studies[arm.label]
                optuna.storages.fail_stale_trials(study)
                consumed, waiting, running = arm_counts(study.get_trials(deepcopy=False))
                running_total += running
                if waiting or consumed < self.spec.trials_for(arm):
                    candidates.append((0 if waiting else 1, consumed, arm))
            if not candidates:
                return None, running_total
            _, _, arm = min(candidates, key=lambda c: (c[0], c[1]))
            study = self.studies[arm.label]
            trial = study.ask()
            self.storage.record_heartbeat(trial._trial_id)  # no public id; first beat before release
            try:
                setting = suggest_setting(trial, arm)
                self._record_setting(trial, arm, setting)
            except Exception as exc:
                study.tell(trial, state=TrialState.FAIL)
                self.storage.set_trial_user_attr(trial._trial_id, "reason", f"{type(exc).__name__}: {exc}")
                raise
            return Claimed(arm, study, trial, setting), running_total

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
        folder = self.study_dir / trial_folder(claimed.setting, trial.number)
        configs = [train_config(spec, claimed.setting, key, folder / key.folder()) for key in keys]
        log.info("worker %d: %s trial %d (%s): %d runs", self.worker, claimed.arm.label, trial.number,
                 claimed.setting.label, len(configs))
        reporter = _Reporter(spec, trial, keys_tasks=[k.task for k in keys])
        start = time.perf_counter()
        try:
            with self._heartbeat(trial):
                results = execute_runs(configs, self.parallel_runs, reporter.on_point)
        except BaseException as exc:
            self._fail(claimed, f"interrupted ({type(exc).__name__})", retry=True)
            raise
        self._finish(claimed, reporter, results, time.perf_counter() - start)

    @contextmanager
    def _heartbeat(self, trial: optuna.Trial) -> Iterator[None]:
        """Write the trial's heartbeat every interval while its runs train."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.spec.heartbeat.interval):
                try:
                    self.storage.record_heartbeat(trial._trial_id)
                except Exception as exc:  # a storage hiccup must not kill the trial; the next beat retries
                    log.warning("heartbeat of trial %d failed: %s", trial.number, exc)

        thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _fail(self, claimed: Claimed, reason: str, retry: bool = False) -> None:
        trial = claimed.trial
        trial.set_user_attr("outcome", "failed")
        trial.set_user_attr("reason", reason)
        claimed.study.tell(trial, state=TrialState.FAIL)
        if retry:
            frozen = self.storage.get_trial(trial._trial_id)
            RetryHeartbeatStaleTrialCallback(max_retry=self.spec.heartbeat.max_retry)(claimed.study, frozen)

    def _finish(self, claimed: Claimed, reporter: _Reporter, results: list[RunResult], wall: float) -> None:
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
            log.warning("worker %d: %s failed: %s", self.worker, label, reason)
            return
        if reporter.pruned_at is not None:
            trial.set_user_attr("outcome", "pruned")
            trial.set_user_attr("reason", f"pruned by the {self.spec.pruner.name} pruner at step "
                                          f"{reporter.pruned_at} (value {reporter.last_value:.6g})")
            claimed.study.tell(trial, state=TrialState.PRUNED)
            log.info("worker %d: %s pruned at step %d (%.0f s)", self.worker, label, reporter.pruned_at, wall)
            return
        if diverged:
            key, result = diverged[0]
            reason = (f"{len(diverged)} of {len(results)} runs diverged; first {key.task} seed {key.seed}: "
                      f"{result.reason}")
            trial.set_user_attr("outcome", "diverged")
            trial.set_user_attr("reason", reason)
            claimed.study.tell(trial, state=TrialState.PRUNED)
            log.warning("worker %d: %s diverged: %s", self.worker, label, reason)
            return
        value = aggregate(self.spec.objective, [
            run_value(self.spec.objective, key.task, r.returns) for key, r in zip(keys, results, strict=True)
        ]) if all(r.returns for r in results) else math.nan
        if not math.isfinite(value):
            self._fail(claimed, "no finite objective value (a run had no evaluation)")
            return
        trial.set_user_attr("outcome", "complete")
        claimed.study.tell(trial, value)
        log.info("worker %d: %s complete: %s = %.6g (%.0f s)", self.worker, label,
                 self.spec.objective.metric, value, wall)


class _Reporter:
    """Report the across-run aggregate to the trial once every run has reached an evaluation index."""

    def __init__(self, spec: StudySpec, trial: optuna.Trial, keys_tasks: list[str]) -> None:
        self.spec = spec
        self.trial = trial
        self.tasks = keys_tasks
        self.returns: list[list[float]] = [[] for _ in keys_tasks]
        self.steps: list[list[int]] = [[] for _ in keys_tasks]
        self.reported = 0
        self.pruned_at: int | None = None
        self.last_value = math.nan

    def on_point(self, index: int, timesteps: int, mean_return: float) -> bool:
        self.returns[index].append(mean_return)
        self.steps[index].append(timesteps)
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
