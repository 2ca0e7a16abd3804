"""Summarizing the study: from the fits of every learner and seed to the ``results.json``
dict (means with spread over seeds, the correction figures, learning-rate choices and
their edge warnings, sweeps, curves, one measured sentence per claim). Pure functions of
their arguments: nothing here trains or holds state.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from .learners import LEARNERS, NEURAL, Fit, deep_learner, parameter_count, shallow_learner, shallow_width, stage_count
from .stats import mean_std
from .targets import StudyConfig

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
    alignment = {k: _per_layer([f.alignment.get(k, []) for f in fits])[0] for k in MEASURES}
    alignment_seeds = {k: _per_layer([f.alignment.get(k, []) for f in fits])[2] for k in MEASURES}
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
    last = f"layer{config.depth}"
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
    ratios = {f"{name}/joint": summary[name]["rel_test_mse"] / max(summary["joint"]["rel_test_mse"], 1e-12)
              for name in ("layerwise", "layerwise+joint", "shallow", "kernel")}
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
        "summary": summary, "ratios": ratios, "ratios_seeds": ratios_seeds,
        "correction": correction(config, fits["layerwise+joint"]),
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
        f"{s['layerwise']['rel_test_mse']:.4g} (layerwise/joint = {r['layerwise/joint']:.2f}x; per seed {per_seed}); "
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
