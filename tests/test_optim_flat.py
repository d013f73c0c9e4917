"""The flat-buffer path as a training loop uses it: real modules, backward, zero_grad, clipping, saving.

The update rules themselves are checked against the papers in test_optim_paper.py for every
implementation; here we check what the flat layout adds: gradients and state stay views of one buffer
across SB3-style steps, and the result equals the per-tensor reference on an identical copy.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
from test_optim_support import RLOPT_OPTIMIZERS, fresh_generator

from rlopt.optim import make_optimizer
from rlopt.optim._flat import chunk_length


def _net(gen: torch.Generator, width: int = 8) -> torch.nn.Module:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    net = torch.nn.Sequential(
        torch.nn.Linear(5, width), torch.nn.Tanh(), torch.nn.Linear(width, width), torch.nn.Tanh(),
        torch.nn.Linear(width, 3),
    )
    net.register_parameter("log_std", torch.nn.Parameter(torch.zeros(3)))
    return net.double()


def _train(net: torch.nn.Module, opt: torch.optim.Optimizer, data: list[torch.Tensor], clip: float) -> None:
    """SB3's order: zero_grad, backward, clip the global norm, step."""
    for x in data:
        opt.zero_grad()
        loss = (net(x) * net.log_std.exp()).pow(2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()


@pytest.fixture
def intra_op_threads():
    """Set torch's intra-op thread count for one test (chunking depends on it), then restore it."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("width", "threads", "chunked"),
    [(8, 1, False), (160, 1, True), (160, 2, False)],
    ids=["one chunk", "several chunks (1 thread)", "whole buffer (2 threads)"],
)
@pytest.mark.parametrize("name", RLOPT_OPTIMIZERS)
def test_flat_training_loop_equals_reference_and_keeps_views(
    name: str, width: int, threads: int, chunked: bool, intra_op_threads
) -> None:
    intra_op_threads(threads)
    gen = fresh_generator()
    data = [torch.randn(16, 5, generator=gen, dtype=torch.float64) for _ in range(30)]
    flat_net = _net(gen, width)
    ref_net = copy.deepcopy(flat_net)
    kwargs = {"lr": 1e-2} if name != "dgclip" else {"lr": 0.5}
    flat_opt = make_optimizer(name, flat_net.parameters(), flat=True, **kwargs)
    ref_opt = make_optimizer(name, ref_net.parameters(), foreach=False, **kwargs)
    _train(flat_net, flat_opt, data, clip=0.5)
    _train(ref_net, ref_opt, data, clip=0.5)
    for (key, got), want in zip(flat_net.state_dict().items(), ref_net.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=f"{name}: {key} differs")
    storages = {p.untyped_storage().data_ptr() for p in flat_net.parameters()}
    grad_storages = {p.grad.untyped_storage().data_ptr() for p in flat_net.parameters()}
    assert len(storages) == 1, "parameters are not views of one flat buffer"
    assert len(grad_storages) == 1, "gradients did not stay views of one flat buffer"
    layout = flat_opt._flat_groups[0]
    chunks = len(layout.chunks[0])
    assert chunks == -(-layout.param.numel() // chunk_length(layout.param))
    assert (chunks > 1) == chunked, f"{layout.param.numel()} parameters in {chunks} chunks, {threads} threads"


def test_parameter_moved_after_layout_is_laid_out_again_and_stays_exact() -> None:
    gen = fresh_generator()
    data = [torch.randn(16, 5, generator=gen, dtype=torch.float64) for _ in range(20)]
    flat_net = _net(gen)
    ref_net = copy.deepcopy(flat_net)
    flat_opt = make_optimizer("adopt", flat_net.parameters(), lr=1e-2)
    ref_opt = make_optimizer("adopt", ref_net.parameters(), lr=1e-2, foreach=False)
    _train(flat_net, flat_opt, data[:10], clip=1.0)
    _train(ref_net, ref_opt, data[:10], clip=1.0)
    for p in flat_net.parameters():  # what Module.to() on another device does to .data
        p.data = p.data.clone()
    _train(flat_net, flat_opt, data[10:], clip=1.0)
    _train(ref_net, ref_opt, data[10:], clip=1.0)
    for got, want in zip(flat_net.parameters(), ref_net.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert len({p.untyped_storage().data_ptr() for p in flat_net.parameters()}) == 1


def test_saved_model_and_optimizer_reload_into_plain_modules() -> None:
    gen = fresh_generator()
    data = [torch.randn(16, 5, generator=gen, dtype=torch.float64) for _ in range(10)]
    net = _net(gen)
    opt = make_optimizer("adan", net.parameters(), lr=1e-2)
    _train(net, opt, data, clip=1.0)
    buffer = io.BytesIO()
    torch.save({"model": net.state_dict(), "optim": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    fresh = _net(gen)
    fresh.load_state_dict(saved["model"])
    for got, want in zip(fresh.parameters(), net.parameters(), strict=True):
        assert torch.equal(got, want)
    for key, value in saved["model"].items():
        assert value.shape == dict(net.named_parameters())[key].shape
    state = saved["optim"]["state"]
    assert sorted(state) == list(range(len(list(net.parameters()))))
    for index, param in enumerate(net.parameters()):
        assert state[index]["exp_avg"].shape == param.shape
        assert float(state[index]["step"]) == len(data)


def test_zero_grad_keeps_flat_gradients_as_zeroed_views() -> None:
    gen = fresh_generator()
    net = _net(gen)
    opt = make_optimizer("adabelief", net.parameters())
    _train(net, opt, [torch.randn(4, 5, generator=gen, dtype=torch.float64)], clip=1.0)
    views = [p.grad for p in net.parameters()]
    opt.zero_grad()
    for p, view in zip(net.parameters(), views, strict=True):
        assert p.grad is view
        assert not p.grad.any()
