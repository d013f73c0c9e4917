"""Files written whole or not at all (rlopt.atomic): what the campaign's snapshots copy into bundles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rlopt import atomic


def test_copy_file_copies_the_bytes_and_times_and_leaves_no_temporary(tmp_path: Path) -> None:
    source, target = tmp_path / "eval.csv", tmp_path / "bundle" / "eval.csv"
    source.write_bytes(b"step,return\n20000,808.8\n" * 1000)
    os.utime(source, (1_000_000_000, 1_000_000_000))
    target.parent.mkdir()
    target.write_text("the earlier snapshot's copy\n")
    atomic.copy_file(source, target)
    assert target.read_bytes() == source.read_bytes()
    assert target.stat().st_mtime == source.stat().st_mtime
    assert sorted(p.name for p in target.parent.iterdir()) == ["eval.csv"]


def test_a_failed_copy_leaves_the_earlier_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text('{"status": "ok"}\n')
    with pytest.raises(OSError):
        atomic.copy_file(tmp_path / "gone.json", target)  # the live run folder moved away meanwhile
    with pytest.raises(OSError):
        atomic.copy_file(tmp_path, target)  # not a file
    assert target.read_text() == '{"status": "ok"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
