"""Flat buffers for one parameter group: parameters, gradients and optimizer state as single tensors.

On the small networks of deep RL an optimizer step costs a few dozen kernel launches per tensor; with
every parameter, gradient and state buffer a *view* into one contiguous tensor per group, the same
update rule runs as a handful of vectorised operations on that tensor, cut on the CPU into chunks
that stay in cache between the rule's passes (measured by ``scripts/bench_optimizers.py``). Nothing
changes for the user: each parameter is still its own ``Parameter`` (its ``.data`` now a view), each
gradient and each state entry is still a per-parameter tensor, and ``state_dict()`` has the same keys
and shapes as without flat buffers.

Written by hand because torch offers fused kernels only for its own optimizers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


def step_dtype() -> torch.dtype:
    """The dtype torch.optim uses for its ``step`` counters (float32 unless the default is float64)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


@dataclass(eq=False)  # compared by identity: a layout is one set of buffers
class FlatGroup:
    """One parameter group laid out in flat buffers.

    Attributes:
        params: the group's parameters, in order; ``params[i].data`` is a view into ``param``.
        param, grad: flat parameter and gradient buffers.
        grad_views: ``grad_views[i]`` is the view of ``grad`` that ``params[i].grad`` must be.
        data_ptrs: where each parameter's data must live (a moved parameter invalidates the layout).
        state: flat state buffers by key; each parameter's ``state[key]`` is a view into them.
        steps: flat CPU step counters; each parameter's ``state["step"]`` is a 0-d view into it.
        count: the common step count (mirrors ``steps`` so the hot path reads no tensor).
        chunks: ``param``, ``grad`` and each state buffer cut into the same cache-sized pieces
            (:func:`chunk_length`); the update rule runs over these as over a group of parameters.
    """

    params: list[Tensor]
    param: Tensor
    grad: Tensor
    grad_views: list[Tensor]
    data_ptrs: list[int]
    state: dict[str, Tensor]
    steps: Tensor
    count: int
    chunks: tuple[list[Tensor], list[Tensor], dict[str, list[Tensor]]] = field(init=False)

    def __post_init__(self) -> None:
        length = chunk_length(self.param)
        self.chunks = (
            list(self.param.split(length)),
            list(self.grad.split(length)),
            {key: list(buf.split(length)) for key, buf in self.state.items()},
        )

    def holds(self, params: Sequence[Tensor]) -> bool:
        """Whether this layout still describes ``params``: same tensors, data still in the buffer."""
        return (
            len(params) == len(self.params)
            and all(p is q for p, q in zip(params, self.params, strict=True))
            and all(p.data_ptr() == ptr for p, ptr in zip(params, self.data_ptrs, strict=True))
        )

    def attach_grads(self) -> bool:
        """Make every ``param.grad`` its view of the flat gradient; ``False`` if a gradient is missing.

        A gradient that autograd allocated anew (after ``grad`` was set to ``None``) or that the user
        assigned is copied into the flat buffer once, and the view put back in its place.
        """
        for param, view in zip(self.params, self.grad_views, strict=True):
            grad = param.grad
            if grad is view:
                continue
            if grad is None:
                return False
            view.copy_(grad)
            param.grad = view
        return True


CHUNK_BYTES = 128 * 1024
"""Size of one chunk of a flat buffer on a CPU running torch with one intra-op thread (as study
workers do). An update rule makes several passes over its tensors (one per operation); on a chunk of
this size a rule's buffers and temporaries stay in a core's L2 cache between passes. Measured on
SAC-sized buffers (218k parameters, ``scripts/bench_optimizers.py``): 2-3x faster per step while other
processes loaded the machine, 3-13% on an idle one; the same numbers (the rules are elementwise)."""


def chunk_length(buffer: Tensor) -> int:
    """Elements per chunk of ``buffer``: :data:`CHUNK_BYTES` on a CPU with one intra-op thread; else the
    whole buffer. With several threads torch splits each elementwise kernel over them above 32k
    elements, which chunks of 128 KiB would forbid (measured with 2 threads on SAC-sized buffers: the
    whole buffer takes 0.5-0.6x the time of 128 KiB chunks); on an accelerator one launch per
    operation over all of it is cheapest."""
    if buffer.device.type != "cpu" or torch.get_num_threads() > 1:
        return max(buffer.numel(), 1)
    return max(CHUNK_BYTES // buffer.element_size(), 1)


def flatten_group(
    params: Sequence[Tensor], states: Mapping[Tensor, dict[str, Any]], state_keys: Sequence[str]
) -> FlatGroup | None:
    """Lay ``params`` (with their gradients and state) out in flat buffers, or ``None`` if impossible.

    Possible when every parameter is real, dense, contiguous, has a gradient, shares one device and
    dtype with the others, and all have received the same number of updates.
    """
    if not params:
        return None
    first = params[0]
    counts = set()
    for p in params:
        if p.grad is None or p.grad.is_sparse or not p.is_contiguous() or p.is_complex():
            return None
        if p.device != first.device or p.dtype != first.dtype:
            return None
        state = states.get(p)
        counts.add(int(state["step"].item()) if state else 0)
    if len(counts) != 1:
        return None
    count = counts.pop()
    sizes = [p.numel() for p in params]
    total = sum(sizes)
    flat_param = torch.empty(total, dtype=first.dtype, device=first.device)
    flat_grad = torch.empty_like(flat_param)
    flat_state = {key: torch.zeros_like(flat_param) for key in state_keys}
    steps = torch.full((len(params),), float(count), dtype=step_dtype())
    param_views = list(flat_param.split(sizes))
    grad_views = [v.view_as(p) for v, p in zip(flat_grad.split(sizes), params, strict=True)]
    state_views = {key: list(buf.split(sizes)) for key, buf in flat_state.items()}
    for i, p in enumerate(params):
        view = param_views[i].view_as(p)
        view.copy_(p.data)
        p.data = view
        grad_views[i].copy_(p.grad)
        p.grad = grad_views[i]
        state = states[p]
        for key in state_keys:
            buf = state_views[key][i].view_as(p)
            if key in state:
                buf.copy_(state[key])
            state[key] = buf
        state["step"] = steps[i]
    return FlatGroup(
        params=list(params),
        param=flat_param,
        grad=flat_grad,
        grad_views=grad_views,
        data_ptrs=[p.data_ptr() for p in params],
        state=flat_state,
        steps=steps,
        count=count,
    )


def run_closure(closure: Callable[[], Any] | None) -> Any:
    """The loss of an optimizer's ``closure`` (with gradients enabled inside ``step``), or ``None``."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class FlatLayouts:
    """Mixin for a ``torch.optim.Optimizer`` whose parameter groups may live in flat buffers.

    Keeps one :class:`FlatGroup` per group index, lays a group out on first use, and keeps gradients
    as views of the flat gradient across ``zero_grad``. Put it before ``torch.optim.Optimizer`` (or
    the optimizer class it extends) in the bases.
    """

    param_groups: list[dict[str, Any]]
    state: Any

    @property
    def _flat_groups(self) -> dict[int, FlatGroup]:
        # Created on first access: torch.optim's __init__ calls add_param_group before ours could run.
        layouts: dict[int, FlatGroup] | None = self.__dict__.get("_flat_layouts")
        if layouts is None:
            layouts = self.__dict__["_flat_layouts"] = {}
        return layouts

    def _flat_layout(
        self, index: int, group: Mapping[str, Any], state_keys: Sequence[str]
    ) -> FlatGroup | None:
        """Group ``index`` in flat buffers with every gradient attached, or ``None`` where it cannot be."""
        flat = self._flat_groups.get(index)
        if flat is None or not flat.holds(group["params"]):
            flat = flatten_group(group["params"], self.state, state_keys)
            if flat is None:
                self._flat_groups.pop(index, None)
                return None
            self._flat_groups[index] = flat
        if not flat.attach_grads():
            # A parameter without a gradient is skipped this step, as by the per-tensor paths; its
            # step counter then differs from the others, so the layout is rebuilt when they agree.
            del self._flat_groups[index]
            return None
        return flat

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset gradients; in flat groups they are zeroed in place so they stay views of the buffer.

        .. warning::
            In a flat group a parameter left out of the next backward pass then has a zero gradient
            (and takes a momentum-only step) instead of ``None`` (and no step), as with
            ``set_to_none=False`` in torch.optim; pass ``flat=False`` where that matters.
        """
        if not self._flat_groups:
            super().zero_grad(set_to_none)  # type: ignore[misc]
            return
        for index, group in enumerate(self.param_groups):
            flat = self._flat_groups.get(index)
            if flat is not None and flat.holds(group["params"]):
                flat.grad.zero_()
                continue
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                    continue
                if param.grad.grad_fn is not None:
                    param.grad.detach_()
                else:
                    param.grad.requires_grad_(False)
                param.grad.zero_()

    def _layout_keys(self, group: Mapping[str, Any]) -> Sequence[str] | None:
        """The state keys of ``group``'s flat layout, or ``None`` where the group does not run flat."""
        raise NotImplementedError

    def lay_out(self) -> None:
        """Lay every group that runs flat out in its buffers now, not at the next step.

        For a loaded optimizer that continues a run: its parameters then live where they lived when the
        state was saved, so the forward passes before the next step compute the same bits (a matrix
        product's rounding may depend on where its operands lie). A parameter without a gradient gets
        a zero one, which the next ``zero_grad`` clears as it would any other.
        """
        for index, group in enumerate(self.param_groups):
            keys = self._layout_keys(group)
            if keys is None:
                continue
            for param in group["params"]:
                if param.grad is None:
                    param.grad = torch.zeros_like(param)
            self._flat_layout(index, group, keys)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load as torch.optim does; flat buffers are laid out anew from the loaded state (at the next
        step, or now with :meth:`lay_out`)."""
        self._flat_groups.clear()
        super().load_state_dict(state_dict)  # type: ignore[misc]

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._flat_groups.clear()
        super().add_param_group(param_group)  # type: ignore[misc]


def attached_flat_groups(optimizer: torch.optim.Optimizer) -> list[FlatGroup] | None:
    """The flat layouts of ``optimizer`` if every group has one whose gradients are its views, else ``None``.

    Then the optimizer's parameters and gradients *are* ``[g.param for g in layouts]`` and
    ``[g.grad for g in layouts]``: a norm over them takes one kernel per group instead of one per
    tensor (used by :mod:`rlopt.run.diagnostics`).
    """
    layouts: dict[int, FlatGroup] | None = getattr(optimizer, "__dict__", {}).get("_flat_layouts")
    if not layouts or len(layouts) != len(optimizer.param_groups):
        return None
    found = []
    for index, group in enumerate(optimizer.param_groups):
        flat = layouts.get(index)
        if flat is None or not flat.holds(group["params"]):
            return None
        if any(p.grad is not v for p, v in zip(flat.params, flat.grad_views, strict=True)):
            return None
        found.append(flat)
    return found
