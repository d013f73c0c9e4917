"""The `rlopt optimizers` command, driven as a user would."""

from __future__ import annotations

import os
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


def _optimizers_at(columns: int) -> list[str]:
    env = {**os.environ, "COLUMNS": str(columns)}
    out = subprocess.run(
        [sys.executable, "-m", "rlopt", "optimizers"], capture_output=True, text=True, check=True, env=env
    ).stdout
    return out.splitlines()


def test_optimizers_table_follows_the_terminal_width_and_stays_readable_at_80() -> None:
    narrow = _optimizers_at(80)
    assert max(len(line) for line in narrow) <= 80
    first_cells = [line.split("│")[1].strip() for line in narrow if line.startswith("│")]
    names = {cell for cell in first_cells if cell}
    assert names == set(OPTIMIZERS)  # one row per optimizer, its name unbroken in the first column
    text = " ".join(" ".join(line.split("│")[2:]) for line in narrow)
    words = " ".join(text.split())
    for spec in OPTIMIZERS.values():
        assert f"lr {spec.lr:g}," in words
        assert " ".join(spec.paper.split()[:3]) in words  # the paper's first words, not cut into letters
    wide = _optimizers_at(200)
    assert 80 < max(len(line) for line in wide) <= 200
    assert "weight_decay" in wide[2] and "paper" in wide[2]  # one column per default
