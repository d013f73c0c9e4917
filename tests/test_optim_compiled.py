"""``fused=True``: rlopt's rules as torch.compile'd kernels on flat buffers, against the per-tensor reference.

In float64 the compiled update equals the reference within 1e-14 absolute over a 25-step training loop
(the kernels round differently only where a multiply-add is fused or a reciprocal is taken); in float32
two steps agree within an ulp or two. Every case checks that the compiled kernel really ran. The
gradients do not depend on the parameters (see :func:`_train`), so only the update's rounding is
compared; measured over 40 seeds: 7e-15 (float64), 3e-8 (float32) at most.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
import torch
from test_optim_support import fresh_generator

from rlopt.optim import make_optimizer
from rlopt.optim._compiled import MIN_NUMEL, CompiledRule

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "adopt": ("adopt", {}),
    "adopt unclipped, L2": ("adopt", {"clip_exponent": None, "weight_decay": 0.01}),
    "adopt decoupled decay": ("adopt", {"weight_decay": 0.01, "decoupled_weight_decay": True}),
    "adabelief decay": ("adabelief", {"weight_decay": 0.01}),
    "adan clipped, prox decay": ("adan", {"max_grad_norm": 0.5, "weight_decay": 0.02}),
    "adan no_prox": ("adan", {"weight_decay": 0.02, "no_prox": True}),
    "adamssm L2": ("adamssm", {"weight_decay": 0.01}),
}


def _net(width: int, dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(17, width), torch.nn.Tanh(), torch.nn.Linear(width, width), torch.nn.Tanh(),
        torch.nn.Linear(width, 6),
    )
    return net.to(dtype)


def _gradient_coefficients(net: torch.nn.Module, steps: int, dtype: torch.dtype) -> list[list[torch.Tensor]]:
    """Per step, one random tensor per parameter: the gradient that step's loss gives it."""
    gen = fresh_generator()
    return [
        [torch.randn(p.shape, generator=gen, dtype=dtype) for p in net.parameters()] for _ in range(steps)
    ]


def _train(net: torch.nn.Module, opt: torch.optim.Optimizer, coefficients: list[list[torch.Tensor]]) -> None:
    """SB3's loop: schedule, ``zero_grad``, backward, clipping in place, step.

    The loss is linear in the parameters, so every step's gradient is known in advance and both
    optimizers see the same ones: with a loss through the network, a rounding difference changes the
    next gradients, and a trajectory such as unclipped ADOPT's (which divides by the root of a
    squared gradient as small as 1e-6) amplifies it 1e5-fold in 25 steps, hiding what is compared.
    """
    for i, coefs in enumerate(coefficients):
        for group in opt.param_groups:
            group["lr"] = 3e-3 * (1 - i / (2 * len(coefficients)))  # a schedule, as SB3 writes it
        opt.zero_grad()
        sum((c * p).sum() for c, p in zip(coefs, net.parameters(), strict=True)).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()


def _assert_float64_close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-13, msg=lambda text: f"{what}: {text}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_kernel_follows_the_reference_over_a_training_loop(case: str) -> None:
    name, kwargs = CASES[case]
    fused_net = _net(160, torch.float64)
    ref_net = copy.deepcopy(fused_net)
    assert sum(p.numel() for p in fused_net.parameters()) >= MIN_NUMEL
    fused = make_optimizer(name, fused_net.parameters(), fused=True, **kwargs)
    reference = make_optimizer(name, ref_net.parameters(), foreach=False, **kwargs)
    coefficients = _gradient_coefficients(fused_net, 25, torch.float64)
    _train(fused_net, fused, coefficients)
    _train(ref_net, reference, coefficients)
    assert fused._compiled_rule.error is None
    assert fused._compiled_rule.runs >= 24, "the compiled kernel did not run"
    for (key, got), want in zip(fused_net.state_dict().items(), ref_net.state_dict().values(), strict=True):
        _assert_float64_close(got, want, f"{case}: {key}")
    # the optimizer state too, step counters (advanced inside the compiled call) included
    ref_state = reference.state_dict()["state"]
    for index, state in fused.state_dict()["state"].items():
        assert state.keys() == ref_state[index].keys()
        for key, got in state.items():
            want = ref_state[index][key]
            _assert_float64_close(got, want, f"{case}: {index}.{key}")


@pytest.mark.parametrize("name", ["adopt", "adabelief", "adan", "adamssm"])
def test_one_float32_step_agrees_within_rounding(name: str) -> None:
    fused_net, ref_net = _net(160, torch.float32), _net(160, torch.float32)
    fused = make_optimizer(name, fused_net.parameters(), fused=True)
    reference = make_optimizer(name, ref_net.parameters(), foreach=False)
    # two steps: ADOPT's first step only fills its second moment
    coefficients = _gradient_coefficients(fused_net, 2, torch.float32)
    _train(fused_net, fused, coefficients)
    _train(ref_net, reference, coefficients)
    assert fused._compiled_rule.error is None
    assert fused._compiled_rule.runs >= 1
    # an ulp or two: the kernel multiplies by reciprocal bias corrections and fuses multiply-adds where
    # eager divides and rounds every operation (seen: 3e-8 on parameters of about 0.25, 1 ulp)
    for got, want in zip(fused_net.parameters(), ref_net.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1.3e-6, atol=1e-7)


def test_small_groups_stay_on_the_eager_rule() -> None:
    net = _net(8, torch.float32)
    assert sum(p.numel() for p in net.parameters()) < MIN_NUMEL
    opt = make_optimizer("adopt", net.parameters(), fused=True)
    _train(net, opt, _gradient_coefficients(net, 3, torch.float32))
    assert opt._compiled_rule.runs == 0


def test_a_kernel_that_cannot_compile_is_reported_once_and_left_alone(caplog) -> None:
    def broken(x: torch.Tensor, steps: torch.Tensor | None = None) -> None:
        x.add_(object())  # type: ignore[call-overload]

    rule = CompiledRule("Broken")
    x, steps = torch.zeros(4), torch.zeros(2)
    with caplog.at_level(logging.WARNING, logger="rlopt.optim._compiled"):
        assert rule.run(broken, steps, x) is False
        assert rule.run(broken, steps, x) is False
    assert rule.failed and rule.runs == 0
    assert rule.error is not None and rule.error.startswith("TypeError")
    assert torch.equal(x, torch.zeros(4)) and torch.equal(steps, torch.zeros(2))
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "Broken: fused=True failed to compile" in caplog.records[0].message


def test_fused_is_validated() -> None:
    with pytest.raises(ValueError, match="fused"):
        make_optimizer("adopt", _net(8, torch.float32).parameters(), fused="yes")
