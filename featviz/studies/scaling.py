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
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..errors import DivergenceError, SpecError
from ..hierarchy.stats import bootstrap, crossing, mean_std, slope_of_mean
from ..stats import fit_exponent, threshold
from .hierarchy import Task, choose_lr, run_jobs
from ..hierarchy.targets import StudyConfig

FORMAT = "featviz-hierarchy-scaling/1"
LEARNERS = ("deep", "kernel")
DIMS = (4, 6, 8, 12)
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

    def n_star(rows: np.ndarray) -> list[float]:  # rows: (seeds, dims, sizes) -> n* per d of the seed mean
        mean = rows.mean(0)
        return [crossing(sizes, mean[i], level) for i in range(len(dims))]

    per_learner: dict[str, Any] = {}
    exponents, n_exponents = {}, {}
    for name, arr in errors.items():
        # n* as an interval: bracketed by the measured sizes, open-ended where censored
        intervals = [threshold(sizes, arr.mean(0)[i], level) for i in range(len(dims))]
        per_seed = [[threshold(sizes, arr[k, i], level) for i in range(len(dims))] for k in range(len(arr))]
        per_learner[name] = {
            "rel_test_mse": arr.mean(0).tolist(), "rel_test_mse_std": arr.std(0).tolist(),
            "rel_test_mse_seeds": arr.tolist(), "n_star": n_star(arr), "n_star_interval": intervals,
        }
        # the d-exponent from uncensored thresholds only (a d is used where every seed crosses
        # inside the measured sizes); no number when fewer than two d remain
        exponents[name] = {**fit_exponent(dims, per_seed, seed=config.seed), "draws": 2000}
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
        "kernel_features": kernel_features(dims, sizes, 2 ** config.depth),
        "kernel_floor": {"d": dims[0], "n": floor_n, "rel_test_mse": floor_err,
                         "at_largest_n": kernel_last, "ratio": ratio, "reached": reached,
                         "rule": f"error at the largest n <= 1.5 x the floor, or < {NUMERICAL_ZERO:g} (exact fit)",
                         "ridge": [i.get("ridge") for i in floor_info]},
    }
    e, kf = results["exponents"], results["kernel_floor"]
    results["findings"] = [
        f"n* (relative test MSE {level:g}) vs d, exponent from uncensored n* only: deep {_fmt_exp(e['deep'])}, "
        f"kernel {_fmt_exp(e['kernel'])}",
        "n* per d: " + "; ".join(f"{name} " + ", ".join(_n_text(d, v, sizes)
                                                     for d, v in zip(dims, per_learner[name]["n_star"]))
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
    smallest d whose feature count passes the largest n (where the exact kernel is
    under-determined at every measured n), with the memory its Gram matrix would take."""
    counts = {f"{d}": math.comb(d + degree, degree) for d in dims}
    d_past = next(d for d in range(1, 10_000) if math.comb(d + degree, degree) > max(sizes))
    features = math.comb(d_past + degree, degree)
    return {"degree": degree, "features": counts, "largest_n": max(sizes),
            "covered": max(counts.values()) > max(sizes),
            "d_past_largest_n": d_past, "features_there": features,
            "gram_gib_there": round(features ** 2 * 8 / 2 ** 30, 2),
            "note": (f"the measured d reach C(d+{degree},{degree}) = {max(counts.values())} monomials, below the "
                     f"largest n = {max(sizes)}; passing it needs d = {d_past} ({features} features: a "
                     f"{features ** 2 * 8 / 2 ** 30:.1f} GiB float64 Gram matrix and a ~{features ** 3 / 3:.1e}-flop "
                     "solve per ridge and seed)") if max(counts.values()) <= max(sizes) else
                    "the largest d passes the largest n"}


def _n_text(d: int, n_star: float, sizes: tuple[int, ...]) -> str:
    """n* as text; at the smallest n it is only a bound (the curve started below the level)."""
    if not np.isfinite(n_star):
        return f"d={d}: >{sizes[-1]}"
    return f"d={d}: <={n_star:.0f}" if n_star <= sizes[0] else f"d={d}: {n_star:.0f}"


def _fmt_exp(e: dict[str, Any]) -> str:
    if e.get("value") is None:
        return f"none ({e.get('reason')}; censored at d = {e.get('censored')})"
    interval = f" [{e['low']:.2f}, {e['high']:.2f}]" if e.get("low") is not None else ""
    return f"{e['value']:.2f}{interval} from d = {e['used']} (censored: {e['censored']})"


def _fmt(s: dict[str, float]) -> str:
    return f"{s['value']:.2f} [{s['low']:.2f}, {s['high']:.2f}]"
