"""SIGTERM handled as Ctrl-C, so ``timeout``, systemd and Slurm stop a command cleanly."""

from __future__ import annotations

import ctypes
import signal


def interrupt_on_sigterm() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread, so it is handled as Ctrl-C is."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, handler)


def forget_unhandled_interrupt() -> None:
    """Clear CPython's "a KeyboardInterrupt went unhandled" flag, so a handled interrupt exits with our code.

    CPython sets that flag whenever a KeyboardInterrupt leaves code run by ``PyRun_String*`` and, when
    the program ends, kills itself with SIGINT instead of exiting with ``sys.exit``'s code. MuJoCo's
    ``_callbacks`` module runs Python that way, so an interrupt that lands inside it (we caught it
    further up) would turn our exit code 130 into death by SIGINT (-2 to a parent) about half the
    time. Each ``PyRun_SimpleString`` resets the flag before it runs; running an empty one is the
    only public way to reset it.
    """
    ctypes.pythonapi.PyRun_SimpleString(b"")
