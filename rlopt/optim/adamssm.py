"""AdamSSM: Adam with a pole-zero pair in its second-moment filter (after Chakrabarti & Chopra, 2022)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from rlopt.optim._base import Context, RloptOptimizer, TensorBatch, UpdateFn
from rlopt.optim._compiled import adamssm_update
from rlopt.optim._flat import FlatGroup
from rlopt.optim.validation import (
    check_betas,
    check_eps,
    check_lr,
    check_unit_interval,
    check_weight_decay,
)

BETA_NAMES = ("beta1: first-moment decay", "beta2: second-moment decay (before the pole-zero section)")


def _geometric_mix(b: float, r: float, t: int) -> float:
    """sum_{j=0}^{t-1} b^j r^(t-1-j) = (b^t - r^t) / (b - r), evaluated without cancellation."""
    if b == r:
        return t * r ** (t - 1)
    hi, lo = max(b, r), min(b, r)
    if hi - lo >= 1e-3 * hi:
        return (hi**t - lo**t) / (hi - lo)
    # hi^t - lo^t = -hi^t * expm1(t * log(lo / hi)), accurate when lo / hi is close to 1.
    return -(hi**t) * math.expm1(t * math.log1p((lo - hi) / hi)) / (hi - lo)


def second_moment_bias_correction(beta2: float, rho: float, zeta: float, t: int) -> float:
    """Value of v_t when every squared gradient is 1 and a_0 = v_0 = 0 (the filter's step response).

    ``1 - rho^t - k (beta2 - zeta) (beta2^t - rho^t) / (beta2 - rho)`` with
    ``k = (1 - rho) / (1 - zeta)``; equals Adam's ``1 - beta2^t`` when ``zeta == rho``.
    """
    k = (1.0 - rho) / (1.0 - zeta)
    return (1.0 - rho**t) - k * (beta2 - zeta) * _geometric_mix(beta2, rho, t)


def _coefficients(group: Mapping[str, Any], step: int) -> tuple[float, float, float, float]:
    """(a_{t-1} weight, g^2 weight) of the v update, lr / (1 - b1^t), sqrt of v's bias correction."""
    beta1, beta2 = group["betas"]
    rho, zeta = group["rho"], group["zeta"]
    k = (1.0 - rho) / (1.0 - zeta)
    return (
        k * (beta2 - zeta),
        k * (1.0 - beta2),
        group["lr"] / (1.0 - beta1**step),
        math.sqrt(second_moment_bias_correction(beta2, rho, zeta, step)),
    )


def _single_tensor_adamssm(batch: TensorBatch, group: dict[str, Any], context: Context) -> None:
    beta1, beta2 = group["betas"]
    rho, eps, weight_decay = group["rho"], group["eps"], group["weight_decay"]
    a_weight, g2_weight, step_size, bias_correction_sqrt = _coefficients(group, batch.step)
    for param, grad, exp_avg, exp_avg_sq, filtered in zip(
        batch.params,
        batch.grads,
        batch.state["exp_avg"],
        batch.state["exp_avg_sq"],
        batch.state["filtered_exp_avg_sq"],
        strict=True,
    ):
        if weight_decay:
            grad = grad.add(param, alpha=weight_decay)
        exp_avg.lerp_(grad, 1.0 - beta1)
        # v_t = rho v + k (a_t - zeta a_{t-1}); a_t - zeta a_{t-1} = (beta2 - zeta) a_{t-1} + (1 - beta2) g^2
        filtered.mul_(rho).add_(exp_avg_sq, alpha=a_weight).addcmul_(grad, grad, value=g2_weight)
        filtered.clamp_min_(0.0)  # v >= 0 in exact arithmetic; keep rounding from making it negative
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        denom = (filtered.sqrt() / bias_correction_sqrt).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-step_size)


def _foreach_adamssm(batch: TensorBatch, group: dict[str, Any], context: Context) -> None:
    beta1, beta2 = group["betas"]
    rho, eps, weight_decay = group["rho"], group["eps"], group["weight_decay"]
    a_weight, g2_weight, step_size, bias_correction_sqrt = _coefficients(group, batch.step)
    params: list[Tensor] = batch.params
    grads: list[Tensor] | tuple[Tensor, ...] = batch.grads
    exp_avgs, exp_avg_sqs = batch.state["exp_avg"], batch.state["exp_avg_sq"]
    filtered = batch.state["filtered_exp_avg_sq"]
    if weight_decay:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    torch._foreach_lerp_(exp_avgs, grads, 1.0 - beta1)
    torch._foreach_mul_(filtered, rho)
    torch._foreach_add_(filtered, exp_avg_sqs, alpha=a_weight)
    torch._foreach_addcmul_(filtered, grads, grads, value=g2_weight)
    torch._foreach_clamp_min_(filtered, 0.0)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1.0 - beta2)
    denoms = torch._foreach_sqrt(filtered)
    torch._foreach_div_(denoms, bias_correction_sqrt)
    torch._foreach_add_(denoms, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denoms, value=-step_size)


class AdamSSM(RloptOptimizer):
    r"""AdamSSM: Adam whose second-moment estimate passes through an extra pole-zero (lead-lag) section.

    With :math:`\beta_1, \beta_2` = ``betas``, pole :math:`\rho` = ``rho``, zero :math:`\zeta` =
    ``zeta``, :math:`\eta` = ``lr``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``
    (L2, as in ``torch.optim.Adam``: :math:`g_t \leftarrow g_t + \lambda\theta`) and
    :math:`t = 1, 2, \dots` the step:

    .. math::

        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\, g_t \\
        a_t &= \beta_2 a_{t-1} + (1-\beta_2)\, g_t^2 \\
        v_t &= \rho\, v_{t-1} + \frac{1-\rho}{1-\zeta}\,(a_t - \zeta\, a_{t-1}) \\
        \theta &\leftarrow \theta - \frac{\eta}{1-\beta_1^t}\,
                 \frac{m_t}{\sqrt{v_t / c_t} + \epsilon}

    :math:`a` is Adam's second moment; the section from :math:`a` to :math:`v`,
    :math:`\frac{1-\rho}{1-\zeta}\,\frac{1-\zeta z^{-1}}{1-\rho z^{-1}}`, has unit gain at zero
    frequency and a non-negative impulse response when :math:`0 \le \zeta \le \rho < 1`, so
    :math:`v \ge 0`. :math:`c_t` is the bias correction: the value :math:`v_t` takes when every
    :math:`g^2 = 1`, :math:`c_t = 1-\rho^t - \frac{1-\rho}{1-\zeta}(\beta_2-\zeta)
    \frac{\beta_2^t-\rho^t}{\beta_2-\rho}` (Adam's :math:`1-\beta_2^t` when :math:`\zeta = \rho`).
    With :math:`\zeta = \rho` the section is the identity and the optimizer is exactly Adam.

    Defaults :math:`\rho = 0.9`, :math:`\zeta = 0.8`: a mild lag. Half of :math:`v_t`'s weight
    stays on Adam's current :math:`a_t` (:math:`\frac{1-\rho}{1-\zeta} = 0.5`); the other half is
    spread over the previous :math:`\approx 1/(1-\rho) = 10` values of :math:`a`, smoothing the
    denominator against single large squared gradients. They are our choice, not the paper's.

    .. warning::
        This is rlopt's realisation of the paper's idea ("an appropriate pole-zero pair in the
        transfer function from squared gradients to the second moment estimate"), not its verified
        equations or defaults: no public code was found and the exact equations could not be checked.
        The bias correction :math:`c_t` and the clamp of :math:`v` at 0 against rounding are ours too.

    Args:
        params: parameters or parameter groups.
        lr: learning rate :math:`\eta` (default 1e-3).
        betas: :math:`(\beta_1, \beta_2)` (default (0.9, 0.999)).
        eps: :math:`\epsilon` (default 1e-8).
        weight_decay: L2 penalty :math:`\lambda` (default 0).
        rho: pole :math:`\rho`, :math:`0 \le \zeta \le \rho < 1` (default 0.9).
        zeta: zero :math:`\zeta` (default 0.8).
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
        Chakrabarti & Chopra, "A Control Theoretic Framework for Adaptive Gradient Optimizers in
        Machine Learning", https://arxiv.org/abs/2206.02034.
    """

    state_keys = ("exp_avg", "exp_avg_sq", "filtered_exp_avg_sq")
    implementations: ClassVar[Mapping[str, UpdateFn]] = {
        "single_tensor": _single_tensor_adamssm,
        "foreach": _foreach_adamssm,
    }

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        rho: float = 0.9,
        zeta: float = 0.8,
        *,
        foreach: bool | None = None,
        flat: bool | None = None,
        fused: bool = False,
    ) -> None:
        rho = check_unit_interval(rho, "rho")
        zeta = check_unit_interval(zeta, "zeta")
        if zeta > rho:
            raise ValueError(
                f"Invalid zeta: {zeta!r} is above rho={rho!r} (accepted: 0 <= zeta <= rho < 1, "
                "which keeps the second moment non-negative)"
            )
        defaults = {
            "lr": check_lr(lr),
            "betas": check_betas(betas, BETA_NAMES),
            "eps": check_eps(eps),
            "weight_decay": check_weight_decay(weight_decay),
            "rho": rho,
            "zeta": zeta,
        }
        super().__init__(params, defaults, foreach, flat, fused)

    def _fused_step(self, flat: FlatGroup, group: Mapping[str, Any], step: int, context: Context) -> bool:
        beta1, beta2 = group["betas"]
        weight_decay = group["weight_decay"]
        a_weight, g2_weight, step_size, bias_correction_sqrt = _coefficients(group, step)
        s = self._compiled_rule.scalars([
            weight_decay, 1.0 - beta1, group["rho"], a_weight, g2_weight,
            beta2, 1.0 - beta2, group["eps"], step_size, 1.0 / bias_correction_sqrt,
        ], flat.param.device)
        state = flat.state
        return self._compiled_rule.run(
            adamssm_update, flat.steps, flat.param, flat.grad, state["exp_avg"], state["exp_avg_sq"],
            state["filtered_exp_avg_sq"], s, bool(weight_decay),
        )
