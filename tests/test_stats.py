"""rlopt.stats against cases whose answer can be computed by hand."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from rlopt import stats

FAST: dict[str, Any] = {"n_resamples": 300, "seed": 0}


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert stats.iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    # sorted: 0 0 0 0 1 2 3 100 -> middle half 0 0 1 2; the outlier 100 is trimmed away
    assert stats.iqm(np.array([0.0, 100.0, 0.0, 3.0, 0.0, 2.0, 0.0, 1.0])) == pytest.approx(0.75)


def test_iqm_interval_pools_the_runs_of_all_tasks() -> None:
    result = stats.iqm_interval([np.array([1.0, 2.0, 3.0, 4.0]), np.array([5.0, 6.0, 7.0, 8.0])], **FAST)
    assert result.estimate == pytest.approx(4.5)
    assert result.low < 4.5 < result.high


def test_bootstrap_interval_of_a_constant_is_degenerate() -> None:
    result = stats.iqm_interval([np.full(5, 2.5), np.full(3, 2.5)], **FAST)
    assert (result.estimate, result.low, result.high) == (2.5, 2.5, 2.5)


def test_a_task_with_a_single_run_gives_no_interval() -> None:
    result = stats.iqm_interval([np.array([1.0]), np.array([1.0, 2.0, 3.0])], **FAST)
    assert result.estimate == pytest.approx(1.5)  # pooled 1 1 2 3 -> middle half 1 2
    assert not result.defined
    assert "no interval" in result.format()


def test_bootstrap_is_deterministic_given_the_seed() -> None:
    rng = np.random.default_rng(1)
    strata = [rng.normal(size=6), rng.normal(size=6)]
    first = stats.iqm_interval(strata, n_resamples=200, seed=7)
    assert stats.iqm_interval(strata, n_resamples=200, seed=7) == first
    assert stats.iqm_interval(strata, n_resamples=200, seed=8) != first


def test_bootstrap_resamples_within_each_task_only() -> None:
    # Task 0 has runs all 0, task 1 all 10: a stratified resample always holds 4 zeros and 4 tens,
    # so the pooled mean is exactly 5; an unstratified bootstrap would spread around 5.
    result = stats.mean_interval([np.zeros(4), np.full(4, 10.0)], **FAST)
    assert (result.low, result.high) == (5.0, 5.0)


def test_interval_covers_the_true_value_on_a_known_distribution() -> None:
    rng = np.random.default_rng(0)
    trials, covered, widths = 150, 0, []
    for i in range(trials):
        strata = [rng.normal(size=20), rng.normal(size=20)]  # true IQM of N(0, 1) is 0
        result = stats.iqm_interval(strata, n_resamples=300, seed=i)
        covered += result.low <= 0.0 <= result.high
        widths.append(result.high - result.low)
    assert 0.85 <= covered / trials <= 1.0
    # Not trivially wide: the standard error of the IQM of 40 normals is about 0.19.
    assert 0.4 < float(np.mean(widths)) < 1.2


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        ([3.0, 4.0, 5.0], [0.0, 1.0], 1.0),
        ([0.0, 1.0], [3.0, 4.0, 5.0], 0.0),
        ([2.0, 2.0, 2.0], [2.0, 2.0], 0.5),
        ([1.0, 2.0], [2.0, 3.0], 0.125),  # only the tie 2 = 2 counts, for one half out of 4 pairs
    ],
)
def test_probability_of_improvement_of_hand_computed_cases(x: list, y: list, expected: float) -> None:
    assert stats.probability_of_improvement(np.array(x), np.array(y)) == pytest.approx(expected)


def test_probability_of_improvement_counts_pairs() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 5, size=7).astype(float), rng.integers(0, 5, size=9).astype(float)
    pairs = [(a > b) + 0.5 * (a == b) for a, b in itertools.product(x, y)]
    assert stats.probability_of_improvement(x, y) == pytest.approx(np.mean(pairs))


def test_probability_of_improvement_averages_over_tasks() -> None:
    a = [np.array([5.0, 6.0]), np.array([1.0, 1.0])]
    b = [np.array([0.0, 1.0]), np.array([1.0, 1.0])]
    assert stats.average_probability_of_improvement(a, b) == pytest.approx(0.75)


def test_poi_interval_of_fully_separated_arms_is_one() -> None:
    a = [np.array([5.0, 6.0, 7.0]), np.array([10.0, 11.0, 12.0])]
    b = [np.array([0.0, 1.0, 2.0]), np.array([3.0, 4.0, 5.0])]
    result = stats.poi_interval(a, b, **FAST)
    assert (result.estimate, result.low, result.high) == (1.0, 1.0, 1.0)
    reverse = stats.poi_interval(b, a, **FAST)
    assert (reverse.estimate, reverse.low, reverse.high) == (0.0, 0.0, 0.0)


def test_poi_interval_of_identical_distributions_straddles_one_half() -> None:
    rng = np.random.default_rng(4)
    a = [rng.normal(size=8) for _ in range(3)]
    b = [rng.normal(size=8) for _ in range(3)]
    result = stats.poi_interval(a, b, **FAST)
    assert result.low < 0.5 < result.high


def test_iqm_difference_of_shifted_constants_is_exact() -> None:
    result = stats.iqm_difference_interval([np.full(3, 1.5)], [np.full(4, 1.0)], **FAST)
    assert (result.estimate, result.low, result.high) == (0.5, 0.5, 0.5)


def test_mean_difference_interval_detects_a_clear_shift() -> None:
    rng = np.random.default_rng(5)
    a = [rng.normal(3.0, 0.5, size=10), rng.normal(3.0, 0.5, size=10)]
    b = [rng.normal(0.0, 0.5, size=10), rng.normal(0.0, 0.5, size=10)]
    result = stats.mean_difference_interval(a, b, **FAST)
    assert 2.5 < result.low < result.estimate < result.high < 3.5


def test_normalise_maps_references_to_zero_and_one() -> None:
    assert stats.normalise(np.array([-100.0, 50.0, 200.0]), -100.0, 200.0) == pytest.approx([0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="two different finite reference scores"):
        stats.normalise(1.0, 3.0, 3.0)


def test_performance_profile_is_the_fraction_of_runs_above_tau() -> None:
    strata = [np.array([0.1, 0.5, 0.9]), np.array([0.6, 0.7])]
    band = stats.performance_profile(strata, np.array([0.0, 0.5, 0.65, 1.0]), **FAST)
    # task 0: 3/3, 2/3... strictly above tau; averaged with task 1
    expected = [(1 + 1) / 2, (1 / 3 + 1) / 2, (1 / 3 + 1 / 2) / 2, 0.0]
    assert band.estimate == pytest.approx(expected)
    assert np.all(band.low <= band.estimate + 1e-12) and np.all(band.estimate <= band.high + 1e-12)
    assert band.low[0] == band.high[0] == 1.0  # every run of every task is above 0


def test_iqm_curve_follows_the_runs_and_is_exact_for_identical_runs() -> None:
    steps = np.array([0.0, 100.0, 200.0])
    identical = [np.tile([0.0, 0.5, 1.0], (3, 1)), np.tile([0.0, 0.5, 1.0], (2, 1))]
    band = stats.iqm_curve(steps, identical, **FAST)
    assert band.estimate == pytest.approx([0.0, 0.5, 1.0])
    assert band.low == pytest.approx([0.0, 0.5, 1.0]) and band.high == pytest.approx([0.0, 0.5, 1.0])
    rng = np.random.default_rng(6)
    noisy = [rng.normal(size=(6, 3)) + np.array([0.0, 1.0, 2.0])]
    band = stats.iqm_curve(steps, noisy, **FAST)
    assert band.estimate == pytest.approx(stats.iqm(noisy[0], axis=0))
    assert np.all(band.low < band.estimate) and np.all(band.estimate < band.high)


def test_late_variation_uses_the_last_quarter_of_training() -> None:
    steps = np.arange(0.0, 101.0, 10.0)
    returns = np.array([-50.0, 40, 30, 20, 10, 0, 5, 6, 1, 2, 3])  # steps >= 75: 80, 90, 100 -> 1, 2, 3
    std, cv = stats.late_variation(steps, returns)
    assert std == pytest.approx(1.0)
    assert cv == pytest.approx(0.5)
    assert np.isnan(stats.late_variation(np.array([10.0]), np.array([1.0]))[0])


def test_late_window_is_the_last_quarter_of_training_and_at_least_the_asked_evaluations() -> None:
    steps = np.arange(0.0, 101.0, 10.0)
    returns = np.array([-50.0, 40, 30, 20, 10, 0, 5, 6, 1, np.nan, 3])  # steps >= 75, finite: 80, 100
    assert stats.late_window(steps, returns).tolist() == [1.0, 3.0]
    assert stats.late_window(steps, returns, at_least=4).tolist() == [5.0, 6.0, 1.0, 3.0]
    assert stats.late_window(steps[:2], returns[:2], at_least=5).tolist() == [-50.0, 40.0]  # all it has
    assert stats.late_window(steps[:0], returns[:0]).size == 0


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"n_resamples": 0}, "n_resamples"), ({"confidence": 1.0}, "confidence")]
)
def test_bootstrap_rejects_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stats.iqm_interval([np.arange(3.0)], **kwargs)
