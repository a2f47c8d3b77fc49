"""The one definition of a ratio, its interval, and the instability warnings."""
import numpy as np

from bench.stats import instability, median_interval, per_repeat_ratios


def test_the_ratio_pairs_each_repeat_and_reads_as_a_slowdown():
    ratios = per_repeat_ratios([2.0, 3.0, 4.2], [1.0, 1.5, 2.0])
    assert np.allclose(ratios, [1.0, 1.0, 1.1])  # +100 %: the target took twice as long


def test_the_interval_holds_the_median_and_is_reproducible():
    samples = [0.9, 1.0, 1.1, 1.05, 0.95, 1.2, 0.8]
    median, low, high = median_interval(samples)
    assert low <= median <= high and median == 1.0
    assert median_interval(samples) == (median, low, high)  # seeded: tables regenerate identically


def test_a_steady_row_is_not_flagged():
    assert instability([500, 505, 498, 502, 501], 0.5, 0.48, 0.52) == []


def test_two_clusters_of_bare_runs_are_flagged():
    reasons = instability([520, 522, 519, 730, 728, 731], 0.5, 0.45, 0.55)
    assert any("two clusters" in r for r in reasons) and any("spread" in r for r in reasons)


def test_a_wide_interval_is_flagged_but_noise_around_zero_is_not():
    assert any("wide" in r for r in instability([500] * 5, 0.5, 0.1, 0.9))
    assert instability([500] * 5, 0.01, -0.05, 0.08) == []
