"""Retrying a trial that did not finish, without re-running the runs it did finish.

A trial fails without an answer when its worker is killed (its heartbeat goes stale), a run process dies
(the OOM killer), or a run folder cannot be written. Such a trial is retried: a WAITING copy with the
same parameters is queued, whose system attribute ``retry_history`` lists the trials it retries (as
Optuna's ``RetryHeartbeatStaleTrialCallback`` writes it, so Optuna's own tools read it). A trial that
*answered* is never retried: complete, pruned by the pruner, or diverged (a diverged setting is a result).

Every invocation of ``rlopt study run`` gets ``max_retry`` retries per unfinished trial, counted by the
``rlopt_invocation`` user attribute of the copies it queued: a campaign that is killed every session
goes on resuming, and a cause fixed between two invocations (a full disk) is retried by the next.

A retry reuses the runs its predecessors finished: before it trains, each of its (task, seed) run folders
that a retried trial finished (``metrics.json`` status ``ok`` or ``diverged``, same resolved config) is
moved into the retry's trial folder, so exactly one trial lists it and nothing is trained twice. A run
that a retried trial stopped mid-way with a checkpoint (``checkpoint.pt``, :mod:`rlopt.run.checkpoint`)
is moved in too, and continues from its checkpoint bit for bit; only the steps after it are trained again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from rlopt.run.checkpoint import CHECKPOINT_FILE
from rlopt.run.folder import config_identity

log = logging.getLogger(__name__)

INVOCATION_ATTR = "rlopt_invocation"
FINISHED_RUN_STATES = ("ok", "diverged")
NOT_RETRIED_OUTCOMES = ("invalid",)
"""Trial outcomes that a retry cannot change (the setting itself cannot be built)."""


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials some other trial retries."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def queue_successor(
    study: optuna.Study, trial: FrozenTrial, system_attrs: dict[str, Any], user_attrs: dict[str, Any]
) -> None:
    """Queue a WAITING copy of ``trial`` (same parameters) whose ``retry_history`` ends with it, so the copy
    moves in the runs ``trial`` finished (:func:`adopt_finished_runs`) and ``trial`` no longer counts:
    a retry of a failed trial, or a cell extended to more seeds (:mod:`rlopt.study.looks`).
    ``system_attrs`` and ``user_attrs`` are added to the copied ones."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs={**trial.user_attrs, "outcome": "waiting", "reason": "", **user_attrs},
            system_attrs={**trial.system_attrs, **system_attrs, "retry_history": history},
        )
    )


def queue_retries(study: optuna.Study, invocation: str, max_retry: int) -> int:
    """Queue a retry of every failed, not yet retried trial, at most ``max_retry`` per invocation.

    Call it under the claim lock, so two workers never queue the same retry.

    Returns:
        How many retries were queued.
    """
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    by_number = {t.number: t for t in trials}
    queued = 0
    for trial in trials:
        if trial.state != TrialState.FAIL or trial.number in retried:
            continue
        if trial.user_attrs.get("outcome") in NOT_RETRIED_OUTCOMES:
            continue
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        queued_here = sum(
            by_number[n].user_attrs.get(INVOCATION_ATTR) == invocation for n in history if n in by_number
        )
        if queued_here >= max_retry:
            continue
        queue_successor(study, trial, {"failed_trial": trial.number}, {INVOCATION_ATTR: invocation})
        log.info(
            "trial %d of %s did not finish (%s): queued for retry",
            trial.number,
            study.study_name,
            trial.user_attrs.get("reason") or "its worker stopped sending heartbeats",
        )
        queued += 1
    return queued


def _config_identity(run_dir: Path) -> dict[str, Any] | None:
    try:
        return config_identity(json.loads((run_dir / "config.json").read_text()))
    except (OSError, ValueError):
        return None


def finished_run_state(run_dir: Path) -> str | None:
    """``ok`` or ``diverged`` when the run folder holds a finished run, else None."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    state = metrics.get("status") if isinstance(metrics, dict) else None
    return state if state in FINISHED_RUN_STATES else None


def adopt_finished_runs(
    study_dir: Path,
    trial: FrozenTrial | Any,
    study: optuna.Study,
    run_dirs: list[str],
    expected: list[dict[str, Any]],
) -> list[bool]:
    """Move the runs that the trials retried by ``trial`` finished into ``trial``'s run folders, and
    the ones they stopped mid-way with a checkpoint (:mod:`rlopt.run.checkpoint`), which then resume.

    Args:
        study_dir: the study folder (run folders are relative to it).
        trial: the retry, or a cell's extension to more seeds (its ``retry_history`` names the trials
            it retries or extends).
        study: the arm's Optuna study holding those trials.
        run_dirs: this trial's run folders, relative to ``study_dir``, one per (task, seed).
        expected: :func:`config_identity` of each of those runs' resolved config; a run is moved only
            if its identity is the same.

    Returns:
        For each run, whether its finished run is now in place (True: do not train it; False: train
        it, from the checkpoint now in its folder if one was moved in).
    """
    history = list(trial.system_attrs.get("retry_history", []))
    earlier = {t.number: t for t in study.get_trials(deepcopy=False) if t.number in history}
    adopted = []
    for index, relative in enumerate(run_dirs):
        target = study_dir / relative
        if finished_run_state(target) and _config_identity(target) == expected[index]:
            adopted.append(True)
            continue
        candidates = _earlier_runs(study_dir, target, history, earlier, expected[index])
        finished = next((c for c in candidates if finished_run_state(c[1])), None)
        stopped = next((c for c in candidates if (c[1] / CHECKPOINT_FILE).is_file()), None)
        chosen = finished or stopped
        if chosen is None or ((target / CHECKPOINT_FILE).is_file() and chosen is stopped):
            adopted.append(False)
            continue
        number, source = chosen
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            _discard(target)
        source.rename(target)
        if chosen is finished:
            log.info("reusing the finished run %s (from trial %d) as %s", source.relative_to(study_dir),
                     number, relative)
        else:
            log.info("resuming the stopped run %s (from trial %d) from its checkpoint, as %s",
                     source.relative_to(study_dir), number, relative)
        adopted.append(chosen is finished)
    return adopted


def _earlier_runs(
    study_dir: Path, target: Path, history: list[int], earlier: dict[int, Any], identity: dict[str, Any]
) -> list[tuple[int, Path]]:
    """The run folders of the same run (same folder name, same identity) in the trials of ``history``,
    latest trial first."""
    found = []
    for number in reversed(history):
        old = earlier.get(number)
        # Matched by folder name (<task>_seed<s>), not position: a cell extended to more seeds
        # (rlopt.study.looks) has runs that the trials it extends did not have.
        listed = old.user_attrs.get("run_dirs", []) if old is not None else []
        old_dirs = {Path(d).name: d for d in listed}
        if target.name not in old_dirs:
            continue
        source = study_dir / old_dirs[target.name]
        if source != target and source.is_dir() and _config_identity(source) == identity:
            found.append((number, source))
    return found


def _discard(path: Path) -> None:
    """Remove an unfinished run folder that a finished one replaces."""
    import shutil

    shutil.rmtree(path)
