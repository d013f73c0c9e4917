"""Real processes in tests: the tree below a pid, liveness, waiting, and CPU load made by the test."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

WAIT_S = 180.0


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    parents = _parents()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    return {child for child, parent in _parents().items() if parent == pid}


def _parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    return parents


def run_processes(worker_pid: int) -> list[int]:
    """The live training-run processes of a study worker: children of its forkserver."""
    servers = [pid for pid in children(worker_pid) if "forkserver" in command_line(pid)]
    return sorted(pid for server in servers for pid in children(server) if alive(pid))


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT_S, poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(poll_s)


def _spin(stop_at: float) -> None:
    x = 0
    while time.monotonic() < stop_at:
        x += 1


@contextmanager
def cpu_load(processes: int, seconds: float = 600.0) -> Iterator[None]:
    """Keep ``processes`` busy loops running (each stops by itself after ``seconds``)."""
    ctx = mp.get_context("fork")
    spinners = [
        ctx.Process(target=_spin, args=(time.monotonic() + seconds,), daemon=True) for _ in range(processes)
    ]
    for spinner in spinners:
        spinner.start()
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.terminate()
            spinner.join()
