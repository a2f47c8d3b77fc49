"""The statistics every table uses, defined once.

The overhead ratio of a row is the median, over its repeats, of (observed − bare) / bare where
the observed and the bare run of one repeat ran back to back: +0.99 means the target took 1.99×
as long. Its interval is a bootstrap 95 % interval of that median. Same-run ratios, the
run-to-run spread and the gate all use these per-repeat ratios and nothing else.
"""
from __future__ import annotations

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
# A row is flagged unstable (as pyperf warns about unstable benchmarks) when its bare runs
# spread by more than this share of their median, or fall into two clusters...
BARE_SPREAD_LIMIT = 0.15
# ... or when the interval of its ratio is wider than this share of the ratio (each side).
RATIO_INTERVAL_LIMIT = 0.25
# Below this the ratio is noise around zero whatever its interval: not flagged for it.
NOISE_FLOOR_RATIO = 0.05


def per_repeat_ratios(observed_ns: list[float], bare_ns: list[float]) -> np.ndarray:
    """(observed − bare) / bare of each repeat, pairing the runs of one repeat."""
    observed, bare = np.asarray(observed_ns, dtype=float), np.asarray(bare_ns, dtype=float)
    count = min(observed.size, bare.size)
    return (observed[:count] - bare[:count]) / bare[:count]


def median_interval(samples) -> tuple[float, float, float]:
    """(median, low, high): the median and its bootstrap interval. Seeded, so the same samples
    always give the same interval (a table must regenerate identically)."""
    values = np.asarray(samples, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(values, size=(BOOTSTRAP_RESAMPLES, values.size)), axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(np.median(values)), float(low), float(high)


def instability(bare_ns: list[float], ratio: float, low: float, high: float) -> list[str]:
    """Why a row's figure should not be read as solid, in words; empty when it can be."""
    reasons = []
    bare = np.sort(np.asarray(bare_ns, dtype=float))
    if bare.size >= 2:
        middle = float(np.median(bare))
        spread = (bare[-1] - bare[0]) / middle
        if spread > BARE_SPREAD_LIMIT:
            reasons.append(f"bare runs spread {spread:.0%}")
        if bare.size >= 4:
            gaps = np.diff(bare)
            widest = int(np.argmax(gaps))
            if 2 <= widest + 1 <= bare.size - 2 and gaps[widest] > 0.1 * middle:
                reasons.append(f"bare runs in two clusters ({bare[widest]:.0f} and {bare[widest + 1]:.0f} ns)")
    if abs(ratio) >= NOISE_FLOOR_RATIO and max(ratio - low, high - ratio) > RATIO_INTERVAL_LIMIT * abs(ratio):
        reasons.append(f"ratio interval [{low:+.0%}, {high:+.0%}] is wide")
    return reasons


def holm_adjusted(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of p-values tested together: a row is told apart at level
    alpha when its adjusted p is below alpha, and then the chance that any of the rows is told
    apart by chance alone stays below alpha, however many rows are tested."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
