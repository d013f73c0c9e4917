"""Optimizers: torch.optim's by name, the seed papers' methods, one registry, and the scaling rule."""

from __future__ import annotations

from rlopt.optim.registry import (
    OPTIMIZERS,
    OptimizerSpec,
    ResolvedOptimizer,
    build,
    get_spec,
    known_names,
    make_optimizer,
    resolve,
)

__all__ = [
    "OPTIMIZERS",
    "OptimizerSpec",
    "ResolvedOptimizer",
    "build",
    "get_spec",
    "known_names",
    "make_optimizer",
    "resolve",
]
