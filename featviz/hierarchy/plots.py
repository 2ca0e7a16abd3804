"""Figures of the hierarchy studies, drawn from their results dicts (matplotlib, Agg backend).

Each figure is written as PNG and SVG. The study: ``training_error``, ``feature_r2`` (both
directions, per layer, over training; the axis follows the data, negative R² included),
``error_vs_n`` and ``error_vs_width``. The α sweep: ``alpha_errors``. Scaling:
``scaling_n``, ``scaling_nstar``. Curves are the mean over seeds with a band spanning the
seeds' minimum and maximum.
"""

from __future__ import annotations

import io
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..fileio import atomic_write_bytes

COLORS = MappingProxyType({"joint": "#1f77b4", "layerwise": "#d62728", "layerwise+joint": "#9467bd",
                           "shallow": "#ff7f0e", "kernel": "#2ca02c"})
FIGURES = ("training_error", "feature_r2", "error_vs_n", "error_vs_width")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)  # headless; never opens a window
    import matplotlib.pyplot as plt

    return plt


def _band(ax, x: np.ndarray, runs: np.ndarray, name: str, label: str | None = None) -> None:
    """Mean line and min-max band of ``runs`` (seeds, epochs)."""
    ax.plot(x, runs.mean(0), color=COLORS.get(name), label=label or name, lw=1.6)
    if len(runs) > 1:
        ax.fill_between(x, runs.min(0), runs.max(0), color=COLORS.get(name), alpha=0.18, lw=0)


def _draw_runs(ax, name: str, runs: list[dict], values: np.ndarray) -> None:
    _band(ax, np.arange(1, values.shape[1] + 1), values, name)


def _stage_marks(ax, stages: list[str]) -> None:
    """Dotted vertical lines where a layerwise stage ends."""
    for i in range(1, len(stages)):
        if stages[i] != stages[i - 1]:
            ax.axvline(i + 0.5, color="0.6", ls=":", lw=0.8)


def _save(fig, out: Path, stem: str) -> list[str]:
    files = []
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=130, bbox_inches="tight", metadata={"Date": None} if ext == "svg" else None)
        atomic_write_bytes(out / f"{stem}.{ext}", buf.getvalue())
        files.append(f"{stem}.{ext}")
    return files


def plot_training_error(results: dict[str, Any], ax) -> None:
    for name, runs in results["curves"].items():
        _draw_runs(ax, name, runs, np.array([r["test_rel_mse"] for r in runs]))
    kernel = results["summary"]["kernel"]["rel_test_mse"]
    ax.axhline(kernel, color=COLORS["kernel"], ls="--", lw=1.2, label="kernel")
    _stage_marks(ax, results["curves"]["layerwise+joint"][0]["stage"])
    ax.set(yscale="log", xlabel="epoch (all stages, in order)", ylabel="relative test MSE",
           title="test error over training (dotted: stage ends of layerwise+joint)")
    ax.legend(fontsize=8)


def plot_feature_r2(results: dict[str, Any], axes) -> None:
    """Row 0: R² learner -> teacher; row 1: R² teacher -> learner; one column per layer."""
    for row, (key, label) in enumerate((("feature_r2", "R² learner → teacher"),
                                        ("r2_from_teacher", "R² teacher → learner"))):
        for layer, ax in enumerate(axes[row]):
            for name, runs in results["curves"].items():
                rows = [r for r in runs if r.get(key) and len(r[key][0]) > layer]
                if rows:
                    _draw_runs(ax, name, rows, np.array([[epoch[layer] for epoch in r[key]] for r in rows]))
            _stage_marks(ax, results["curves"]["layerwise+joint"][0]["stage"])
            low = min(0.0, ax.get_ylim()[0])  # never clip a negative R²: show it
            ax.set(xlabel="epoch", title=f"layer {layer + 1}", ylim=(low, 1.02))
        axes[row][0].set_ylabel(label)
    axes[0][0].legend(fontsize=8)


def plot_sweep(sweep: dict[str, Any], key: str, ax, xlabel: str) -> None:
    x = np.array(sweep[key])
    for name in [k for k in sweep if isinstance(sweep[k], dict)]:
        mean, std = np.array(sweep[name]["rel_test_mse"]), np.array(sweep[name]["rel_test_mse_std"])
        ax.errorbar(x, mean, yerr=std, color=COLORS.get(name), marker="o", ms=4, capsize=3, label=name)
    if "learner" in sweep:  # a one-learner sweep
        ax.errorbar(x, sweep["rel_test_mse"], yerr=sweep["rel_test_mse_std"], color=COLORS.get(sweep["learner"]),
                    marker="o", ms=4, capsize=3, label=sweep["learner"])
    ax.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="relative test MSE")
    ax.set_xticks(x, [f"{v:g}" for v in x])  # label the measured points, not powers of ten
    ax.xaxis.set_minor_locator(_pyplot().NullLocator())
    ax.legend(fontsize=8)


def write_plots(results: dict[str, Any], out: str | Path) -> list[str]:
    """Draw every figure of ``results`` into folder ``out``; returns the file names."""
    plt = _pyplot()
    out = Path(out)
    files: list[str] = []
    depth = len(results["summary"]["joint"]["feature_r2"])

    fig, ax = plt.subplots(figsize=(7, 4.2))
    plot_training_error(results, ax)
    files += _save(fig, out, "training_error")
    plt.close(fig)

    fig, axes = plt.subplots(2, depth, figsize=(4.2 * depth, 7.2), squeeze=False)
    plot_feature_r2(results, axes)
    fig.suptitle("feature alignment per layer over training (held-out R² of the best linear map, both ways)")
    files += _save(fig, out, "feature_r2")
    plt.close(fig)

    for stem, key, sweep_name, label in (("error_vs_n", "n", "n_sweep", "training samples n"),
                                         ("error_vs_width", "width", "width_sweep", "learner width m")):
        sweep = results.get(sweep_name) or {}
        if not sweep.get(key):
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4))
        plot_sweep(sweep, key, ax, label)
        ax.set_title(f"test error vs {label}")
        files += _save(fig, out, stem)
        plt.close(fig)
    return files


def _interval_label(name: str, s: dict[str, Any]) -> str:
    if s.get("value") is None:
        return f"{name}: slope not fitted"
    if s.get("low") is None or s.get("high") is None:
        return f"{name}: slope {s['value']:.2f}"
    return f"{name}: slope {s['value']:.2f} [{s['low']:.2f}, {s['high']:.2f}]"


def write_alpha_plots(results: dict[str, Any], out: str | Path) -> list[str]:
    """``alpha_errors``: layer-1 error vs α after stage 1 and after the joint stage (both R²
    directions, seed mean ± std, log-log, fitted slopes in the legend)."""
    plt = _pyplot()
    alphas = np.array(results["alphas"])
    panels = [("r2_to_teacher", results.get("slopes_r2", results["slopes"])),
              ("r2_from_teacher", results["slopes_from_teacher"])]
    exact = results.get("slopes_exact", {})
    panels = [(key, exact[key]) for key in ("readout_error", "span_error") if key in exact] + panels
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, (direction, slopes) in zip(axes[0], panels):
        for moment, color in (("stage1", COLORS["layerwise"]), ("joint", COLORS["layerwise+joint"])):
            stats = np.array(results["errors"][direction][moment]["e1"])
            ax.errorbar(alphas, stats[:, 0], yerr=stats[:, 1], color=color, marker="o", ms=4, capsize=3,
                        label=_interval_label("after stage 1" if moment == "stage1" else "after joint",
                                              slopes[moment]))
        ref = alphas / alphas[-1]
        top = np.array(results["errors"][direction]["stage1"]["e1"])[-1, 0]
        ax.plot(alphas, top * ref, color="0.6", ls=":", lw=1, label="slope 1")
        ax.plot(alphas, top * ref ** 2, color="0.6", ls="--", lw=1, label="slope 2")
        ax.set(xscale="log", yscale="log", xlabel="information gap α",
               ylabel="layer-1 error " + ("(exact, invariant)" if direction in exact else "√(1 − R²)"),
               title=direction.replace("_", " "))
        ax.set_xticks(alphas, [f"{v:g}" for v in alphas])
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.legend(fontsize=7)
    fig.suptitle(f"{results['config']['target']}: layer-1 error vs α (bootstrap intervals over seeds)")
    files = _save(fig, Path(out), "alpha_errors")
    plt.close(fig)
    return files


def write_scaling_plots(results: dict[str, Any], out: str | Path) -> list[str]:
    """``scaling_n``: error vs n per d for each learner; ``scaling_nstar``: n*(d) with fits, the two
    measured sizes that bracket each n* as a bar, censored n* as bounds."""
    plt = _pyplot()
    out = Path(out)
    dims, sizes = results["d"], np.array(results["n"])
    names = list(results["learners"])
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 4), sharey=True, squeeze=False)
    cmap = plt.get_cmap("viridis")
    for ax, name in zip(axes[0], names):
        mean, std = np.array(results["learners"][name]["rel_test_mse"]), np.array(
            results["learners"][name]["rel_test_mse_std"])
        for i, d in enumerate(dims):
            ax.errorbar(sizes, mean[i], yerr=std[i], marker="o", ms=3, capsize=2,
                        color=cmap(i / max(1, len(dims) - 1)), label=f"d={d}")
        ax.axhline(results["target_error"], color="0.5", ls=":", lw=1)
        ax.set(xscale="log", yscale="log", xlabel="training samples n", title=name)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("relative test MSE")
    files = _save(fig, out, "scaling_n")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for j, (name, color) in enumerate(zip(names, (COLORS["joint"], COLORS["kernel"]))):
        nstar = np.array(results["learners"][name]["n_star"], dtype=float)
        shift = 1 + 0.015 * (2 * j - 1)  # bars and bounds of the two learners side by side
        ax.plot(dims, nstar, marker="o", color=color,
                label=_interval_label(name, results["exponents"][name]).replace("slope", "exponent"))
        # a measured n* is interpolated between the two sizes that bracket it (drawn as a bar);
        # a censored n* is a bound: ▲ above the largest n measured, ▼ at or below the smallest
        for d, t in zip(dims, results["learners"][name].get("n_star_interval") or []):
            if t.get("censored") is None and t.get("low") and t.get("high"):
                ax.plot([d * shift] * 2, [t["low"], t["high"]], color=color, lw=4, alpha=0.25, solid_capstyle="butt")
            if t.get("censored") in ("left", "right"):
                bound = t["high"] if t["censored"] == "left" else t["low"]
                ax.plot([d * shift], [bound], marker="v" if t["censored"] == "left" else "^", color=color, ls="none")
    if any(t.get("censored") for name in names for t in results["learners"][name].get("n_star_interval") or []):
        ax.plot([], [], "v", color="0.4", ls="none", label="censored: n* ≤ smallest n (▼) or > largest (▲)")
    ax.set(xscale="log", yscale="log", xlabel="input dimension d",
           ylabel=f"n* (relative test MSE ≤ {results['target_error']:g})", title="samples needed vs d")
    ax.set_xticks(dims, [f"{v:g}" for v in dims])
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.legend(fontsize=8)
    files += _save(fig, out, "scaling_nstar")
    plt.close(fig)
    return files


def write_correction_plots(results: dict[str, Any], out: str | Path) -> list[str]:
    """``correction``: layer-1 error vs α (log-log), per seed and seed mean: the read-out error after
    layerwise stage 1 beside its analytic prediction (= α), and the span error after stage 1, after
    the correction, with layer 1 frozen and for joint training from scratch; right: final relative
    test MSE of every arm."""
    plt = _pyplot()
    alphas = np.array(results["alphas"])
    keys = [f"{a:g}" for a in alphas]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))

    def draw(ax, table: dict, color: str, label: str, marker: str = "o", ls: str = "-") -> None:
        runs = np.array([table[k] for k in keys], dtype=float)  # (A, S)
        for col in runs.T:
            ax.plot(alphas, col, color=color, marker=marker, ms=2.5, lw=0, alpha=0.35)
        ax.plot(alphas, runs.mean(1), color=color, marker=marker, ms=5, ls=ls, lw=1.5, label=label)

    pred = np.array([results["prediction"]["layer1_error"][k] for k in keys])
    left.plot(alphas, pred, color="0.3", lw=2.5, alpha=0.5, label="analytic prediction (= α)")
    slopes = results["slopes"]
    draw(left, results["stage1"]["layer1_error"], COLORS["layerwise"],
         f"stage 1, read-out error (slope {slopes['stage1']['value']:.2f} "
         f"[{slopes['stage1']['low']:.2f}, {slopes['stage1']['high']:.2f}])")
    draw(left, results["stage1"]["layer1_span_error"], COLORS["layerwise"], "stage 1, span error", "s", "--")
    arms = results["arms"]
    draw(left, arms["layerwise+joint"]["layer1_span_error"], COLORS["layerwise+joint"],
         f"after correction, span error (slope {slopes['corrected']['value']:.2f} "
         f"[{slopes['corrected']['low']:.2f}, {slopes['corrected']['high']:.2f}])", "s")
    draw(left, arms["joint"]["layer1_span_error"], COLORS["joint"], "joint from scratch, span error", "^", ":")
    left.set(xscale="log", yscale="log", xlabel="information gap α", ylabel="layer-1 error",
             title="layer 1 vs the teacher's (x_i²), exact from the weights")
    right_colors = {"layerwise": COLORS["layerwise"], "layerwise+joint": COLORS["layerwise+joint"],
                    "layerwise+joint-frozen": "#8c564b", "joint": COLORS["joint"]}
    for arm, color in right_colors.items():
        draw(right, arms[arm]["final_rel_mse"], color, arm)
    right.set(xscale="log", yscale="log", xlabel="information gap α", ylabel="final relative test MSE",
              title=f"final error (width {results['config']['main_width']})")
    for ax in (left, right):
        ax.set_xticks(alphas, keys)
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.legend(fontsize=7)
    fig.tight_layout()
    files = _save(fig, Path(out), "correction")
    plt.close(fig)
    return files
