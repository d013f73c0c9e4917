"""Optimizer diagnostics measured by step hooks, and the stability events' definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlopt.run.diagnostics import OptimizerProbe, StabilityThresholds, StabilityTracker, second_moment_stats


def _model_and_loss() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    x = torch.randn(16, 5)
    return model, (model(x) ** 2).mean()


def test_probe_measures_sgd_step_exactly() -> None:
    model, loss = _model_and_loss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = OptimizerProbe(opt, measure_pre_clip=False, sample_every=1)
    loss.backward()
    grad_norm = math.sqrt(sum(float(p.grad.square().sum()) for p in model.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    param_after_norm = math.sqrt(
        sum(
            float((b - 0.01 * p.grad).square().sum()) for b, p in zip(before, model.parameters(), strict=True)
        )
    )
    opt.step()
    window = probe.pop_window()
    assert window["updates"] == 1
    assert window["grad_norm_post_clip"] == pytest.approx(grad_norm, rel=1e-6)
    assert window["grad_norm_pre_clip"] == window["grad_norm_post_clip"]
    assert window["update_norm"] == pytest.approx(0.01 * grad_norm, rel=1e-5)
    assert window["effective_step_size"] == pytest.approx(0.01, rel=1e-5)
    assert window["update_ratio"] == pytest.approx(0.01 * grad_norm / param_after_norm, rel=1e-5)
    assert "second_moment_sqrt_mean" not in window  # plain SGD keeps no second moment
    assert probe.pop_window() == {}
    probe.close()


def test_probe_sees_the_gradient_norm_before_and_after_the_agents_clip() -> None:
    model, loss = _model_and_loss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    probe = OptimizerProbe(opt, measure_pre_clip=True)
    loss.backward()
    unclipped = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01))
    opt.step()
    window = probe.pop_window()
    assert unclipped > 0.01
    assert window["grad_norm_pre_clip"] == pytest.approx(unclipped, rel=1e-6)
    assert window["grad_norm_post_clip"] == pytest.approx(0.01, rel=1e-4)
    v = torch.cat([opt.state[p]["exp_avg_sq"].reshape(-1) for p in model.parameters()]).sqrt()
    assert window["second_moment_sqrt_mean"] == pytest.approx(float(v.mean()), rel=1e-6)
    assert window["second_moment_sqrt_max"] == pytest.approx(float(v.max()), rel=1e-6)
    probe.close()


def test_probe_counts_non_finite_steps_and_flags_non_finite_parameters() -> None:
    model, loss = _model_and_loss()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = OptimizerProbe(opt, measure_pre_clip=False)
    loss.backward()
    opt.step()
    assert probe.check_finite() == (0, False)
    model.weight.grad.fill_(float("nan"))
    opt.step()
    assert probe.check_finite() == (1, True)
    assert probe.check_finite() == (0, True)  # each step is counted once; the parameters stay broken
    probe.close()


def test_probe_samples_update_norms_but_sees_every_gradient() -> None:
    model, _ = _model_and_loss()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    probe = OptimizerProbe(opt, measure_pre_clip=True, sample_every=3)
    norms = []
    for scale in [1.0, 2.0, 4.0, 8.0, 16.0]:
        opt.zero_grad()
        (scale * model(torch.ones(2, 5)).sum()).backward()
        norms.append(math.sqrt(sum(float(p.grad.square().sum()) for p in model.parameters())))
        opt.step()
    window = probe.pop_window()
    assert window["updates"] == 5
    assert window["grad_norm_post_clip"] == pytest.approx(sum(norms) / 5, rel=1e-5)
    # updates 1 and 4 are sampled
    assert window["grad_norm_pre_clip"] == pytest.approx((norms[0] + norms[3]) / 2, rel=1e-5)
    assert window["update_norm"] == pytest.approx(0.01 * (norms[0] + norms[3]) / 2, rel=1e-4)
    probe.close()


def test_second_moment_read_from_rmsprop_state_too() -> None:
    model, loss = _model_and_loss()
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    loss.backward()
    opt.step()
    stats = second_moment_stats(opt)
    v = torch.cat([opt.state[p]["square_avg"].reshape(-1) for p in model.parameters()]).sqrt()
    assert stats["second_moment_sqrt_max"] == pytest.approx(float(v.max()))


def test_return_collapse_is_counted_once_two_evaluations_below_half_the_learnt_range() -> None:
    tracker = StabilityTracker(StabilityThresholds(collapse_fraction=0.5, collapse_patience=2))
    counted = [tracker.observe_return(r) for r in [0, 100, 40, 30, 20, 90, 10, 60, 5, 3]]
    # 40 < 100 - 0.5*100 is collapsed, 30 makes it two in a row: one collapse, not counted again at 20;
    # 90 recovers; 10 alone is one bad evaluation (60 recovers); 5 and 3 are the second collapse
    assert counted == [False, False, False, True, False, False, False, False, False, True]
    assert tracker.return_collapses == 2


def test_with_patience_one_every_drop_below_half_the_range_counts() -> None:
    tracker = StabilityTracker(StabilityThresholds(collapse_patience=1))
    counted = [tracker.observe_return(r) for r in [0, 100, 40, 30, 90, 10, 60]]
    assert counted == [False, False, True, False, False, True, False]


def test_a_learnt_policy_that_falls_back_and_stays_there_counts_one_collapse() -> None:
    """A run that learnt (returns up to 3,000) and then lost it for good."""
    tracker = StabilityTracker()
    for r in [-300, 200, 1200, 2500, 3000, 3100, -250, -280, -260, -270]:
        tracker.observe_return(r)
    assert tracker.return_collapses == 1


def test_noise_of_a_policy_that_learnt_nothing_is_not_a_collapse() -> None:
    """SAC before learning_starts on InvertedPendulum-v5 (its real eval curve): returns 10.0-10.6."""
    tracker = StabilityTracker()
    for r in [10.2, 10.6, 10.2, 10.6, 10.0, 10.2, 10.2, 10.4, 10.6, 10.6, 80.4, 101.8]:
        tracker.observe_return(r)
    assert tracker.return_collapses == 0


def test_one_bad_evaluation_of_a_learning_run_is_not_a_collapse() -> None:
    """PPO on InvertedPendulum-v5 (real eval curve): a dip from 108.8 to 71.4 while learning, then 1000s."""
    tracker = StabilityTracker()
    for r in [56.6, 108.8, 71.4, 638.2, *[1000.0] * 20]:
        tracker.observe_return(r)
    assert tracker.return_collapses == 0


def test_small_dips_and_improvements_are_not_collapses() -> None:
    tracker = StabilityTracker()
    for r in [-300, -200, -220, -100, -150, 50]:
        tracker.observe_return(r)
    assert tracker.return_collapses == 0


def _heavy_tailed_losses(n: int, seed: int = 0) -> list[float]:
    """A healthy value loss: log-normal around 3e-3 with a 10x tail now and then (as HalfCheetah PPO's)."""
    rng = np.random.default_rng(seed)
    return list(3e-3 * np.exp(rng.normal(0.0, 1.0, n)))


def test_loss_spike_is_a_jump_far_above_the_recent_high_quantile() -> None:
    tracker = StabilityTracker(
        StabilityThresholds(spike_factor=50, spike_quantile=0.9, spike_history=50, spike_min_history=10)
    )
    losses = _heavy_tailed_losses(300)
    reference = float(np.quantile(losses[150:200], 0.9))
    losses[200] = 100 * reference  # a planted spike
    losses[250] = 30 * float(np.quantile(losses[200:250], 0.9))  # as high as healthy runs go: no spike
    flags = [tracker.observe_loss(v) for v in losses]
    assert [i for i, f in enumerate(flags) if f] == [200]
    assert tracker.loss_spikes == 1
    assert not StabilityTracker().observe_loss(float("nan"))


def test_the_heavy_tail_of_a_healthy_loss_is_not_a_spike() -> None:
    """Ten times the median happens every few dozen windows in a healthy run; none of it counts."""
    losses = _heavy_tailed_losses(2000, seed=1)
    tracker = StabilityTracker()
    for value in losses:
        tracker.observe_loss(value)
    previous_rule = StabilityThresholds(spike_factor=10, spike_quantile=0.5, spike_history=20)
    median_based = StabilityTracker(previous_rule)
    for value in losses:
        median_based.observe_loss(value)
    assert tracker.loss_spikes == 0
    assert median_based.loss_spikes > 5  # what the median rule counted on healthy runs


def test_probe_keeps_every_update_of_a_long_window_and_counts_each_bad_one_once() -> None:
    """More updates than the series' first allocation (64): every gradient norm counts, once."""
    model = torch.nn.Linear(5, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    probe = OptimizerProbe(opt, measure_pre_clip=False, sample_every=7)

    def step(value: float, nan: bool = False) -> float:
        for p in model.parameters():
            p.grad = torch.full_like(p, value)
        if nan:
            model.bias.grad[0] = float("nan")
        opt.step()
        return math.sqrt(sum(float(p.grad.square().sum()) for p in model.parameters()))

    norms = [step(float(i + 1)) for i in range(150)]
    assert probe.check_finite() == (0, False)
    window = probe.pop_window()
    assert window["updates"] == 150
    assert window["grad_norm_post_clip"] == pytest.approx(sum(norms) / len(norms), rel=1e-6)

    for i in range(80):
        step(1.0, nan=i in (70, 71))
    events, bad_params = probe.check_finite()
    # the two NaN gradients, plus any sampled update after them (lr 0 still gives 0 * NaN = NaN)
    assert events >= 2 and bad_params
    assert probe.check_finite()[0] == 0  # each update is counted once


@pytest.mark.parametrize("name", ["adam", "adopt"])
def test_probe_on_flat_buffers_reports_what_it_reports_per_tensor(name: str) -> None:
    """Over flat buffers the probe takes one norm per buffer; the window must not change."""
    from rlopt.optim import make_optimizer

    windows = []
    for flat in (True, False):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(5, 32), torch.nn.Tanh(), torch.nn.Linear(32, 3))
        opt = make_optimizer(name, model.parameters(), lr=1e-2, flat=flat)
        probe = OptimizerProbe(opt, measure_pre_clip=True, sample_every=2)
        gen = torch.Generator().manual_seed(1)
        for _ in range(7):
            opt.zero_grad()
            (model(torch.randn(16, 5, generator=gen)) ** 2).mean().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
            opt.step()
        assert bool(getattr(opt, "_flat_groups", {})) == flat
        windows.append(probe.pop_window())
        probe.close()
    flat_window, tensor_window = windows
    assert flat_window["updates"] == tensor_window["updates"] == 7
    assert flat_window["grad_norm_pre_clip"] > flat_window["grad_norm_post_clip"]  # the clip was active
    for key, value in tensor_window.items():
        assert flat_window[key] == pytest.approx(value, rel=1e-5), key
