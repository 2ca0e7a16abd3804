"""The experiment driver: every learner on the same data, seeds averaged, plus the
sample-size and width sweeps. :func:`run_study` returns the ``results.json`` dict.

Fairness, as a procedure rather than a promise:

- every neural learner uses Adam with a cosine schedule, the same batch size and the
  same ``epochs`` per stage (layerwise: ``epochs`` for each layer, i.e. at least the
  joint budget per stage; layerwise+joint adds one joint stage of ``epochs``);
- each learner's learning rate is the one of ``lr_grid`` with the lowest final
  validation error on the first seed, found by the same search for every learner;
  the kernel's degree and ridge are chosen on the same validation set;
- the test set is never used for a choice.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from .. import __version__
from ..data import Dataset
from ..errors import DivergenceError
from .learners import (LEARNERS, Fit, deep_learner, fit_kernel, parameter_count, shallow_learner, shallow_width,
                       train_neural)
from .metrics import FeatureProbe
from .targets import StudyConfig, make_dataset

FORMAT = "featviz-hierarchy/1"


def subsample(data: Dataset, n: int) -> Dataset:
    """The first ``n`` training samples of ``data`` (same validation and test sets)."""
    return Dataset(data.name, data.task, data.x_train[:n], data.y_train[:n], data.x_val, data.y_val,
                   data.x_test, data.y_test, info=dict(data.info, n_train=n), teacher=data.teacher)


@dataclass(frozen=True)
class Task:
    """One independent fit of the study. ``kind``: ``joint``, ``layerwise``, ``shallow``,
    ``chain`` (layerwise at ``lr``, then the joint stage at the same rate: the
    layerwise and layerwise+joint learners together) or ``kernel``. ``n`` trains on a
    prefix of the training set; ``width`` overrides the learner width."""

    kind: str
    seed: int
    lr: float = 0.0
    n: int | None = None
    width: int | None = None
    track: bool = True

    def describe(self) -> str:
        parts = [self.kind, f"seed {self.seed}"] + ([f"lr {self.lr:g}"] if self.lr else [])
        return " ".join(parts + ([f"n {self.n}"] if self.n else []) + ([f"m {self.width}"] if self.width else []))


# Data of the seeds a worker has seen (a study builds each seed's data once per process).
_DATA_CACHE: dict[tuple[str, int], Dataset] = {}


def _data_for(config: StudyConfig, seed: int) -> Dataset:
    key = (repr(config), seed)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()  # one study at a time: keep memory flat
        _DATA_CACHE[key] = make_dataset(config, seed)
    return _DATA_CACHE[key]


def run_task(config: StudyConfig, task: Task, device: torch.device | str = "cpu") -> tuple[Fit, ...] | None:
    """Fit one task; returns its fits (two for ``chain``) without model weights, or
    ``None`` if training diverged (a diverging learning rate loses the search)."""
    full = _data_for(config, task.seed)
    data = subsample(full, task.n) if task.n else full
    probe = FeatureProbe.from_target(full.teacher, full.x_test[: config.r2_samples])
    # Smaller training sets keep the main run's number of optimizer steps: the batch shrinks with n.
    steps_per_epoch = math.ceil(config.n_train / config.batch_size)
    batch = max(1, math.ceil(len(data.x_train) / steps_per_epoch)) if task.n else config.batch_size
    width = task.width or config.width
    common = {"epochs": config.epochs, "lr": task.lr, "batch_size": batch, "device": device}
    try:
        if task.kind == "kernel":
            fits: tuple[Fit, ...] = (fit_kernel(data, degrees=config.kernel_degrees, ridges=config.kernel_ridges,
                                                landmarks=config.kernel_landmarks, seed=task.seed),)
        elif task.kind == "shallow":
            model = shallow_learner(config.d, shallow_width(config.d, width, config.depth), task.seed)
            fits = (train_neural(model, data, probe, "joint", seed=task.seed, track=task.track, **common),)
        else:
            mode = "joint" if task.kind == "joint" else "layerwise"
            model = deep_learner(config.d, width, config.depth, task.seed)
            fits = (train_neural(model, data, probe, mode, seed=task.seed, track=task.track, **common),)
            if task.kind == "chain":  # continue the layerwise network with one joint stage
                more = train_neural(copy.deepcopy(model), data, probe, "joint", seed=task.seed + 1, track=task.track,
                                    **common)
                more.curve = fits[0].curve.extend(more.curve)
                fits += (more,)
    except DivergenceError:
        return None
    for fit in fits:
        fit.model = None  # weights are not part of the results; keep what travels small
        if not (math.isfinite(fit.rel_test_mse) and math.isfinite(fit.rel_val_mse)):
            return None
    return fits


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)  # a worker process of this study: its thread count is ours to set


def run_tasks(config: StudyConfig, tasks: list[Task], *, workers: int = 1, device: torch.device | str = "cpu",
              bar: tqdm | None = None) -> dict[Task, tuple[Fit, ...] | None]:
    """Fit ``tasks``, in this process (``workers=1``) or in that many worker processes
    with one torch thread each. Every fit seeds its own generators, so the results do
    not depend on the order of completion."""
    results: dict[Task, tuple[Fit, ...] | None] = {}
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            if bar is not None:
                bar.set_description(task.describe())
            results[task] = run_task(config, task, device)
            if bar is not None:
                bar.update(1)
        return results
    import concurrent.futures
    import multiprocessing

    # spawn, not fork: forking a process whose OpenMP threads already ran can deadlock.
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_init_worker, initargs=(1,)) as pool:
        futures = {pool.submit(run_task, config, task, str(device)): task for task in tasks}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            if bar is not None:
                bar.set_description(futures[future].describe())
                bar.update(1)
    return results


def _mean_std(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False)) if len(values) > 1 else 0.0


def _columns(rows: list[list[float]]) -> list[list[float]]:
    """Per-layer lists of per-seed values."""
    return [list(col) for col in zip(*rows)] if rows else []


def _learner_summary(fits: list[Fit], epochs: int, stages: int, extra: dict[str, Any]) -> dict[str, Any]:
    mse = [f.rel_test_mse for f in fits]
    mean, std = _mean_std(mse)
    r2_cols, cca_cols = _columns([f.feature_r2 for f in fits]), _columns([f.cca for f in fits])
    return {
        "rel_test_mse": mean, "rel_test_mse_std": std, "rel_test_mse_seeds": mse,
        "rel_val_mse": _mean_std([f.rel_val_mse for f in fits])[0],
        "feature_r2": [_mean_std(c)[0] for c in r2_cols], "feature_r2_std": [_mean_std(c)[1] for c in r2_cols],
        "feature_r2_seeds": _columns(r2_cols), "cca": [_mean_std(c)[0] for c in cca_cols],
        "epochs": epochs, "stages": stages, **extra,
    }


def _correction(config: StudyConfig, fits: list[Fit]) -> dict[str, Any]:
    """Backward feature correction of each seed: layer-1 R² and error at the end of
    layerwise stage 1 / of the layerwise stages, and after the joint stage."""
    per_layer_stage = config.epochs  # the first stage ends after `epochs` records
    layerwise_end = config.epochs * config.depth
    stage1 = [f.curve.feature_r2[per_layer_stage - 1][0] for f in fits]
    before_all = [f.curve.feature_r2[layerwise_end - 1] for f in fits]
    after = [f.feature_r2[0] for f in fits]
    mse_before = [f.curve.test_rel_mse[layerwise_end - 1] for f in fits]
    mse_after = [f.rel_test_mse for f in fits]
    gains = [a - b for a, b in zip(after, stage1)]
    return {
        "layer1_r2_stage1": _mean_std(stage1)[0], "layer1_r2_after_joint": _mean_std(after)[0],
        "layer1_r2_gain": _mean_std(gains)[0], "layer1_r2_gain_std": _mean_std(gains)[1],
        "layer1_r2_gain_seeds": gains,
        "feature_r2_before_joint": [_mean_std(c)[0] for c in _columns(before_all)],
        "feature_r2_after_joint": [_mean_std(c)[0] for c in _columns([f.feature_r2 for f in fits])],
        "rel_test_mse_before_joint": _mean_std(mse_before)[0], "rel_test_mse_after_joint": _mean_std(mse_after)[0],
    }


def _sweep_summary(values: dict[Any, list[float]]) -> dict[str, list[float]]:
    keys = sorted(values)
    stats = [_mean_std(values[k]) for k in keys]
    return {"rel_test_mse": [s[0] for s in stats], "rel_test_mse_std": [s[1] for s in stats],
            "rel_test_mse_seeds": [values[k] for k in keys]}


def _best(by_lr: dict[float, Fit | None], learner: str) -> float:
    """The learning rate whose fit has the lowest final validation error."""
    finite = {lr: fit for lr, fit in by_lr.items() if fit is not None}
    if not finite:
        raise DivergenceError(f"{learner} diverged at every learning rate of the grid", "use smaller learning rates")
    return min(finite, key=lambda lr: finite[lr].rel_val_mse)


def _fits_of(results: dict[Task, tuple[Fit, ...] | None], task: Task, index: int = 0) -> Fit:
    fits = results[task]
    if fits is None:
        raise DivergenceError(f"{task.describe()} diverged at the learning rate chosen on the first seed",
                              "use a smaller learning-rate grid")
    return fits[index]


def run_study(config: StudyConfig, *, device: torch.device | str = "cpu", progress: bool = True,
              workers: int = 1, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the hierarchy study described by ``config`` and return the results dict
    (``config``, ``summary``, ``correction``, ``ratios``, ``curves``, ``lr_search``,
    ``n_sweep``, ``width_sweep``, ``findings``, ``seconds``; see docs/formats.md).

    Two rounds of independent fits: (1) every neural learner at every rate of
    ``lr_grid`` on the first seed, and the kernel on every seed; the rates are chosen on
    validation; (2) the other seeds and both sweeps at the chosen rates. ``workers`` > 1
    runs the fits of a round in that many processes. Deterministic on CPU for a given
    config: every fit draws from generators seeded by its seed, so the networks' numbers
    do not depend on ``workers`` (the kernel's may move in the 9th digit, as BLAS
    threading changes the order of its sums).
    """
    config.validate()
    start = time.perf_counter()
    say = log or (lambda _: None)
    seeds, first = config.seed_list, config.seed_list[0]
    bar = tqdm(total=0, desc="hierarchy", unit="fit", disable=not progress, leave=False)

    def execute(tasks: list[Task]) -> dict[Task, tuple[Fit, ...] | None]:
        bar.total += len(tasks)
        bar.refresh()
        return run_tasks(config, tasks, workers=workers, device=device, bar=bar)

    try:
        grid = [Task(kind, first, lr) for lr in config.lr_grid for kind in ("joint", "chain", "shallow")]
        done = execute(grid + [Task("kernel", seed) for seed in seeds])
        by_lr = {
            "joint": {lr: _first(done, Task("joint", first, lr)) for lr in config.lr_grid},
            "layerwise": {lr: _first(done, Task("chain", first, lr)) for lr in config.lr_grid},
            "layerwise+joint": {lr: _first(done, Task("chain", first, lr), 1) for lr in config.lr_grid},
            "shallow": {lr: _first(done, Task("shallow", first, lr)) for lr in config.lr_grid},
        }
        chosen = {name: _best(fits, name) for name, fits in by_lr.items()}
        lr_search = {name: {f"{lr:g}": (fit.rel_val_mse if fit else None) for lr, fit in fits.items()}
                     for name, fits in by_lr.items()}
        say("learning rates chosen on validation: " + ", ".join(f"{k} {v:g}" for k, v in chosen.items()))

        plan = _second_round(config, chosen)
        done.update(execute([task for task in plan if task not in done]))
    finally:
        bar.close()

    def main_fit(name: str, seed: int) -> Fit:
        return _fits_of(done, *_main_task(name, seed, chosen))

    fits = {name: [main_fit(name, seed) for seed in seeds] for name in LEARNERS}
    n_sweep = _n_sweep(config, done, chosen)
    width_sweep = _width_sweep(config, done, chosen)
    return _assemble(config, fits, chosen, lr_search, n_sweep, width_sweep, time.perf_counter() - start)


def _first(done: dict[Task, tuple[Fit, ...] | None], task: Task, index: int = 0) -> Fit | None:
    fits = done[task]
    return None if fits is None else fits[index]


def _main_task(name: str, seed: int, chosen: dict[str, float], n: int | None = None) -> tuple[Task, int]:
    """The task (and which of its fits) that gives learner ``name`` on ``seed``."""
    track = n is None
    if name == "kernel":
        return Task("kernel", seed, n=n, track=track), 0
    if name == "layerwise+joint":
        return Task("chain", seed, chosen[name], n=n, track=track), 1
    if name == "layerwise":  # a chain at this rate holds the layerwise fit too
        return Task("chain", seed, chosen[name], n=n, track=track), 0
    return Task(name, seed, chosen[name], n=n, track=track), 0


def _sweep_seeds(config: StudyConfig) -> list[int]:
    return config.seed_list[: max(1, min(config.sweep_seeds, config.seeds))]


def _sweep_sizes(config: StudyConfig) -> list[int]:
    return sorted({n for n in config.n_sweep if n < config.n_train} | {config.n_train})


def _sweep_widths(config: StudyConfig) -> list[int]:
    return sorted({max(1, round(mult * config.teacher_units)) for mult in config.width_sweep})


def _second_round(config: StudyConfig, chosen: dict[str, float]) -> list[Task]:
    """The fits that need the chosen rates: the other seeds, the n-sweep and the width sweep."""
    plan = [_main_task(name, seed, chosen)[0] for seed in config.seed_list[1:] for name in LEARNERS]
    for seed in _sweep_seeds(config):
        plan += [_main_task(name, seed, chosen, n)[0] for n in _sweep_sizes(config)[:-1]
                 for name in config.sweep_learners]
        plan += [Task("joint", seed, chosen["joint"], width=m, track=False) for m in _sweep_widths(config)
                 if m != config.width]
    return list(dict.fromkeys(plan))  # a chain serves layerwise and layerwise+joint alike


def _n_sweep(config: StudyConfig, done: dict, chosen: dict[str, float]) -> dict[str, Any]:
    """Test error vs training-set size for ``config.sweep_learners``: each smaller set is
    a prefix of the full one, trained with the same number of optimizer steps."""
    seeds, sizes = _sweep_seeds(config), _sweep_sizes(config)
    values = {name: {n: [_fits_of(done, *_main_task(name, seed, chosen, None if n == config.n_train else n))
                         .rel_test_mse for seed in seeds] for n in sizes} for name in config.sweep_learners}
    return {"n": sizes, "seeds": seeds, **{name: _sweep_summary(v) for name, v in values.items()}}


def _width_sweep(config: StudyConfig, done: dict, chosen: dict[str, float]) -> dict[str, Any]:
    """Test error and layer-1 R² of the jointly trained deep learner vs its width
    m = multiple × k (Gaussian init, the joint learner's learning rate)."""
    seeds, widths = _sweep_seeds(config), _sweep_widths(config)

    def fit(seed: int, m: int) -> Fit:
        if m == config.width:
            return _fits_of(done, *_main_task("joint", seed, chosen))
        return _fits_of(done, Task("joint", seed, chosen["joint"], width=m, track=False))

    mse = {m: [fit(seed, m).rel_test_mse for seed in seeds] for m in widths}
    out = {"width": widths, "seeds": seeds, "learner": "joint", **_sweep_summary(mse)}
    out["layer1_r2"] = [_mean_std([fit(seed, m).feature_r2[0] for seed in seeds])[0] for m in widths]
    out["params"] = [parameter_count(deep_learner(config.d, m, config.depth, 0)) for m in widths]
    return out


def _assemble(config: StudyConfig, fits: dict[str, list[Fit]], chosen: dict[str, float], lr_search: dict,
              n_sweep: dict, width_sweep: dict, seconds: float) -> dict[str, Any]:
    E, L = config.epochs, config.depth
    sw = shallow_width(config.d, config.width, L)
    extras = {
        "joint": {"lr": chosen["joint"], "params": parameter_count(deep_learner(config.d, config.width, L, 0))},
        "layerwise": {"lr": chosen["layerwise"]},
        "layerwise+joint": {"lr": chosen["layerwise+joint"]},
        "shallow": {"lr": chosen["shallow"], "width": sw,
                    "params": parameter_count(shallow_learner(config.d, sw, 0))},
        "kernel": {"choice": [f.info for f in fits["kernel"]]},
    }
    extras["layerwise"]["params"] = extras["layerwise+joint"]["params"] = extras["joint"]["params"]
    stages = {"joint": 1, "layerwise": L, "layerwise+joint": L + 1, "shallow": 1, "kernel": 0}
    summary = {name: _learner_summary(fits[name], E if name != "kernel" else 0, stages[name], extras[name])
               for name in LEARNERS}
    joint = summary["joint"]["rel_test_mse"]
    ratios = {f"{name}/joint": summary[name]["rel_test_mse"] / max(joint, 1e-12)
              for name in ("layerwise", "layerwise+joint", "shallow", "kernel")}
    correction = _correction(config, fits["layerwise+joint"])
    curves = {name: [{"seed": seed, **fit.curve.to_dict()} for seed, fit in zip(config.seed_list, fits[name])]
              for name in LEARNERS if name != "kernel"}
    results = {
        "format": FORMAT, "featviz": __version__,
        "config": config.to_dict() | {"seeds": config.seed_list, "learner_depth": L, "connect": "skip2",
                                      "optimizer": "adam", "schedule": "cosine", "shallow_width": sw,
                                      "lr": chosen, "r2": "held-out: fit on half the probe set, scored on the other"},
        "summary": summary, "ratios": ratios, "correction": correction, "lr_search": lr_search,
        "n_sweep": n_sweep, "width_sweep": width_sweep, "curves": curves,
    }
    results["findings"] = findings(results)
    results["seconds"] = round(seconds, 2)
    return results


def findings(results: dict[str, Any]) -> list[str]:
    """One measured sentence per claim of the study (printed by the CLI)."""
    s, r, c = results["summary"], results["ratios"], results["correction"]
    lines = [
        f"joint vs layerwise: relative test MSE {s['joint']['rel_test_mse']:.4g} vs "
        f"{s['layerwise']['rel_test_mse']:.4g} (layerwise/joint = {r['layerwise/joint']:.2f}x); layer-1 feature R² "
        f"{s['joint']['feature_r2'][0]:.3f} vs {s['layerwise']['feature_r2'][0]:.3f}",
        f"backward feature correction: layer-1 R² {c['layer1_r2_stage1']:.3f} after layerwise stage 1 -> "
        f"{c['layer1_r2_after_joint']:.3f} after the joint stage ({c['layer1_r2_gain']:+.3f}); relative test MSE "
        f"{c['rel_test_mse_before_joint']:.4g} -> {c['rel_test_mse_after_joint']:.4g}",
        f"depth vs shallow and kernels: shallow/joint = {r['shallow/joint']:.1f}x, kernel/joint = "
        f"{r['kernel/joint']:.1f}x",
    ]
    ws = results.get("width_sweep") or {}
    if ws.get("width"):
        pairs = ", ".join(f"m={m}: {v:.4g}" for m, v in zip(ws["width"], ws["rel_test_mse"]))
        lines.append(f"width (joint learner, relative test MSE): {pairs}")
    ns = results.get("n_sweep") or {}
    if ns.get("n"):
        for name in (k for k in ns if k not in ("n", "seeds")):
            pairs = ", ".join(f"n={n}: {v:.4g}" for n, v in zip(ns["n"], ns[name]["rel_test_mse"]))
            lines.append(f"samples ({name}): {pairs}")
    return lines
