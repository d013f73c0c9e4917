"""Replay finished runs through the stability detectors: how many events each would count.

    .venv/bin/python scripts/calibrate_stability.py RUN_DIR [RUN_DIR ...]

Reads each run folder only (``eval.csv`` and the monitored loss from its TensorBoard events, in the
folder or, in runs written before 2026-12-02, in ``tb/``: PPO ``train/value_loss``,
SAC ``train/critic_loss``), feeds the evaluations and the loss windows to a
:class:`rlopt.run.diagnostics.StabilityTracker` with today's default thresholds and with the previous
ones, and prints one row per run. Runs that learnt well should count no events with the defaults; a
planted collapse and a planted spike (built from each run's own data) must still count. Works on a
run that is still training (it reads what is there).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from rlopt.run.diagnostics import StabilityThresholds, StabilityTracker
from rlopt.run.tensorboard import events_dir

PREVIOUS = StabilityThresholds(collapse_fraction=0.5, collapse_min_gain=0.0, collapse_patience=1,
                               spike_factor=10.0, spike_quantile=0.5, spike_history=20, spike_min_history=5)
"""The thresholds before the calibration (median reference, no minimum gain, no patience)."""

LOSS_TAGS = ("train/value_loss", "train/critic_loss")


def read_run(run_dir: Path) -> tuple[list[float], list[float]]:
    """The mean eval returns and the monitored loss series of a run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with (run_dir / "eval.csv").open() as fh:
        returns = [float(row["mean_return"]) for row in csv.DictReader(fh)]
    events = EventAccumulator(str(events_dir(run_dir)), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    tag = next((t for t in LOSS_TAGS if t in tags), None)
    losses = [e.value for e in events.Scalars(tag)] if tag else []
    return returns, losses


def replay(returns: list[float], losses: list[float], thresholds: StabilityThresholds) -> tuple[int, int]:
    tracker = StabilityTracker(thresholds)
    for value in returns:
        tracker.observe_return(value)
    for value in losses:
        tracker.observe_loss(value)
    return tracker.return_collapses, tracker.loss_spikes


def planted(returns: list[float], losses: list[float]) -> tuple[list[float], list[float]]:
    """The run with its second half's returns dropped to its first evaluation, and one loss window set to
    100x the 90th percentile of the loss series."""
    half = len(returns) // 2
    low = returns[0]
    dropped = returns[:half] + [low] * (len(returns) - half)
    spiked = list(losses)
    if len(spiked) > 60:
        spiked[len(spiked) // 2] = 100 * float(np.quantile(losses, 0.9))
    return dropped, spiked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    print("| run | evaluations | return range | loss windows | collapses, spikes (defaults) | "
          "(previous thresholds) | planted collapse, spike counted (defaults) |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        returns, losses = read_run(run)
        now, before = replay(returns, losses, StabilityThresholds()), replay(returns, losses, PREVIOUS)
        planted_returns, planted_losses = planted(returns, losses)
        collapses, spikes = replay(planted_returns, planted_losses, StabilityThresholds())
        before_drop = StabilityTracker()
        for value in returns[: len(returns) // 2]:
            before_drop.observe_return(value)
        learnt = bool(returns) and before_drop.is_collapsed(returns[0])
        planted_text = "yes" if collapses > now[0] else "no"
        if not learnt:
            planted_text = "n/a (learnt nothing before the drop)"
        planted_text += (f", {'yes' if spikes > now[1] else 'no'}" if len(losses) > 60
                         else ", n/a (under 60 windows)")
        span = f"{min(returns):.1f} to {max(returns):.1f}" if returns else "-"
        print(f"| {run} | {len(returns)} | {span} | {len(losses)} | {now[0]}, {now[1]} | "
              f"{before[0]}, {before[1]} | {planted_text} |")


if __name__ == "__main__":
    main()
