"""Adan: adaptive Nesterov momentum through gradient differences (Xie et al., 2022)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from rlopt.optim._base import Context, RloptOptimizer, TensorBatch, UpdateFn, global_grad_norm
from rlopt.optim._compiled import adan_update
from rlopt.optim._flat import FlatGroup
from rlopt.optim.validation import (
    check_betas,
    check_bool,
    check_eps,
    check_lr,
    check_nonnegative,
    check_weight_decay,
)

BETA_NAMES = (
    "beta1: gradient-average decay",
    "beta2: gradient-difference-average decay",
    "beta3: second-moment decay",
)


def _step_sizes(group: Mapping[str, Any], step: int) -> tuple[float, float, float]:
    """(lr / (1 - b1^k), lr * b2 / (1 - b2^k), sqrt(1 - b3^k)) for step k."""
    beta1, beta2, beta3 = group["betas"]
    lr = group["lr"]
    return lr / (1.0 - beta1**step), lr * beta2 / (1.0 - beta2**step), math.sqrt(1.0 - beta3**step)


def _single_tensor_adan(batch: TensorBatch, group: dict[str, Any], context: Context) -> None:
    beta1, beta2, beta3 = group["betas"]
    lr, eps, weight_decay, no_prox = group["lr"], group["eps"], group["weight_decay"], group["no_prox"]
    step_size, diff_step_size, bias_correction3_sqrt = _step_sizes(group, batch.step)
    clip = context.get("clip")
    for param, grad, exp_avg, exp_avg_diff, exp_avg_sq, prev_grad in zip(
        batch.params,
        batch.grads,
        batch.state["exp_avg"],
        batch.state["exp_avg_diff"],
        batch.state["exp_avg_sq"],
        batch.state["prev_grad"],
        strict=True,
    ):
        if clip is not None:
            grad = grad * clip.to(grad.device)
        if batch.step == 1:
            prev_grad.copy_(grad)  # g_0 := g_1, so the first difference is zero
        diff = grad - prev_grad
        exp_avg.lerp_(grad, 1.0 - beta1)
        exp_avg_diff.lerp_(diff, 1.0 - beta2)
        nesterov_grad = grad.add(diff, alpha=beta2)
        exp_avg_sq.mul_(beta3).addcmul_(nesterov_grad, nesterov_grad, value=1.0 - beta3)
        denom = (exp_avg_sq.sqrt() / bias_correction3_sqrt).add_(eps)
        if weight_decay and no_prox:
            param.mul_(1.0 - lr * weight_decay)
        param.addcdiv_(exp_avg, denom, value=-step_size)
        param.addcdiv_(exp_avg_diff, denom, value=-diff_step_size)
        if weight_decay and not no_prox:
            param.div_(1.0 + lr * weight_decay)
        prev_grad.copy_(grad)


def _foreach_adan(batch: TensorBatch, group: dict[str, Any], context: Context) -> None:
    beta1, beta2, beta3 = group["betas"]
    lr, eps, weight_decay, no_prox = group["lr"], group["eps"], group["weight_decay"], group["no_prox"]
    step_size, diff_step_size, bias_correction3_sqrt = _step_sizes(group, batch.step)
    clip = context.get("clip")
    params: list[Tensor] = batch.params
    grads: list[Tensor] | tuple[Tensor, ...] = batch.grads
    exp_avgs, exp_avg_diffs = batch.state["exp_avg"], batch.state["exp_avg_diff"]
    exp_avg_sqs, prev_grads = batch.state["exp_avg_sq"], batch.state["prev_grad"]
    if clip is not None:
        grads = torch._foreach_mul(grads, clip.to(grads[0].device))
    if batch.step == 1:
        torch._foreach_copy_(prev_grads, grads)
    diffs = torch._foreach_sub(grads, prev_grads)
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    torch._foreach_lerp_(exp_avg_diffs, diffs, 1.0 - beta2)
    nesterov_grads = torch._foreach_add(grads, diffs, alpha=beta2)
    torch._foreach_mul_(exp_avg_sqs, beta3)
    torch._foreach_addcmul_(exp_avg_sqs, nesterov_grads, nesterov_grads, value=1.0 - beta3)
    denoms = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denoms, bias_correction3_sqrt)
    torch._foreach_add_(denoms, eps)
    if weight_decay and no_prox:
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)
    torch._foreach_addcdiv_(params, exp_avgs, denoms, value=-step_size)
    torch._foreach_addcdiv_(params, exp_avg_diffs, denoms, value=-diff_step_size)
    if weight_decay and not no_prox:
        torch._foreach_div_(params, 1.0 + lr * weight_decay)
    torch._foreach_copy_(prev_grads, grads)


class Adan(RloptOptimizer):
    r"""Adan: Adam-style scaling of a Nesterov momentum estimated from gradient differences.

    In the official code's convention (the paper's :math:`\beta`'s are the code's :math:`1-\beta`),
    with :math:`\beta_1, \beta_2, \beta_3` = ``betas``, :math:`\eta` = ``lr``, :math:`\epsilon` =
    ``eps``, :math:`\lambda` = ``weight_decay`` and :math:`k = 1, 2, \dots` the step:

    .. math::

        d_k &= g_k - g_{k-1} \quad (g_0 := g_1,\ \text{so } d_1 = 0) \\
        m_k &= \beta_1 m_{k-1} + (1-\beta_1)\, g_k \\
        v_k &= \beta_2 v_{k-1} + (1-\beta_2)\, d_k \\
        n_k &= \beta_3 n_{k-1} + (1-\beta_3)\, (g_k + \beta_2 d_k)^2 \\
        \delta_k &= \sqrt{n_k} / \sqrt{1-\beta_3^k} + \epsilon \\
        \theta &\leftarrow \theta - \frac{\eta}{1-\beta_1^k}\,\frac{m_k}{\delta_k}
                 - \frac{\eta\,\beta_2}{1-\beta_2^k}\,\frac{v_k}{\delta_k} \\
        \theta &\leftarrow \theta / (1 + \eta\lambda)
                 \quad\text{(proximal weight decay, after the step; default)}

    With ``no_prox=True`` the decay is :math:`\theta \leftarrow (1-\eta\lambda)\,\theta` before the
    step instead. With ``max_grad_norm`` :math:`= G > 0`, every gradient is first multiplied by
    :math:`\min(1, G / (\lVert g \rVert + \epsilon))`, :math:`\lVert g \rVert` the norm over all
    parameter groups together, :math:`\epsilon` the constructor's ``eps``.

    .. warning::
        Bias correction, :math:`\epsilon` placement and the weight-decay forms follow the official
        code, which is what the paper's experiments ran. The paper's optional restart of the moments
        is not implemented. The clipped gradient is not written back to ``param.grad`` (the official
        code scales ``param.grad`` in place).

    Args:
        params: parameters or parameter groups.
        lr: learning rate :math:`\eta` (default 1e-3; the authors suggest 5-10x Adam's).
        betas: :math:`(\beta_1, \beta_2, \beta_3)` (default (0.98, 0.92, 0.99)).
        eps: :math:`\epsilon` added to the denominator (default 1e-8).
        weight_decay: :math:`\lambda` (default 0; the authors suggest 0.02).
        no_prox: ``False`` (default): proximal decay after the step; ``True``: AdamW-style decay
            before it.
        max_grad_norm: global gradient-norm clip :math:`G`; 0 (default) disables it.
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
        Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models",
        https://arxiv.org/abs/2208.06677 (official code: github.com/sail-sg/Adan).
    """

    state_keys = ("exp_avg", "exp_avg_diff", "exp_avg_sq", "prev_grad")
    implementations: ClassVar[Mapping[str, UpdateFn]] = {
        "single_tensor": _single_tensor_adan,
        "foreach": _foreach_adan,
    }

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        no_prox: bool = False,
        max_grad_norm: float = 0.0,
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
            "no_prox": check_bool(no_prox, "no_prox"),
            "max_grad_norm": check_nonnegative(max_grad_norm, "max_grad_norm"),
        }
        super().__init__(params, defaults, foreach, flat, fused)

    def _fused_step(self, flat: FlatGroup, group: Mapping[str, Any], step: int, context: Context) -> bool:
        beta1, beta2, beta3 = group["betas"]
        lr, weight_decay, no_prox = group["lr"], group["weight_decay"], group["no_prox"]
        step_size, diff_step_size, bias_correction3_sqrt = _step_sizes(group, step)
        s = self._compiled_rule.scalars([
            1.0 - beta1, beta2, 1.0 - beta2, beta3, 1.0 - beta3, group["eps"],
            1.0 - lr * weight_decay, 1.0 / (1.0 + lr * weight_decay),
            step_size, diff_step_size, 1.0 / bias_correction3_sqrt,
        ], flat.param.device)
        clip = context.get("clip")
        state = flat.state
        return self._compiled_rule.run(
            adan_update, flat.steps, flat.param, flat.grad, state["exp_avg"], state["exp_avg_diff"],
            state["exp_avg_sq"], state["prev_grad"], s, clip if clip is not None else s[:1],
            step == 1, clip is not None, bool(weight_decay) and no_prox, bool(weight_decay) and not no_prox,
        )

    def _step_context(self, batches: Sequence[TensorBatch]) -> list[Context]:
        max_grad_norm = self.defaults["max_grad_norm"]
        grads = [g for batch in batches for g in batch.grads]
        if max_grad_norm <= 0 or not grads:
            return [{} for _ in batches]
        foreach = self._implementation(self.param_groups[0]) != "single_tensor"
        norm = global_grad_norm(grads, foreach)
        clip = (max_grad_norm / (norm + self.defaults["eps"])).clamp(max=1.0)
        return [{"clip": clip} for _ in batches]
