"""SIGTERM handled as Ctrl-C, so ``timeout``, systemd and Slurm stop a command cleanly."""

from __future__ import annotations

import ctypes
import signal

_RECEIVED: list[str] = []
"""Names of the SIGTERMs this process received (see :func:`raise_if_interrupted`)."""


def interrupt_on_sigterm() -> None:
    """Make SIGTERM raise KeyboardInterrupt in the main thread, so it is handled as Ctrl-C is.

    The interrupt is raised wherever the main thread is. Where that is a callback whose exceptions
    CPython prints and drops (a weakref callback, a ``__del__``, a garbage-collector callback), the
    program would go on as if no signal had come: the loops that run for long (the study worker's, the
    run pool's, every training step) call :func:`raise_if_interrupted`, which raises it again.
    """

    def handler(signum: int, frame: object) -> None:
        _RECEIVED.append(signal.Signals(signum).name)
        raise KeyboardInterrupt(f"signal {_RECEIVED[-1]}")

    signal.signal(signal.SIGTERM, handler)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a SIGTERM came: again, where the first one was dropped by CPython.

    Call it only from the loops that do the work, not from the code that cleans up after an interrupt.
    """
    if _RECEIVED:
        raise KeyboardInterrupt(f"signal {_RECEIVED[-1]}")


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
