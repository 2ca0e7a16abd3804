"""Small summaries of measured numbers."""

from __future__ import annotations

import math
import statistics
from typing import Iterable


def finite(values: Iterable[float | None]) -> list[float]:
    """The finite values as floats, skipping ``None``, NaN and ±Inf (a diverged or missing
    measurement must not decide, or poison, a summary)."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def median(values: Iterable[float | None]) -> float | None:
    """Median of the finite values; None when none is left."""
    kept = finite(values)
    return float(statistics.median(kept)) if kept else None


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1; 0 for one value) of the finite values,
    ``(None, None)`` when none is left: the spread over seeds every study reports."""
    kept = finite(values)
    if not kept:
        return None, None
    return statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else 0.0


__all__ = ["finite", "mean_std", "median"]
