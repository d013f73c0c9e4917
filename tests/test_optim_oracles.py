"""rlopt's optimizers agree with other implementations where the conventions coincide.

Oracles: pytorch-optimizer 4.x (ADOPT, Adan, AdaBelief) and torch.optim.Adam (AdamSSM with zeta = rho).
Where conventions differ, a test pins the difference down instead of hiding it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from test_optim_support import (
    assert_histories_close,
    fresh_generator,
    gradient_stream,
    leaf_copies,
    random_params,
    run,
)

from rlopt.optim import ADOPT, AdaBelief, AdamSSM, Adan

pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

STEPS = 60


def _run_both(ours_factory: Any, theirs_factory: Any, steps: int = STEPS) -> tuple[list, list, list]:
    gen = fresh_generator()
    start = random_params(gen)
    stream = gradient_stream(gen, steps)
    ours_params, their_params = leaf_copies(start), leaf_copies(start)
    ours = run(ours_factory(ours_params), ours_params, stream)
    theirs = run(theirs_factory(their_params), their_params, stream)
    return start, ours, theirs


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "foreach"])
def test_adopt_without_clip_matches_pytorch_optimizer(weight_decay: float, foreach: bool) -> None:
    # With the clip off the two agree exactly in convention (L2 weight decay added before the first
    # step's v <- g^2 in both).
    _, ours, theirs = _run_both(
        lambda p: ADOPT(p, lr=1e-2, weight_decay=weight_decay, clip_exponent=None, foreach=foreach),
        lambda p: pytorch_optimizer.ADOPT(p, lr=1e-2, weight_decay=weight_decay, clip_lambda=None),
    )
    assert_histories_close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_adopt_clip_counter_differs_from_pytorch_optimizer_by_a_small_amount() -> None:
    # The official ADOPT clips at c = t^(1/4) with t the counter BEFORE its increment (c = 1 on the
    # first real update); pytorch-optimizer uses the incremented counter (c = 2^(1/4)). Same algorithm
    # otherwise, so the trajectories must differ, but only a little.
    start, ours, theirs = _run_both(
        lambda p: ADOPT(p, lr=1e-2),
        lambda p: pytorch_optimizer.ADOPT(p, lr=1e-2, clip_lambda=lambda step: step**0.25),
    )
    moved = math.sqrt(sum(float(((q - s) ** 2).sum()) for q, s in zip(theirs[-1], start, strict=True)))
    gap = math.sqrt(sum(float(((p - q) ** 2).sum()) for p, q in zip(ours[-1], theirs[-1], strict=True)))
    assert 1e-6 * moved < gap < 0.2 * moved


def test_adopt_decoupled_decay_skips_the_first_step_unlike_pytorch_optimizer() -> None:
    # Official ADOPT applies decoupled weight decay only on real updates; pytorch-optimizer also
    # decays the parameters on the first step, where only v is set.
    lr, wd = 1e-2, 0.5
    start, ours, theirs = _run_both(
        lambda p: ADOPT(p, lr=lr, weight_decay=wd, decoupled_weight_decay=True),
        lambda p: pytorch_optimizer.ADOPT(p, lr=lr, weight_decay=wd, weight_decouple=True),
        steps=1,
    )
    for s, p, q in zip(start, ours[0], theirs[0], strict=True):
        assert torch.equal(p, s)
        torch.testing.assert_close(q, s * (1 - lr * wd), rtol=1e-15, atol=0)


@pytest.mark.parametrize(
    ("ours_kwargs", "their_kwargs", "tol"),
    [
        ({}, {}, 1e-12),
        ({"weight_decay": 0.2}, {"weight_decay": 0.2}, 1e-12),  # proximal decay in both
        ({"weight_decay": 0.2, "no_prox": True}, {"weight_decay": 0.2, "weight_decouple": True}, 1e-12),
        # pytorch-optimizer accumulates the global norm in float32, so the clip factor (and with it
        # every update) agrees to ~1e-7 only.
        ({"max_grad_norm": 1.0}, {"max_grad_norm": 1.0}, 1e-6),
    ],
    ids=["default", "prox-decay", "no-prox-decay", "global-clip"],
)
@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "foreach"])
def test_adan_matches_pytorch_optimizer(
    ours_kwargs: dict[str, Any], their_kwargs: dict[str, Any], tol: float, foreach: bool
) -> None:
    _, ours, theirs = _run_both(
        lambda p: Adan(p, lr=1e-2, **ours_kwargs, foreach=foreach),
        lambda p: pytorch_optimizer.Adan(p, lr=1e-2, **their_kwargs),
    )
    assert_histories_close(ours, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize("weight_decay", [0.0, 0.2])
@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "foreach"])
def test_adabelief_matches_pytorch_optimizer_without_rectification(
    weight_decay: float, foreach: bool
) -> None:
    # pytorch-optimizer's AdaBelief defaults to rectify=False and decoupled decay, as ours.
    _, ours, theirs = _run_both(
        lambda p: AdaBelief(p, lr=1e-2, eps=1e-12, weight_decay=weight_decay, foreach=foreach),
        lambda p: pytorch_optimizer.AdaBelief(p, lr=1e-2, eps=1e-12, weight_decay=weight_decay),
    )
    assert_histories_close(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.999, 0.9995])
@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "foreach"])
def test_adamssm_with_zero_at_the_pole_is_adam(rho: float, foreach: bool) -> None:
    _, ours, theirs = _run_both(
        lambda p: AdamSSM(p, lr=1e-2, weight_decay=0.05, rho=rho, zeta=rho, foreach=foreach),
        lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=0.05, foreach=foreach),
    )
    assert_histories_close(ours, theirs, rtol=1e-10, atol=1e-13)
