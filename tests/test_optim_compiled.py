"""``fused=True``: rlopt's rules as torch.compile'd kernels on flat buffers, against the per-tensor reference.

In float64 the compiled update equals the reference to ~1e-13 over a whole training loop (the kernels
round differently only where a multiply-add is fused); in float32 one step from the same state
agrees within a few float32 ulps. Every case checks that the compiled kernel really ran.
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


def _batches(steps: int, dtype: torch.dtype) -> list[torch.Tensor]:
    gen = fresh_generator()
    return [torch.randn(32, 17, generator=gen, dtype=dtype) for _ in range(steps)]


def _train(net: torch.nn.Module, opt: torch.optim.Optimizer, batches: list[torch.Tensor]) -> None:
    for i, x in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = 3e-3 * (1 - i / (2 * len(batches)))  # a schedule, as SB3 writes it
        opt.zero_grad()
        (net(x) - 1).pow(2).mean().backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()


@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_kernel_follows_the_reference_over_a_training_loop(case: str) -> None:
    name, kwargs = CASES[case]
    fused_net = _net(160, torch.float64)
    ref_net = copy.deepcopy(fused_net)
    assert sum(p.numel() for p in fused_net.parameters()) >= MIN_NUMEL
    fused = make_optimizer(name, fused_net.parameters(), fused=True, **kwargs)
    reference = make_optimizer(name, ref_net.parameters(), foreach=False, **kwargs)
    batches = _batches(25, torch.float64)
    _train(fused_net, fused, batches)
    _train(ref_net, reference, batches)
    assert not fused._compiled_rule.failed
    assert fused._compiled_rule.runs >= 24, "the compiled kernel did not run"
    for (key, got), want in zip(fused_net.state_dict().items(), ref_net.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=f"{case}: {key}")
    # the optimizer state too, step counters included
    ref_state = reference.state_dict()["state"]
    for index, state in fused.state_dict()["state"].items():
        assert state.keys() == ref_state[index].keys()
        for key, got in state.items():
            want = ref_state[index][key]
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=f"{case}: {index}.{key}")


@pytest.mark.parametrize("name", ["adopt", "adabelief", "adan", "adamssm"])
def test_one_float32_step_agrees_within_rounding(name: str) -> None:
    fused_net, ref_net = _net(160, torch.float32), _net(160, torch.float32)
    fused = make_optimizer(name, fused_net.parameters(), fused=True)
    reference = make_optimizer(name, ref_net.parameters(), foreach=False)
    batches = _batches(2, torch.float32)  # ADOPT's first step only fills its second moment
    _train(fused_net, fused, batches)
    _train(ref_net, reference, batches)
    assert fused._compiled_rule.runs >= 1
    # a few float32 ulps: the kernel multiplies by reciprocal bias corrections and fuses multiply-adds
    # where eager divides and rounds every operation (seen: 1.8e-6 relative on 1 element of 2720)
    for got, want in zip(fused_net.parameters(), ref_net.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_small_groups_stay_on_the_eager_rule() -> None:
    net = _net(8, torch.float32)
    assert sum(p.numel() for p in net.parameters()) < MIN_NUMEL
    opt = make_optimizer("adopt", net.parameters(), fused=True)
    _train(net, opt, _batches(3, torch.float32))
    assert opt._compiled_rule.runs == 0


def test_a_kernel_that_cannot_compile_is_reported_once_and_left_alone(caplog) -> None:
    def broken(x: torch.Tensor) -> None:
        x.add_(object())  # type: ignore[call-overload]

    rule = CompiledRule("Broken")
    x = torch.zeros(4)
    with caplog.at_level(logging.WARNING, logger="rlopt.optim._compiled"):
        assert rule.run(broken, x) is False
        assert rule.run(broken, x) is False
    assert rule.failed and rule.runs == 0
    assert torch.equal(x, torch.zeros(4))
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "Broken: fused=True failed to compile" in caplog.records[0].message


def test_fused_is_validated() -> None:
    with pytest.raises(ValueError, match="fused"):
        make_optimizer("adopt", _net(8, torch.float32).parameters(), fused="yes")
