"""Each rlopt optimizer matches an independent transcription of its paper's algorithm (PAPERS.md).

The transcriptions below are plain float64 tensor code written from the papers' update rules, not from
rlopt's modules: no in-place tricks, no shared helpers, the bias corrections of AdamSSM computed by
running its filter on a unit input rather than from rlopt's closed form. Both rlopt implementations
(reference loop and foreach) are checked at every one of 60 steps on fresh random data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from test_optim_support import (
    IMPLEMENTATIONS,
    assert_histories_close,
    fresh_generator,
    gradient_stream,
    leaf_copies,
    random_params,
    run,
)
from torch import Tensor

from rlopt.optim import ADOPT, AdaBelief, AdamSSM, Adan, DeltaGClip

STEPS = 60
Reference = Callable[..., list[list[Tensor]]]


def adopt_paper(
    params: list[Tensor],
    stream: Sequence[Sequence[Tensor]],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
    clip_exponent: float | None,
) -> list[list[Tensor]]:
    beta1, beta2 = betas
    theta = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    history = []
    for t, grads in enumerate(stream):  # t: the counter before this step's increment
        for i, g in enumerate(grads):
            if weight_decay and not decoupled_weight_decay:
                g = g + weight_decay * theta[i]
            if t == 0:
                v[i] = g * g
                continue
            if weight_decay and decoupled_weight_decay:
                theta[i] = theta[i] - lr * weight_decay * theta[i]
            g_hat = g / torch.maximum(torch.sqrt(v[i]), torch.tensor(eps, dtype=g.dtype))
            if clip_exponent is not None:
                c = t**clip_exponent
                g_hat = torch.clamp(g_hat, -c, c)
            m[i] = m[i] + (1 - beta1) * (g_hat - m[i])
            theta[i] = theta[i] - lr * m[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
        history.append([x.clone() for x in theta])
    return history


def adan_paper(
    params: list[Tensor],
    stream: Sequence[Sequence[Tensor]],
    *,
    lr: float,
    betas: tuple[float, float, float],
    eps: float,
    weight_decay: float,
    no_prox: bool,
    max_grad_norm: float,
) -> list[list[Tensor]]:
    b1, b2, b3 = betas
    theta = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    n = [torch.zeros_like(p) for p in params]
    previous: list[Tensor] = []
    history = []
    for k, raw in enumerate(stream, start=1):
        grads = list(raw)
        if max_grad_norm > 0:
            norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
            grads = [g * min(1.0, max_grad_norm / (norm + eps)) for g in grads]
        for i, g in enumerate(grads):
            d = torch.zeros_like(g) if k == 1 else g - previous[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * d
            n[i] = b3 * n[i] + (1 - b3) * (g + b2 * d) ** 2
            denom = torch.sqrt(n[i]) / math.sqrt(1 - b3**k) + eps
            if no_prox:
                theta[i] = (1 - lr * weight_decay) * theta[i]
            theta[i] = theta[i] - lr / (1 - b1**k) * m[i] / denom - lr * b2 / (1 - b2**k) * v[i] / denom
            if not no_prox:
                theta[i] = theta[i] / (1 + lr * weight_decay)
        previous = grads
        history.append([x.clone() for x in theta])
    return history


def adabelief_paper(
    params: list[Tensor],
    stream: Sequence[Sequence[Tensor]],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
) -> list[list[Tensor]]:
    b1, b2 = betas
    theta = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    s = [torch.zeros_like(p) for p in params]
    history = []
    for t, grads in enumerate(stream, start=1):
        for i, g in enumerate(grads):
            theta[i] = theta[i] * (1 - lr * weight_decay)
            m[i] = b1 * m[i] + (1 - b1) * g
            s[i] = b2 * s[i] + (1 - b2) * (g - m[i]) ** 2 + eps
            theta[i] = theta[i] - lr / (1 - b1**t) * m[i] / (torch.sqrt(s[i]) / math.sqrt(1 - b2**t) + eps)
        history.append([x.clone() for x in theta])
    return history


def adamssm_paper(
    params: list[Tensor],
    stream: Sequence[Sequence[Tensor]],
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
    rho: float,
    zeta: float,
) -> list[list[Tensor]]:
    """PAPERS.md's pole-zero realisation; the bias correction is the filter's response to g^2 = 1."""
    b1, b2 = betas
    gain = (1 - rho) / (1 - zeta)
    theta = [p.clone() for p in params]
    m = [torch.zeros_like(p) for p in params]
    a = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    unit_a = unit_v = 0.0
    history = []
    for t, grads in enumerate(stream, start=1):
        new_unit_a = b2 * unit_a + (1 - b2)
        unit_v = rho * unit_v + gain * (new_unit_a - zeta * unit_a)
        unit_a = new_unit_a
        for i, g in enumerate(grads):
            g = g + weight_decay * theta[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            new_a = b2 * a[i] + (1 - b2) * g * g
            v[i] = rho * v[i] + gain * (new_a - zeta * a[i])
            a[i] = new_a
            theta[i] = theta[i] - lr / (1 - b1**t) * m[i] / (torch.sqrt(v[i] / unit_v) + eps)
        history.append([x.clone() for x in theta])
    return history


def dgclip_paper(
    params: list[Tensor],
    stream: Sequence[Sequence[Tensor]],
    *,
    lr: float,
    gamma: float,
    delta: float,
    weight_decay: float,
) -> list[list[Tensor]]:
    theta = [p.clone() for p in params]
    history = []
    for grads in stream:
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
        h = lr * min(1.0, max(delta, gamma / norm if norm > 0 else math.inf))
        for i, g in enumerate(grads):
            theta[i] = theta[i] - h * (g + weight_decay * theta[i])
        history.append([x.clone() for x in theta])
    return history


CASES: list[tuple[str, type[torch.optim.Optimizer], Reference, dict[str, Any]]] = [
    (
        "adopt-default",
        ADOPT,
        adopt_paper,
        dict(
            lr=1e-3,
            betas=(0.9, 0.9999),
            eps=1e-6,
            weight_decay=0.0,
            decoupled_weight_decay=False,
            clip_exponent=0.25,
        ),
    ),
    (
        "adopt-noclip-l2",
        ADOPT,
        adopt_paper,
        dict(
            lr=3e-2,
            betas=(0.8, 0.5),
            eps=1e-3,
            weight_decay=0.1,
            decoupled_weight_decay=False,
            clip_exponent=None,
        ),
    ),
    (
        "adopt-decoupled-clip",
        ADOPT,
        adopt_paper,
        dict(
            lr=1e-2,
            betas=(0.9, 0.99),
            eps=1e-6,
            weight_decay=0.5,
            decoupled_weight_decay=True,
            clip_exponent=0.5,
        ),
    ),
    (
        "adan-default",
        Adan,
        adan_paper,
        dict(lr=1e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, weight_decay=0.0, no_prox=False, max_grad_norm=0.0),
    ),
    (
        "adan-prox",
        Adan,
        adan_paper,
        dict(lr=1e-2, betas=(0.9, 0.8, 0.95), eps=1e-8, weight_decay=0.2, no_prox=False, max_grad_norm=0.0),
    ),
    (
        "adan-noprox-clipped",
        Adan,
        adan_paper,
        dict(lr=1e-2, betas=(0.98, 0.92, 0.99), eps=1e-8, weight_decay=0.2, no_prox=True, max_grad_norm=1.0),
    ),
    (
        "adabelief-default",
        AdaBelief,
        adabelief_paper,
        dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0),
    ),
    (
        "adabelief-decay",
        AdaBelief,
        adabelief_paper,
        dict(lr=1e-2, betas=(0.5, 0.9), eps=1e-8, weight_decay=0.3),
    ),
    (
        "adamssm-default",
        AdamSSM,
        adamssm_paper,
        dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, rho=0.9, zeta=0.8),
    ),
    (
        "adamssm-l2-zero-at-origin",
        AdamSSM,
        adamssm_paper,
        dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-8, weight_decay=0.1, rho=0.95, zeta=0.0),
    ),
    (
        "adamssm-pole-equals-beta2",
        AdamSSM,
        adamssm_paper,
        dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0, rho=0.99, zeta=0.5),
    ),
    (
        "adamssm-pole-near-beta2",
        AdamSSM,
        adamssm_paper,
        dict(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.0, rho=0.9899, zeta=0.9),
    ),
    ("dgclip-default", DeltaGClip, dgclip_paper, dict(lr=0.1, gamma=0.1, delta=1e-3, weight_decay=0.0)),
    (
        "dgclip-delta-floor-l2",
        DeltaGClip,
        dgclip_paper,
        dict(lr=0.5, gamma=1e-6, delta=1e-2, weight_decay=0.1),
    ),
    ("dgclip-unclipped", DeltaGClip, dgclip_paper, dict(lr=0.05, gamma=1e3, delta=1e-3, weight_decay=0.0)),
]


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize(("case", "cls", "paper", "hparams"), CASES, ids=[c[0] for c in CASES])
def test_optimizer_follows_the_papers_update_rule(
    case: str, cls: type[torch.optim.Optimizer], paper: Reference, hparams: dict[str, Any], impl: str
) -> None:
    gen = fresh_generator()
    start = random_params(gen)
    stream = gradient_stream(gen, STEPS)
    params = leaf_copies(start)
    ours = run(cls(params, **hparams, **IMPLEMENTATIONS[impl]), params, stream)
    expected = paper(start, stream, **hparams)
    assert_histories_close(ours, expected, rtol=1e-9, atol=1e-12)
    # The parameters moved: a no-op optimizer cannot pass by matching a no-op transcription.
    assert all(not torch.equal(p, q) for p, q in zip(ours[-1], start, strict=True))


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_dgclip_zero_gradient_gives_zero_step(impl: str) -> None:
    gen = fresh_generator()
    params = leaf_copies(random_params(gen))
    before = [p.detach().clone() for p in params]
    run(
        DeltaGClip(params, lr=1.0, **IMPLEMENTATIONS[impl]),
        params,
        [[torch.zeros_like(p) for p in params]] * 3,
    )
    for p, q in zip(params, before, strict=True):
        assert torch.equal(p.detach(), q)
