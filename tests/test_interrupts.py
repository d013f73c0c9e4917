"""A handled interrupt exits with rlopt's code even when it passed through C code that runs Python.

MuJoCo's ``_callbacks`` evaluates Python with ``PyRun_StringFlags``; a SIGTERM landing there marks
the interpreter's "unhandled KeyboardInterrupt" flag, and ``python -m rlopt`` then died by SIGINT
(-2) instead of exiting 130 about half the time (CI failed on it). The child below makes the same
nested evaluation raise, deterministically, and is run with ``-m`` as the CLI is.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CHILD = '''
import ctypes, sys
from rlopt.interrupts import forget_unhandled_interrupt
run_string = ctypes.pythonapi.PyRun_String
run_string.restype = ctypes.py_object
run_string.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.py_object, ctypes.py_object]
try:
    run_string(b"raise KeyboardInterrupt", 257, {}, {})  # 257: Py_file_input, as MuJoCo's callbacks
except KeyboardInterrupt:
    pass  # handled, as rlopt's main handles it
if sys.argv[1] == "forget":
    forget_unhandled_interrupt()
sys.exit(130)
'''


@pytest.mark.parametrize(("mode", "code"), [("keep", -2), ("forget", 130)])
def test_an_interrupt_handled_after_nested_python_exits_with_our_code_only_once_forgotten(
    tmp_path: Path, mode: str, code: int
) -> None:
    (tmp_path / "nested_interrupt.py").write_text(CHILD)
    done = subprocess.run([sys.executable, "-m", "nested_interrupt", mode], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == code, done.stderr


DROPPED = '''
import os, signal, sys, weakref
from rlopt.interrupts import interrupt_on_sigterm, raise_if_interrupted
interrupt_on_sigterm()

class Thing:
    pass

thing = Thing()
# The SIGTERM's handler runs inside this weakref callback, whose exceptions CPython prints and drops.
ref = weakref.ref(thing, lambda _: os.kill(os.getpid(), signal.SIGTERM))
try:
    del thing
    for _ in range(1000):  # the work loop goes on
        if sys.argv[1] == "check":
            raise_if_interrupted()
except KeyboardInterrupt:
    sys.exit(130)
sys.exit(0)
'''


@pytest.mark.parametrize(("mode", "code"), [("no-check", 0), ("check", 130)])
def test_a_sigterm_dropped_inside_a_weakref_callback_is_raised_again_by_the_work_loop(
    tmp_path: Path, mode: str, code: int
) -> None:
    """The SIGTERM study test once exited 0 here (2026-12-03): its interrupt landed in a WeakKeyDictionary
    callback and was dropped."""
    (tmp_path / "dropped_interrupt.py").write_text(DROPPED)
    done = subprocess.run([sys.executable, "dropped_interrupt.py", mode], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert "KeyboardInterrupt: signal SIGTERM" in done.stderr  # CPython's "Exception ignored in" report
