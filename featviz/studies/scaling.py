"""Sample complexity: test error against the number of samples n and the input dimension d,
for the deep learner and for a kernel that *can* express the target.

The target is a 2-layer quadratic teacher (a degree-4 polynomial of x), so the polynomial
kernel of degree 4, solved exactly through its C(d+4, 4) monomial features, has no
approximation error: its error falls to its ridge-limited floor once n passes the number of
monomials, ~d⁴. The deep learner (dense, trained jointly) gets the same training sets, a
fixed batch size and a fixed number of optimizer steps at every n. For every learner and d
the seed-mean error curve gives n*(d), the n at which it reaches ``target_error``
(log-log interpolated), and the slope of log n* against log d is the fitted d-exponent,
with a bootstrap interval over seeds. Whatever comes out is reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..errors import DivergenceError, SpecError
from ..hierarchy.targets import StudyConfig
from ..stats import bootstrap, fit_exponent, interval_text, loglog_slope, mean_std, slope_of_mean, threshold
from .common import primary_endpoint, write_results
from .hierarchy import Task, choose_lr, run_jobs

FORMAT = "featviz-hierarchy-scaling/1"
LEARNERS = ("deep", "kernel")
# up to the first d whose C(d+4, 4) = 17,550 monomials pass the largest n: there the exact kernel is
# under-determined even at n = 16,000 (solved in its 16,000 × 16,000 dual: ~7 GiB, ~3 CPU-minutes a fit)
DIMS = (4, 6, 8, 12, 16, 23)
SIZES = (250, 1000, 4000, 16000)
NUMERICAL_ZERO = 1e-8


def scaling_config(**overrides: Any) -> StudyConfig:
    """The base setting: a 2-layer teacher (k=2, α=0.3, skip2), a dense deep learner of width
    16, batch 256, 1,000 optimizer steps at every n, learning rate 0.02 (``lr_grid``: more
    values are chosen on validation); the exact kernel's ridge from a grid on the same
    validation set."""
    base = StudyConfig(target="teacher", d=DIMS[0], k=2, depth=2, alpha=0.3, width=16, n_train=max(SIZES),
                       n_val=500, n_test=1000, r2_samples=500, align_samples=1000, seeds=3, epochs=1000,
                       batch_size=256, lr_grid=(2e-2,), kernel_ridges=(1e-8, 1e-6, 1e-4, 1e-2),
                       extra={"target_error": 0.01})
    config = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    config.validate()
    return config


def _at(config: StudyConfig, d: int, n: int) -> StudyConfig:
    """The setting at dimension d and n samples: ``config.epochs`` is the number of optimizer
    steps, turned into the epochs that make it at this n and batch size."""
    steps_per_epoch = math.ceil(n / config.batch_size)
    return replace(config, d=d, n_train=n, epochs=max(1, round(config.epochs / steps_per_epoch)))


def run_scaling(config: StudyConfig, dims: tuple[int, ...] = DIMS, sizes: tuple[int, ...] = SIZES, *,
                floor_factor: int = 4, workers: int = 1, device: torch.device | str = "cpu", progress: bool = True,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the sweep over ``dims`` × ``sizes`` × seeds and return the ``results.json`` dict.
    The kernel's floor is its error at ``floor_factor`` × the largest n, at the smallest d."""
    dims, sizes = tuple(sorted(set(dims))), tuple(sorted(set(sizes)))
    if len(dims) < 2 or len(sizes) < 2 or min(dims) < 1 or min(sizes) < 2:
        raise SpecError("scaling needs at least two dimensions >= 1 and two sample sizes >= 2")
    if config.target != "teacher":
        raise SpecError("scaling runs on the teacher target")
    start = time.perf_counter()
    seeds = config.seed_list
    jobs: list[tuple[StudyConfig, Task]] = []
    for d in dims:
        for n in sizes:
            at = _at(config, d, n)
            jobs += [(at, Task("exact-kernel", s, track=False)) for s in seeds]
            jobs += [(at, Task("joint", s, lr, track=False)) for s in seeds for lr in config.lr_grid]
    floor_n = floor_factor * max(sizes)
    jobs += [(_at(config, dims[0], floor_n), Task("exact-kernel", s, track=False)) for s in seeds]
    bar = tqdm(total=len(jobs), desc="scaling", unit="fit", disable=not progress, leave=False)
    try:
        out = run_jobs(jobs, workers=workers, device=device, bar=bar)
    finally:
        bar.close()
    fits = {(c.d, c.n_train, t.kind, t.seed, t.lr): f for (c, t), f in zip(jobs, out)}
    errors: dict[str, np.ndarray] = {name: np.zeros((len(seeds), len(dims), len(sizes))) for name in LEARNERS}
    chosen: dict[str, list] = {}
    for i, d in enumerate(dims):
        for j, n in enumerate(sizes):
            for k, s in enumerate(seeds):
                kernel = fits[(d, n, "exact-kernel", s, 0.0)]
                lr = choose_lr({lr: fits[(d, n, "joint", s, lr)] for lr in config.lr_grid}, f"d={d} n={n} seed {s}")
                deep = fits[(d, n, "joint", s, lr)]
                if kernel is None or deep is None:
                    raise DivergenceError(f"a fit at d={d}, n={n} diverged", "use smaller learning rates")
                errors["kernel"][k, i, j], errors["deep"][k, i, j] = kernel.rel_test_mse, deep.rel_test_mse
                chosen.setdefault(f"{d}", []).append(lr)
    floor = [fits[(dims[0], floor_n, "exact-kernel", s, 0.0)] for s in seeds]
    floor_err = mean_std([f.rel_test_mse for f in floor])[0]
    if log:
        log(f"kernel floor at d={dims[0]}, n={floor_n}: {floor_err:.3g}")
    return summarize_scaling(config, dims, sizes, errors, chosen, floor_n, floor_err,
                             [f.info for f in floor], time.perf_counter() - start)


def summarize_scaling(config: StudyConfig, dims: tuple[int, ...], sizes: tuple[int, ...],
                      errors: dict[str, np.ndarray], chosen: dict, floor_n: int, floor_err: float,
                      floor_info: list, seconds: float) -> dict[str, Any]:
    """The results dict from the (seeds, dims, sizes) error arrays of each learner."""
    level = float(config.extra.get("target_error", 0.01))

    def thresholds(curves: np.ndarray) -> list[dict[str, Any]]:  # (dims, sizes) -> n* per d, censored or not
        return [threshold(sizes, curves[i], level) for i in range(len(dims))]

    per_learner: dict[str, Any] = {}
    exponents, n_exponents, per_seed = {}, {}, {}
    for name, arr in errors.items():
        at_mean = thresholds(arr.mean(0))
        per_seed[name] = [thresholds(rows) for rows in arr]
        per_learner[name] = {
            "rel_test_mse": arr.mean(0).tolist(),
            "rel_test_mse_std": (arr.std(0, ddof=1) if len(arr) > 1 else np.zeros(arr.shape[1:])).tolist(),
            "rel_test_mse_seeds": arr.tolist(), "n_star": [t["value"] for t in at_mean], "n_star_interval": at_mean,
        }
        exponents[name] = fit_exponent(dims, per_seed[name])
        n_exponents[name] = {f"{d}": bootstrap(arr[:, i, :], slope_of_mean(sizes)) for i, d in enumerate(dims)}
    kernel_last = float(errors["kernel"][:, 0, -1].mean())
    ratio = kernel_last / max(floor_err, 1e-300)
    # an error below 1e-8 is zero to float64 least squares: the ratio of two such numbers is rounding noise
    reached = bool(ratio <= 1.5 or kernel_last < NUMERICAL_ZERO)
    results = {
        "format": FORMAT, "featviz": __version__,
        "config": config.to_dict() | {"seeds": config.seed_list, "steps": config.epochs,
                                      "kernel": f"exact polynomial kernel of degree {2 ** config.depth} "
                                                "(explicit monomial features)",
                                      "deep": f"dense quadratic net, width {config.width}, joint training"},
        "d": list(dims), "n": list(sizes), "target_error": level,
        "learners": per_learner, "deep_lr": chosen,
        "exponents": exponents, "n_exponents": n_exponents,
        "primary": _primary(exponent_gap(dims, per_seed["kernel"], per_seed["deep"])),
        "kernel_features": kernel_features(dims, sizes, 2 ** config.depth),
        "kernel_floor": {"d": dims[0], "n": floor_n, "rel_test_mse": floor_err,
                         "at_largest_n": kernel_last, "ratio": ratio, "reached": reached,
                         "rule": f"error at the largest n <= 1.5 x the floor, or < {NUMERICAL_ZERO:g} (exact fit)",
                         "ridge": [i.get("ridge") for i in floor_info]},
    }
    e, kf = results["exponents"], results["kernel_floor"]
    results["findings"] = [
        f"n* (relative test MSE {level:g}) vs d: fitted exponent deep {_fmt(e['deep'])}, kernel {_fmt(e['kernel'])}",
        "n* per d: " + "; ".join(f"{name} " + ", ".join(_n_text(d, v)
                                                     for d, v in zip(dims, per_learner[name]["n_star_interval"]))
                                 for name in LEARNERS),
        "exact-kernel regime: " + results["kernel_features"]["note"],
        f"kernel sanity at d={kf['d']}: error {kf['at_largest_n']:.3g} at n={sizes[-1]} vs floor "
        f"{kf['rel_test_mse']:.3g} at n={floor_n} (ratio {kf['ratio']:.2f}; floor "
        f"{'reached' if kf['reached'] else 'NOT reached'})",
    ]
    results["seconds"] = round(seconds, 2)
    return results


def kernel_features(dims: tuple[int, ...], sizes: tuple[int, ...], degree: int = 4) -> dict[str, Any]:
    """How far the exact kernel's regime reaches: its C(d + p, p) monomial features per d, and the
    smallest d whose feature count passes the largest n (below it the exact kernel is
    over-determined at the largest n), with what its largest matrix costs there (the fit is
    solved in the smaller of its primal and dual: min(n, F)² floats, ~min(n, F)³/3 flops a ridge)."""
    counts = {f"{d}": math.comb(d + degree, degree) for d in dims}
    d_past = next(d for d in range(1, 10_000) if math.comb(d + degree, degree) > max(sizes))
    features = math.comb(d_past + degree, degree)
    side = min(features, max(sizes))
    covered = max(counts.values()) > max(sizes)
    return {"degree": degree, "features": counts, "largest_n": max(sizes), "covered": covered,
            "d_past_largest_n": d_past, "features_there": features,
            "gram_gib_there": round(side ** 2 * 8 / 2 ** 30, 2),
            "note": f"the largest d passes the largest n (C({max(dims)}+{degree},{degree}) = {max(counts.values())} "
                    f"monomials > n = {max(sizes)})" if covered else
                    (f"the measured d reach C(d+{degree},{degree}) = {max(counts.values())} monomials, below the "
                     f"largest n = {max(sizes)}; passing it needs d = {d_past} ({features} features: a "
                     f"{side ** 2 * 8 / 2 ** 30:.1f} GiB float64 Gram matrix and a ~{side ** 3 / 3:.1e}-flop "
                     "Cholesky solve per ridge and seed)")}


def _primary(gap: dict[str, Any]) -> dict[str, Any]:
    return primary_endpoint("d-exponent of n*: kernel minus deep learner (paired over seeds)", gap) | {
        "used": gap["used"]}


def exponent_gap(dims: tuple[int, ...], kernel: list[list[dict]], deep: list[list[dict]], *,
                 level: float = 0.9, seed: int = 0) -> dict[str, Any]:
    """The kernel's d-exponent of n* minus the deep learner's, fitted (as
    :func:`featviz.stats.fit_exponent` does) on the d where every seed of both learners has
    an uncensored n*, with a bootstrap interval resampling the seeds jointly (the two
    learners see the same teacher and data on a seed)."""
    both = [j for j in range(len(dims)) if all(row[j]["censored"] is None for row in kernel + deep)]
    out: dict[str, Any] = {"value": None, "low": None, "high": None, "level": level,
                           "used": [dims[j] for j in both]}
    if len(both) < 2:
        out["reason"] = f"{len(both)} d with an uncensored n* for both learners; a gap needs at least 2"
        return out
    logs = np.log([[[row[j]["value"] for j in both] for row in learner] for learner in (kernel, deep)])
    d_used = [dims[j] for j in both]

    def gap(rows: np.ndarray) -> float:  # rows: (seeds, 2, d) log n*
        mean = np.exp(np.asarray(rows).mean(0))
        return loglog_slope(d_used, mean[0]) - loglog_slope(d_used, mean[1])

    res = bootstrap(np.transpose(logs, (1, 0, 2)), gap, level=level, seed=seed)
    out.update({k: (float(res[k]) if np.isfinite(res[k]) else None) for k in ("value", "low", "high")})
    return out


def _n_text(d: int, t: dict[str, Any]) -> str:
    """n* as text: a number with the measured sizes around it, or a bound where censored."""
    if t["censored"] == "right":
        return f"d={d}: >{t['low']:.0f}"
    if t["censored"] == "left":
        return f"d={d}: <={t['high']:.0f}"
    return f"d={d}: {t['value']:.0f} (in [{t['low']:.0f}, {t['high']:.0f}])"


def _fmt(s: dict[str, Any]) -> str:
    if s.get("value") is None:
        return f"not fitted ({s.get('reason') or 'no value'})"
    return interval_text(s, ".2f")


# the surface every study module has (docs/studies.md)
Config = StudyConfig
PRESETS: Mapping[str, StudyConfig] = MappingProxyType({"default": scaling_config()})
run = run_scaling


def write(results: dict[str, Any], out: str | Path) -> list[str]:
    """Write ``results.json`` and the figures into folder ``out`` atomically; returns the file names."""
    from ..hierarchy.plots import write_scaling_plots

    return write_results(results, out, write_scaling_plots)
