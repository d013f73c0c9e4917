"""rlopt's adam/adamw/amsgrad (torch's kernels on flat buffers) against torch.optim's own Adam.

With ``fused=False`` the claim is bit-identity with torch's default path, not closeness: those
comparisons use ``torch.equal``. By default (CPU) the flat buffers run torch's fused kernel, compared
with ``torch.optim.Adam(fused=True)`` within float32 rounding. The reference is always an independent
``torch.optim.Adam``/``AdamW`` on an identically seeded network, fed the same batches.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import pytest
import torch

from rlopt.optim import make_optimizer

TorchBuilder = Callable[..., torch.optim.Optimizer]

CASES: dict[str, tuple[str, dict[str, float], TorchBuilder]] = {
    "adam eps=1e-5": ("adam", {"eps": 1e-5}, lambda ps, **kw: torch.optim.Adam(ps, lr=3e-3, eps=1e-5, **kw)),
    "adam weight decay": (
        "adam", {"weight_decay": 0.1},
        lambda ps, **kw: torch.optim.Adam(ps, lr=3e-3, weight_decay=0.1, **kw),
    ),
    "amsgrad": ("amsgrad", {}, lambda ps, **kw: torch.optim.Adam(ps, lr=3e-3, amsgrad=True, **kw)),
    "adamw": ("adamw", {}, lambda ps, **kw: torch.optim.AdamW(ps, lr=3e-3, **kw)),
}


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(17, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 6),
    )
    net.register_parameter("log_std", torch.nn.Parameter(torch.zeros(6)))
    return net


def _train(net: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    """SB3's order (zero_grad, backward, clip, step), with a learning-rate schedule written into the group."""
    gen = torch.Generator().manual_seed(seed)
    for i in range(steps):
        for group in opt.param_groups:
            group["lr"] = 3e-3 * (1 - i / (2 * steps))
        x = torch.randn(32, 17, generator=gen)
        opt.zero_grad()
        loss = ((net(x) - 1) * net.log_std.exp()).pow(2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.5)
        opt.step()


def _assert_identical(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, got), want in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(got, want), f"{name} differs from torch.optim's result"


def _kernels(opt: torch.optim.Optimizer) -> set[str]:
    """Names of the aten kernels one ``opt.step()`` runs (gradients as they are)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        opt.step()
    return {event.name for event in prof.events()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_flat_path_with_fused_false_is_bit_identical_to_torch_default_path(case: str) -> None:
    name, kwargs, torch_builder = CASES[case]
    ours, theirs = _net(), _net()
    opt = make_optimizer(name, ours.parameters(), lr=3e-3, fused=False, **kwargs)
    ref = torch_builder(list(theirs.parameters()))
    _train(ours, opt, 60)
    _train(theirs, ref, 60)
    assert opt._flat_groups, "the flat path was not taken"
    assert len({p.untyped_storage().data_ptr() for p in ours.parameters()}) == 1
    _assert_identical(ours, theirs)
    for index, state in ref.state_dict()["state"].items():
        for key, want in state.items():
            assert torch.equal(opt.state_dict()["state"][index][key], want), f"state {index}.{key}"


@pytest.mark.parametrize("fused", [None, True])
@pytest.mark.parametrize("case", sorted(CASES))
def test_default_flat_path_runs_torch_fused_kernel_within_rounding(case: str, fused: bool | None) -> None:
    name, kwargs, torch_builder = CASES[case]
    ours, theirs = _net(), _net()
    options = {} if fused is None else {"fused": fused}
    opt = make_optimizer(name, ours.parameters(), lr=3e-3, **options, **kwargs)
    ref = torch_builder(list(theirs.parameters()), fused=True)
    _train(ours, opt, 60)
    _train(theirs, ref, 60)
    assert opt._flat_groups, "the flat path was not taken"
    # the same kernel on one buffer instead of one per tensor: only the vector-loop tails round
    # differently, so 60 steps stay within a few float32 ulps of torch's fused Adam
    for (key, got), want in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=key)
    assert _kernels(opt) & {"aten::_fused_adam_", "aten::_fused_adamw_"}, "torch's fused kernel did not run"


Pair = tuple[torch.nn.Module, torch.optim.Optimizer, torch.nn.Module, torch.optim.Adam]


def _trained_pair(steps: int) -> Pair:
    """rlopt's adam and torch's Adam on identical networks, each trained ``steps`` steps alike."""
    ours, theirs = _net(), _net()
    opt = make_optimizer("adam", ours.parameters(), lr=3e-3, fused=False)
    # fused=False spelled out: a state_dict carries it, and rlopt reads None as "fused on the CPU"
    ref = torch.optim.Adam(theirs.parameters(), lr=3e-3, fused=False)
    _train(ours, opt, steps)
    _train(theirs, ref, steps)
    return ours, opt, theirs, ref


def test_state_dict_moves_between_rlopt_and_torch_adam_mid_training() -> None:
    ours, opt, theirs, ref = _trained_pair(20)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    # torch's Adam continues from rlopt's state, and rlopt's from torch's: both stay identical.
    moved_to_torch = copy.deepcopy(ours)
    torch_opt = torch.optim.Adam(moved_to_torch.parameters(), lr=3e-3)
    torch_opt.load_state_dict(torch.load(buffer))
    opt2 = make_optimizer("adam", ours.parameters(), lr=3e-3, fused=False)
    opt2.load_state_dict(ref.state_dict())
    _train(moved_to_torch, torch_opt, 20, seed=2)
    _train(ours, opt2, 20, seed=2)
    _train(theirs, ref, 20, seed=2)
    _assert_identical(moved_to_torch, theirs)
    _assert_identical(ours, theirs)


def test_a_parameter_without_gradient_takes_torch_path_and_is_skipped_as_torch_skips_it() -> None:
    ours, opt, theirs, ref = _trained_pair(5)
    for net, optimizer in ((ours, opt), (theirs, ref)):
        for param in net.parameters():
            param.grad = None
        net(torch.ones(2, 17)).sum().backward()  # log_std gets no gradient this time
        optimizer.step()
    assert not opt._flat_groups
    assert ours.log_std.grad is None
    _assert_identical(ours, theirs)
    _train(ours, opt, 5, seed=3)  # counts differ between parameters now: torch's per-tensor path
    _train(theirs, ref, 5, seed=3)
    _assert_identical(ours, theirs)


@pytest.mark.parametrize("option", [{"foreach": True}, {"flat": False}])
def test_explicit_torch_implementations_bypass_the_flat_path(option: dict[str, bool]) -> None:
    net = _net()
    opt = make_optimizer("adam", net.parameters(), lr=3e-3, **option)
    _train(net, opt, 3)
    assert not opt._flat_groups
    assert len({p.untyped_storage().data_ptr() for p in net.parameters()}) > 1


def test_flat_argument_is_validated() -> None:
    with pytest.raises(ValueError, match="flat"):
        make_optimizer("adam", _net().parameters(), flat="yes")


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_argument_is_validated(name: str) -> None:
    # torch's own Adam would take any truthy value; here it also chooses the flat kernel
    with pytest.raises(ValueError, match=r"Invalid fused value: 'maybe' \(accepted: None, True or False\)"):
        make_optimizer(name, _net().parameters(), fused="maybe")


@pytest.mark.parametrize("option", [{"flat": False}, {}])
def test_step_hooks_run_once_per_step_on_either_path(option: dict[str, bool]) -> None:
    """torch wraps a class's ``step`` with its hook runner once an instance exists; the torch path of
    rlopt's Adam must not run the hooks a second time through torch.optim.Adam's own wrapper."""
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])  # torch.optim.Adam.step is now wrapped
    net = _net()
    opt = make_optimizer("adam", net.parameters(), lr=3e-3, **option)
    calls = {"pre": 0, "post": 0}
    opt.register_step_pre_hook(lambda *_: calls.__setitem__("pre", calls["pre"] + 1))
    opt.register_step_post_hook(lambda *_: calls.__setitem__("post", calls["post"] + 1))
    _train(net, opt, 4)
    assert calls == {"pre": 4, "post": 4}
    assert bool(opt._flat_groups) == (option.get("flat") is not False)
