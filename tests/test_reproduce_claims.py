"""scripts/reproduce_claims.py: its paper-scale study files are valid studies, bad claims are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _scripts import load_script

from rlopt.config.study import load_spec

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reproduce_claims.py"
CLAIM_FILES = sorted((SCRIPT.parent.parent / "studies").glob("claim*.yaml"))


def _script() -> object:
    return load_script("reproduce_claims")


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


def test_a_study_shared_by_claims_is_found_by_each_claim_once_after_the_claims_own() -> None:
    from rlopt.config.data import claim_numbers

    assert claim_numbers("claim6-8-sac-optimizers-vs-adam.yaml") == (6, 8)
    assert claim_numbers("claim1-adopt-vs-adam-ppo.yaml") == (1,)
    assert claim_numbers("quickstart.yaml") == ()
    files = _script().claim_files  # type: ignore[attr-defined]
    assert [p.name for p in files([6])] == ["claim6-adabelief-adamssm-vs-adam-ppo.yaml",
                                             "claim6-8-sac-optimizers-vs-adam.yaml"]
    assert [p.name for p in files([8])] == ["claim6-8-sac-optimizers-vs-adam.yaml"]
    assert [p.name for p in files([6, 8])] == [p.name for p in files([6])]
