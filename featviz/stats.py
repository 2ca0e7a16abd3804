"""Small summaries of measured numbers."""

from __future__ import annotations

import math
import statistics
from typing import Iterable


def median(values: Iterable[float | None]) -> float | None:
    """Median of the finite values, skipping ``None``, NaN and ±Inf; None when none is left
    (a diverged or missing measurement must not decide, or poison, a summary)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    return float(statistics.median(finite)) if finite else None


__all__ = ["median"]
