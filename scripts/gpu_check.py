#!/usr/bin/env python
"""The GPU path, verified on a CUDA machine in well under 10 minutes; skips cleanly without one.

    python scripts/gpu_check.py            # CUDA tests, PPO and SAC on cuda vs cpu, optimizer-step ratios

1. runs the suite's CUDA tests (``pytest -k cuda``);
2. trains PPO (``--ppo-steps``) and SAC (``--sac-steps``) on HalfCheetah-v5 with each seed-paper optimizer
   on ``cuda`` and on ``cpu``, the same seed and budget, and prints env steps/s side by side
   (``metrics.json``'s ``steps_per_s``: evaluation included, as a user sees it);
3. prints the optimizer-step ratios against ``torch.optim.Adam(fused=True)`` on the GPU
   (``scripts/bench_optimizers.py --device cuda``).

Without CUDA it prints one line saying why and exits 0, so it can run anywhere.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPTIMIZERS = ("adam", "adopt", "adan", "adabelief", "adamssm", "dgclip")


def _train(algo: str, device: str, optimizer: str, steps: int, folder: Path) -> float | str:
    run_dir = folder / f"{algo}-{device}-{optimizer}"
    command = [sys.executable, "-m", "rlopt", "train", "--algo", algo, "--env", "HalfCheetah-v5",
               "--optimizer", optimizer, "--timesteps", str(steps), "--device", device, "--seed", "0",
               "--no-progress", "--run-dir", str(run_dir), "--eval-freq", str(steps), "--eval-episodes", "1"]
    if algo == "sac":
        command += ["--set", f"learning_starts={min(1000, steps // 4)}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1][:60] if done.stderr.strip() else done.returncode
        return f"failed ({last})"
    return float(json.loads((run_dir / "metrics.json").read_text())["steps_per_s"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ppo-steps", type=int, default=8192)
    parser.add_argument("--sac-steps", type=int, default=3000)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(f"gpu_check: skipped: no CUDA device (torch {torch.__version__}, "
              f"built with CUDA {torch.version.cuda or 'none'})")
        return 0
    print(f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-k", "cuda", str(ROOT / "tests")])
    with tempfile.TemporaryDirectory() as tmp:
        print(f"\n{'algo':4} {'optimizer':10} {'cuda steps/s':>13} {'cpu steps/s':>12} {'cuda/cpu':>9}")
        for algo, steps in (("ppo", args.ppo_steps), ("sac", args.sac_steps)):
            for optimizer in OPTIMIZERS:
                on = {d: _train(algo, d, optimizer, steps, Path(tmp)) for d in ("cuda", "cpu")}
                ratio = (f"{on['cuda'] / on['cpu']:.2f}x" if all(isinstance(v, float) for v in on.values())
                         else "-")
                cells = [f"{v:.0f}" if isinstance(v, float) else v for v in (on["cuda"], on["cpu"])]
                print(f"{algo:4} {optimizer:10} {cells[0]:>13} {cells[1]:>12} {ratio:>9}", flush=True)
    bench = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_optimizers.py"), "--device", "cuda",
                            "--steps", "200", "--repeats", "3"])
    return tests.returncode or bench.returncode


if __name__ == "__main__":
    sys.exit(main())
