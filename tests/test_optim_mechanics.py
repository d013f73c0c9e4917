"""Bookkeeping of rlopt's optimizers: implementations agree, state resumes, lr is read every step.

Covers what the shared base does for every optimizer: the foreach path against the per-tensor
reference, per-parameter step counters (parameters without a gradient on some steps, parameters of
mixed dtypes in one group), ``state_dict`` round trips, and ``param_group["lr"]`` rewritten between
steps as SB3 does.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
import torch
from test_optim_support import (
    IMPLEMENTATIONS,
    RLOPT_OPTIMIZERS,
    assert_histories_close,
    fresh_generator,
    gradient_stream,
    leaf_copies,
    random_params,
    run,
)
from torch import Tensor

from rlopt.optim import get_spec, make_optimizer

# Non-default settings so every branch of each update runs (weight decay, clips, global norm).
NON_DEFAULT: dict[str, dict[str, Any]] = {
    "adopt": {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True},
    "adan": {"lr": 1e-2, "weight_decay": 0.1, "max_grad_norm": 1.0},
    "adabelief": {"lr": 1e-2, "eps": 1e-10, "weight_decay": 0.1},
    "adamssm": {"lr": 1e-2, "weight_decay": 0.1, "rho": 0.95, "zeta": 0.5},
    "dgclip": {"lr": 0.1, "gamma": 0.5, "weight_decay": 0.1},
}
# Settings under which one parameter's update does not depend on the others (no group-wide norm).
ELEMENTWISE: dict[str, dict[str, Any]] = {
    name: {k: v for k, v in NON_DEFAULT[name].items() if k != "max_grad_norm"}
    for name in ("adopt", "adan", "adabelief", "adamssm")
}


def _groups(params: list[Tensor]) -> list[dict[str, Any]]:
    """Two groups with different learning rates."""
    return [{"params": params[:2]}, {"params": params[2:], "lr": 3e-3}]


def _run_with_gaps(
    optimizer: torch.optim.Optimizer, params: list[Tensor], stream: list[list[Tensor]]
) -> list[list[Tensor]]:
    """Parameter 1 gets no gradient on every third step, parameter 3 none before step 5."""
    history = []
    for t, grads in enumerate(stream):
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            skip = (i == 1 and t % 3 == 0) or (i == 3 and t < 5)
            p.grad = None if skip else g.clone()
        optimizer.step()
        history.append([p.detach().clone() for p in params])
    return history


@pytest.mark.parametrize(
    ("dtype", "rtol", "atol"),
    [(torch.float64, 1e-12, 1e-14), (torch.float32, 1e-5, 1e-6)],
    ids=["float64", "float32"],
)
@pytest.mark.parametrize("name", RLOPT_OPTIMIZERS)
@pytest.mark.parametrize("impl", ["foreach", "flat"])
def test_fast_paths_equal_reference_path(
    name: str, impl: str, dtype: torch.dtype, rtol: float, atol: float
) -> None:
    gen = fresh_generator()
    start = random_params(gen, dtype)
    stream = gradient_stream(gen, 40, dtype)
    histories = []
    for kwargs in (IMPLEMENTATIONS["reference"], IMPLEMENTATIONS[impl]):
        params = leaf_copies(start)
        optimizer = make_optimizer(name, _groups(params), **NON_DEFAULT[name], **kwargs)
        histories.append(_run_with_gaps(optimizer, params, stream))
    assert_histories_close(histories[1], histories[0], rtol=rtol, atol=atol)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_each_parameter_counts_its_own_steps(name: str, impl: str) -> None:
    # A parameter that misses gradients follows the same trajectory as if it were alone and received
    # only its own gradients: its step counter (bias corrections, ADOPT's first step) is its own.
    gen = fresh_generator()
    start = random_params(gen)
    stream = gradient_stream(gen, 30)
    params = leaf_copies(start)
    optimizer = make_optimizer(name, params, **ELEMENTWISE[name], **IMPLEMENTATIONS[impl])
    together = _run_with_gaps(optimizer, params, stream)
    for index, skipped in ((1, lambda t: t % 3 == 0), (3, lambda t: t < 5)):
        alone = leaf_copies([start[index]])
        own_grads = [[grads[index]] for t, grads in enumerate(stream) if not skipped(t)]
        history = run(
            make_optimizer(name, alone, **ELEMENTWISE[name], **IMPLEMENTATIONS[impl]), alone, own_grads
        )
        expected = [h[0] for h in history]
        received = [together[t][index] for t in range(len(stream)) if not skipped(t)]
        torch.testing.assert_close(torch.stack(received), torch.stack(expected), rtol=1e-12, atol=1e-14)
        assert int(optimizer.state[params[index]]["step"]) == len(own_grads)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_mixed_dtypes_in_one_group_update_like_separate_optimizers(name: str, impl: str) -> None:
    gen = fresh_generator()
    p32 = torch.randn(6, generator=gen, dtype=torch.float32)
    p64 = torch.randn(3, 2, generator=gen, dtype=torch.float64)
    grads32 = gradient_stream(gen, 20, torch.float32, shapes=[(6,)])
    grads64 = gradient_stream(gen, 20, torch.float64, shapes=[(3, 2)])
    mixed = leaf_copies([p32, p64])
    together = run(
        make_optimizer(name, mixed, **ELEMENTWISE[name], **IMPLEMENTATIONS[impl]),
        mixed,
        [a + b for a, b in zip(grads32, grads64, strict=True)],
    )
    for index, (start, grads) in enumerate(((p32, grads32), (p64, grads64))):
        alone = leaf_copies([start])
        history = run(make_optimizer(name, alone, **ELEMENTWISE[name], **IMPLEMENTATIONS[impl]), alone, grads)
        for t in range(len(grads)):
            assert torch.equal(together[t][index], history[t][0])


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", RLOPT_OPTIMIZERS)
def test_state_dict_round_trip_resumes_identically(name: str, impl: str) -> None:
    gen = fresh_generator()
    start = random_params(gen)
    stream = gradient_stream(gen, 50)
    params = leaf_copies(start)
    original = make_optimizer(name, _groups(params), **NON_DEFAULT[name], **IMPLEMENTATIONS[impl])
    _run_with_gaps(original, params, stream[:30])
    buffer = io.BytesIO()
    torch.save(copy.deepcopy(original.state_dict()), buffer)
    resumed_params = leaf_copies(params)
    continued = _run_with_gaps(original, params, stream[30:])

    resumed = make_optimizer(name, _groups(resumed_params), **NON_DEFAULT[name], **IMPLEMENTATIONS[impl])
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer))
    for p in resumed_params:
        state = resumed.state[p]
        assert state["step"].device.type == "cpu" and state["step"].dim() == 0
        assert all(v.dtype == p.dtype for k, v in state.items() if k != "step")
    after_resume = _run_with_gaps(resumed, resumed_params, stream[30:])
    for t, (a, b) in enumerate(zip(continued, after_resume, strict=True)):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y), f"step {t + 31} differs after resuming"


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("name", RLOPT_OPTIMIZERS)
def test_lr_rewritten_between_steps_is_honoured(name: str, impl: str) -> None:
    # Without weight decay, and with gradients that do not depend on the parameters, every method's
    # step is lr times an lr-free direction: scaling lr at step t must scale that step exactly.
    gen = fresh_generator()
    start = random_params(gen)
    stream = gradient_stream(gen, 25)
    factors = (10.0 ** (torch.rand(len(stream), generator=gen, dtype=torch.float64) * 2 - 1)).tolist()
    kwargs = {**NON_DEFAULT[name], "weight_decay": 0.0}
    base_lr = kwargs["lr"]
    steady_params, varied_params = leaf_copies(start), leaf_copies(start)
    steady = run(
        make_optimizer(name, steady_params, **kwargs, **IMPLEMENTATIONS[impl]), steady_params, stream
    )
    varied_opt = make_optimizer(name, varied_params, **kwargs, **IMPLEMENTATIONS[impl])

    def set_lr(t: int) -> None:
        varied_opt.param_groups[0]["lr"] = base_lr * factors[t]

    varied = run(varied_opt, varied_params, stream, before_step=set_lr)
    previous_steady, previous_varied = start, start
    for t in range(len(stream)):
        for i in range(len(start)):
            steady_step = steady[t][i] - previous_steady[i]
            varied_step = varied[t][i] - previous_varied[i]
            torch.testing.assert_close(varied_step, steady_step * factors[t], rtol=1e-8, atol=1e-15)
        previous_steady, previous_varied = steady[t], varied[t]


def test_parameters_without_gradients_are_left_alone() -> None:
    used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    for name in RLOPT_OPTIMIZERS:
        optimizer = make_optimizer(name, [used, unused])
        used.grad = torch.ones(3)
        optimizer.step()
        optimizer.step()
        assert torch.equal(unused.detach(), torch.ones(2))
        assert unused not in optimizer.state
        assert int(optimizer.state[used]["step"]) == 2


def test_every_rlopt_optimizer_has_a_non_default_setting() -> None:
    assert set(NON_DEFAULT) == {n for n in RLOPT_OPTIMIZERS if get_spec(n).source == "rlopt"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", RLOPT_OPTIMIZERS)
def test_cuda_foreach_matches_cpu_reference(name: str) -> None:
    gen = fresh_generator()
    start = random_params(gen)
    stream = gradient_stream(gen, 20)
    cpu_params = leaf_copies(start)
    cpu = run(make_optimizer(name, cpu_params, **NON_DEFAULT[name], foreach=False), cpu_params, stream)
    cuda_params = leaf_copies([p.cuda() for p in start])
    cuda_stream = [[g.cuda() for g in grads] for grads in stream]
    on_cuda = run(make_optimizer(name, cuda_params, **NON_DEFAULT[name]), cuda_params, cuda_stream)
    assert_histories_close([[p.cpu() for p in h] for h in on_cuda], cpu, rtol=1e-10, atol=1e-12)
