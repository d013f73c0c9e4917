"""δ-GClip: gradient descent with δ-regularized gradient clipping (Tucat & Mukherjee, 2024)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from rlopt.optim._base import Context, RloptOptimizer, TensorBatch, UpdateFn, global_grad_norm
from rlopt.optim.validation import check_fraction, check_lr, check_positive, check_weight_decay


def _single_tensor_dgclip(batch: TensorBatch, group: dict[str, Any], context: Context) -> None:
    weight_decay = group["weight_decay"]
    neg_step = context["neg_step"]
    for param, grad in zip(batch.params, batch.grads, strict=True):
        if weight_decay:
            grad = grad.add(param, alpha=weight_decay)
        param.add_(grad * neg_step.to(grad.device, grad.dtype))


def _foreach_dgclip(batch: TensorBatch, group: dict[str, Any], context: Context) -> None:
    weight_decay = group["weight_decay"]
    params: list[Tensor] = batch.params
    grads: list[Tensor] | tuple[Tensor, ...] = batch.grads
    if weight_decay:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    neg_step = context["neg_step"].to(params[0].device, params[0].dtype)
    torch._foreach_add_(params, torch._foreach_mul(grads, neg_step))


class DeltaGClip(RloptOptimizer):
    r"""δ-GClip: gradient descent whose step size is clipped by the gradient norm, but never below δ·lr.

    With :math:`\eta` = ``lr``, :math:`\gamma` = ``gamma``, :math:`\delta` = ``delta``,
    :math:`\lambda` = ``weight_decay`` and :math:`\lVert g_t\rVert` the L2 norm of the gradients of
    all parameters of the group together, taken before weight decay:

    .. math::

        h_t &= \eta \min\!\Big(1,\ \max\!\big(\delta,\ \frac{\gamma}{\lVert g_t \rVert}\big)\Big) \\
        \theta &\leftarrow \theta - h_t\,(g_t + \lambda\theta)

    A zero gradient gives :math:`h_t = \eta` and, without weight decay, a zero step. Small gradients
    (:math:`\lVert g\rVert \le \gamma`) get plain gradient descent; large ones a step of length
    :math:`\eta\gamma`, except that the step size never falls below :math:`\delta\eta`: that floor
    is the regularisation the paper adds to plain gradient clipping, and its proof relies on it.

    Default lr 0.1 (our choice: the paper's runs used lr 5 with :math:`\gamma = 0.25` on
    ResNet-18/CIFAR-10, far larger than a PPO or SAC network tolerates); with the default
    :math:`\gamma = 0.1` a large gradient moves the parameters by at most 0.01 per step. Tune it.

    .. warning::
        The paper states the method for one parameter vector; here the norm is taken per parameter
        group (one group: the whole model, as in the paper). L2 weight decay is our addition and is
        not included in the norm. The method has no betas and no eps.

    Args:
        params: parameters or parameter groups.
        lr: :math:`\eta` (default 0.1).
        gamma: clipping threshold :math:`\gamma` on the gradient norm (default 0.1).
        delta: floor :math:`\delta` on the step-size ratio, :math:`0 < \delta \le 1` (default 1e-3).
        weight_decay: L2 penalty :math:`\lambda` (default 0).
        foreach: ``None`` (default) or ``True``: batched ``torch._foreach_*`` update; ``False``: the
            per-tensor reference loop.
        flat: ``None`` (default) or ``True``: lay each parameter group out in flat buffers and
            run the update on one tensor per group (fastest; see :mod:`rlopt.optim._flat`); ``False``:
            per-tensor updates. Ignored with ``foreach=False``.

    References:
        Tucat & Mukherjee, "Regularized Gradient Clipping Provably Trains Wide and Deep Neural
        Networks", TMLR 2025, https://arxiv.org/abs/2404.08624.
    """

    implementations: ClassVar[Mapping[str, UpdateFn]] = {
        "single_tensor": _single_tensor_dgclip,
        "foreach": _foreach_dgclip,
    }

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        gamma: float = 0.1,
        delta: float = 1e-3,
        weight_decay: float = 0.0,
        *,
        foreach: bool | None = None,
        flat: bool | None = None,
    ) -> None:
        defaults = {
            "lr": check_lr(lr),
            "gamma": check_positive(gamma, "gamma"),
            "delta": check_fraction(delta, "delta"),
            "weight_decay": check_weight_decay(weight_decay),
        }
        super().__init__(params, defaults, foreach, flat)

    def _step_context(self, batches: Sequence[TensorBatch]) -> list[Context]:
        contexts: list[Context] = []
        for group, batch in zip(self.param_groups, batches, strict=True):
            if not batch.grads:
                contexts.append({})
                continue
            norm = global_grad_norm(batch.grads, self._implementation(group) != "single_tensor")
            # min(1, max(delta, gamma / norm)); a zero norm gives gamma / 0 = inf, clamped to 1.
            ratio = (group["gamma"] / norm).clamp(min=group["delta"], max=1.0)
            contexts.append({"neg_step": ratio * -group["lr"]})
        return contexts
