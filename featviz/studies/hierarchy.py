"""The synthetic hierarchy study (``featviz hierarchy run``): joint, layerwise and
layerwise+joint deep learners, a shallow network and a kernel fitted to a deep quadratic
teacher, compared at matched budgets and aligned with the teacher's layers.

Three lines to run it::

    from featviz.studies.hierarchy import preset, run_study, write_study
    results = run_study(preset("quick"))          # the results.json dict
    write_study(results, "runs/hierarchy")        # results.json + PNG/SVG figures

Running: plan the independent fits, run them (in worker processes if asked), summarize
the fits into the ``results.json`` dict (:func:`assemble`).

Fairness, as a procedure rather than a promise:

- every neural learner uses Adam with a cosine schedule per stage and the same batch
  size; with ``budget="total"`` (the default) every learner makes the same number of
  optimizer steps in all, split over its stages (``budget="per-stage"``: the same
  number per stage, so layerwise learners make L or L+1 times more);
- every learner's learning rate is chosen from the same grid on the validation set,
  separately for every seed; a choice on the grid's edge is reported;
- the kernel's degree and ridge are chosen on the same validation set;
- the test set and the alignment probe are never used for a choice.
"""

from __future__ import annotations

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
from ..hierarchy.learners import (LEARNERS, NEURAL, Fit, deep_learner, fit_exact_kernel, fit_kernel, parameter_count,
                                  shallow_learner, shallow_width, stage_epochs, train_neural)
from ..hierarchy.alignment import EXACT
from ..hierarchy.metrics import FeatureProbe
from ..hierarchy.plots import write_plots
from ..hierarchy.targets import PRESETS, StudyConfig, alignment_probe, make_dataset, preset
from ..stats import holm, mean_std, paired_test, ratio_of_means
from ..train import stage_count
from .common import map_jobs, primary_endpoint, write_results


def subsample(data: Dataset, n: int) -> Dataset:
    """The first ``n`` training samples of ``data`` (same validation and test sets)."""
    return Dataset(data.name, data.task, data.x_train[:n], data.y_train[:n], data.x_val, data.y_val,
                   data.x_test, data.y_test, info=dict(data.info, n_train=n), teacher=data.teacher)


@dataclass(frozen=True)
class Task:
    """One independent fit of the study: learner ``kind`` (one of ``LEARNERS``) on
    ``seed`` at learning rate ``lr``; ``n`` trains on a prefix of the training set,
    ``width`` overrides the learner width; ``track`` records alignment every epoch."""

    kind: str
    seed: int
    lr: float = 0.0
    n: int | None = None
    width: int | None = None
    track: bool = True

    def describe(self) -> str:
        parts = [self.kind, f"seed {self.seed}"] + ([f"lr {self.lr:g}"] if self.lr else [])
        return " ".join(parts + ([f"n {self.n}"] if self.n else []) + ([f"m {self.width}"] if self.width else []))


# The frozen-lower-layer control: layerwise+joint with block 1 frozen in the joint stage, at the
# learning rate chosen for layerwise+joint (same seed, so the layerwise stages are the same run's).
FROZEN = "layerwise+joint-frozen"
PRIMARY_PAIR = ("layerwise", "joint")  # the primary endpoint's comparison


def fit_learner(config: StudyConfig, task: Task, data: Dataset, probe: FeatureProbe,
                tracker: FeatureProbe | None, device: torch.device | str = "cpu") -> Fit:
    """Fit one learner of the study on ``data`` (may raise :class:`DivergenceError`)."""
    if task.kind == "kernel":
        return fit_kernel(data, degrees=config.kernel_degrees, ridges=config.kernel_ridges,
                          landmarks=config.kernel_landmarks, seed=task.seed)
    if task.kind == "exact-kernel":  # the polynomial kernel of the target's full degree, solved exactly
        return fit_exact_kernel(data, degree=2 ** config.depth, ridges=config.kernel_ridges)
    width = task.width or config.width
    if task.kind == "shallow":
        model = shallow_learner(config.d, shallow_width(config.d, width, config.depth, config.connect), task.seed)
        mode = "joint"
    else:
        model = deep_learner(config.d, width, config.depth, task.seed, config.connect)
        mode = "layerwise+joint" if task.kind == FROZEN else task.kind
    epochs = stage_epochs(mode, model.depth, config.epochs, config.budget)
    return train_neural(model, data, probe, mode, epochs=epochs, lr=task.lr, batch_size=config.batch_size,
                        seed=task.seed, tracker=tracker if task.track else None,
                        joint_lr_scale=config.correction_lr_scale, joint_warmup=config.correction_warmup,
                        joint_freeze=("block1",) if task.kind == FROZEN else (), device=device)


def run_task(config: StudyConfig, task: Task, device: torch.device | str = "cpu") -> Fit | None:
    """Fit one task without keeping its weights; ``None`` if training diverged (a
    diverging learning rate loses the search). The seed's data are rebuilt here (a
    fraction of a second), so a task needs nothing but its arguments."""
    full = make_dataset(config, task.seed)
    data = subsample(full, task.n) if task.n else full
    probe = alignment_probe(config, full.teacher, task.seed)
    tracker = FeatureProbe.from_target(full.teacher, full.x_test[: config.r2_samples])
    try:
        fit = fit_learner(config, task, data, probe, tracker, device)
    except DivergenceError:
        return None
    fit.model = None  # weights are not part of the results; keep what travels small
    if not (math.isfinite(fit.rel_test_mse) and math.isfinite(fit.rel_val_mse)):
        return None
    return fit


def run_jobs(jobs: list[tuple[StudyConfig, Task]], *, workers: int = 1, device: torch.device | str = "cpu",
             bar: tqdm | None = None) -> list[Fit | None]:
    """:func:`run_task` for every (config, task) pair, in order, in this process
    (``workers=1``) or in that many worker processes with one torch thread each
    (:func:`featviz.studies.common.map_jobs`: the same numbers either way)."""
    def advance(i: int, _: Fit | None) -> None:
        if bar is not None:
            bar.set_description(jobs[i][1].describe())
            bar.update(1)

    return map_jobs(run_task, [(config, task, str(device)) for config, task in jobs], workers=workers,
                    local=lambda config, task, _: run_task(config, task, device), done=advance)


def run_tasks(config: StudyConfig, tasks: list[Task], *, workers: int = 1, device: torch.device | str = "cpu",
              bar: tqdm | None = None) -> dict[Task, Fit | None]:
    """:func:`run_jobs` for tasks that share ``config``, keyed by task."""
    return dict(zip(tasks, run_jobs([(config, t) for t in tasks], workers=workers, device=device, bar=bar)))


def choose_lr(fits: dict[float, Fit | None], what: str) -> float:
    """The learning rate whose fit has the lowest final validation error."""
    finite = {lr: fit for lr, fit in fits.items() if fit is not None}
    if not finite:
        raise DivergenceError(f"{what} diverged at every learning rate of the grid", "use smaller learning rates")
    return min(finite, key=lambda lr: finite[lr].rel_val_mse)


def _sweep_sizes(config: StudyConfig) -> list[int]:
    return sorted({n for n in config.n_sweep if n < config.n_train} | {config.n_train}) if config.n_sweep else []


def _sweep_widths(config: StudyConfig) -> list[int]:
    return sorted({max(1, round(mult * config.teacher_units)) for mult in config.width_sweep})


def sweep_seeds(config: StudyConfig) -> list[int]:
    return config.seed_list[: max(1, min(config.sweep_seeds, config.seeds))]


def run_study(config: StudyConfig, *, device: torch.device | str = "cpu", progress: bool = True,
              workers: int = 1, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the hierarchy study described by ``config`` and return the results dict
    (see :func:`assemble` and docs/formats.md).

    Round 1: every neural learner at every rate of ``lr_grid`` on every seed, and the
    kernel on every seed; each learner's rate is chosen on validation per seed. Round 2:
    the n and width sweeps at the chosen rates. ``workers`` > 1 runs the fits of a round
    in that many processes. Deterministic on CPU for a given config: every fit draws
    from generators seeded by its seed, so the networks' numbers do not depend on
    ``workers`` (the kernel's may move in the 9th digit, as BLAS threading changes the
    order of its sums).
    """
    config.validate()
    start = time.perf_counter()
    say = log or (lambda _: None)
    seeds = config.seed_list
    bar = tqdm(total=0, desc="hierarchy", unit="fit", disable=not progress, leave=False)

    def execute(tasks: list[Task]) -> dict[Task, Fit | None]:
        bar.total += len(tasks)
        bar.refresh()
        return run_tasks(config, tasks, workers=workers, device=device, bar=bar)

    try:
        grid = [Task(kind, seed, lr) for seed in seeds for lr in config.lr_grid for kind in NEURAL]
        done = execute(grid + [Task("kernel", seed) for seed in seeds])
        lr_search = {name: {seed: {lr: done[Task(name, seed, lr)] for lr in config.lr_grid} for seed in seeds}
                     for name in NEURAL}
        chosen = {name: {seed: choose_lr(lr_search[name][seed], f"{name} (seed {seed})") for seed in seeds}
                  for name in NEURAL}
        say("learning rates chosen on validation: " + "; ".join(
            f"{name} " + ",".join(f"{chosen[name][s]:g}" for s in seeds) for name in NEURAL))
        sweeps = _sweep_tasks(config, chosen) + [Task(FROZEN, s, chosen["layerwise+joint"][s]) for s in seeds]
        done.update(execute([t for t in sweeps if t not in done]))
    finally:
        bar.close()

    def main_fit(name: str, seed: int, **kw: Any) -> Fit:
        task = Task("kernel", seed, **kw) if name == "kernel" else Task(name, seed, chosen[name][seed], **kw)
        fit = done[task]
        if fit is None:
            raise DivergenceError(f"{task.describe()} diverged", "use a smaller learning-rate grid")
        return fit

    fits = {name: [main_fit(name, seed) for seed in seeds] for name in LEARNERS}
    fits[FROZEN] = [done[Task(FROZEN, s, chosen["layerwise+joint"][s])] for s in seeds]
    if any(f is None for f in fits[FROZEN]):
        raise DivergenceError("the frozen-layer-1 control diverged", "use a smaller learning-rate grid")
    n_sweep = {name: {n: [main_fit(name, s, n=None if n == config.n_train else n, track=n == config.n_train)
                          for s in sweep_seeds(config)] for n in _sweep_sizes(config)}
               for name in config.sweep_learners} if _sweep_sizes(config) else {}
    width_sweep = {m: [main_fit("joint", s) if m == config.width else main_fit("joint", s, width=m, track=False)
                       for s in sweep_seeds(config)] for m in _sweep_widths(config)}
    return assemble(config, fits, chosen, lr_search, n_sweep, width_sweep, time.perf_counter() - start)


def _sweep_tasks(config: StudyConfig, chosen: dict[str, dict[int, float]]) -> list[Task]:
    """The fits that need the chosen rates: the n-sweep and the width sweep."""
    plan: list[Task] = []
    for seed in sweep_seeds(config):
        for n in _sweep_sizes(config)[:-1]:
            plan += [Task("kernel", seed, n=n, track=False) if name == "kernel" else
                     Task(name, seed, chosen[name][seed], n=n, track=False) for name in config.sweep_learners]
        plan += [Task("joint", seed, chosen["joint"][seed], width=m, track=False) for m in _sweep_widths(config)
                 if m != config.width]
    return list(dict.fromkeys(plan))


# Summarizing: from the fits of every learner and seed to the results.json dict (means with
# spread over seeds, the correction figures, learning-rate choices and their edge warnings,
# sweeps, curves, one measured sentence per claim). Pure functions of their arguments.

FORMAT = "featviz-hierarchy/2"
MEASURES = ("r2_to_teacher", "r2_from_teacher", "cka")


def _columns(rows: list[list[float]]) -> list[list[float]]:
    """Per-layer lists of per-seed values."""
    return [list(col) for col in zip(*rows)] if rows else []


def _per_layer(rows: list[list[float]]) -> tuple[list[float], list[float], list[list[float]]]:
    cols = _columns(rows)
    return [mean_std(c)[0] for c in cols], [mean_std(c)[1] for c in cols], cols


def _learner_summary(fits: list[Fit], extra: dict[str, Any]) -> dict[str, Any]:
    mse = [f.rel_test_mse for f in fits]
    mean, std = mean_std(mse)
    r2, r2_std, r2_seeds = _per_layer([f.feature_r2 for f in fits])
    measures = MEASURES + tuple(k for k in EXACT if any(k in f.alignment for f in fits))
    alignment = {k: _per_layer([f.alignment.get(k, []) for f in fits])[0] for k in measures}
    alignment_seeds = {k: _per_layer([f.alignment.get(k, []) for f in fits])[2] for k in measures}
    return {
        "rel_test_mse": mean, "rel_test_mse_std": std, "rel_test_mse_seeds": mse,
        "rel_val_mse": mean_std([f.rel_val_mse for f in fits])[0],
        "feature_r2": r2, "feature_r2_std": r2_std, "feature_r2_seeds": r2_seeds,
        "alignment": alignment, "alignment_seeds": alignment_seeds,
        "cca": _per_layer([f.cca for f in fits])[0],
        "total_steps": fits[0].total_steps, "total_steps_seeds": [f.total_steps for f in fits], **extra,
    }


def correction(config: StudyConfig, fits: list[Fit]) -> dict[str, Any]:
    """Backward feature correction of each seed of ``layerwise+joint``: every alignment
    measure of every layer at the end of the layerwise stages and after the joint stage,
    the gain per seed, and the test error before and after."""
    last = f"block{config.depth}"
    before = {k: [f.stage_alignment[last][k] for f in fits] for k in MEASURES}
    after = {k: [f.stage_alignment["joint"][k] for f in fits] for k in MEASURES}
    gains = {k: [a[0] - b[0] for a, b in zip(after[k], before[k])] for k in MEASURES}
    layerwise_end = [f.curve.stage.index("joint") - 1 for f in fits]
    mse_before = [f.curve.test_rel_mse[i] for f, i in zip(fits, layerwise_end)]
    out: dict[str, Any] = {
        "layer1_gain": {k: mean_std(gains[k])[0] for k in MEASURES},
        "layer1_gain_seeds": gains,
        "alignment_before_joint": {k: _per_layer(before[k])[0] for k in MEASURES},
        "alignment_after_joint": {k: _per_layer(after[k])[0] for k in MEASURES},
        "rel_test_mse_before_joint": mean_std(mse_before)[0], "rel_test_mse_before_joint_seeds": mse_before,
        "rel_test_mse_after_joint": mean_std([f.rel_test_mse for f in fits])[0],
        "joint_lr_scale": config.correction_lr_scale, "joint_warmup": config.correction_warmup,
    }
    exact = [k for k in EXACT if k in fits[0].stage_alignment[last]]
    if exact:  # exact, invariant layer-1 errors (lower is better) at the end of the layerwise stages and after
        out["layer1_exact_before_joint"] = {k: [f.stage_alignment[last][k][0] for f in fits] for k in exact}
        out["layer1_exact_after_joint"] = {k: [f.stage_alignment["joint"][k][0] for f in fits] for k in exact}
        out["layer1_exact_stage1"] = {k: [f.stage_alignment["layer1"][k][0] for f in fits] for k in exact}
    # the largest of the three measures' gains, per seed (the acceptance reads "any direction or CKA")
    out["layer1_best_gain_seeds"] = [max(g) for g in zip(*gains.values())]
    # the names of earlier results, kept for readers of the first format
    out["layer1_r2_stage1"] = mean_std([b[0] for b in before["r2_to_teacher"]])[0]
    out["layer1_r2_after_joint"] = mean_std([a[0] for a in after["r2_to_teacher"]])[0]
    out["layer1_r2_gain"] = out["layer1_gain"]["r2_to_teacher"]
    return out


def lr_edge_warnings(grid: tuple[float, ...], chosen: dict[str, dict[int, float]]) -> list[str]:
    """One line per learner and seed whose chosen rate sits on an edge of the grid (the
    best rate may lie outside it), or one line per learner when the grid has one value."""
    lo, hi = min(grid), max(grid)
    lines = []
    for name, by_seed in chosen.items():
        if len(set(grid)) == 1:
            lines.append(f"{name}: the learning-rate grid has one value ({lo:g}); nothing was tuned")
            continue
        for seed, lr in by_seed.items():
            if lr in (lo, hi):
                edge = "lowest" if lr == lo else "highest"
                lines.append(f"{name} seed {seed}: chosen learning rate {lr:g} is the grid's {edge} value")
    return lines


def _sweep_summary(values: dict[Any, list[float]]) -> dict[str, list]:
    keys = sorted(values)
    stats = [mean_std(values[k]) for k in keys]
    return {"rel_test_mse": [s[0] for s in stats], "rel_test_mse_std": [s[1] for s in stats],
            "rel_test_mse_seeds": [values[k] for k in keys]}


def assemble(config: StudyConfig, fits: dict[str, list[Fit]], chosen: dict[str, dict[int, float]],
             lr_search: dict[str, dict[int, dict[float, Fit | None]]], n_sweep: dict[str, dict[int, list[Fit]]],
             width_sweep: dict[int, list[Fit]], seconds: float) -> dict[str, Any]:
    """The ``results.json`` dict: ``config``, ``summary`` (per learner), ``ratios``,
    ``correction``, ``lr_search``, ``lr_edge_warnings``, ``n_sweep``, ``width_sweep``,
    ``curves``, ``findings``, ``seconds``."""
    seeds, L = config.seed_list, config.depth
    sw = shallow_width(config.d, config.width, L, config.connect)
    deep_params = parameter_count(deep_learner(config.d, config.width, L, 0, config.connect))
    extras: dict[str, dict[str, Any]] = {name: {
        "lr": [chosen[name][s] for s in seeds], "params": deep_params, "stages": stage_count(name, L),
    } for name in ("joint", "layerwise", "layerwise+joint")}
    extras["shallow"] = {"lr": [chosen["shallow"][s] for s in seeds], "width": sw, "stages": 1,
                         "params": parameter_count(shallow_learner(config.d, sw, 0))}
    extras["kernel"] = {"choice": [f.info for f in fits["kernel"]], "stages": 0}
    for name in NEURAL:
        extras[name]["epochs"] = config.epochs
        extras[name]["budget"] = config.budget
    extras["kernel"]["epochs"] = 0
    summary = {name: _learner_summary(fits[name], extras[name]) for name in LEARNERS}
    joint_seeds = summary["joint"]["rel_test_mse_seeds"]
    ratios_ci = {f"{name}/joint": ratio_of_means(summary[name]["rel_test_mse_seeds"], joint_seeds)
                 for name in ("layerwise", "layerwise+joint", "shallow", "kernel")}
    ratios = {key: ci["value"] for key, ci in ratios_ci.items()}
    ratios_seeds = {key: [a / max(b, 1e-12) for a, b in zip(summary[key.split("/")[0]]["rel_test_mse_seeds"],
                                                           joint_seeds)] for key in ratios}
    curves = {name: [{"seed": seed, "lr": chosen[name][seed], **fit.curve.to_dict()}
                     for seed, fit in zip(seeds, fits[name])] for name in NEURAL}
    results: dict[str, Any] = {
        "format": FORMAT, "featviz": __version__,
        "config": config.to_dict() | {"seeds": seeds, "learner_depth": L, "optimizer": "adam",
                                      "schedule": "cosine per stage", "shallow_width": sw,
                                      "alignment": f"held-out: maps fitted on {config.align_samples} fresh points, "
                                                   f"scored on {config.align_samples} others"},
        "primary": primary_endpoint("layerwise/joint relative test MSE (ratio of means, paired)",
                                    ratios_ci["layerwise/joint"]),
        "summary": summary, "ratios": ratios, "ratios_ci": ratios_ci, "ratios_seeds": ratios_seeds,
        "correction": correction(config, fits["layerwise+joint"]),
        "frozen_control": frozen_control(config, fits),
        "comparisons": comparisons(config, {name: _mse(f) for name, f in fits.items()}),
        "lr_search": {name: {str(s): {f"{lr:g}": (f.rel_val_mse if f else None) for lr, f in by_lr.items()}
                             for s, by_lr in per_seed.items()} for name, per_seed in lr_search.items()},
        "lr_edge_warnings": lr_edge_warnings(config.lr_grid, chosen),
        "n_sweep": _n_summary(config, n_sweep),
        "width_sweep": _width_summary(config, width_sweep),
        "curves": curves,
    }
    results["findings"] = findings(results)
    results["seconds"] = round(seconds, 2)
    return results


def _mse(fits: list[Fit]) -> list[float]:
    return [f.rel_test_mse for f in fits]


def comparisons(config: StudyConfig, mse: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Paired comparisons of relative test MSE over seeds (same seeds = same teacher and data),
    from each learner's per-seed values ``mse``: ``a/b`` -> the ratio of means with a paired 95 %
    bootstrap interval, the paired tests, ``role`` and ``p_holm``. The first, layerwise / joint, is
    the study's primary endpoint: it stands outside the multiple-comparison family (``p_holm``
    null, its own p read as it is); the rest are secondary, their sign-flip permutation p
    Holm-corrected across the secondary comparisons only."""
    pairs = [PRIMARY_PAIR, ("layerwise+joint", "joint"), ("layerwise", "layerwise+joint"),
             (FROZEN, "layerwise+joint"), ("shallow", "joint"), ("kernel", "joint")]
    out = {}
    for a, b in pairs:
        if a in mse and b in mse:
            out[f"{a}/{b}"] = {**ratio_of_means(mse[a], mse[b], seed=config.seed),
                               "tests": paired_test(mse[a], mse[b], seed=config.seed),
                               "role": "primary" if (a, b) == PRIMARY_PAIR else "secondary"}
    adjusted = holm({k: v["tests"]["p_permutation"] for k, v in out.items() if v["role"] == "secondary"})
    for key, value in out.items():
        value["p_holm"] = adjusted.get(key)
    return out


def per_seed_mse(results: dict[str, Any]) -> dict[str, list[float]]:
    """Each learner's per-seed relative test MSE from a results.json dict (the frozen control's
    from ``frozen_control``): what :func:`comparisons` reads, so shipped results can be recomputed."""
    mse = {name: list(s["rel_test_mse_seeds"]) for name, s in results["summary"].items()}
    frozen = (results.get("frozen_control") or {}).get("rel_test_mse_frozen_seeds")
    if frozen is not None:
        mse[FROZEN] = list(frozen)
    return mse


def frozen_control(config: StudyConfig, fits: dict[str, list[Fit]]) -> dict[str, Any]:
    """The joint stage of layerwise+joint repeated with block 1 frozen (same seeds, learning rate
    and steps), paired with the unfrozen run: if correcting layer 1 is what the joint stage
    gains, the frozen run's error stays near the layerwise one."""
    unfrozen, frozen = _mse(fits["layerwise+joint"]), _mse(fits[FROZEN])
    out: dict[str, Any] = {
        "rel_test_mse_unfrozen": mean_std(unfrozen)[0], "rel_test_mse_unfrozen_seeds": unfrozen,
        "rel_test_mse_frozen": mean_std(frozen)[0], "rel_test_mse_frozen_seeds": frozen,
        "frozen_over_unfrozen": ratio_of_means(frozen, unfrozen, seed=config.seed),
        "tests": paired_test(frozen, unfrozen, seed=config.seed),
    }
    exact = [k for k in EXACT if k in fits[FROZEN][0].alignment]
    if exact:
        out["layer1_after_joint"] = {arm: {k: [f.alignment[k][0] for f in fits[name]] for k in exact}
                                     for arm, name in (("unfrozen", "layerwise+joint"), ("frozen", FROZEN))}
    return out


def _n_summary(config: StudyConfig, n_sweep: dict[str, dict[int, list[Fit]]]) -> dict[str, Any]:
    """Test error vs training-set size (prefixes of the training set, same batch size and epochs)."""
    if not n_sweep:
        return {}
    sizes = sorted(next(iter(n_sweep.values())))
    seeds = config.seed_list[:len(next(iter(n_sweep.values()))[sizes[0]])]
    return {"n": sizes, "seeds": seeds, **{name: _sweep_summary({n: [f.rel_test_mse for f in fs]
                                                                 for n, fs in by_n.items()})
                                           for name, by_n in n_sweep.items()}}


def _width_summary(config: StudyConfig, width_sweep: dict[int, list[Fit]]) -> dict[str, Any]:
    """Test error and layer-1 alignment of the jointly trained deep learner vs its width."""
    if not width_sweep:
        return {}
    widths = sorted(width_sweep)
    out = {"width": widths, "seeds": config.seed_list[:len(width_sweep[widths[0]])], "learner": "joint",
           **_sweep_summary({m: [f.rel_test_mse for f in width_sweep[m]] for m in widths})}
    out["layer1_r2"] = [mean_std([f.feature_r2[0] for f in width_sweep[m]])[0] for m in widths]
    out["layer1_r2_from_teacher"] = [mean_std([f.alignment["r2_from_teacher"][0] for f in width_sweep[m]])[0]
                                     for m in widths]
    out["params"] = [parameter_count(deep_learner(config.d, m, config.depth, 0, config.connect)) for m in widths]
    return out


def _ci(results: dict[str, Any], key: str) -> str:
    ci = (results.get("ratios_ci") or {}).get(key) or {}
    if ci.get("low") is None or ci.get("high") is None:
        return ""
    return f", {100 * ci['level']:.0f}% CI [{ci['low']:.2f}, {ci['high']:.2f}]"


def findings(results: dict[str, Any]) -> list[str]:
    """One measured sentence per claim of the study (printed by the CLI)."""
    s, r, c = results["summary"], results["ratios"], results["correction"]
    steps = {name: s[name]["total_steps"] for name in NEURAL}
    per_seed = ", ".join(f"{v:.2f}" for v in results["ratios_seeds"]["layerwise/joint"])
    gain = c["layer1_gain"]
    lines = [
        f"budget ({s['joint'].get('budget', 'total')}): optimizer steps " +
        ", ".join(f"{k} {v}" for k, v in steps.items()),
        f"joint vs layerwise: relative test MSE {s['joint']['rel_test_mse']:.4g} vs "
        f"{s['layerwise']['rel_test_mse']:.4g} (layerwise/joint = {r['layerwise/joint']:.2f}x{_ci(results, 'layerwise/joint')}; "
        f"per seed {per_seed}); "
        f"layer-1 R² to / from the teacher {s['joint']['alignment']['r2_to_teacher'][0]:.3f} / "
        f"{s['joint']['alignment']['r2_from_teacher'][0]:.3f} vs "
        f"{s['layerwise']['alignment']['r2_to_teacher'][0]:.3f} / "
        f"{s['layerwise']['alignment']['r2_from_teacher'][0]:.3f}",
        f"backward feature correction (joint stage at {c['joint_lr_scale']:g}x the rate, warmed up): layer-1 "
        f"R² to teacher {gain['r2_to_teacher']:+.3f}, from teacher {gain['r2_from_teacher']:+.3f}, CKA "
        f"{gain['cka']:+.3f}; relative test MSE {c['rel_test_mse_before_joint']:.4g} -> "
        f"{c['rel_test_mse_after_joint']:.4g}",
        f"depth vs shallow and kernels: shallow/joint = {r['shallow/joint']:.1f}x, kernel/joint = "
        f"{r['kernel/joint']:.1f}x (this kernel is capped below the target's degree: see `hierarchy scaling` "
        "for one that can express it)",
    ]
    fc = results["frozen_control"]
    fr, tests = fc["frozen_over_unfrozen"], fc["tests"]
    lines.append(f"frozen-layer-1 control of the joint stage: relative test MSE {fc['rel_test_mse_frozen']:.4g} frozen "
                 f"vs {fc['rel_test_mse_unfrozen']:.4g} unfrozen (frozen / unfrozen {fr['value']:.2f}x, paired 95 % CI "
                 f"[{fr['low']:.2f}, {fr['high']:.2f}]; unfrozen lower in {tests['positive']} of {tests['n']} seeds)")
    if results.get("lr_edge_warnings"):
        count = len(results["lr_edge_warnings"])
        lines.append(f"learning rate on a grid edge in {count} case(s): see lr_edge_warnings")
    ws = results.get("width_sweep") or {}
    if ws.get("width"):
        pairs = ", ".join(f"m={m}: {v:.4g}" for m, v in zip(ws["width"], ws["rel_test_mse"]))
        lines.append(f"width (joint learner, relative test MSE): {pairs}")
    ns = results.get("n_sweep") or {}
    for name in (k for k in ns if k not in ("n", "seeds")):
        pairs = ", ".join(f"n={n}: {v:.4g}" for n, v in zip(ns["n"], ns[name]["rel_test_mse"]))
        lines.append(f"samples ({name}): {pairs}")
    return lines


def write_study(results: dict[str, Any], out: str | Path, plots=write_plots) -> list[str]:
    """Write ``results.json`` and the figures into folder ``out`` atomically (see
    :func:`featviz.studies.common.write_results`). Returns the file names."""
    return write_results(results, out, plots)


# the surface every study module has (docs/studies.md)
Config = StudyConfig
run = run_study
write = write_study

__all__ = ["FORMAT", "PRESETS", "Config", "StudyConfig", "Task", "assemble", "choose_lr", "findings", "lr_edge_warnings",
           "preset", "run", "run_jobs", "run_study", "run_task", "run_tasks", "write", "write_study"]
