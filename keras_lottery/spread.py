"""Spread over replicates: the mean with its Student-t confidence interval, and sign counts.

Shared by the benchmarks (speed ratios over processes) and the experiment summaries (paired
differences of tickets against their dense model over replicates). With the 3 replicates the
project runs, the 95% interval is the mean ± 2.48 standard deviations (t = 4.30 over sqrt(3)).
"""

import statistics

from scipy import stats

__all__ = ["interval_text", "mean_interval", "replicates_above"]


def mean_interval(values, confidence=0.95):
    """``(mean, half-width)`` of the Student-t ``confidence`` interval of the mean of ``values`` (>= 2 values)."""
    n = len(values)
    if n < 2:
        raise ValueError(f"a confidence interval needs at least 2 values, got {n}")
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * statistics.stdev(values) / n ** 0.5
    return statistics.fmean(values), float(half)


def replicates_above(values, threshold=0.0):
    """How many of ``values`` are strictly above ``threshold`` (e.g. replicates where a ticket beats dense)."""
    return sum(1 for v in values if v > threshold)


def interval_text(values, digits=2, scale=1.0):
    """``"[-0.23, +2.65] 3/3"``: the 95% interval of the mean of paired differences ``values`` (times
    ``scale``) and how many are above zero; ``""`` with fewer than 2 values (``None`` skipped)."""
    values = [scale * float(v) for v in values if v is not None]
    if len(values) < 2:
        return ""
    mean, half = mean_interval(values)
    spec = f"+.{digits}f"
    return f"[{mean - half:{spec}}, {mean + half:{spec}}] {replicates_above(values)}/{len(values)}"
