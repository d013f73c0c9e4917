"""AdaBelief: Adam that scales steps by the belief in the observed gradient (Zhuang et al., 2020)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from rlopt.optim._base import Context, RloptOptimizer, TensorBatch, UpdateFn
from rlopt.optim._compiled import adabelief_update
from rlopt.optim._flat import FlatGroup
from rlopt.optim.validation import check_betas, check_eps, check_lr, check_weight_decay

BETA_NAMES = (
    "beta1: first-moment decay",
    "beta2: decay of the squared deviation from the first moment",
)


def _single_tensor_adabelief(batch: TensorBatch, group: dict[str, Any], context: Context) -> None:
    beta1, beta2 = group["betas"]
    lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
    step_size = lr / (1.0 - beta1**batch.step)
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**batch.step)
    for param, grad, exp_avg, exp_avg_var in zip(
        batch.params, batch.grads, batch.state["exp_avg"], batch.state["exp_avg_var"], strict=True
    ):
        if weight_decay:
            param.mul_(1.0 - lr * weight_decay)
        exp_avg.lerp_(grad, 1.0 - beta1)
        residual = grad - exp_avg
        exp_avg_var.mul_(beta2).addcmul_(residual, residual, value=1.0 - beta2).add_(eps)
        denom = (exp_avg_var.sqrt() / bias_correction2_sqrt).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-step_size)


def _foreach_adabelief(batch: TensorBatch, group: dict[str, Any], context: Context) -> None:
    beta1, beta2 = group["betas"]
    lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
    step_size = lr / (1.0 - beta1**batch.step)
    bias_correction2_sqrt = math.sqrt(1.0 - beta2**batch.step)
    params: list[Tensor] = batch.params
    grads: list[Tensor] | tuple[Tensor, ...] = batch.grads
    exp_avgs, exp_avg_vars = batch.state["exp_avg"], batch.state["exp_avg_var"]
    if weight_decay:
        torch._foreach_mul_(params, 1.0 - lr * weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    residuals = torch._foreach_sub(grads, exp_avgs)
    torch._foreach_mul_(exp_avg_vars, beta2)
    torch._foreach_addcmul_(exp_avg_vars, residuals, residuals, value=1.0 - beta2)
    torch._foreach_add_(exp_avg_vars, eps)
    denoms = torch._foreach_sqrt(exp_avg_vars)
    torch._foreach_div_(denoms, bias_correction2_sqrt)
    torch._foreach_add_(denoms, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denoms, value=-step_size)


class AdaBelief(RloptOptimizer):
    r"""AdaBelief: Adam with the second moment of :math:`g - m` instead of :math:`g`.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\eta` = ``lr``, :math:`\epsilon` = ``eps``,
    :math:`\lambda` = ``weight_decay`` and :math:`t = 1, 2, \dots` the step:

    .. math::

        \theta &\leftarrow (1 - \eta\lambda)\,\theta \quad\text{(decoupled weight decay)} \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t \\
        s_t &= \beta_2 s_{t-1} + (1-\beta_2)\, (g_t - m_t)^2 + \epsilon \\
        \theta &\leftarrow \theta - \frac{\eta}{1-\beta_1^t}\,
                 \frac{m_t}{\sqrt{s_t}/\sqrt{1-\beta_2^t} + \epsilon}

    :math:`\epsilon` enters twice, as in the paper's algorithm and the official code: it accumulates
    inside :math:`s` and is added to the denominator.

    .. warning::
        The official package's RAdam-style ``rectify`` option (on by default in its v0.2) and its
        ``amsgrad`` and L2 (non-decoupled) weight-decay options are not implemented: this is the
        paper's algorithm with decoupled weight decay. The authors advise ``eps=1e-12`` for RL.

    Args:
        params: parameters or parameter groups.
        lr: learning rate :math:`\eta` (default 1e-3).
        betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.999)).
        eps: :math:`\epsilon` (default 1e-16, the paper's).
        weight_decay: decoupled weight decay :math:`\lambda` (default 0).
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
        Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients",
        NeurIPS 2020, https://arxiv.org/abs/2010.07468 (official code:
        github.com/juntang-zhuang/Adabelief-Optimizer).
    """

    state_keys = ("exp_avg", "exp_avg_var")
    implementations: ClassVar[Mapping[str, UpdateFn]] = {
        "single_tensor": _single_tensor_adabelief,
        "foreach": _foreach_adabelief,
    }

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-16,
        weight_decay: float = 0.0,
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
        }
        super().__init__(params, defaults, foreach, flat, fused)

    def _fused_step(self, flat: FlatGroup, group: Mapping[str, Any], step: int, context: Context) -> bool:
        beta1, beta2 = group["betas"]
        lr, weight_decay = group["lr"], group["weight_decay"]
        s = self._compiled_rule.scalars([
            1.0 - lr * weight_decay, 1.0 - beta1, beta2, 1.0 - beta2, group["eps"],
            lr / (1.0 - beta1**step), 1.0 / math.sqrt(1.0 - beta2**step),
        ], flat.param.device)
        return self._compiled_rule.run(
            adabelief_update, flat.steps, flat.param, flat.grad, flat.state["exp_avg"],
            flat.state["exp_avg_var"], s, bool(weight_decay),
        )
