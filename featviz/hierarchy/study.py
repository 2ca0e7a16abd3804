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
from pathlib import Path
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


@dataclass
class _Runner:
    """Fits learners for one study: holds the config, device and progress bar."""

    config: StudyConfig
    device: torch.device | str
    bar: tqdm

    def neural(self, learner: str, data: Dataset, probe: FeatureProbe, seed: int, lr: float,
               width: int | None = None, track: bool = True, batch_size: int | None = None) -> Fit:
        """Fit ``joint``, ``layerwise`` or ``shallow`` from a fresh init drawn from ``seed``."""
        cfg = self.config
        width = width or cfg.width
        self.bar.set_description(f"{learner} seed {seed} lr {lr:g} n {len(data.x_train)} m {width}")
        if learner == "shallow":
            model = shallow_learner(cfg.d, shallow_width(cfg.d, width, cfg.depth), seed)
        else:
            model = deep_learner(cfg.d, width, cfg.depth, seed)
        mode = "layerwise" if learner == "layerwise" else "joint"
        fit = train_neural(model, data, probe, mode, epochs=cfg.epochs, lr=lr, seed=seed, device=self.device,
                           batch_size=batch_size or cfg.batch_size, track=track)
        self.bar.update(1)
        return fit

    def correction(self, layerwise: Fit, data: Dataset, probe: FeatureProbe, seed: int, lr: float,
                   batch_size: int | None = None) -> Fit:
        """Continue a layerwise fit with one joint stage: the layerwise+joint learner."""
        self.bar.set_description(f"layerwise+joint seed {seed} lr {lr:g}")
        model = copy.deepcopy(layerwise.model)  # the layerwise fit keeps its own weights
        fit = train_neural(model, data, probe, "joint", epochs=self.config.epochs, lr=lr, seed=seed + 1,
                           device=self.device, batch_size=batch_size or self.config.batch_size)
        fit.curve = layerwise.curve.extend(fit.curve)
        self.bar.update(1)
        return fit

    def kernel(self, data: Dataset, seed: int) -> Fit:
        cfg = self.config
        self.bar.set_description(f"kernel seed {seed} n {len(data.x_train)}")
        fit = fit_kernel(data, degrees=cfg.kernel_degrees, ridges=cfg.kernel_ridges, landmarks=cfg.kernel_landmarks,
                         seed=seed)
        self.bar.update(1)
        return fit


def _mean_std(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std(unbiased=False)) if len(values) > 1 else 0.0


def _columns(rows: list[list[float]]) -> list[list[float]]:
    """Per-layer lists of per-seed values."""
    return [list(col) for col in zip(*rows)] if rows else []


def _require_finite(fit: Fit, learner: str, seed: int, lr: float) -> Fit:
    if not math.isfinite(fit.rel_test_mse) or not math.isfinite(fit.rel_val_mse):
        raise DivergenceError(f"{learner} (seed {seed}, lr {lr:g}) ended with a non-finite error",
                              "use a smaller learning-rate grid")
    return fit


def _search_lr(runner: _Runner, data: Dataset, probe: FeatureProbe, seed: int
               ) -> tuple[dict[str, float], dict[str, dict[str, float | None]], dict[str, Fit]]:
    """Fit every neural learner at every learning rate of the grid on ``seed`` and pick,
    per learner, the rate with the lowest final validation error. Returns the chosen
    rates, the validation table and the fits at the chosen rates (the seed's results)."""
    fits: dict[str, dict[float, Fit]] = {name: {} for name in ("joint", "layerwise", "layerwise+joint", "shallow")}
    for lr in runner.config.lr_grid:
        for learner in ("joint", "layerwise", "shallow"):
            try:
                fits[learner][lr] = _require_finite(runner.neural(learner, data, probe, seed, lr), learner, seed, lr)
            except DivergenceError:  # a diverging rate simply loses the search
                runner.bar.update(2 if learner == "layerwise" else 1)
                continue
            if learner == "layerwise":
                try:
                    fit = runner.correction(fits["layerwise"][lr], data, probe, seed, lr)
                    fits["layerwise+joint"][lr] = _require_finite(fit, "layerwise+joint", seed, lr)
                except DivergenceError:
                    continue
    chosen, table, best = {}, {}, {}
    for learner, by_lr in fits.items():
        table[learner] = {f"{lr:g}": (by_lr[lr].rel_val_mse if lr in by_lr else None) for lr in runner.config.lr_grid}
        if not by_lr:
            raise DivergenceError(f"{learner} diverged at every learning rate of the grid",
                                  "use smaller learning rates")
        lr = min(by_lr, key=lambda r: by_lr[r].rel_val_mse)
        chosen[learner], best[learner] = lr, by_lr[lr]
    return chosen, table, best


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


def _plan_size(config: StudyConfig) -> int:
    """How many fits the study makes (for the progress bar)."""
    grid = len(config.lr_grid)
    main = grid * 4 + (config.seeds - 1) * 4 + config.seeds  # joint, lw, lw+joint, shallow; kernel
    sweep_seeds = min(config.sweep_seeds, config.seeds)
    n_fits = len([n for n in config.n_sweep if n < config.n_train]) * len(config.sweep_learners) * sweep_seeds
    width_fits = len(config.width_sweep) * sweep_seeds
    return main + n_fits + width_fits


def run_study(config: StudyConfig, *, device: torch.device | str = "cpu", progress: bool = True,
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the hierarchy study described by ``config`` and return the results dict
    (``config``, ``summary``, ``correction``, ``ratios``, ``curves``, ``lr_search``,
    ``n_sweep``, ``width_sweep``, ``findings``, ``seconds``; see CONTRACT.md).

    Deterministic on CPU for a given config: data, inits and minibatch orders are all
    drawn from generators seeded by the config's seeds.
    """
    config.validate()
    start = time.perf_counter()
    say = log or (lambda _: None)
    bar = tqdm(total=_plan_size(config), desc="hierarchy", unit="fit", disable=not progress, leave=False)
    runner = _Runner(config, device, bar)
    seeds = config.seed_list
    fits: dict[str, list[Fit]] = {name: [] for name in LEARNERS}
    datasets: dict[int, Dataset] = {}
    lr_search: dict[str, Any] = {}
    chosen: dict[str, float] = {}
    try:
        for i, seed in enumerate(seeds):
            data = datasets[seed] = make_dataset(config, seed)
            probe = FeatureProbe.from_target(data.teacher, data.x_test[: config.r2_samples])
            if i == 0:
                chosen, lr_search, seed_fits = _search_lr(runner, data, probe, seed)
                say("learning rates chosen on validation: " + ", ".join(f"{k} {v:g}" for k, v in chosen.items()))
            else:
                seed_fits = {name: runner.neural(name, data, probe, seed, chosen[name])
                             for name in ("joint", "layerwise", "shallow")}
                base = seed_fits["layerwise"]
                if chosen["layerwise+joint"] != chosen["layerwise"]:  # its own layerwise run first
                    bar.total += 1
                    base = runner.neural("layerwise", data, probe, seed, chosen["layerwise+joint"])
                seed_fits["layerwise+joint"] = runner.correction(base, data, probe, seed, chosen["layerwise+joint"])
            seed_fits["kernel"] = runner.kernel(data, seed)
            for name, fit in seed_fits.items():
                fits[name].append(_require_finite(fit, name, seed, chosen.get(name, 0.0)))
                fit.model = None  # keep memory flat; weights are not part of the results
        n_sweep = _run_n_sweep(runner, config, datasets, fits, chosen)
        width_sweep = _run_width_sweep(runner, config, datasets, fits, chosen)
    finally:
        bar.close()
    return _assemble(config, fits, chosen, lr_search, n_sweep, width_sweep, time.perf_counter() - start)


def _run_n_sweep(runner: _Runner, config: StudyConfig, datasets: dict[int, Dataset], fits: dict[str, list[Fit]],
                 chosen: dict[str, float]) -> dict[str, Any]:
    """Test error vs training-set size for ``config.sweep_learners``. Each smaller set
    is a prefix of the full one; the batch shrinks with n so every run takes the same
    number of optimizer steps as the main run (same learning rate)."""
    seeds = config.seed_list[: max(1, min(config.sweep_seeds, config.seeds))]
    sizes = sorted({n for n in config.n_sweep if n < config.n_train} | {config.n_train})
    steps_per_epoch = math.ceil(config.n_train / config.batch_size)
    values: dict[str, dict[int, list[float]]] = {name: {n: [] for n in sizes} for name in config.sweep_learners}
    for name in config.sweep_learners:
        values[name][config.n_train] = [fits[name][i].rel_test_mse for i in range(len(seeds))]
    for i, seed in enumerate(seeds):
        full = datasets[seed]
        probe = FeatureProbe.from_target(full.teacher, full.x_test[: config.r2_samples])
        for n in sizes[:-1]:
            data = subsample(full, n)
            batch = max(1, math.ceil(n / steps_per_epoch))
            for name in config.sweep_learners:
                if name == "kernel":
                    fit = runner.kernel(data, seed)
                elif name == "layerwise+joint":
                    fit = runner.correction(runner.neural("layerwise", data, probe, seed, chosen[name], track=False,
                                                          batch_size=batch), data, probe, seed, chosen[name], batch)
                else:
                    fit = runner.neural(name, data, probe, seed, chosen[name], track=False, batch_size=batch)
                values[name][n].append(_require_finite(fit, name, seed, chosen.get(name, 0.0)).rel_test_mse)
    return {"n": sizes, "seeds": seeds, **{name: _sweep_summary(v) for name, v in values.items()}}


def _run_width_sweep(runner: _Runner, config: StudyConfig, datasets: dict[int, Dataset],
                     fits: dict[str, list[Fit]], chosen: dict[str, float]) -> dict[str, Any]:
    """Test error and layer-1 R² of the jointly trained deep learner vs its width
    m = multiple × k (Gaussian init, the joint learner's learning rate)."""
    seeds = config.seed_list[: max(1, min(config.sweep_seeds, config.seeds))]
    widths = sorted({max(1, round(mult * config.teacher_units)) for mult in config.width_sweep})
    mse: dict[int, list[float]] = {m: [] for m in widths}
    r2: dict[int, list[float]] = {m: [] for m in widths}
    for seed in seeds:
        data = datasets[seed]
        probe = FeatureProbe.from_target(data.teacher, data.x_test[: config.r2_samples])
        for m in widths:
            fit = _require_finite(runner.neural("joint", data, probe, seed, chosen["joint"], width=m, track=False),
                                  "joint", seed, chosen["joint"])
            mse[m].append(fit.rel_test_mse)
            r2[m].append(fit.feature_r2[0])
    out = {"width": widths, "seeds": seeds, "learner": "joint", **_sweep_summary(mse)}
    out["layer1_r2"] = [_mean_std(r2[m])[0] for m in widths]
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
