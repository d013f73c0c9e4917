"""Shared fixtures: tiny training configs on real MuJoCo tasks (seconds per run)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

TINY_AGENT: dict[str, dict[str, Any]] = {
    "ppo": {"n_steps": 128, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [16]}},
    "sac": {
        "learning_starts": 64,
        "batch_size": 32,
        "buffer_size": 2000,
        "policy_kwargs": {"net_arch": [16]},
    },
}


@pytest.fixture(scope="session")
def tiny_agent() -> dict[str, dict[str, Any]]:
    """Agent overrides for runs of seconds: 16-unit networks, short rollouts / tiny replay buffer."""
    return TINY_AGENT


@pytest.fixture
def tiny_config(tmp_path: Path) -> Callable[..., Any]:
    """``tiny_config(algo, optimizer, **fields)``: a ``TrainConfig`` of a few hundred steps on
    InvertedPendulum-v5 with 16-unit networks, its run folder under ``tmp_path``."""
    from rlopt.run.config import TrainConfig

    def make(algo: str = "ppo", optimizer: str = "adam", **fields: Any) -> TrainConfig:
        overrides = {**TINY_AGENT[algo], **fields.pop("overrides", {})}
        defaults: dict[str, Any] = {
            "env": "InvertedPendulum-v5",
            "timesteps": 256 if algo == "ppo" else 160,
            "eval_freq": 128,
            "eval_episodes": 1,
            "run_dir": tmp_path / f"{algo}-{optimizer.replace(':', '_')}",
        }
        return TrainConfig(algo=algo, optimizer=optimizer, overrides=overrides, **{**defaults, **fields})

    return make


@pytest.fixture(scope="session", autouse=True)
def _sb3_logs_in_pytest_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Stock SB3 learning without a logger makes ``$TMPDIR/SB3-<date>`` folders: keep them in pytest's tmp."""
    import os

    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3-logs"))


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_test_worker() -> None:
    """Under pytest-xdist every core already runs a test worker: torch's intra-op pool (one thread per
    core by default) would oversubscribe them, which slows the small-tensor tests several-fold."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
