"""The `rlopt optimizers` command, driven as a user would."""

from __future__ import annotations

import subprocess
import sys

from rlopt.optim import OPTIMIZERS


def test_optimizers_command_lists_every_registered_optimizer() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rlopt", "optimizers"], capture_output=True, text=True, check=True
    ).stdout
    for name in OPTIMIZERS:
        assert name in out


def test_unknown_subcommand_exits_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "rlopt", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
