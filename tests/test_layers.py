"""The package's shape: the layers of the data flow (pyproject's import-linter contracts) hold.

cli -> analysis -> study -> run -> config -> optim -> leaves (records, stats, atomic, paths,
interrupts) -> errors; a module imports only from layers below its own, and the analysis never imports
the study runner, its worker and pool, or the training loop (so ``rlopt report`` does not load them).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _lint_imports() -> str:
    found = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(found).exists():
        pytest.fail("lint-imports is not installed (accepted: pip install -e '.[test]', which includes "
                    "import-linter)")
    return found


def test_imports_follow_the_layers_of_the_data_flow() -> None:
    result = subprocess.run([_lint_imports(), "--no-cache"], cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.lower().replace("0 broken", ""), result.stdout[-4000:]


def test_the_contract_fails_on_an_import_against_the_layers(tmp_path: Path) -> None:
    """The check can fail: a copy of the package where config imports the analysis is refused."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "rlopt", copy / "rlopt", ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    bad = copy / "rlopt" / "config" / "suites.py"
    bad.write_text(bad.read_text() + "\nfrom rlopt.analysis import scores  # noqa: E402\n")
    env = {"PYTHONPATH": str(copy), "PATH": str(Path(sys.executable).parent)}
    result = subprocess.run([_lint_imports(), "--no-cache"], cwd=copy, capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode != 0
    assert "rlopt.config.suites -> rlopt.analysis.scores" in result.stdout, result.stdout[-3000:]
