"""Small order statistics (no numpy): percentiles by linear interpolation, summaries in ms."""

from __future__ import annotations

import math
from typing import Iterable, Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summary_ms(seconds: Iterable[float]) -> dict[str, float]:
    """n, min, median, p95, p99, max, mean of durations given in seconds, in milliseconds."""
    v = [x * 1000.0 for x in seconds]
    if not v:
        return {"n": 0}
    return {"n": len(v), "min": min(v), "median": percentile(v, 50), "p95": percentile(v, 95),
            "p99": percentile(v, 99), "max": max(v), "mean": sum(v) / len(v)}
