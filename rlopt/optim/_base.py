"""Bookkeeping shared by rlopt's own optimizers, so each optimizer module holds only its update rule.

An optimizer subclasses :class:`RloptOptimizer`, names its per-parameter buffers in ``state_keys`` and
maps implementation names to update functions in ``implementations``::

    class MyOpt(RloptOptimizer):
        state_keys = ("exp_avg",)
        implementations = {"single_tensor": _single_tensor_myopt, "foreach": _foreach_myopt}

Every update function has the signature ``update(batch, group, context)``: ``batch`` is a
:class:`TensorBatch` (tensors of one parameter group that share device, dtype and step count),
``group`` the live ``param_group`` dict (``lr`` is read from it at every step, since SB3 rewrites it),
``context`` what :meth:`RloptOptimizer._step_context` computed for the whole group (a global
gradient norm, for instance).

The ``single_tensor`` function is the readable reference, a loop over tensors; ``foreach`` the batched
``torch._foreach_*`` version, tested against it. The flat path (``flat=True``, the default) needs no
code of its own: it lays each group out in flat buffers (:mod:`rlopt.optim._flat`) and runs the
``single_tensor`` rule on the flat buffers (in cache-sized chunks on the CPU), so the reference rule
*is* the fast path.
With ``fused=True`` a flat group runs :meth:`RloptOptimizer._fused_step` instead where the rule has
one: the same update as a single ``torch.compile``'d kernel (:mod:`rlopt.optim._compiled`).
Another implementation is added by writing one more function and letting
:meth:`RloptOptimizer._implementation` choose it; the bookkeeping here does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from rlopt.optim._compiled import MIN_NUMEL, CompiledRule
from rlopt.optim._flat import FlatGroup, FlatLayouts, run_closure, step_dtype
from rlopt.optim.validation import check_bool, check_bool_or_none, check_foreach

Context = Mapping[str, Any]


@dataclass
class TensorBatch:
    """Parameters of one group that have gradients and share device, dtype and step count.

    Attributes:
        params: the parameters, updated in place.
        grads: their gradients (never modified in place by rlopt's update rules).
        state: per-parameter buffers, ``state[key][i]`` belongs to ``params[i]``.
        step: the number of this update for these parameters, counted from 1 (the ``step`` state
            after it was incremented).
        steps: the parameters' ``step`` counters themselves (0-d CPU tensors).
    """

    params: list[Tensor]
    grads: list[Tensor]
    state: dict[str, list[Tensor]]
    step: int = 0
    steps: list[Tensor] = field(default_factory=list)


UpdateFn = Callable[[TensorBatch, dict[str, Any], Context], None]


_step_dtype = step_dtype


def global_grad_norm(grads: Sequence[Tensor], foreach: bool) -> Tensor:
    """L2 norm of all ``grads`` taken together, as a 0-d tensor on the first gradient's device.

    No ``.item()``: the result stays on the device so the caller can use it without a host sync.
    """
    norms = torch._foreach_norm(list(grads)) if foreach else [torch.linalg.vector_norm(g) for g in grads]
    device = grads[0].device
    return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]))


class RloptOptimizer(FlatLayouts, torch.optim.Optimizer):
    """Base class of rlopt's optimizers: gathering, lazy state, step counters and dispatch.

    Subclasses set ``state_keys`` (buffers created as zeros shaped like the parameter, in its dtype
    and on its device) and ``implementations``, and validate their own arguments before calling
    ``super().__init__(params, defaults, foreach)``. Every parameter's state also holds ``step``, a
    0-d float tensor on the CPU like torch.optim's, counting the updates that parameter received.
    """

    state_keys: ClassVar[tuple[str, ...]] = ()
    implementations: ClassVar[Mapping[str, UpdateFn]] = {}

    def __init__(
        self,
        params: Iterable[Any],
        defaults: dict[str, Any],
        foreach: bool | None,
        flat: bool | None = None,
        fused: bool = False,
    ) -> None:
        super().__init__(
            params,
            {
                **defaults,
                "foreach": check_foreach(foreach),
                "flat": check_bool_or_none(flat, "flat"),
                "fused": check_bool(fused, "fused"),
            },
        )
        self._compiled_rule = CompiledRule(type(self).__name__)

    def _wants_flat(self, group: Mapping[str, Any]) -> bool:
        """Flat buffers unless ``flat=False`` or the per-tensor reference was asked for."""
        return group.get("flat") is not False and group["foreach"] is not False

    def _layout_keys(self, group: Mapping[str, Any]) -> Sequence[str] | None:
        return self.state_keys if self._wants_flat(group) else None

    def _flat_batch(self, index: int, group: Mapping[str, Any]) -> TensorBatch | None:
        """The group as cache-sized chunks of its flat buffers, or ``None`` where it cannot be flat."""
        flat = self._flat_layout(index, group, self.state_keys)
        if flat is None:
            return None
        params, grads, state = flat.chunks
        return TensorBatch(params, grads, state, step=flat.count + 1, steps=[flat.steps])

    def _fused_step(self, flat: FlatGroup, group: Mapping[str, Any], step: int, context: Context) -> bool:
        """Run this step of ``group`` as one compiled kernel over ``flat``'s buffers (``fused=True``,
        :mod:`rlopt.optim._compiled`), step counters ``flat.steps`` included; ``False``, with nothing
        changed, where the rule has none or it cannot run (the eager rule then runs)."""
        return False

    def _implementation(self, group: Mapping[str, Any]) -> str:
        """Name of the implementation to run for ``group``: ``foreach`` unless ``foreach=False``."""
        return "single_tensor" if group["foreach"] is False else "foreach"

    def _init_state(self, param: Tensor, state: dict[str, Any]) -> None:
        """Create the state of ``param`` on its first update."""
        state["step"] = torch.zeros((), dtype=_step_dtype())
        for key in self.state_keys:
            state[key] = torch.zeros_like(param, memory_format=torch.preserve_format)

    def _gather(self, group: Mapping[str, Any]) -> TensorBatch:
        """Collect the parameters of ``group`` that have gradients, creating their state if needed."""
        params: list[Tensor] = []
        grads: list[Tensor] = []
        steps: list[Tensor] = []
        state_lists: dict[str, list[Tensor]] = {key: [] for key in self.state_keys}
        for param in group["params"]:
            grad = param.grad
            if grad is None:
                continue
            if grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
            state = self.state[param]
            if not state:
                self._init_state(param, state)
            params.append(param)
            grads.append(grad)
            steps.append(state["step"])
            for key in self.state_keys:
                state_lists[key].append(state[key])
        return TensorBatch(params, grads, state_lists, steps=steps)

    def _step_context(self, batches: Sequence[TensorBatch]) -> list[Context]:
        """Quantities computed once per step over whole groups (one mapping per group).

        Override for anything that spans tensors of different devices, dtypes or step counts, such
        as a global gradient norm. Runs before any parameter of this step is changed.
        """
        return [{} for _ in batches]

    @staticmethod
    def _split(batch: TensorBatch) -> list[TensorBatch]:
        """Advance the step counters and split ``batch`` by (device, dtype, step count)."""
        if len(batch.steps) > 1:
            torch._foreach_add_(batch.steps, 1.0)
        else:
            batch.steps[0].add_(1.0)
        # The counters live on the CPU, so reading them does not synchronise with an accelerator.
        counts = [int(s.item()) for s in batch.steps]
        keys = [(p.device, p.dtype, c) for p, c in zip(batch.params, counts, strict=True)]
        first = keys[0]
        if all(k == first for k in keys):
            batch.step = counts[0]
            return [batch]
        parts: dict[tuple[torch.device, torch.dtype, int], TensorBatch] = {}
        for i, key in enumerate(keys):
            part = parts.get(key)
            if part is None:
                part = parts[key] = TensorBatch([], [], {k: [] for k in batch.state}, step=key[2])
            part.params.append(batch.params[i])
            part.grads.append(batch.grads[i])
            part.steps.append(batch.steps[i])
            for k, values in batch.state.items():
                part.state[k].append(values[i])
        return list(parts.values())

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimisation step.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss.

        Returns:
            The loss returned by ``closure``, or ``None``.
        """
        loss = run_closure(closure)
        batches: list[TensorBatch] = []
        flat_flags: list[bool] = []
        for index, group in enumerate(self.param_groups):
            flat = self._flat_batch(index, group) if self._wants_flat(group) else None
            flat_flags.append(flat is not None)
            batches.append(flat if flat is not None else self._gather(group))
        contexts = self._step_context(batches)
        for index, (group, batch, context, is_flat) in enumerate(
            zip(self.param_groups, batches, contexts, flat_flags, strict=True)
        ):
            if is_flat:
                layout = self._flat_groups[index]
                layout.count = batch.step
                if not (
                    group.get("fused")
                    and layout.param.numel() >= MIN_NUMEL
                    and self._fused_step(layout, group, batch.step, context)
                ):
                    layout.steps.add_(1.0)
                    self.implementations["single_tensor"](batch, group, context)
                continue
            self._flat_groups.pop(index, None)
            if not batch.params:
                continue
            update = self.implementations[self._implementation(group)]
            for part in self._split(batch):
                update(part, group, context)
        return loss
