"""Figures of a hierarchy study, drawn from its results dict (matplotlib, Agg backend).

Each figure is written as PNG and SVG: ``training_error``, ``feature_r2``,
``error_vs_n`` and ``error_vs_width``. Curves are the mean over seeds with a band
spanning the seeds' minimum and maximum.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write_bytes

COLORS = {"joint": "#1f77b4", "layerwise": "#d62728", "layerwise+joint": "#9467bd", "shallow": "#ff7f0e",
          "kernel": "#2ca02c"}
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


def _visible_from(name: str, stages: list[str]) -> int:
    """First epoch index to draw: layerwise+joint repeats the layerwise curve until its
    joint stage, so it is drawn from the last layerwise epoch on (else it hides layerwise)."""
    if name == "layerwise+joint" and "joint" in stages:
        return max(0, stages.index("joint") - 1)
    return 0


def _draw_runs(ax, name: str, runs: list[dict], values: np.ndarray) -> None:
    start = _visible_from(name, runs[0]["stage"])
    _band(ax, np.arange(1, values.shape[1] + 1)[start:], values[:, start:], name)


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
           title="test error over training (dotted: stage ends)")
    ax.legend(fontsize=8)


def plot_feature_r2(results: dict[str, Any], axes) -> None:
    for layer, ax in enumerate(axes):
        for name, runs in results["curves"].items():
            rows = [r for r in runs if r["feature_r2"] and len(r["feature_r2"][0]) > layer]
            if not rows:
                continue
            _draw_runs(ax, name, rows, np.array([[epoch[layer] for epoch in r["feature_r2"]] for r in rows]))
        _stage_marks(ax, results["curves"]["layerwise+joint"][0]["stage"])
        ax.set(xlabel="epoch", title=f"layer {layer + 1}", ylim=(min(0.0, ax.get_ylim()[0]), 1.02))
    axes[0].set_ylabel("feature R² to the teacher layer")
    axes[0].legend(fontsize=8)


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

    fig, axes = plt.subplots(1, depth, figsize=(4.2 * depth, 3.8), sharey=True, squeeze=False)
    plot_feature_r2(results, list(axes[0]))
    fig.suptitle("feature alignment per layer (held-out R² of the best linear map)")
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
