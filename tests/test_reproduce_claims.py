"""scripts/reproduce_claims.py: its paper-scale study files are valid studies, bad claims are refused."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from rlopt.config.study import load_spec

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reproduce_claims.py"
CLAIM_FILES = sorted((SCRIPT.parent.parent / "studies").glob("claim*.yaml"))


def _script() -> object:
    spec = importlib.util.spec_from_file_location("reproduce_claims", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", CLAIM_FILES, ids=[p.stem for p in CLAIM_FILES])
def test_full_scale_copy_is_a_valid_study_with_ten_seeds_and_paper_budgets(
    path: Path, tmp_path: Path
) -> None:
    small = load_spec(path)
    full = load_spec(_script().full_scale(path, tmp_path))  # type: ignore[attr-defined]
    assert full.name == f"{small.name}-full"
    assert len(full.seeds) == 10 and full.tasks == small.tasks and full.arms == small.arms
    assert full.timesteps == (None if small.suite else 1_000_000)


@pytest.mark.parametrize(("claims", "message"), [("9", "no study file for claim 9 (accepted: 1, 2"),
                                                 ("one", "--claims 'one' (accepted: claim numbers")])
def test_unknown_claim_is_refused_in_one_line_with_exit_code_2(claims: str, message: str) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--claims", claims], capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"reproduce_claims: error: {message}"), done.stderr
