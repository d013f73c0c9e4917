"""Run a study file: validated spec -> storage and Optuna studies -> worker processes.

``run_study(spec, storage=None, runs_dir="runs", workers=1)`` checks everything it can before it
writes anything (the spec, the storage being reachable, an existing study in the storage having been
made from the same file), then creates ``runs/<study>/`` (``study.yaml``: the file as run,
``study.json``: where its storage is), creates or loads one Optuna study per arm
(``load_if_exists``, so the same command on several machines shares one study), and runs ``workers``
processes that pull trials from the storage (:mod:`rlopt.study.worker`). Re-running the command resumes:
finished trials are kept, and ``n_trials`` is the total per arm, not an additional number.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import multiprocessing as mp
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from rlopt import atomic
from rlopt.config.storage import redact
from rlopt.config.study import StudySpec
from rlopt.errors import ConfigError
from rlopt.study.folder import DEFAULT_STORAGE, IDENTITY_ATTR, STUDY_JSON, STUDY_YAML, StudyLocation, locate
from rlopt.study.plan import check_agents_build, check_plan
from rlopt.study.pool import exit_with_parent
from rlopt.study.storage import check_reachable, existing_study_names, open_storage
from rlopt.study.worker import Worker, arm_study_name, default_parallel_runs

if TYPE_CHECKING:
    from rlopt.study.looks import LookResult

log = logging.getLogger(__name__)

LookJudge = Callable[[StudySpec, Path, str, int], "LookResult"]
"""``(spec, study_dir, url, look) -> LookResult``: the claims' verdicts at a look of sequential seeds."""


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _first_difference(stored: Any, current: Any, path: str = "") -> str | None:
    if isinstance(stored, dict) and isinstance(current, dict):
        for key in sorted(set(stored) | set(current)):
            found = _first_difference(stored.get(key), current.get(key), f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    return None if stored == current else f"{path}: {current!r} here, {stored!r} in the stored study"


def check_existing(spec: StudySpec, location: StudyLocation, file: str) -> list[str]:
    """Read-only checks against what the storage and folder already hold; returns existing arm labels.

    Raises:
        ConfigError: the stored study was made from a different file, or the folder holds runs of a
            study the storage does not know.
    """
    names = set(existing_study_names(location.url))
    existing = [arm.label for arm in spec.arms if arm_study_name(spec.name, arm.label) in names]
    if existing:
        storage = optuna.storages.RDBStorage(location.url, skip_compatibility_check=True)
        try:
            current = _jsonable(spec.identity())
            for label in existing:
                stored = optuna.load_study(study_name=arm_study_name(spec.name, label),
                                           storage=storage).user_attrs.get(IDENTITY_ATTR)
                difference = _first_difference(stored, current) if stored is not None else None
                if difference:
                    raise ConfigError(
                        f"{file}: {difference}; study {spec.name!r} in {redact(location.url)} was made from "
                        "another file (accepted: the same file, with n_trials/sampler options/pruner/storage "
                        f"free to change; or a new name, or delete {location.study_dir})")
        finally:
            storage.remove_session()
            storage.engine.dispose()
    for arm in spec.arms:
        arm_dir = location.study_dir / arm.label
        if arm.label not in existing and arm_dir.is_dir() and any(arm_dir.glob("trial_*")):
            raise ConfigError(
                f"{file}: {arm_dir} holds runs of a study that storage {redact(location.url)} does not know "
                f"(accepted: the storage those runs belong to, or delete {arm_dir})")
    return existing


def _write_meta(path: Path, meta: Mapping[str, object]) -> None:
    """Write ``study.json`` with ``updated`` set to now, unless it already holds ``meta``: resuming an
    unchanged study (a complete one, say) leaves its folder, and a committed bundle of it, as it was."""
    try:
        if {k: v for k, v in json.loads(path.read_text()).items() if k != "updated"} == meta:
            return
    except (OSError, ValueError, AttributeError):
        pass  # absent or damaged: written anew
    stamped = {**meta, "updated": _dt.datetime.now().isoformat(timespec="seconds")}
    atomic.write_text(path, json.dumps(stamped, indent=2) + "\n")


def prepare(spec: StudySpec, location: StudyLocation, file: str = "<study>", storage_key: str = "storage",
            command: str | None = None) -> None:
    """Check, then create the study folder and one Optuna study per arm (or load them).

    Args:
        spec: the validated study.
        location: its folder and storage.
        file: how the study file is named in error messages.
        storage_key: where the storage URL came from, for error messages (``storage`` or ``--storage``).
        command: the command line, recorded as ``command.txt`` in the study folder.
    """
    check_plan(spec, file if file != "<study>" else None)
    try:
        check_reachable(location.url, will_create=location.study_dir if location.default_storage else None)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {storage_key}: {exc}") from exc
    check_existing(spec, location, file)
    try:
        check_agents_build(spec)
    except ConfigError as exc:
        raise ConfigError(f"{file}: {exc}") from exc
    location.study_dir.mkdir(parents=True, exist_ok=True)
    if spec.path is not None:
        (location.study_dir / STUDY_YAML).write_text(spec.path.read_text())
    if command:
        (location.study_dir / "command.txt").write_text(command + "\n")
    meta = {
        "name": spec.name,
        "storage": DEFAULT_STORAGE if location.default_storage else redact(location.url),
        "arms": {arm.label: arm_study_name(spec.name, arm.label) for arm in spec.arms},
        "study_file": str(spec.path) if spec.path else None,
    }
    _write_meta(location.study_dir / STUDY_JSON, meta)
    storage = open_storage(location.url, spec.heartbeat.interval, spec.heartbeat.grace_period)
    identity = _jsonable(spec.identity())
    for arm in spec.arms:
        study = optuna.create_study(study_name=arm_study_name(spec.name, arm.label), storage=storage,
                                    direction="maximize", load_if_exists=True)
        attrs = {IDENTITY_ATTR: identity, "rlopt_study": spec.name, "rlopt_arm": arm.label,
                 "optimizer": arm.optimizer, "fairness": spec.fairness, "n_trials": spec.trials_for(arm),
                 "objective": f"{spec.objective.aggregate} of {spec.objective.metric}",
                 "sampler": spec.sampler.name, "pruner": spec.pruner.name}
        for key, value in attrs.items():
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
        metric = f"{spec.objective.aggregate} {spec.objective.metric}"  # optuna-dashboard's axis title
        if study.metric_names != [metric]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([metric])
    storage.remove_session()
    storage.engine.dispose()


def _worker_main(
    spec: StudySpec, url: str, study_dir: Path, index: int, parallel_runs: int, invocation: str,
    reuse_runs_from: tuple[Path, ...],
) -> None:
    exit_with_parent()
    from rlopt.interrupts import interrupt_on_sigterm

    interrupt_on_sigterm()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [worker {index}] %(message)s",
                        datefmt="%H:%M:%S")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    Worker(spec, url, study_dir, worker=index, parallel_runs=parallel_runs, invocation=invocation,
           reuse_runs_from=reuse_runs_from).run()


@dataclass(frozen=True)
class StudyOutcome:
    """How far a study got: trials per arm that answered, and the grid points still missing.

    Attributes:
        finished: trials that answered (complete, diverged or pruned), over all arms.
        planned: trials the study file asks for, over all arms.
        missing: ``"<arm>: <setting> (<reason>)"`` for each failed trial no retry is left for.
        already: the study had finished before this command (it ran nothing).
    """

    finished: int
    planned: int
    missing: tuple[str, ...]
    already: bool = False

    @property
    def complete(self) -> bool:
        return not self.missing and self.finished >= self.planned


def study_outcome(spec: StudySpec, url: str) -> StudyOutcome:
    """Read from the storage what the study has finished and what it lacks (a trial of a sequential
    study's earlier look, with fewer seeds than ``spec.seeds``, is not finished)."""
    from rlopt.study.retries import retried_numbers

    storage = optuna.storages.RDBStorage(url, skip_compatibility_check=True)
    finished = planned = 0
    missing: list[str] = []
    try:
        for arm in spec.arms:
            trials = optuna.load_study(
                study_name=arm_study_name(spec.name, arm.label), storage=storage
            ).get_trials(deepcopy=False)
            retried = retried_numbers(trials)
            planned += spec.trials_for(arm)
            finished += sum(
                t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                and t.number not in retried  # a cell extended to more seeds (rlopt.study.looks)
                and len(t.user_attrs.get("seeds", spec.seeds)) >= len(spec.seeds)
                for t in trials
            )
            missing.extend(
                f"{arm.label}: {t.user_attrs.get('setting', t.number)} "
                f"({t.user_attrs.get('reason') or 'its worker stopped sending heartbeats'})"
                for t in trials
                if t.state == TrialState.FAIL and t.number not in retried
            )
    finally:
        storage.remove_session()
        storage.engine.dispose()
    return StudyOutcome(finished, planned, tuple(missing))


def run_study(
    spec: StudySpec,
    storage: str | None = None,
    runs_dir: str | Path = "runs",
    workers: int = 1,
    parallel_runs: int | None = None,
    file: str | None = None,
    command: str | None = None,
    judge_look: LookJudge | None = None,
    reuse_runs_from: Sequence[str | Path] = (),
) -> tuple[StudyLocation, StudyOutcome]:
    """Run (or resume) ``spec`` until every arm has its trials finished (or out of retries).

    Args:
        spec: the validated study.
        storage: storage URL (default: the file's ``storage``, else ``runs/<name>/study.db``).
        runs_dir: parent of the study folder.
        workers: worker processes on this machine, each pulling trials from the storage.
        parallel_runs: runs of one trial at once per worker (default: the file's, else cores / workers).
        file: how the study file is named in error messages.
        command: the command line, recorded in the study folder.
        judge_look: for sequential seeds, ``(spec, study_dir, url, look) -> LookResult``: the claims'
            verdicts at a look (``rlopt study run`` passes
            :func:`rlopt.analysis.look_verdicts.judge_look`).
        reuse_runs_from: folders of studies (such as ``runs_dir``, or committed bundles) whose finished
            runs are copied where one is the same run as one of this study's
            (:mod:`rlopt.study.shared_runs`), the first folder first.

    Returns:
        The study's folder and storage, and what it has finished and still lacks (read from the storage
        after the workers ended, so a worker killed after the study completed does not count).

    Raises:
        ConfigError: before anything is written, for a storage or folder that cannot be used.
    """
    if workers < 1:
        raise ConfigError(f"--workers {workers} is not accepted (accepted: an integer >= 1)")
    if spec.seed_looks and judge_look is None:
        raise ValueError("a study with sequential seeds needs judge_look "
                         "(rlopt.analysis.look_verdicts.judge_look)")
    reuse = tuple(Path(folder) for folder in reuse_runs_from)
    for folder in reuse:
        if not folder.is_dir():
            raise ConfigError(f"--reuse-runs-from {folder}: no such folder "
                              "(accepted: an existing folder of studies, such as the --runs-dir)")
    location = locate(spec, storage, runs_dir)
    prepare(spec, location, file or str(spec.path or spec.name),
            storage_key="--storage" if storage else "storage", command=command)
    parallel = parallel_runs or spec.parallel_runs or default_parallel_runs(workers)
    if spec.seed_looks:
        assert judge_look is not None
        return location, _run_looks(spec, location, workers, parallel, judge_look, reuse)
    before = study_outcome(spec, location.url)
    if before.complete:  # nothing to run: say so without starting any worker
        return location, replace(before, already=True)
    return location, _run_once(spec, location, workers, parallel, reuse)


def _run_once(spec: StudySpec, location: StudyLocation, workers: int, parallel: int,
              reuse: tuple[Path, ...] = ()) -> StudyOutcome:
    """Run workers until every trial of ``spec`` has finished or is out of retries."""
    log.info("study %s: folder %s, storage %s, %d worker(s) x %d parallel run(s); trials per arm: %s; "
             "%d seed(s)", spec.name, location.study_dir, redact(location.url), workers, parallel,
             ", ".join(f"{a.label} {spec.trials_for(a)}" for a in spec.arms), len(spec.seeds))
    failed = _run_workers(spec, location, workers, parallel, reuse)
    outcome = study_outcome(spec, location.url)
    if failed and outcome.complete:
        log.warning("%s exited early, but the other workers finished every trial", ", ".join(failed))
    elif failed:
        log.error("%s exited with an error (see the log above)", ", ".join(failed))
    return outcome


def _run_looks(
    spec: StudySpec, location: StudyLocation, workers: int, parallel: int, judge_look: LookJudge,
    reuse: tuple[Path, ...] = (),
) -> StudyOutcome:
    """Sequential seeds (:mod:`rlopt.study.looks`): run the look in progress, judge it, go on to the
    next unless the claims are decided; resumes at the look the storage is at."""
    from rlopt.study import looks
    from rlopt.study.storage import claim_lock

    ran = False
    while True:
        with _arm_studies(spec, location.url) as studies:
            look, final = looks.current_look(studies[0]), looks.is_final(studies[0])
        at_look = spec.at_look(look)
        outcome = study_outcome(at_look, location.url)
        if final:
            return replace(outcome, already=not ran)
        if not outcome.complete:
            log.info("study %s: look %d of %d, %d seeds per cell", spec.name, look + 1, len(spec.seed_looks),
                     len(at_look.seeds))
            outcome = _run_once(at_look, location, workers, parallel, reuse)
            ran = True
            if not outcome.complete:
                return outcome
        result = judge_look(spec, location.study_dir, location.url, look)
        with claim_lock(location.url, spec.name), _arm_studies(spec, location.url) as studies:
            recorded = looks.record_look(studies, result)
        if recorded:
            verdicts = "; ".join(f"{o} ({r})" for o, r in zip(result.outcomes, result.reasons, strict=True))
            log.info("study %s: look %d (%d seeds per cell): %s%s", spec.name, look + 1, result.seeds,
                     verdicts, "; stopping here" if result.final else "; extending every cell")


@contextlib.contextmanager
def _arm_studies(spec: StudySpec, url: str) -> Iterator[list[optuna.Study]]:
    """Every arm's Optuna study, on a storage connection closed afterwards."""
    storage = optuna.storages.RDBStorage(url, skip_compatibility_check=True)
    try:
        yield [optuna.load_study(study_name=arm_study_name(spec.name, a.label), storage=storage)
               for a in spec.arms]
    finally:
        storage.remove_session()
        storage.engine.dispose()


def _run_workers(spec: StudySpec, location: StudyLocation, workers: int, parallel: int,
                 reuse: tuple[Path, ...] = ()) -> list[str]:
    """Run ``workers`` workers until they end, worker 0 in this process; the names of those that failed.

    Raises:
        Exception: worker 0's error when it is the only worker.
    """
    # Worker 0 runs in this process, which has imported everything already; the others start
    # beside it (spawning one costs seconds of imports, which a study of short trials notices).
    invocation = uuid.uuid4().hex
    ctx = mp.get_context("spawn")
    processes = [
        ctx.Process(
            target=_worker_main,
            name=f"worker-{i}",
            args=(spec, location.url, location.study_dir, i, parallel, invocation, reuse),
        )
        for i in range(1, workers)
    ]
    for process in processes:
        process.start()
    own_error: Exception | None = None
    try:
        try:
            Worker(
                spec,
                location.url,
                location.study_dir,
                worker=0,
                parallel_runs=parallel,
                invocation=invocation,
                reuse_runs_from=reuse,
            ).run()
        except Exception as exc:  # the other workers finish their trials, as they would after a crash
            own_error = exc
            if processes:
                log.error("worker-0 failed: %s", exc)
        for process in processes:
            process.join()
    except BaseException:  # Ctrl-C or SIGTERM: the other workers stop too (each fails its trial cleanly)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=150)
            if process.is_alive():
                process.kill()
        raise
    if own_error is not None and not processes:
        raise own_error
    return [p.name for p in processes if p.exitcode != 0] + (["worker-0"] if own_error else [])
