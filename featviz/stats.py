"""The statistics of featviz: summaries over seeds, bootstrap confidence intervals, paired
and unpaired tests, Holm correction, censored thresholds and exponents fitted to them.

Conventions (every function here follows them):

- Pure functions of numbers (numpy; scipy imported lazily where a distribution is needed).
  Everything random takes ``seed`` and draws from ``numpy.random.default_rng(seed)``: the
  same call gives the same numbers.
- The seed is the unit of resampling: an array of shape ``(seeds, ...)`` is bootstrapped by
  resampling its rows with replacement; paired arms are resampled jointly (the same seed
  indices for both), unpaired arms independently.
- Missing or diverged measurements (``None``, NaN, ±Inf) are left out before anything is
  computed (a pair is left out when either side is); ``n`` in a result counts what was used.
- Results are plain dicts of Python numbers, ready for JSON. A number that cannot be
  defined (no data, no spread for a t statistic, a censored threshold) is ``None``.
  :func:`loglog_slope` and :func:`bootstrap` return NaN instead, as numeric building blocks.
- Confidence intervals: ``method="percentile"`` takes the ``(1 ± level) / 2`` quantiles of
  the bootstrap distribution; ``method="bca"`` (bias-corrected and accelerated, Efron 1987)
  shifts those quantile levels by the bias ``z0 = Φ⁻¹(share of draws below the estimate,
  ties counted half)`` and the acceleration ``a`` estimated by the jackknife over seeds.
"""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

METHODS = ("percentile", "bca")


# ---------------------------------------------------------------------- summaries
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


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x. Points where x or y is non-positive or
    non-finite are dropped; NaN when fewer than two points (or one distinct x) remain."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    if len(lx) < 2 or np.ptp(lx) == 0:
        return float("nan")
    lx = lx - lx.mean()
    return float(lx @ (ly - ly.mean()) / (lx @ lx))


# ---------------------------------------------------------------------- bootstrap core
def _check(level: float, method: str) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")


def _resample(rng: np.random.Generator, sizes: Sequence[int], draws: int) -> list[np.ndarray]:
    """Row indices of ``draws`` bootstrap resamples: one ``(draws, n)`` array per group, drawn
    group after group (for one group this is the stream of ``draws`` successive
    ``rng.integers(0, n, n)`` calls)."""
    return [rng.integers(0, n, (draws, n)) for n in sizes]


def _acceleration(jackknife: Sequence[np.ndarray]) -> float:
    """BCa acceleration from leave-one-out estimates, one array per resampled group (for one
    group: ``Σ(θ̄ − θᵢ)³ / (6 (Σ(θ̄ − θᵢ)²)^{3/2})``; several groups are pooled as in Efron and
    Tibshirani, eq. 14.15). Non-finite leave-one-out values are dropped; 0 without spread."""
    num = den = 0.0
    for theta in jackknife:
        theta = theta[np.isfinite(theta)]
        n = len(theta)
        if n < 2:
            continue
        u = (n - 1) * (theta.mean() - theta)
        num += float(np.sum(u ** 3)) / n ** 3
        den += float(np.sum(u ** 2)) / n ** 2
    return num / (6 * den ** 1.5) if den > 0 else 0.0


def _interval(value: float, samples: np.ndarray, jackknife: Sequence[np.ndarray] | None,
              level: float, method: str) -> tuple[float, float, int]:
    """``(low, high, draws used)`` from bootstrap ``samples`` of an estimate ``value``."""
    samples = samples[np.isfinite(samples)]
    if not len(samples) or not math.isfinite(value):
        return float("nan"), float("nan"), int(len(samples))
    tail = (1 - level) / 2
    quantiles = np.array([tail, 1 - tail])
    if method == "bca":
        from scipy.special import ndtr, ndtri

        tol = 1e-10 * abs(value)
        below = np.sum(samples < value - tol) + 0.5 * np.sum(np.abs(samples - value) <= tol)
        share = min(max(below / len(samples), 0.5 / len(samples)), 1 - 0.5 / len(samples))
        z0 = float(ndtri(share))
        a = _acceleration(jackknife or [])
        z = z0 + ndtri(quantiles)
        quantiles = np.clip(ndtr(z0 + z / (1 - a * z)), 0.0, 1.0)
    low, high = np.percentile(samples, 100 * quantiles)
    return float(low), float(high), int(len(samples))


def _bootstrap_groups(groups: Sequence[np.ndarray], statistic: Callable[..., np.ndarray], *,
                      draws: int, level: float, seed: int, method: str) -> tuple[float, float, float, int]:
    """``(value, low, high, draws used)`` of a statistic of one or more groups of seeds.

    ``statistic(*batches)`` takes one array ``(B, n_g, ...)`` per group (B resamples of that
    group's rows) and returns ``(B,)``. Each group is resampled independently (put paired arms
    in one group as columns). Without at least two seeds in some group the interval is the
    value itself and no draw is made."""
    _check(level, method)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(statistic(*[g[None] for g in groups])[0])
        sizes = [len(g) for g in groups]
        if max(sizes) < 2:
            return value, value, value, 0
        rng = np.random.default_rng(seed)
        index = _resample(rng, sizes, draws)
        samples = np.asarray(statistic(*[g[i] for g, i in zip(groups, index)]), dtype=np.float64)
        jackknife = None
        if method == "bca":
            jackknife = []
            for j, g in enumerate(groups):
                if len(g) < 2:
                    continue
                left_out = np.stack([np.delete(g, i, axis=0) for i in range(len(g))])
                batches = [left_out if k == j else np.broadcast_to(h, (len(g),) + h.shape)
                           for k, h in enumerate(groups)]
                jackknife.append(np.asarray(statistic(*batches), dtype=np.float64))
        low, high, used = _interval(value, samples, jackknife, level, method)
    return value, low, high, used


def bootstrap(per_seed: np.ndarray, statistic: Callable[[np.ndarray], float], *, draws: int = 2000,
              level: float = 0.9, seed: int = 0, method: str = "percentile") -> dict[str, Any]:
    """``statistic`` of ``per_seed`` (array ``(seeds, ...)``) with a bootstrap interval from
    resampling the seeds (rows) with replacement.

    Returns ``{value, low, high, level, draws, method}``: ``draws`` counts the resamples
    whose statistic was finite (the others are dropped); low/high are NaN when none was.
    With one seed the interval is the value itself and ``draws`` is 0 (no spread can be
    estimated). ``method="bca"`` also evaluates the statistic on the ``seeds`` leave-one-out
    arrays (jackknife acceleration)."""
    rows = np.asarray(per_seed, dtype=np.float64)
    value, low, high, used = _bootstrap_groups(
        [rows], lambda batch: np.array([statistic(r) for r in batch], dtype=np.float64),
        draws=draws, level=level, seed=seed, method=method)
    return {"value": value, "low": low, "high": high, "level": level, "draws": used, "method": method}


def slope_of_mean(x: Sequence[float]) -> Callable[[np.ndarray], float]:
    """A statistic for :func:`bootstrap`: the log-log slope (:func:`loglog_slope`) of the
    seed-mean of ``(seeds, len(x))`` values against ``x``."""
    return lambda rows: loglog_slope(x, np.asarray(rows).mean(0))


# ---------------------------------------------------------------------- CIs of means and ratios
def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _clean(values: Iterable[float | None]) -> np.ndarray:
    return np.array(finite(values), dtype=np.float64)


def _pairs(a: Iterable[float | None], b: Iterable[float | None]) -> tuple[np.ndarray, np.ndarray]:
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"paired values need equal lengths, got {len(a)} and {len(b)}")
    kept = [(float(x), float(y)) for x, y in zip(a, b)
            if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    arr = np.array(kept, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _mean_of_rows(batch: np.ndarray) -> np.ndarray:
    return batch.mean(axis=1)


def mean_ci(values: Iterable[float | None], level: float = 0.95, *, draws: int = 10000, seed: int = 0,
            method: str = "bca") -> dict[str, Any]:
    """Mean of the finite values with a bootstrap CI over them (seeds):
    ``{value, low, high, level, n}``. One value: the interval is the value; none: all None."""
    v = _clean(values)
    if not len(v):
        _check(level, method)
        return {"value": None, "low": None, "high": None, "level": level, "n": 0}
    value, low, high, _ = _bootstrap_groups([v], _mean_of_rows, draws=draws, level=level,
                                             seed=seed, method=method)
    return {"value": _num(value), "low": _num(low), "high": _num(high), "level": level, "n": int(len(v))}


def paired_difference(a: Iterable[float | None], b: Iterable[float | None], level: float = 0.95, *,
                      draws: int = 10000, seed: int = 0, method: str = "bca") -> dict[str, Any]:
    """Mean paired difference ``mean(a − b)`` over the seeds where both are finite, with a
    bootstrap CI resampling those seeds: ``{value, low, high, level, n}``."""
    xa, xb = _pairs(a, b)
    return mean_ci(xa - xb, level, draws=draws, seed=seed, method=method)


def _ratio_paired(batch: np.ndarray) -> np.ndarray:
    return batch[..., 0].mean(axis=1) / batch[..., 1].mean(axis=1)


def _ratio_unpaired(batch_a: np.ndarray, batch_b: np.ndarray) -> np.ndarray:
    return batch_a.mean(axis=1) / batch_b.mean(axis=1)


def ratio_of_means(a: Iterable[float | None], b: Iterable[float | None], *, paired: bool = True,
                   level: float = 0.95, draws: int = 10000, seed: int = 0,
                   method: str = "bca") -> dict[str, Any]:
    """The ratio ``mean(a) / mean(b)`` (the one definition of "ratio" between two arms: a
    ratio of means, not a mean of per-seed ratios) with a bootstrap CI.

    ``paired=True``: seeds are pairs (a[i], b[i]); pairs with a missing side are left out and
    the seed indices are resampled jointly. ``paired=False``: each arm's finite values are
    resampled independently. Returns ``{value, low, high, level, paired, n, n_a, n_b,
    method}`` with ``n`` the number of pairs (paired) or of the smaller arm (unpaired). The
    value is None when an arm is empty or mean(b) is 0; draws where mean(b) is 0 are dropped."""
    if paired:
        xa, xb = _pairs(a, b)
        groups, stat = [np.stack([xa, xb], axis=1)], _ratio_paired
    else:
        xa, xb = _clean(a), _clean(b)
        groups, stat = [xa, xb], _ratio_unpaired
    out: dict[str, Any] = {"value": None, "low": None, "high": None, "level": level, "paired": paired,
                           "n": int(min(len(xa), len(xb))), "n_a": int(len(xa)), "n_b": int(len(xb)),
                           "method": method}
    if not len(xa) or not len(xb):
        _check(level, method)
        return out
    value, low, high, _ = _bootstrap_groups(groups, stat, draws=draws, level=level, seed=seed, method=method)
    if _num(value) is not None:
        out.update(value=value, low=_num(low), high=_num(high))
    return out


def summarize(values: Iterable[float | None], level: float = 0.95, *, draws: int = 10000, seed: int = 0,
              method: str = "bca") -> dict[str, Any]:
    """A headline number over seeds: ``{mean, std, n, low, high, level}`` with the sample
    standard deviation (:func:`mean_std`) and the bootstrap CI of the mean (:func:`mean_ci`)."""
    values = list(values)
    mean, std = mean_std(values)
    ci = mean_ci(values, level, draws=draws, seed=seed, method=method)
    return {"mean": mean, "std": std, "n": ci["n"], "low": ci["low"], "high": ci["high"], "level": level}


# ---------------------------------------------------------------------- tests
def sign_test(diffs: Iterable[float | None]) -> dict[str, Any]:
    """Exact two-sided sign test of median difference 0: ``{n, positive, negative, ties, p}``.
    Zero differences (ties) are dropped; ``n`` counts the rest and ``p = min(1, 2 P(X ≤
    min(positive, negative)))`` for X ~ Binomial(n, 1/2) (None when n is 0)."""
    d = _clean(diffs)
    pos, neg = int(np.sum(d > 0)), int(np.sum(d < 0))
    n = pos + neg
    p = None
    if n:
        tail = sum(math.comb(n, i) for i in range(min(pos, neg) + 1))
        p = min(1.0, 2 * tail / 2 ** n)
    return {"n": n, "positive": pos, "negative": neg, "ties": int(len(d) - n), "p": p}


def _sign_flip_p(d: np.ndarray, exact_limit: int, draws: int, seed: int) -> float | None:
    """Two-sided sign-flip permutation p of the mean of ``d``: the share of sign patterns
    whose |sum| reaches the observed |sum|. All 2^n patterns when n ≤ ``exact_limit``,
    else ``draws`` random ones (p = (1 + hits) / (1 + draws), the observed one counted)."""
    n = len(d)
    if not n:
        return None
    observed = abs(float(d.sum()))
    tol = 1e-9 * float(np.abs(d).sum())
    if n <= exact_limit:
        bits = (np.arange(2 ** n, dtype=np.int64)[:, None] >> np.arange(n)) & 1
        sums = np.abs((1 - 2 * bits).astype(np.float64) @ d)
        return float(np.mean(sums >= observed - tol))
    signs = 1 - 2 * np.random.default_rng(seed).integers(0, 2, (draws, n))
    hits = int(np.sum(np.abs(signs.astype(np.float64) @ d) >= observed - tol))
    return (1 + hits) / (1 + draws)


def _split_p(a: np.ndarray, b: np.ndarray, exact_limit: int, draws: int, seed: int) -> float | None:
    """Two-sided permutation p of mean(a) − mean(b): the share of splits of the pooled values
    into groups of len(a) and len(b) whose |difference| reaches the observed one. Every split
    when there are at most ``exact_limit``, else ``draws`` random ones (observed counted)."""
    k, n = len(a), len(a) + len(b)
    if not len(a) or not len(b):
        return None
    pooled = np.concatenate([a, b])
    total = float(pooled.sum())
    observed = abs(float(a.mean() - b.mean()))
    tol = 1e-9 * float(np.abs(pooled).max())

    def diffs(index: np.ndarray) -> np.ndarray:
        s = pooled[index].sum(axis=1)
        return np.abs(s / k - (total - s) / (n - k))

    if math.comb(n, k) <= exact_limit:
        count = math.comb(n, k)
        index = np.fromiter(itertools.chain.from_iterable(itertools.combinations(range(n), k)),
                            dtype=np.int64, count=count * k).reshape(count, k)
        return float(np.mean(diffs(index) >= observed - tol))
    perms = np.random.default_rng(seed).permuted(np.tile(np.arange(n), (draws, 1)), axis=1)
    hits = int(np.sum(diffs(perms[:, :k]) >= observed - tol))
    return (1 + hits) / (1 + draws)


def paired_test(a: Iterable[float | None], b: Iterable[float | None], *, exact_limit: int = 16,
                draws: int = 20000, seed: int = 0) -> dict[str, Any]:
    """Tests of "a and b differ" over paired seeds (pairs with a missing side left out).

    Returns ``{n, mean_difference, t, p_t, p_sign, positive, negative, p_permutation}``:
    ``t``/``p_t`` the paired t test (scipy ``ttest_rel``; None with fewer than 2 pairs or
    identical differences), ``p_sign`` and the counts from :func:`sign_test` on a − b,
    ``p_permutation`` the two-sided sign-flip permutation test of the mean difference —
    exact over all 2^n flips for n ≤ ``exact_limit``, else ``draws`` seeded random flips."""
    xa, xb = _pairs(a, b)
    d = xa - xb
    n = len(d)
    t = p_t = None
    if n >= 2 and np.ptp(d) > 0:
        from scipy import stats as sps

        res = sps.ttest_rel(xa, xb)
        t, p_t = float(res.statistic), float(res.pvalue)
    sign = sign_test(d)
    return {"n": n, "mean_difference": float(d.mean()) if n else None, "t": t, "p_t": p_t,
            "p_sign": sign["p"], "positive": sign["positive"], "negative": sign["negative"],
            "p_permutation": _sign_flip_p(d, exact_limit, draws, seed)}


def unpaired_test(a: Iterable[float | None], b: Iterable[float | None], *, exact_limit: int = 200_000,
                  draws: int = 20000, seed: int = 0) -> dict[str, Any]:
    """Tests of "a and b differ" for independent groups (finite values only).

    Returns ``{n_a, n_b, mean_difference, t, p_welch, p_permutation}``: Welch's t (mean a −
    mean b) and its two-sided p (scipy ``ttest_ind(equal_var=False)``; None with fewer than
    2 values in a group or no spread in either), and the two-sided permutation test of the
    difference of means — exact over every split when there are at most ``exact_limit``
    (5 + 5 values: 252 splits, smallest p 2/252), else ``draws`` seeded random splits."""
    xa, xb = _clean(a), _clean(b)
    t = p = None
    if len(xa) >= 2 and len(xb) >= 2 and (np.ptp(xa) > 0 or np.ptp(xb) > 0):
        from scipy import stats as sps

        res = sps.ttest_ind(xa, xb, equal_var=False)
        t, p = float(res.statistic), float(res.pvalue)
    diff = float(xa.mean() - xb.mean()) if len(xa) and len(xb) else None
    return {"n_a": int(len(xa)), "n_b": int(len(xb)), "mean_difference": diff, "t": t, "p_welch": p,
            "p_permutation": _split_p(xa, xb, exact_limit, draws, seed)}


def holm(pvalues: Mapping[str, float | None] | Sequence[float | None]) -> dict[str, float | None] | list[float | None]:
    """Holm–Bonferroni step-down adjusted p-values, in the shape given (a mapping gives a dict
    with the same keys, a sequence a list in the same order).

    With the m defined p-values sorted, p₍ᵢ₎ becomes ``max_{j ≤ i} min(1, (m − j + 1) p₍ⱼ₎)``:
    never below the raw p, monotone in it, at most 1. None and NaN stay as they are and do
    not count in m. A p outside [0, 1] is a ValueError."""
    if isinstance(pvalues, Mapping):
        keys = list(pvalues)
        return dict(zip(keys, holm([pvalues[k] for k in keys])))
    raw = list(pvalues)
    defined = [i for i, p in enumerate(raw) if p is not None and not math.isnan(p)]
    for i in defined:
        if not 0 <= raw[i] <= 1:
            raise ValueError(f"a p-value must lie in [0, 1], got {raw[i]}")
    out: list[float | None] = [None if p is None else float(p) for p in raw]
    m, running = len(defined), 0.0
    for rank, i in enumerate(sorted(defined, key=lambda j: raw[j])):
        running = max(running, min(1.0, (m - rank) * float(raw[i])))
        out[i] = running
    return out


# ---------------------------------------------------------------------- censored thresholds
def threshold(x: Sequence[float], y: Sequence[float | None], level: float) -> dict[str, Any]:
    """Where a decreasing error curve y(x), measured at increasing positive x, first falls to
    ``level``: ``{value, low, high, censored}``.

    - Interior: i is the first measured point with y ≤ level (a non-monotone curve gives its
      first crossing); ``low, high = x[i−1], x[i]`` bracket the crossing, and ``value`` is
      interpolated log-log between these two neighbours only. Between them the curve is not
      measured: across a cliff (y dropping by orders of magnitude between neighbours) the value
      says little and the bracket [low, high] is the honest statement. y ≤ 0 is taken as 1e-300.
    - ``censored="left"``: already at or below level at x[0]; value and low None, high x[0].
    - ``censored="right"``: never at or below level; value and high None, low x[-1].

    Points where y is missing or non-finite are skipped. A censored threshold is never a
    number: it is an interval with one open side."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.array([np.nan if v is None else float(v) for v in y], dtype=np.float64)
    if xs.ndim != 1 or len(xs) != len(ys) or not len(xs):
        raise ValueError("threshold needs x and y of the same non-zero length")
    if not np.all(np.isfinite(xs)) or np.any(xs <= 0) or np.any(np.diff(xs) <= 0):
        raise ValueError("threshold needs finite, positive, strictly increasing x")
    if not level > 0:
        raise ValueError(f"threshold level must be positive, got {level}")
    keep = np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if not len(xs):
        raise ValueError("threshold needs at least one finite y")
    below = np.flatnonzero(ys <= level)
    if not len(below):
        return {"value": None, "low": float(xs[-1]), "high": None, "censored": "right"}
    i = int(below[0])
    if i == 0:
        return {"value": None, "low": None, "high": float(xs[0]), "censored": "left"}
    ly0, ly1, lv = math.log(ys[i - 1]), math.log(max(ys[i], 1e-300)), math.log(level)
    t = (ly0 - lv) / (ly0 - ly1)
    lx0, lx1 = math.log(xs[i - 1]), math.log(xs[i])
    return {"value": float(math.exp(lx0 + t * (lx1 - lx0))), "low": float(xs[i - 1]), "high": float(xs[i]),
            "censored": None}


def _threshold_value(t: Any) -> float | None:
    """The number of a threshold (a :func:`threshold` dict or a bare number); None if censored."""
    if isinstance(t, Mapping):
        return _num(t.get("value")) if t.get("censored") is None else None
    v = None if t is None else _num(float(t))
    return v if v is not None and v > 0 else None


def fit_exponent(d: Sequence[float], thresholds: Sequence[Any], *, level: float = 0.9, draws: int = 2000,
                 seed: int = 0, method: str = "percentile") -> dict[str, Any]:
    """The exponent of n*(d): the log-log least-squares slope of the thresholds against d,
    fitted from uncensored thresholds only (a censored one is an interval, never used).

    ``thresholds``: one per d (a :func:`threshold` dict, or a number with None/NaN for
    censored) — then low/high are None; or per seed, shape ``(seeds, len(d))`` — then a d is
    used only if every seed has a number there, the value is the slope of the per-d geometric
    mean over seeds, and low/high a bootstrap interval over seeds (:func:`bootstrap`).
    Returns ``{value, low, high, level, method, used, censored, reason}``: ``used`` and
    ``censored`` list the d values; value is None, with ``reason``, if fewer than two remain."""
    ds = [float(v) for v in d]
    rows = thresholds if len(thresholds) and not isinstance(thresholds[0], Mapping) \
        and np.ndim(thresholds[0]) == 1 else None
    table = [[_threshold_value(t) for t in row] for row in (rows if rows is not None else [thresholds])]
    if any(len(row) != len(ds) for row in table):
        raise ValueError("fit_exponent needs one threshold per d (per seed)")
    used = [j for j in range(len(ds)) if all(row[j] is not None for row in table) and ds[j] > 0]
    out: dict[str, Any] = {"value": None, "low": None, "high": None, "level": level, "method": method,
                           "used": [ds[j] for j in used],
                           "censored": [ds[j] for j in range(len(ds)) if j not in used], "reason": None}
    _check(level, method)
    if len(used) < 2:
        out["reason"] = f"{len(used)} uncensored threshold(s); an exponent needs at least 2"
        return out
    logs = np.log(np.array([[row[j] for j in used] for row in table], dtype=np.float64))
    d_used = [ds[j] for j in used]
    slope = lambda r: loglog_slope(d_used, np.exp(np.asarray(r).mean(0)))  # noqa: E731
    if rows is None:
        out["value"] = slope(logs)
        return out
    res = bootstrap(logs, slope, draws=draws, level=level, seed=seed, method=method)
    out.update(value=_num(res["value"]), low=_num(res["low"]), high=_num(res["high"]))
    return out


def interval_text(entry: Any, spec: str = ".3g") -> str:
    """``value [low, high]`` of an estimate with an interval (``{value, low, high}``, as this
    module's functions return them), each number formatted with ``spec``; the value alone when
    the interval is missing; "–" when there is no value."""
    if not isinstance(entry, dict) or not isinstance(entry.get("value"), (int, float)):
        return "–"
    low, high = entry.get("low"), entry.get("high")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        return f"{entry['value']:{spec}} [{low:{spec}}, {high:{spec}}]"
    return f"{entry['value']:{spec}}"


def mean_std_text(entry: Any, spec: str = ".3g", std_spec: str = ".2g", scale: float = 1.0) -> str:
    """``mean ± std`` of a spread entry (``{mean, std, ...}``, as :func:`summarize` gives),
    the mean formatted with ``spec`` and the std with ``std_spec``, both times ``scale``
    (100 for percentages); the mean alone when the std is missing; "–" when there is no mean."""
    if not isinstance(entry, dict) or not isinstance(entry.get("mean"), (int, float)):
        return "–"
    std = entry.get("std")
    text = f"{scale * entry['mean']:{spec}}"
    return text + (f" ± {scale * std:{std_spec}}" if isinstance(std, (int, float)) else "")


__all__ = [
    "METHODS", "bootstrap", "finite", "fit_exponent", "holm", "interval_text", "loglog_slope", "mean_ci", "mean_std",
    "mean_std_text",
    "median", "paired_difference", "paired_test", "ratio_of_means", "sign_test", "slope_of_mean",
    "summarize", "threshold", "unpaired_test",
]
