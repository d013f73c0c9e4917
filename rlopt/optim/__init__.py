"""Optimizers: torch.optim's by name, the seed papers' methods, one registry, and the scaling rule."""

from __future__ import annotations

from rlopt.optim.adabelief import AdaBelief
from rlopt.optim.adamssm import AdamSSM
from rlopt.optim.adan import Adan
from rlopt.optim.adopt import ADOPT
from rlopt.optim.dgclip import DeltaGClip
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
from rlopt.optim.scaling import scale_hyperparameters

__all__ = [
    "ADOPT",
    "OPTIMIZERS",
    "AdaBelief",
    "AdamSSM",
    "Adan",
    "DeltaGClip",
    "OptimizerSpec",
    "ResolvedOptimizer",
    "build",
    "get_spec",
    "known_names",
    "make_optimizer",
    "resolve",
    "scale_hyperparameters",
]
