"""Optimizer and stability diagnostics of a training run, written to TensorBoard.

Per gradient update (measured by hooks on each optimizer, never by subclassing SB3 algorithms):

- ``grad_norm_pre_clip``: global L2 norm of the gradient as ``backward()`` left it, before the agent's
  own clipping (PPO's ``max_grad_norm``); measured with ``Tensor.register_post_accumulate_grad_hook``,
  only where the agent clips (elsewhere it equals the post-clip norm).
- ``grad_norm_post_clip``: global L2 norm of the gradient handed to ``optimizer.step()``.
- ``update_norm``: ``||θ_after − θ_before||`` of the step (what the optimizer did, its own clipping
  such as δ-GClip's included).
- ``update_ratio``: ``update_norm / ||θ_after||``.
- ``effective_step_size``: ``update_norm / grad_norm_post_clip``, the scalar h with
  ``||Δθ|| = h·||g||`` (``lr`` for plain SGD, δ-GClip's h; defined when the gradient is non-zero).
- ``second_moment_sqrt_mean`` / ``_max``: mean and max over all coordinates of the square root of the
  optimizer's second-moment state (``exp_avg_sq``, ``exp_avg_var``, ``square_avg``...), where it has one,
  read once per logging window.

The gradient norm handed to ``step`` is measured on every update; the other per-update values (they
need a copy of the parameters) on every ``sample_every``-th update, a systematic sample. Values stay
tensors and are reduced once per logging window (mean over the measured updates of the window), so the
overhead is a few small tensor ops per update and no host sync on a GPU.

Tags (indexed by the global env step): ``optim/<metric>`` for PPO's single optimizer,
``optim/<role>/<metric>`` for SAC's ``actor``, ``critic`` and ``ent_coef`` optimizers, and
``stability/nan_events``, ``stability/return_collapses``, ``stability/loss_spikes`` (running counts).

Stability events, precisely (thresholds in :class:`StabilityThresholds`; they are calibrated so
that runs known to be healthy count none, see ``scripts/calibrate_stability.py``):

- **NaN event** (``nan_events``): one optimizer step whose gradient (as handed to ``step``) contains NaN
  or Inf, or, among the sampled steps, whose resulting parameters do. The parameters themselves are
  checked at every rollout start: non-finite ones end the run as ``diverged`` (:class:`Diverged`) before
  the broken policy acts. Any non-zero count is worth a look.
- **Return collapse** (``return_collapses``): the policy lost at least half of what it had learnt and
  stayed there. With ``best`` and ``worst`` the highest and lowest mean eval return of the evaluations
  before evaluation k, the run *has learnt* when
  ``best − worst >= collapse_min_gain · max(|best|, |worst|)`` (a swing of a few percent between
  evaluations of a policy that learnt nothing is noise, not learning), and evaluation k is *collapsed*
  when the run has learnt and ``return_k < best − collapse_fraction · (best − worst)``. One collapse is
  counted when ``collapse_patience`` consecutive evaluations are collapsed (a single bad evaluation is
  what one unlucky episode looks like); it is counted once until an evaluation recovers. A collapse
  that begins at the last evaluation is therefore not counted (the report's final return shows it).
- **Loss spike** (``loss_spikes``): a logging window whose monitored loss (PPO ``train/value_loss``,
  SAC ``train/critic_loss``, as last recorded by SB3) exceeds ``spike_factor`` times the
  ``spike_quantile`` quantile of the previous ``spike_history`` windows' values (at least
  ``spike_min_history`` of them). The value loss of a healthy run is heavy-tailed (a rollout holding
  the first long episode can lift it 10x over the recent median), so the reference is a high quantile,
  not the median: a spike is a jump far beyond the loss's own recent range, the signature of an
  update that threw the critic off.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch.utils.hooks import RemovableHandle

from rlopt.optim._flat import FlatGroup, attached_flat_groups

SECOND_MOMENT_KEYS = ("exp_avg_sq", "exp_avg_var", "square_avg", "v", "second_moment")
"""Optimizer state keys read as the second moment, first match wins."""

MONITORED_LOSS = {"ppo": "train/value_loss", "sac": "train/critic_loss"}


class Diverged(RuntimeError):
    """The run produced non-finite parameters; ``str(exc)`` says where."""


@dataclass(frozen=True)
class StabilityThresholds:
    """Thresholds of the stability events (defined in the module docstring).

    The defaults were calibrated (``scripts/calibrate_stability.py``) on runs known to be healthy: PPO
    on InvertedPendulum-v5 (60k steps, at 1,000 from 10k steps on; 1,874 loss windows of 32 steps), PPO
    on HalfCheetah-v5 (the first ~500k steps of two 1M-step runs, returns up to 6,350 and 3,960; about
    1,000 windows each), PPO (ADOPT) on Hopper-v5 (80k steps, returns ~985; 156 windows) and SAC on
    InvertedPendulum-v5 (12k steps, mostly at its random-policy return 10.0-10.6). The largest loss
    of a healthy run was 26x the 90th percentile of its previous 50 windows (Hopper; 11.5x on the
    pendulum, 5.4x on HalfCheetah), hence ``spike_factor`` 50; none counts a spike. None counts a
    collapse except the Hopper run, whose return really fell from 985 to 21 and 47 for two
    evaluations before recovering. The previous thresholds (10x the median of 20 windows, no minimum
    gain, no patience) counted 17 spikes and 1 collapse on the pendulum run, 4 and 24 spikes on the
    HalfCheetah runs, 8 on Hopper and 2 collapses on the SAC run. A loss 100x the 90th percentile
    still counts, as does a return falling back to its first evaluation and staying there.

    Attributes:
        collapse_fraction: Fraction of the learnt range (best − worst) an evaluation must lose.
        collapse_min_gain: Smallest ``(best − worst) / max(|best|, |worst|)`` that counts as learnt.
        collapse_patience: Consecutive collapsed evaluations that make one collapse.
        spike_factor: How many times the reference loss a spike exceeds.
        spike_quantile: Quantile of the recent windows' losses used as the reference.
        spike_history: Number of previous windows the reference is taken over.
        spike_min_history: Windows needed before any spike is counted.
    """

    collapse_fraction: float = 0.5
    collapse_min_gain: float = 0.2
    collapse_patience: int = 2
    spike_factor: float = 50.0
    spike_quantile: float = 0.9
    spike_history: int = 50
    spike_min_history: int = 10

    def as_dict(self) -> dict[str, Any]:
        return {
            "collapse_fraction": self.collapse_fraction,
            "collapse_min_gain": self.collapse_min_gain,
            "collapse_patience": self.collapse_patience,
            "spike_factor": self.spike_factor,
            "spike_quantile": self.spike_quantile,
            "spike_history": self.spike_history,
            "spike_min_history": self.spike_min_history,
        }


class StabilityTracker:
    """Counts NaN events, return collapses and loss spikes as defined in the module docstring."""

    def __init__(self, thresholds: StabilityThresholds | None = None) -> None:
        self.thresholds = thresholds or StabilityThresholds()
        self.nan_events = 0
        self.return_collapses = 0
        self.loss_spikes = 0
        self._returns: list[float] = []
        self._collapsed_streak = 0
        self._losses: deque[float] = deque(maxlen=self.thresholds.spike_history)

    def is_collapsed(self, mean_return: float) -> bool:
        """Whether an evaluation returning ``mean_return`` now would be collapsed (nothing recorded)."""
        previous = [r for r in self._returns if math.isfinite(r)]
        if len(previous) < 2 or not math.isfinite(mean_return):
            return False
        best, worst = max(previous), min(previous)
        gain = best - worst
        learnt = gain > 0 and gain >= self.thresholds.collapse_min_gain * max(abs(best), abs(worst))
        return learnt and mean_return < best - self.thresholds.collapse_fraction * gain

    def observe_return(self, mean_return: float) -> bool:
        """Record one evaluation; True when it completes a collapse (the count went up)."""
        collapsed = self.is_collapsed(mean_return)
        self._collapsed_streak = self._collapsed_streak + 1 if collapsed else 0
        counted = self._collapsed_streak == max(1, self.thresholds.collapse_patience)
        self.return_collapses += int(counted)
        self._returns.append(mean_return)
        return counted

    def observe_loss(self, value: float) -> bool:
        """Record one window's monitored loss; True when it is a spike."""
        if not math.isfinite(value):
            return False
        spike = False
        if len(self._losses) >= self.thresholds.spike_min_history:
            recent = np.fromiter(self._losses, dtype=float)
            reference = float(np.quantile(recent, self.thresholds.spike_quantile))
            spike = reference > 0 and value > self.thresholds.spike_factor * reference
        self.loss_spikes += int(spike)
        self._losses.append(value)
        return spike

    def state(self) -> dict[str, Any]:
        """Everything the counts depend on (a checkpoint's, :mod:`rlopt.run.checkpoint`)."""
        return {
            **self.as_dict(),
            "returns": list(self._returns),
            "collapsed_streak": self._collapsed_streak,
            "losses": list(self._losses),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.nan_events = int(state["nan_events"])
        self.return_collapses = int(state["return_collapses"])
        self.loss_spikes = int(state["loss_spikes"])
        self._returns = [float(r) for r in state["returns"]]
        self._collapsed_streak = int(state["collapsed_streak"])
        self._losses = deque((float(x) for x in state["losses"]), maxlen=self.thresholds.spike_history)

    def as_dict(self) -> dict[str, int]:
        return {
            "nan_events": self.nan_events,
            "return_collapses": self.return_collapses,
            "loss_spikes": self.loss_spikes,
        }


def _total_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Global L2 norm of ``tensors``: one kernel for one (flat) tensor, ``get_total_norm`` otherwise."""
    if len(tensors) == 1:
        return torch.linalg.vector_norm(tensors[0])
    return torch.nn.utils.get_total_norm(tensors)


def _same_layouts(now: list[FlatGroup] | None, before: list[FlatGroup]) -> bool:
    """Whether the optimizer still uses the very buffers it used at the start of the step."""
    if now is None or len(now) != len(before):
        return False
    return all(a is b for a, b in zip(now, before, strict=True))


def _params_with_grad(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]


class MeasurementSeries:
    """Per-update measurements kept on their device in one preallocated tensor, written in place.

    A list of fresh 0-d tensors, kept until the window is written (1,000 SAC updates), scattered
    small long-lived blocks among the large short-lived ones of each update; the heap could not
    shrink and a SAC run grew by ~150 MB over 1,500 updates. Written by hand: torch has no growable
    tensor. Values stay tensors (no ``.item()``), so nothing waits for an accelerator per update.
    """

    def __init__(self, width: int) -> None:
        self.width = width
        self._data: torch.Tensor | None = None
        self.size = 0
        self.checked = 0
        """Rows before this index were already checked for non-finite values."""

    def append(self, row: torch.Tensor) -> None:
        if self._data is None or self.size == self._data.shape[0]:
            grown = torch.empty((max(64, 2 * self.size), self.width), dtype=row.dtype, device=row.device)
            if self._data is not None:
                grown[: self.size].copy_(self._data[: self.size])
            self._data = grown
        self._data[self.size].copy_(row.reshape(self.width))
        self.size += 1

    def rows(self, start: int = 0) -> torch.Tensor:
        """The rows from ``start`` on, as a ``(n, width)`` view."""
        if self._data is None:
            return torch.empty((0, self.width))
        return self._data[start : self.size]

    def clear(self) -> None:
        self.size = self.checked = 0


class OptimizerProbe:
    """Step hooks on one optimizer, collecting per-update measurements until :meth:`pop_window`.

    Every update: the global gradient norm handed to ``step()`` (one ``get_total_norm``). Every
    ``sample_every``-th update (the first one included): also the pre-clip gradient norm, the update
    norm and the parameter norm, which need a copy of the parameters; a systematic sample keeps the
    window means unbiased while the cost stays a few percent of an update.

    Args:
        optimizer: the optimizer to watch.
        measure_pre_clip: also hook every parameter's gradient accumulation to get the norm before the
            agent's own clipping (only needed where the agent clips between backward and step).
        sample_every: measure update and parameter norms on every this-many-th update.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, measure_pre_clip: bool, sample_every: int = 1
    ) -> None:
        self.optimizer = optimizer
        self.sample_every = max(1, sample_every)
        self._handles: list[RemovableHandle] = [
            optimizer.register_step_pre_hook(self._pre_step),
            optimizer.register_step_post_hook(self._post_step),
        ]
        self._measure_pre_clip = measure_pre_clip
        self._pre_sq: dict[int, torch.Tensor] = {}
        self._grad_hooks: list[RemovableHandle] = []
        self._count = 0
        self._sampling = True
        self._before: list[torch.Tensor] | None = None
        self._params: list[torch.Tensor] = []
        self._layouts: list[FlatGroup] | None = None
        self._post_norm: torch.Tensor | None = None
        self._grad_norms = MeasurementSeries(width=1)
        self._samples = MeasurementSeries(width=4)  # pre-clip, post-clip, update, parameter norms
        self._hook_gradients()

    def _hook_gradients(self) -> None:
        """Watch gradient accumulation for the pre-clip norm, on sampled updates only (a Python call
        per parameter and backward pass is not free on a small network)."""
        if self._measure_pre_clip and not self._grad_hooks:
            self._grad_hooks = [
                param.register_post_accumulate_grad_hook(self._grad_hook)
                for group in self.optimizer.param_groups
                for param in group["params"]
            ]

    def _unhook_gradients(self) -> None:
        for handle in self._grad_hooks:
            handle.remove()
        self._grad_hooks = []

    def _grad_hook(self, param: torch.Tensor) -> None:
        # overwrite, not add: the stored value is the gradient as the last backward left it
        self._pre_sq[id(param)] = param.grad.detach().square().sum()  # type: ignore[union-attr]

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._before = None
        # In flat buffers the gradient and the parameters are one tensor per group: one norm each.
        layouts = attached_flat_groups(optimizer)
        if layouts is not None:
            params, grads = [g.param for g in layouts], [g.grad for g in layouts]
        else:
            params = _params_with_grad(optimizer)
            grads = [p.grad for p in params]  # type: ignore[misc]
        if not params:
            return
        with torch.no_grad():
            post = _total_norm(grads)
        self._post_norm = post
        self._grad_norms.append(post)
        if self._sampling:
            self._params, self._layouts = params, layouts
            self._before = [p.detach().clone() for p in params]

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._count += 1
        if self._before is not None and (
            self._layouts is None or _same_layouts(attached_flat_groups(optimizer), self._layouts)
        ):  # (a group laid out anew during the step left the old buffers behind: no sample then)
            with torch.no_grad():
                deltas = [p.detach() - b for p, b in zip(self._params, self._before, strict=True)]
                update_norm = _total_norm(deltas)
                param_norm = _total_norm([p.detach() for p in self._params])
                post = self._post_norm
                assert post is not None
                pre = post
                if self._measure_pre_clip and self._pre_sq:
                    pre = torch.stack(list(self._pre_sq.values())).sum().sqrt()
                row = torch.stack([pre, post, update_norm, param_norm])
            self._samples.append(row)
        self._before, self._params, self._layouts = None, [], None
        self._pre_sq.clear()
        self._schedule_sampling()

    def _schedule_sampling(self) -> None:
        """Whether the next update is sampled (every ``sample_every``-th), and the gradient hooks to match."""
        self._sampling = self._count % self.sample_every == 0
        if self._sampling:
            self._hook_gradients()
        else:
            self._unhook_gradients()

    @property
    def updates(self) -> int:
        """Updates watched so far."""
        return self._count

    def skip_to(self, updates: int) -> None:
        """Continue the sampling schedule as if ``updates`` updates had been watched (a resumed run)."""
        self._count = updates
        self._schedule_sampling()

    @property
    def pending(self) -> bool:
        """Whether updates were measured since the last :meth:`pop_window`."""
        return self._grad_norms.size > 0

    def check_finite(self) -> tuple[int, bool]:
        """Updates since the last check with a non-finite gradient (or, among the sampled ones,
        non-finite parameters), and whether the optimizer's parameters are non-finite now."""
        events = 0
        if self._grad_norms.size > self._grad_norms.checked:
            events += int((~torch.isfinite(self._grad_norms.rows(self._grad_norms.checked))).sum())
            self._grad_norms.checked = self._grad_norms.size
        if self._samples.size > self._samples.checked:
            rows = self._samples.rows(self._samples.checked)
            events += int((torch.isfinite(rows[:, 1]) & ~torch.isfinite(rows[:, 3])).sum())
            self._samples.checked = self._samples.size
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        with torch.no_grad():
            bad_params = not all(bool(torch.isfinite(p).all()) for p in params)
        return events, bad_params

    def pop_window(self) -> dict[str, float]:
        """Means over the updates since the last call, plus second-moment statistics now.

        Call :meth:`check_finite` first (``DiagnosticsCallback.write_window`` does): the window's rows
        are dropped here, checked or not.
        """
        out: dict[str, float] = {}
        if self._grad_norms.size:
            grads = self._grad_norms.rows().double()
            self._grad_norms.clear()
            out["updates"] = float(grads.numel())
            out["grad_norm_post_clip"] = float(grads.mean())
        if self._samples.size:
            rows = self._samples.rows().double()
            self._samples.clear()
            pre, post, update, param = rows.unbind(1)
            out["grad_norm_pre_clip"] = float(pre.mean())
            out["grad_norm_pre_clip_max"] = float(pre.max())
            out["update_norm"] = float(update.mean())
            out["param_norm"] = float(param.mean())
            out["update_ratio"] = float((update / param.clamp_min(1e-12)).mean())
            nonzero = post > 0
            if bool(nonzero.any()):
                out["effective_step_size"] = float((update[nonzero] / post[nonzero]).mean())
        out.update(second_moment_stats(self.optimizer))
        return out

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._unhook_gradients()


def second_moment_stats(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Mean and max of sqrt(second moment) over all coordinates, if the optimizer keeps one."""
    for key in SECOND_MOMENT_KEYS:
        tensors = [
            s[key].reshape(-1)
            for s in optimizer.state.values()
            if isinstance(s.get(key), torch.Tensor) and s[key].is_floating_point()
        ]
        if tensors:
            with torch.no_grad():
                root = torch.cat(tensors).double().clamp_min(0).sqrt()
            return {
                "second_moment_sqrt_mean": float(root.mean()),
                "second_moment_sqrt_max": float(root.max()),
            }
    return {}


class DiagnosticsCallback(BaseCallback):
    """SB3 callback: attaches an :class:`OptimizerProbe` to every optimizer of the agent, checks for
    divergence at each rollout start and writes the diagnostics at rollout ends.

    Args:
        optimizers: role -> optimizer (see :func:`rlopt.run.agent.agent_optimizers`).
        writer: a ``SummaryWriter`` (SB3's TensorBoard output) or ``None``.
        stability: the run's :class:`StabilityTracker` (shared with the evaluation).
        algo: ``ppo`` or ``sac`` (which loss is monitored for spikes).
        measure_pre_clip: whether the agent clips gradients between backward and step.
        interval: env steps between two logging windows (written at the first rollout end after it).
        sample_every: measure update and parameter norms on every this-many-th update.
        check_every: env steps between two checks of the parameters at a rollout start (every
            window also checks). PPO's rollouts are longer than this, so each is checked; SAC's
            rollout is one env step, where scanning every parameter each step cost ~10% of the run.
            A NaN that slips in between two checks of a SAC run still stops it: the policy's outputs
            go NaN and torch.distributions (whose checks SAC runs keep) rejects them, which the run
            reports as diverged.
    """

    def __init__(
        self,
        optimizers: Mapping[str, torch.optim.Optimizer],
        writer: Any,
        stability: StabilityTracker,
        algo: str,
        measure_pre_clip: bool,
        interval: int,
        sample_every: int = 1,
        check_every: int = 1,
    ) -> None:
        super().__init__(verbose=0)
        self._optimizers = dict(optimizers)
        self._writer = writer
        self.stability = stability
        self._loss_key = MONITORED_LOSS.get(algo)
        self._measure_pre_clip = measure_pre_clip
        self._interval = max(1, interval)
        self._sample_every = max(1, sample_every)
        self._last_logged = 0
        self._check_every = max(1, check_every)
        self._last_checked = 0
        self._probes: dict[str, OptimizerProbe] = {}
        self._resume_counts: dict[str, int] = {}
        self._single = len(self._optimizers) == 1

    def _on_training_start(self) -> None:
        self._probes = {
            role: OptimizerProbe(opt, self._measure_pre_clip, self._sample_every)
            for role, opt in self._optimizers.items()
        }
        for role, count in self._resume_counts.items():
            if role in self._probes:
                self._probes[role].skip_to(count)

    def state(self) -> dict[str, Any]:
        """The schedule of the windows and checks, and each probe's update count (a checkpoint's); the
        samples of a window still open are not kept (TensorBoard's optimizer curves only)."""
        return {
            "last_logged": self._last_logged,
            "last_checked": self._last_checked,
            "updates": {role: probe.updates for role, probe in self._probes.items()},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self._last_logged = int(state["last_logged"])
        self._last_checked = int(state["last_checked"])
        self._resume_counts = {str(k): int(v) for k, v in state["updates"].items()}

    def count_nan_events(self) -> list[str]:
        """Add the NaN events since the last check; return the roles whose parameters are non-finite."""
        diverged = []
        for role, probe in self._probes.items():
            events, bad_params = probe.check_finite()
            self.stability.nan_events += events
            if bad_params:
                diverged.append(role)
        return diverged

    def _check(self) -> None:
        self._last_checked = self.num_timesteps
        diverged = self.count_nan_events()
        if diverged:
            raise Diverged(
                f"non-finite parameters after an update of the {', '.join(diverged)} optimizer"
                f" at {self.num_timesteps} env steps"
            )

    def _on_rollout_start(self) -> None:
        if self.num_timesteps == 0 or self.num_timesteps - self._last_checked >= self._check_every:
            self._check()

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps - self._last_logged >= self._interval:
            self.write_window()

    def _on_training_end(self) -> None:
        # the last train() call of the run ends no rollout: write (and check) its window here, at the
        # same env step as the window before it
        if any(probe.pending for probe in self._probes.values()):
            self.write_window()
        self.close()

    def write_window(self) -> None:
        """Reduce the current window of every probe and write it (and the stability counts)."""
        self._check()
        step = self.num_timesteps
        self._last_logged = step
        for role, probe in self._probes.items():
            prefix = "optim" if self._single else f"optim/{role}"
            for name, value in probe.pop_window().items():
                self._scalar(f"{prefix}/{name}", value, step)
        if self._loss_key is not None:
            loss = self.logger.name_to_value.get(self._loss_key)
            if loss is not None:
                self.stability.observe_loss(float(loss))
        self.write_stability(step)

    def write_stability(self, step: int) -> None:
        for name, value in self.stability.as_dict().items():
            self._scalar(f"stability/{name}", value, step)

    def _scalar(self, tag: str, value: float, step: int) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, value, step)

    def close(self) -> None:
        for probe in self._probes.values():
            probe.close()
        self._probes = {}
