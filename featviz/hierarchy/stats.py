"""Small statistics of the studies: mean and spread over seeds, log-log slopes and their
bootstrap intervals over seeds (numpy, seeded, deterministic)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (0 for one value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std()) if len(v) > 1 else 0.0


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (points with y ≤ 0 or non-finite are dropped;
    NaN when fewer than two remain)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)[0])


def bootstrap(per_seed: np.ndarray, statistic: Callable[[np.ndarray], float], *, draws: int = 2000,
              level: float = 0.9, seed: int = 0) -> dict[str, float]:
    """``statistic`` of ``per_seed`` (seeds, ...) and a percentile interval from resampling
    the seeds with replacement: ``{value, low, high, level, draws}``. With one seed the
    interval is the value itself (no spread can be estimated)."""
    per_seed = np.asarray(per_seed, dtype=np.float64)
    value = statistic(per_seed)
    rng = np.random.default_rng(seed)
    n = len(per_seed)
    if n < 2:
        return {"value": value, "low": value, "high": value, "level": level, "draws": 0}
    samples = np.array([statistic(per_seed[rng.integers(0, n, n)]) for _ in range(draws)])
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return {"value": value, "low": float("nan"), "high": float("nan"), "level": level, "draws": 0}
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return {"value": value, "low": float(low), "high": float(high), "level": level, "draws": int(len(samples))}


def slope_of_mean(x: Sequence[float]) -> Callable[[np.ndarray], float]:
    """A statistic for :func:`bootstrap`: the log-log slope of the seed-mean of (seeds, len(x)) values."""
    return lambda rows: loglog_slope(x, rows.mean(0))


def crossing(x: Sequence[float], y: Sequence[float], level: float) -> float:
    """The smallest x at which the curve y(x) (log-log interpolated between measured
    points) falls to ``level``; NaN if it never does, x[0] if it starts below."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if y[0] <= level:
        return float(x[0])
    for i in range(1, len(x)):
        if y[i] <= level:
            ly0, ly1, lv = np.log(y[i - 1]), np.log(max(y[i], 1e-300)), np.log(level)
            t = (ly0 - lv) / (ly0 - ly1)
            return float(np.exp(np.log(x[i - 1]) + t * (np.log(x[i]) - np.log(x[i - 1]))))
    return float("nan")
