"""Figures of the image study (PNG, matplotlib Agg): test error and block alignment per
learner, and the frozen-lower-layer control. Bars are seed means, dots single seeds."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write_bytes
from .plots import COLORS, _pyplot

IMAGE_FIGURES = ("teacher_error", "teacher_alignment", "frozen_vs_unfrozen")


def _color(name: str) -> str:
    return COLORS.get(name.split(" (")[0], "#7f7f7f")


def _save_png(fig, out: Path, stem: str) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(out / f"{stem}.png", buf.getvalue())
    return f"{stem}.png"


def _bars(ax, names: list[str], per_seed: list[list[float]], colors: list[str]) -> None:
    x = np.arange(len(names))
    ax.bar(x, [np.mean(v) for v in per_seed], color=colors, alpha=0.75)
    for i, values in enumerate(per_seed):
        ax.plot(np.full(len(values), i), values, "k.", ms=5)
    ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)


def write_image_plots(results: dict[str, Any], out: str | Path) -> list[str]:
    """Draw the study's figures into folder ``out``; returns the file names."""
    plt = _pyplot()
    out = Path(out)
    files = []
    teacher = results["teacher"]
    names = list(teacher["summary"])

    fig, ax = plt.subplots(figsize=(6, 3.6))
    _bars(ax, names, [teacher["summary"][n]["rel_test_mse_per_seed"] for n in names], [_color(n) for n in names])
    ax.set(yscale="log", ylabel="relative test MSE", title="teacher on images: test error at equal total steps")
    files.append(_save_png(fig, out, "teacher_error"))
    plt.close(fig)

    align = teacher["alignment"]
    depth = len(align[names[0]]["cka"])
    fig, axes = plt.subplots(2, depth, figsize=(3.4 * depth, 5.6), sharey="row", squeeze=False)
    for row, metric in enumerate(("r2_to_teacher", "cka")):
        for l in range(depth):
            ax = axes[row][l]
            _bars(ax, names, [[s[metric][l] for s in align[n]["per_seed"]] for n in names], [_color(n) for n in names])
            ax.set_title(f"block{l + 1}", fontsize=9)
            if row == 0:
                ax.set_xticklabels([])
        axes[row][0].set_ylabel("R² learner → teacher" if metric == "r2_to_teacher" else "linear CKA")
    fig.suptitle("alignment of each learner block with the teacher's block (held-out images, per position)")
    files.append(_save_png(fig, out, "teacher_alignment"))
    plt.close(fig)

    control = results["frozen_vs_unfrozen"]
    fig, axes = plt.subplots(1, 2 * len(control), figsize=(3.6 * 2 * len(control), 3.6), squeeze=False)
    for i, (task, entry) in enumerate(control.items()):
        arms = ["before", "unfrozen", "frozen", "joint"]
        colors = [COLORS["layerwise"], COLORS["layerwise+joint"], "#8c564b", COLORS["joint"]]
        ax = axes[0][2 * i]
        _bars(ax, arms, [entry[a]["per_seed"] for a in arms], colors)
        ax.set_title(f"{task} ({entry['dataset']})", fontsize=9)
        ax.set_ylabel(entry["metric"].replace("_", " "))
        if entry["metric"] == "rel_test_mse":
            ax.set_yscale("log")
        ax = axes[0][2 * i + 1]
        blocks = np.arange(1, len(entry["cka_before_after_unfrozen"]["mean"]) + 1)
        for name, color, shift in (("unfrozen", COLORS["layerwise+joint"], -0.15), ("frozen", "#8c564b", 0.15)):
            cka = entry[f"cka_before_after_{name}"]
            ax.errorbar(blocks + shift, cka["mean"], yerr=cka["std"], fmt="o", color=color, capsize=3, label=name)
        ax.set(xticks=blocks, xlabel="block", ylabel="CKA before vs after joint stage", ylim=(0, 1.05))
        ax.set_title("how far each block moved", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle("frozen-lower-layer control: layerwise, then a joint stage with "
                 f"{'+'.join(next(iter(control.values()))['freeze'])} learning or frozen")
    files.append(_save_png(fig, out, "frozen_vs_unfrozen"))
    plt.close(fig)
    return files
