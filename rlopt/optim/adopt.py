"""ADOPT: Adam with the current gradient left out of its own normalisation (Taniguchi et al., 2024)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from rlopt.optim._base import Context, RloptOptimizer, TensorBatch, UpdateFn
from rlopt.optim._compiled import adopt_update
from rlopt.optim._flat import FlatGroup
from rlopt.optim.validation import (
    check_betas,
    check_bool,
    check_eps,
    check_lr,
    check_positive,
    check_weight_decay,
)

BETA_NAMES = (
    "beta1: momentum of the normalised gradient",
    "beta2: second-moment decay",
)


def _clip_bound(clip_exponent: float | None, step: int) -> float | None:
    """c = (t - 1) ** clip_exponent, with t - 1 the counter before this step's increment."""
    return None if clip_exponent is None else float(step - 1) ** clip_exponent


def _single_tensor_adopt(batch: TensorBatch, group: dict[str, Any], context: Context) -> None:
    beta1, beta2 = group["betas"]
    lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
    decoupled = group["decoupled_weight_decay"]
    clip = _clip_bound(group["clip_exponent"], batch.step)
    for param, grad, exp_avg, exp_avg_sq in zip(
        batch.params, batch.grads, batch.state["exp_avg"], batch.state["exp_avg_sq"], strict=True
    ):
        if weight_decay and not decoupled:
            grad = grad.add(param, alpha=weight_decay)
        if batch.step == 1:
            exp_avg_sq.addcmul_(grad, grad)
            continue
        if weight_decay and decoupled:
            param.mul_(1.0 - lr * weight_decay)
        normed = grad / exp_avg_sq.sqrt().clamp_min(eps)
        if clip is not None:
            normed.clamp_(-clip, clip)
        exp_avg.lerp_(normed, 1.0 - beta1)
        param.add_(exp_avg, alpha=-lr)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)


def _foreach_adopt(batch: TensorBatch, group: dict[str, Any], context: Context) -> None:
    beta1, beta2 = group["betas"]
    lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
    decoupled = group["decoupled_weight_decay"]
    clip = _clip_bound(group["clip_exponent"], batch.step)
    params: list[Tensor] = batch.params
    grads: list[Tensor] | tuple[Tensor, ...] = batch.grads
    exp_avgs, exp_avg_sqs = batch.state["exp_avg"], batch.state["exp_avg_sq"]
    if weight_decay and not decoupled:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if batch.step == 1:
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads)
        return
    if weight_decay and decoupled:
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)
    denoms = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_clamp_min_(denoms, eps)
    normed = torch._foreach_div(grads, denoms)
    if clip is not None:
        torch._foreach_clamp_min_(normed, -clip)
        torch._foreach_clamp_max_(normed, clip)
    torch._foreach_lerp_(exp_avgs, normed, 1.0 - beta1)
    torch._foreach_add_(params, exp_avgs, alpha=-lr)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)


class ADOPT(RloptOptimizer):
    r"""ADOPT: modified Adam that converges with any :math:`\beta_2` (clipped variant by default).

    With :math:`g_t` the gradient (plus ``weight_decay``:math:`\cdot\theta` in the L2 mode),
    :math:`\eta` = ``lr``, :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``,
    :math:`\lambda` = ``weight_decay`` and :math:`t` the parameter's step counter *before* this step:

    .. math::

        t = 0:&\quad v_0 = g_0^2 \quad\text{(no parameter update, } m_0 = 0\text{)} \\
        t \ge 1:&\quad \theta \leftarrow (1 - \eta\lambda)\,\theta
                  \quad\text{(only with ``decoupled_weight_decay=True``)} \\
        &\quad \hat g_t = \operatorname{clip}\!\big(g_t / \max(\sqrt{v_{t-1}}, \epsilon),\,
                  -c_t,\, c_t\big), \qquad c_t = t^{p} \\
        &\quad m_t = m_{t-1} + (1 - \beta_1)(\hat g_t - m_{t-1}) \\
        &\quad \theta \leftarrow \theta - \eta\, m_t \\
        &\quad v_t = \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2

    where :math:`p` = ``clip_exponent`` (``None`` removes the clip: the paper's original algorithm).
    The second moment used to normalise :math:`g_t` never contains :math:`g_t`, and momentum is taken
    after normalisation; :math:`\epsilon` is a floor on :math:`\sqrt{v}`, not an added term. There is
    no bias correction.

    .. warning::
        The clip :math:`c_t = t^{1/4}` is the authors' later addition (Nov. 2024, official code) for
        early-training stability, not part of the algorithm analysed in the paper; it is on by
        default, as in the official code. :math:`t` is the counter before its increment, as in the
        official code (the first real update is clipped at 1); pytorch-optimizer's ``ADOPT`` uses the
        incremented counter instead.

    Args:
        params: parameters or parameter groups.
        lr: learning rate :math:`\eta` (default 1e-3).
        betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.9999)).
        eps: floor :math:`\epsilon` on :math:`\sqrt{v}` (default 1e-6).
        weight_decay: :math:`\lambda` (default 0).
        decoupled_weight_decay: ``True``: decay the parameters AdamW-style before each real update
            (not at the first step, as in the official code); ``False`` (default): L2, add
            :math:`\lambda\theta` to the gradient, also at the first step.
        clip_exponent: :math:`p` in :math:`c_t = t^p` (default 0.25); ``None`` disables the clip.
        foreach: ``None`` (default) or ``True``: batched ``torch._foreach_*`` update; ``False``: the
            per-tensor reference loop.
        flat: ``None`` (default) or ``True``: lay each parameter group out in flat buffers and
            run the update on one tensor per group (fastest; see :mod:`rlopt.optim._flat`); ``False``:
            per-tensor updates. Ignored with ``foreach=False``.
        fused: ``True``: on flat groups of at least 16k elements, run the update as one
            ``torch.compile``'d kernel (:mod:`rlopt.optim._compiled`; equal to the reference within
            rounding, seconds of compiling on first use; worth it on large networks and long runs).
            Default ``False``.

    References:
        Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any β2 with the Optimal Rate",
        NeurIPS 2024, https://arxiv.org/abs/2411.02853 (official code: github.com/iShohei220/adopt).
    """

    state_keys = ("exp_avg", "exp_avg_sq")
    implementations: ClassVar[Mapping[str, UpdateFn]] = {
        "single_tensor": _single_tensor_adopt,
        "foreach": _foreach_adopt,
    }

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.9999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        clip_exponent: float | None = 0.25,
        *,
        foreach: bool | None = None,
        flat: bool | None = None,
        fused: bool = False,
    ) -> None:
        defaults = {
            "lr": check_lr(lr),
            "betas": check_betas(betas, BETA_NAMES),
            "eps": check_eps(eps),
            "weight_decay": check_weight_decay(weight_decay),
            "decoupled_weight_decay": check_bool(decoupled_weight_decay, "decoupled_weight_decay"),
            "clip_exponent": (
                None if clip_exponent is None else check_positive(clip_exponent, "clip_exponent")
            ),
        }
        super().__init__(params, defaults, foreach, flat, fused)

    def _fused_step(self, flat: FlatGroup, group: Mapping[str, Any], step: int, context: Context) -> bool:
        if step == 1:
            return False  # v_0 = g_0^2 and no update: the eager rule
        beta1, beta2 = group["betas"]
        weight_decay, decoupled = group["weight_decay"], group["decoupled_weight_decay"]
        clip = _clip_bound(group["clip_exponent"], step)
        lr = group["lr"]
        s = self._compiled_rule.scalars([
            lr, 1.0 - beta1, beta2, 1.0 - beta2, group["eps"], 0.0 if clip is None else clip,
            weight_decay, 1.0 - lr * weight_decay,
        ], flat.param.device)
        return self._compiled_rule.run(
            adopt_update, flat.steps, flat.param, flat.grad, flat.state["exp_avg"],
            flat.state["exp_avg_sq"], s, bool(weight_decay) and not decoupled,
            bool(weight_decay) and decoupled, clip is not None,
        )
