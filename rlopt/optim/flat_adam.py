"""torch.optim's Adam and AdamW on flat buffers: torch's own kernels, once per group instead of per tensor.

On the small networks of deep RL, ``torch.optim.Adam``'s default CPU path is a Python loop of about ten
kernels per parameter tensor, and that loop, not the arithmetic, is the step's cost. :class:`Adam` and
:class:`AdamW` lay each parameter group out in flat buffers (:mod:`rlopt.optim._flat`: parameters,
gradients, ``exp_avg`` and ``exp_avg_sq`` become views into one tensor each) and call torch's own
functional ``torch.optim.adam.adam`` once, on the whole buffers, for the update

    m_t = β1 m_{t-1} + (1 - β1) g_t,      v_t = β2 v_{t-1} + (1 - β2) g_t²,
    θ_t = θ_{t-1} - lr / (1 - β1^t) · m_t / (sqrt(v_t) / sqrt(1 - β2^t) + eps)

(Kingma & Ba 2015; AdamW's decoupled decay θ ← θ (1 - lr λ) first, Loshchilov & Hutter 2019). Which of
torch's kernels runs is the ``fused`` argument:

- ``None`` (default) or ``True``, on the CPU: torch's fused kernel (``fused=True``), one pass over the
  buffers. It rounds as ``torch.optim.Adam(fused=True)`` does, i.e. within float32 rounding of the
  default path (tested), not bit for bit. On PPO's 2x256 actor-critic a step takes 0.34x the time of
  torch's default path and 0.57x that of the flat default arithmetic below (``scripts/bench_optimizers.py``).
- ``False``: torch's default single-tensor arithmetic (``foreach=False``). Elementwise arithmetic does
  not depend on how the elements are grouped, so the parameters are bit-identical to
  ``torch.optim.Adam``'s default path (tested against it, and end to end against stock SB3 PPO): the
  choice for reproducing plain SB3 exactly.
- On an accelerator, ``None`` runs the default arithmetic on the flat buffers and ``True`` torch's own
  fused step, which already makes one launch for all tensors.

The buffers are not cut into chunks: torch splits an elementwise kernel over its intra-op threads only
above 32k elements.

Everything else is torch's: the classes subclass ``torch.optim.Adam``/``AdamW`` (``isinstance`` holds,
``state_dict`` has torch's keys and shapes and loads into either), and a group that the flat path
cannot take (``foreach`` asked for explicitly, ``capturable``, ``differentiable``, complex or sparse
parameters, a parameter without a gradient, mixed devices or dtypes, ``flat=False``) runs torch's own
``step`` unchanged.

Written by hand because torch offers no flat-buffer mode; the arithmetic itself is not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch.optim.adam import adam as adam_update

from rlopt.optim._flat import FlatGroup, FlatLayouts, run_closure
from rlopt.optim.validation import check_bool_or_none


def _flat_eligible(group: Mapping[str, Any]) -> bool:
    """Whether the flat path may run ``group``: no torch-only option asked for; ``fused=True`` only on
    the CPU (elsewhere torch's fused step already makes one launch)."""
    return (
        group.get("flat") is not False
        and group.get("foreach") is not True
        and not group.get("capturable")
        and not group.get("differentiable")
        and (not group.get("fused") or all(p.device.type == "cpu" for p in group["params"]))
    )


def _runs_fused(group: Mapping[str, Any], flat: FlatGroup) -> bool:
    """Whether the flat path runs torch's fused kernel: on the CPU unless ``fused=False``."""
    return group.get("fused") is not False and flat.param.device.type == "cpu"


class _FlatAdamStep(FlatLayouts):
    """The flat ``step`` shared by :class:`Adam` and :class:`AdamW`."""

    defaults: dict[str, Any]
    param_groups: list[dict[str, Any]]

    def __init__(
        self, params: Iterable[Any], *args: Any, flat: bool | None = None, fused: bool | None = None,
        **kwargs: Any,
    ) -> None:
        # torch's Adam takes any truthy ``fused``; here it also picks the flat kernel, so check it
        super().__init__(params, *args, fused=check_bool_or_none(fused, "fused"), **kwargs)  # type: ignore[call-arg]
        self.defaults["flat"] = check_bool_or_none(flat, "flat")
        for group in self.param_groups:
            group.setdefault("flat", self.defaults["flat"])

    def _state_keys(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if group["amsgrad"] else ("exp_avg", "exp_avg_sq")

    def _layout_keys(self, group: Mapping[str, Any]) -> tuple[str, ...] | None:
        return self._state_keys(group) if _flat_eligible(group) else None

    def _torch_step(self) -> None:
        """torch's own ``step``, without the wrapper torch.optim puts around a class's ``step`` once an
        instance exists: that wrapper runs the step hooks, which the wrapper of ours already ran."""
        step = super().step  # type: ignore[misc]
        function = getattr(step, "__func__", step)
        while getattr(function, "hooked", False):
            function = function.__wrapped__
        function(self)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step (torch's arithmetic on flat buffers where the group allows).

        Args:
            closure: optional callable that re-evaluates the model and returns the loss.

        Returns:
            The loss returned by ``closure``, or ``None``.
        """
        loss = run_closure(closure)
        layouts: list[FlatGroup] = []
        for index, group in enumerate(self.param_groups):
            layout = None
            if _flat_eligible(group):
                layout = self._flat_layout(index, group, self._state_keys(group))
            if layout is None:
                # torch's own step for everything; cached step counts would go stale, so drop them.
                self._flat_groups.clear()
                self._torch_step()
                return loss
            layouts.append(layout)
        for group, flat in zip(self.param_groups, layouts, strict=True):
            step = torch.tensor(float(flat.count), dtype=flat.steps.dtype)
            adam_update(
                [flat.param], [flat.grad], [flat.state["exp_avg"]], [flat.state["exp_avg_sq"]],
                [flat.state["max_exp_avg_sq"]] if group["amsgrad"] else [], [step],
                foreach=False, capturable=False, differentiable=False, fused=_runs_fused(group, flat),
                has_complex=False, decoupled_weight_decay=group.get("decoupled_weight_decay", False),
                amsgrad=group["amsgrad"], beta1=group["betas"][0], beta2=group["betas"][1],
                lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"],
                maximize=group["maximize"],
            )
            flat.steps.add_(1.0)
            flat.count += 1
        return loss


class Adam(_FlatAdamStep, torch.optim.Adam):
    """``torch.optim.Adam`` run on flat buffers: torch's fused kernel on the CPU, or with ``fused=False``
    its default arithmetic bit for bit.

    Takes torch.optim.Adam's arguments, plus ``flat`` (``None``/``True``: flat where possible,
    ``False``: torch's own step always). See the module docstring for the math and when it applies.
    """


class AdamW(_FlatAdamStep, torch.optim.AdamW):
    """``torch.optim.AdamW`` run on flat buffers, as :class:`Adam`.

    Takes torch.optim.AdamW's arguments, plus ``flat`` as for :class:`Adam`.
    """
