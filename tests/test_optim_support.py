"""Helpers shared by the optimizer tests (no tests here): fresh random data and stepping utilities.

Every test draws new random data from a generator seeded from ``os.urandom``; the seed is printed, so a
failing test shows it in its captured output and can be replayed with ``RLOPT_TEST_SEED=<seed>``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

# Scalar-ish, vector, matrix and conv-like 4-d parameters.
SHAPES: tuple[tuple[int, ...], ...] = ((1,), (7,), (5, 3), (4, 3, 2, 2))

RLOPT_OPTIMIZERS = ("adopt", "adan", "adabelief", "adamssm", "dgclip")

# The three implementations of every rlopt optimizer, as constructor arguments.
IMPLEMENTATIONS: dict[str, dict[str, bool]] = {
    "reference": {"foreach": False},
    "foreach": {"foreach": True, "flat": False},
    "flat": {"flat": True},
}


def fresh_generator() -> torch.Generator:
    """A CPU generator with a new seed from ``os.urandom`` (or ``RLOPT_TEST_SEED``), printed for replay."""
    seed = int(os.environ.get("RLOPT_TEST_SEED") or int.from_bytes(os.urandom(7), "little"))
    print(f"random seed: {seed} (replay with RLOPT_TEST_SEED={seed})")
    return torch.Generator().manual_seed(seed)


def random_params(gen: torch.Generator, dtype: torch.dtype = torch.float64) -> list[Tensor]:
    """One tensor of each shape in :data:`SHAPES`."""
    return [torch.randn(shape, generator=gen, dtype=dtype) for shape in SHAPES]


def gradient_stream(
    gen: torch.Generator,
    steps: int,
    dtype: torch.dtype = torch.float64,
    shapes: Sequence[tuple[int, ...]] = SHAPES,
) -> list[list[Tensor]]:
    """``steps`` lists of random gradients, each step at a random overall scale in [1e-4, 10].

    The changing scale exercises eps floors, clipping and the normalisation of every method.
    """
    stream = []
    for _ in range(steps):
        scale = 10.0 ** (torch.rand((), generator=gen, dtype=torch.float64).item() * 5.0 - 4.0)
        stream.append([torch.randn(s, generator=gen, dtype=dtype) * scale for s in shapes])
    return stream


def leaf_copies(tensors: Sequence[Tensor]) -> list[Tensor]:
    """Independent leaf parameters with the values of ``tensors``."""
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def run(
    optimizer: torch.optim.Optimizer,
    params: Sequence[Tensor],
    stream: Sequence[Sequence[Tensor]],
    before_step: Callable[[int], None] | None = None,
) -> list[list[Tensor]]:
    """Feed ``stream`` as gradients of ``params`` step by step; return the parameters after every step."""
    history = []
    for t, grads in enumerate(stream):
        for p, g in zip(params, grads, strict=True):
            p.grad = g.clone()
        if before_step is not None:
            before_step(t)
        optimizer.step()
        history.append([p.detach().clone() for p in params])
    return history


def assert_histories_close(
    actual: Sequence[Sequence[Tensor]], expected: Sequence[Sequence[Tensor]], rtol: float, atol: float
) -> None:
    """Every step's parameters agree; the message names the first step and tensor that does not."""
    assert len(actual) == len(expected)
    for t, (got_step, want_step) in enumerate(zip(actual, expected, strict=True)):
        for i, (got, want) in enumerate(zip(got_step, want_step, strict=True)):
            torch.testing.assert_close(
                got, want, rtol=rtol, atol=atol, msg=lambda m, t=t, i=i: f"step {t + 1}, tensor {i}: {m}"
            )
