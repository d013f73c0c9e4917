"""scripts/gpu_check.py: skips cleanly without CUDA, and its timed training call works on the CPU."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here: the script runs for real")
def test_gpu_check_says_why_it_skips_and_exits_0_without_cuda() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gpu_check: skipped: no CUDA device (torch "), done.stdout


@pytest.mark.slow
def test_gpu_check_measures_steps_per_second_of_a_real_run(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rate = module._train("ppo", "cpu", "adopt", 512, tmp_path)
    assert isinstance(rate, float) and rate > 0, rate
    assert "failed" in module._train("ppo", "cpu", "no-such-optimizer", 512, tmp_path)
