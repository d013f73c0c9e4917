"""Run the training runs of one trial in child processes and stream their evaluations back.

Each run is a process of a ``forkserver`` context whose server has already imported
:mod:`rlopt.run.train` (torch, SB3, MuJoCo), so starting a run costs a fork, not an import. At most
``parallel`` runs are alive at once. Every evaluation of every run comes back to the caller's
``on_point``, which may ask all runs to stop (a pruned trial): each run then stops at its next
evaluation with status ``pruned`` and runs not yet started are skipped. A run that fails (an exception,
or its process dying) stops the others too; a run that diverges does not: its seeds' siblings are
evidence of how often the setting diverges.

A run process exits as soon as its parent dies (SIGKILL of a worker), so no orphan keeps training. When
the worker itself is interrupted (Ctrl-C, SIGTERM), its runs get SIGTERM, which each handles as Ctrl-C:
its folder says ``stopped`` and the trial is failed, to be retried by the next ``rlopt study run``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue as queue_module
import signal
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlopt.interrupts import raise_if_interrupted

log = logging.getLogger(__name__)

STOP_JOIN_TIMEOUT_S = 120.0
POLL_S = 0.5


@dataclass
class RunResult:
    """What became of one run: ``ok | diverged | pruned | stopped | failed | skipped``."""

    index: int
    status: str = "running"
    reason: str = ""
    timesteps: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status != "running"


def exit_with_parent() -> None:
    """Start a thread that ends this process the moment its parent process dies."""
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        from multiprocessing.connection import wait

        wait([parent.sentinel])
        os._exit(70)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _run_main(config: Any, index: int, messages: Any, stop: Any) -> None:
    """Entry point of a run process: train, send each evaluation, stop when asked."""
    exit_with_parent()
    import optuna
    import torch

    from rlopt.interrupts import interrupt_on_sigterm
    from rlopt.run.train import run_training

    interrupt_on_sigterm()
    threading.excepthook = _one_line_thread_error
    torch.set_num_threads(1)

    def on_eval(point: Any) -> None:
        messages.put(("eval", index, int(point.timesteps), float(point.mean_return)))
        if stop.is_set():
            raise optuna.TrialPruned("stopped with its trial")

    ended: tuple[Any, ...]
    try:
        summary = run_training(config, on_eval)
        ended = ("end", index, summary.status, summary.reason)
    except optuna.TrialPruned:
        ended = ("end", index, "pruned", "stopped with its trial")
    except KeyboardInterrupt:
        ended = ("end", index, "stopped", "interrupted")
    except OSError as exc:  # the disk or folder (full, read-only): what the system said is the whole story
        ended = ("end", index, "failed", f"{type(exc).__name__}: {exc}".strip())
    except BaseException as exc:
        ended = ("end", index, "failed", f"{type(exc).__name__}: {exc}".strip(), traceback.format_exc())
    # The run is over: a SIGTERM now (the trial stopping) has nothing left to stop, and raised in the
    # process's exit (joining the queue's feeder thread) it would print a traceback, not a line.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    messages.put(ended)


def _one_line_thread_error(args: threading.ExceptHookArgs) -> None:
    """A helper thread of a run (TensorBoard's writer) failing, e.g. on a full disk: one line, not a trace."""
    thread = args.thread.name if args.thread is not None else "a thread"
    log.warning("%s of a run failed: %s: %s", thread, args.exc_type.__name__, args.exc_value)


_CONTEXT: Any = None


def _context() -> Any:
    global _CONTEXT
    if _CONTEXT is None:
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        _CONTEXT = mp.get_context("forkserver")
        # torch._dynamo is imported lazily by the first torch optimizer a process builds (torch.optim
        # wraps add_param_group in torch._disable_dynamo): 3 s per run on an idle 2-core machine, over
        # 10 s under load, paid by every run process unless the server has imported it already.
        _CONTEXT.set_forkserver_preload(["rlopt.run.train", "optuna", "torch._dynamo"])
    return _CONTEXT


def execute_runs(
    configs: Sequence[Any],
    parallel: int,
    on_point: Callable[[int, int, float], bool],
) -> list[RunResult]:
    """Run ``configs`` (``rlopt.run.config.TrainConfig``), at most ``parallel`` at a time.

    Args:
        configs: one config per run.
        parallel: most runs alive at once.
        on_point: called as ``on_point(run_index, timesteps, mean_return)`` for every evaluation, in
            arrival order; returning True stops every run of the trial.

    Returns:
        One :class:`RunResult` per config, in order.
    """
    ctx = _context()
    messages = ctx.Queue()
    stop = ctx.Event()
    results = [RunResult(i) for i in range(len(configs))]
    pending = list(range(len(configs)))
    active: dict[int, Any] = {}

    def handle(message: tuple[Any, ...]) -> None:
        kind, index = message[0], message[1]
        result = results[index]
        if kind == "eval":
            result.timesteps.append(message[2])
            result.returns.append(message[3])
            if not stop.is_set() and on_point(index, message[2], message[3]):
                stop.set()
        else:
            result.status, result.reason = message[2], message[3]
            if result.status == "failed":
                log.warning("run %d failed: %s", index, message[4] if len(message) > 4 else result.reason)
                stop.set()

    try:
        while pending or active:
            raise_if_interrupted()
            _start_runs(ctx, configs, pending, active, parallel, messages, stop)
            if stop.is_set():
                for index in pending:
                    results[index].status = "skipped"
                    results[index].reason = "trial stopped before it started"
                pending.clear()
            with contextlib.suppress(queue_module.Empty):
                handle(messages.get(timeout=POLL_S))
            _reap_ended(active, results, messages, handle, stop)
    except BaseException:
        stop.set()
        _stop_all(active)
        raise
    finally:
        messages.close()
    return results


def _start_runs(
    ctx: Any, configs: Sequence[Any], pending: list[int], active: dict[int, Any], parallel: int,
    messages: Any, stop: Any,
) -> None:
    """Start pending runs (in order) until ``parallel`` are alive, unless the trial is stopping."""
    while pending and len(active) < parallel and not stop.is_set():
        index = pending.pop(0)
        process = ctx.Process(target=_run_main, args=(configs[index], index, messages, stop),
                              name=f"run-{index}", daemon=True)
        process.start()
        active[index] = process


def _reap_ended(
    active: dict[int, Any], results: list[RunResult], messages: Any,
    handle: Callable[[tuple[Any, ...]], None], stop: Any,
) -> None:
    """Join the run processes that ended: drain what they sent, and fail (stopping the trial) any that
    died before saying how it ended."""
    for index, process in list(active.items()):
        if process.is_alive():
            continue
        while not results[index].finished:
            try:
                handle(messages.get(timeout=POLL_S))
            except queue_module.Empty:
                break
        if not results[index].finished:
            results[index].status = "failed"
            results[index].reason = f"run process died (exit code {process.exitcode})"
            stop.set()
        process.join()
        del active[index]


def _stop_all(active: dict[int, Any]) -> None:
    """Stop the runs now (SIGTERM: each closes its folder as ``stopped``), then end any that hang."""
    for process in active.values():
        process.terminate()
    for process in active.values():
        process.join(timeout=STOP_JOIN_TIMEOUT_S / max(1, len(active)))
        if process.is_alive():
            process.kill()
            process.join()
