"""SIGTERM handled as Ctrl-C, so ``timeout``, systemd and Slurm stop a command cleanly."""

from __future__ import annotations

import signal


def interrupt_on_sigterm() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread, so it is handled as Ctrl-C is."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, handler)


