"""Robust statistics for few-run deep-RL comparisons, after Agarwal et al. (2021).

Everything here works on *strata*: one 1-D array of per-run values per task (runs = seeds). Aggregates
pool the runs of all tasks (normalised scores), and every interval is a percentile *stratified*
bootstrap: the runs of each task are resampled with replacement, independently of the other tasks and
of the other arm, so a task never borrows runs from another.

- IQM: the interquartile mean, the 25%-trimmed mean of the pooled runs (robust to outlier runs, more
  efficient than the median).
- Probability of improvement P(X > Y): the Mann–Whitney U statistic of the runs of one task divided by
  n·m (ties count one half), averaged over tasks.
- Performance profile: the fraction of runs whose score exceeds τ, for a grid of τ.
- Sample-efficiency curve: the IQM of the normalised eval returns at every step of a common grid.

The bootstrap is :func:`scipy.stats.bootstrap` (which resamples each sample independently, i.e. a
stratified bootstrap when the samples are the tasks); rliable itself is not used because rliable 1.2.0
does not import with pandas 3 nor arch 8. Two intervals are offered:

- ``"percentile"`` (as in rliable; the tables and figures of a report): the bootstrap quantiles.
- ``"t"`` (the verdicts): ``estimate ± t_{df, 1−α/2} · SE · sqrt(n/(n−1))`` with SE the standard
  deviation of the bootstrap distribution, ``n`` the smallest stratum, and ``df`` the smallest, over
  groups, of (runs of the group − strata of the group). The plug-in bootstrap underestimates the
  spread of a statistic of n runs by ``sqrt((n−1)/n)`` and its quantiles ignore that SE is itself
  estimated; at 5 runs per task the percentile interval's one-sided error was 3.3–6% for a nominal
  2.5% and BCa's 3.5–7% (normal, failed-seed mixture and skewed runs; 400 simulated studies each,
  ``rlopt.analysis.simulation``), the t interval's 0.8–1.8% (see ``scripts/calibrate_verdicts.py``).

An interval needs at least two runs in every stratum: with one run per task there is no honest
interval and the bounds are NaN.

References:
    R. Agarwal, M. Schwarzer, P. S. Castro, A. Courville, M. G. Bellemare. "Deep Reinforcement Learning
    at the Edge of the Statistical Precipice". NeurIPS 2021. https://arxiv.org/abs/2108.13713
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
METHODS = ("percentile", "t")
"""Interval methods of :func:`stratified_bootstrap` (see the module docstring)."""

Strata = Sequence[np.ndarray]
"""Per-task arrays whose *last* axis holds the runs (seeds) of that task."""

GroupStatistic = Callable[[list[list[np.ndarray]]], np.ndarray]
"""A statistic of several groups of strata, reducing over the last (runs) axis of every array."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval (NaN bounds when no interval exists).

    Attributes:
        estimate: The statistic on the observed runs.
        low: Lower bound of the percentile bootstrap interval.
        high: Upper bound of the percentile bootstrap interval.
        confidence: Confidence level of the interval, e.g. 0.95.
    """

    estimate: float
    low: float
    high: float
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def defined(self) -> bool:
        """Whether both bounds are finite numbers."""
        return math.isfinite(self.low) and math.isfinite(self.high)

    def format(self, digits: int = 2, signed: bool = False) -> str:
        """``"0.62 [0.48, 0.75]"``, or ``"0.62 [no interval]"`` when the bounds are NaN."""
        spec = f"{'+' if signed else ''}.{digits}f"
        if not math.isfinite(self.estimate):
            return "n/a"
        if not self.defined:
            return f"{self.estimate:{spec}} [no interval]"
        return f"{self.estimate:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


@dataclass(frozen=True)
class Band:
    """A curve with a pointwise confidence band: ``estimate[i]`` at ``x[i]`` within ``[low[i], high[i]]``."""

    x: np.ndarray
    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    confidence: float = DEFAULT_CONFIDENCE


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% of ``values`` along ``axis`` (25% trimmed each side)."""
    return np.asarray(sps.trim_mean(values, 0.25, axis=axis))


def normalise(values: np.ndarray | float, low: float, high: float) -> np.ndarray:
    """Min–max normalised score ``(values − low) / (high − low)``: ``low`` ↦ 0, ``high`` ↦ 1.

    Raises:
        ValueError: if ``high == low`` or either is not finite.
    """
    if not (math.isfinite(low) and math.isfinite(high)) or high == low:
        raise ValueError(
            f"normalisation needs two different finite reference scores, got low={low}, high={high}"
        )
    return (np.asarray(values, dtype=float) - low) / (high - low)


def stratified_bootstrap(
    groups: Sequence[Strata],
    statistic: GroupStatistic,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    method: str = "percentile",
    bias_correct: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified-bootstrap interval of ``statistic(groups)`` (percentile or t, see the module docstring).

    Every array in every group is one stratum (the runs of one task of one arm); its last axis is
    resampled with replacement, independently of every other stratum. Leading axes (e.g. the steps of
    a curve) are kept together, so a resampled run keeps its whole curve.

    Args:
        groups: Groups (usually arms) of strata; ``groups[g][t]`` has runs on its last axis.
        statistic: Called with a list of groups of arrays shaped like the input, or with an extra
            resample axis just before the runs axis; it must reduce over the last axis only.
        n_resamples: Number of bootstrap resamples.
        confidence: Two-sided confidence level.
        seed: Seed of the numpy Generator: the same inputs and seed give the same interval.
        method: ``"percentile"`` or ``"t"``.
        bias_correct: With ``"t"``, centre the interval (and the returned estimate) on the
            bootstrap bias-corrected estimate ``2·θ̂ − mean(θ*)``: for statistics such as the max − min
            of noisy group IQMs, which noise alone makes larger.

    Returns:
        ``(estimate, low, high)`` arrays shaped like the statistic; the bounds are NaN when a stratum has
        fewer than two runs (no interval can be formed).
    """
    _check_bootstrap_options(n_resamples, confidence, method)
    arrays = _flat_strata(groups)
    sizes = [len(group) for group in groups]
    estimate = np.asarray(statistic(_regroup(arrays, sizes)), dtype=float)
    if any(a.shape[-1] < 2 for a in arrays):
        nan = np.full_like(estimate, np.nan)
        return estimate, nan, nan.copy()

    def flat_statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(_regroup(samples, sizes))

    result = sps.bootstrap(
        arrays,
        flat_statistic,
        n_resamples=n_resamples,
        vectorized=True,
        paired=False,
        axis=-1,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    if method == "t":
        distribution = np.asarray(result.bootstrap_distribution, dtype=float)
        groups_ = _regroup(arrays, sizes)
        return _t_interval(distribution, groups_, estimate, confidence, bias_correct)
    low = np.asarray(result.confidence_interval.low, dtype=float)
    high = np.asarray(result.confidence_interval.high, dtype=float)
    return estimate, low, high


def _check_bootstrap_options(n_resamples: int, confidence: float, method: str) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def _flat_strata(groups: Sequence[Strata]) -> list[np.ndarray]:
    """Every stratum of every group, in order, as float arrays; each must hold at least one run."""
    arrays = [np.asarray(stratum, dtype=float) for group in groups for stratum in group]
    if not arrays or any(a.shape[-1] == 0 for a in arrays):
        raise ValueError("every stratum needs at least one run")
    return arrays


def _regroup(flat: Sequence[np.ndarray], sizes: Sequence[int]) -> list[list[np.ndarray]]:
    """The flat list of strata cut back into groups of ``sizes[g]`` strata each."""
    out, start = [], 0
    for size in sizes:
        out.append(list(flat[start : start + size]))
        start += size
    return out


def _t_interval(
    distribution: np.ndarray,
    groups: list[list[np.ndarray]],
    estimate: np.ndarray,
    confidence: float,
    bias_correct: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``estimate ± t_{df, 1−α/2} · SE · sqrt(n/(n−1))`` (the module docstring says why and which df)."""
    n = min(a.shape[-1] for g in groups for a in g)
    df = max(1, min(sum(a.shape[-1] for a in g) - len(g) for g in groups))
    se = np.std(distribution, axis=-1, ddof=1) * math.sqrt(n / (n - 1))
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * se
    if bias_correct:
        estimate = 2 * estimate - np.mean(distribution, axis=-1)
    return estimate, estimate - half, estimate + half


def _interval(
    groups: Sequence[Strata],
    statistic: GroupStatistic,
    n_resamples: int,
    confidence: float,
    seed: int,
    method: str = "percentile",
) -> Interval:
    est, low, high = stratified_bootstrap(
        groups, statistic, n_resamples=n_resamples, confidence=confidence, seed=seed, method=method
    )
    return Interval(float(est), float(low), float(high), confidence)


def pooled_iqm(strata: Sequence[np.ndarray]) -> np.ndarray:
    """IQM of the runs of all strata pooled together (reduces the last axis)."""
    return iqm(np.concatenate(list(strata), axis=-1), axis=-1)


def pooled_mean(strata: Sequence[np.ndarray]) -> np.ndarray:
    """Mean of the runs of all strata pooled together (reduces the last axis)."""
    return np.mean(np.concatenate(list(strata), axis=-1), axis=-1)


def iqm_interval(
    strata: Strata,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    method: str = "percentile",
) -> Interval:
    """Aggregate IQM of the pooled runs of all tasks, with its stratified bootstrap interval."""
    return _interval([strata], lambda g: pooled_iqm(g[0]), n_resamples, confidence, seed, method)


def mean_interval(
    strata: Strata,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    method: str = "percentile",
) -> Interval:
    """Mean of the pooled runs (use for counts such as instability events, whose IQM is mostly 0)."""
    return _interval([strata], lambda g: pooled_mean(g[0]), n_resamples, confidence, seed, method)


def iqm_difference_interval(
    a: Strata,
    b: Strata,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    method: str = "percentile",
) -> Interval:
    """``IQM(a) − IQM(b)`` of pooled (normalised) scores; both arms resampled within each task."""
    return _interval(
        [a, b], lambda g: pooled_iqm(g[0]) - pooled_iqm(g[1]), n_resamples, confidence, seed, method
    )


def mean_difference_interval(
    a: Strata,
    b: Strata,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    method: str = "percentile",
) -> Interval:
    """``mean(a) − mean(b)`` of pooled per-run values; both arms resampled within each task."""
    return _interval(
        [a, b], lambda g: pooled_mean(g[0]) - pooled_mean(g[1]), n_resamples, confidence, seed, method
    )


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) for one task: Mann–Whitney ``U / (n·m)`` over the last axis, ties counting one half.

    Args:
        x: Runs of arm X on the last axis (n runs).
        y: Runs of arm Y on the last axis (m runs); leading axes must broadcast with ``x``'s.
    """
    n, m = x.shape[-1], y.shape[-1]
    u = sps.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", axis=-1).statistic
    return np.asarray(u, dtype=float) / (n * m)


def average_probability_of_improvement(a: Strata, b: Strata) -> np.ndarray:
    """P(X > Y) averaged over tasks: ``a[t]`` and ``b[t]`` are the runs of the two arms on task t."""
    if len(a) != len(b) or not a:
        raise ValueError(f"both arms need the same non-empty list of tasks, got {len(a)} and {len(b)}")
    return np.mean([probability_of_improvement(x, y) for x, y in zip(a, b, strict=True)], axis=0)


def poi_interval(
    a: Strata,
    b: Strata,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    method: str = "percentile",
) -> Interval:
    """Average probability of improvement P(a > b) with its stratified bootstrap interval."""
    return _interval(
        [a, b],
        lambda g: average_probability_of_improvement(g[0], g[1]),
        n_resamples,
        confidence,
        seed,
        method,
    )


def performance_profile(
    strata: Strata,
    taus: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Band:
    """Fraction of runs with score > τ for each τ (averaged over tasks), with a pointwise band."""
    taus = np.asarray(taus, dtype=float)
    # The runs are repeated along a leading τ axis so one bootstrap resample serves every τ.
    tiled = [np.broadcast_to(np.asarray(s, dtype=float), (len(taus), len(s))) for s in strata]

    def fraction_above(groups: list[list[np.ndarray]]) -> np.ndarray:
        per_task = []
        for s in groups[0]:
            tau = taus.reshape((-1,) + (1,) * (s.ndim - 1))
            per_task.append(np.mean(s > tau, axis=-1))
        return np.mean(per_task, axis=0)

    est, low, high = stratified_bootstrap(
        [tiled], fraction_above, n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return Band(taus, est, low, high, confidence)


def iqm_curve(
    steps: np.ndarray,
    curves: Sequence[np.ndarray],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
) -> Band:
    """Sample-efficiency curve: IQM over the pooled runs at every step, with a pointwise band.

    Args:
        steps: The common step grid, shape (n_steps,).
        curves: One array per task, shape (n_runs, n_steps), of (normalised) returns on that grid.
    """
    columns = [np.asarray(c, dtype=float).T for c in curves]  # runs on the last axis
    est, low, high = stratified_bootstrap(
        [columns], lambda g: pooled_iqm(g[0]), n_resamples=n_resamples, confidence=confidence, seed=seed
    )
    return Band(np.asarray(steps, dtype=float), est, low, high, confidence)


LATE_FRACTION = 0.25
"""The late window of a run: evaluations at steps ≥ (1 − LATE_FRACTION) · its last step."""


def late_window(steps: np.ndarray, returns: np.ndarray, fraction: float = LATE_FRACTION,
                at_least: int = 1) -> np.ndarray:
    """One run's finite eval returns over the last ``fraction`` of training.

    The window holds the evaluations at steps ≥ (1 − fraction)·last step, and at least the last
    ``at_least`` of them (all of them when the run has fewer).
    """
    steps = np.asarray(steps, dtype=float)
    returns = np.asarray(returns, dtype=float)
    keep = np.isfinite(returns)
    steps, returns = steps[keep], returns[keep]
    if not len(returns):
        return returns
    window = returns[steps >= (1.0 - fraction) * steps[-1]]
    return window if len(window) >= at_least else returns[-at_least:]


def late_variation(
    steps: np.ndarray, returns: np.ndarray, fraction: float = LATE_FRACTION
) -> tuple[float, float]:
    """Variation of one run's eval returns over :func:`late_window` (at least the last two).

    Returns:
        ``(std, cv)``: the sample standard deviation of the returns in the window, and the coefficient of
        variation std / |mean| (NaN when the mean is 0); both NaN with fewer than two evaluations.
    """
    window = late_window(steps, returns, fraction, at_least=2)
    if len(window) < 2:
        return math.nan, math.nan
    std = float(np.std(window, ddof=1))
    mean = float(np.mean(window))
    cv = std / abs(mean) if mean != 0 else math.nan
    return std, cv
