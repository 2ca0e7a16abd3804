"""Plots for the gallery, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..figures import literal as _text
from ..figures import plt, save_figure


def robustness_plot(series: Sequence[tuple[str, str, Sequence[float], Sequence[float | None]]], path: str | Path,
                    reference_eps: float | None = None) -> Path:
    """Robust accuracy vs ε for every ``(model, attack, eps, accuracy)`` series, all on one chart:
    one colour per model, one line style per attack.

    Accuracies are fractions in [0, 1]; missing points (None) are skipped. A dotted
    vertical line marks ``reference_eps`` (the ε the index table reports).
    """
    models = list(dict.fromkeys(s[0] for s in series))
    attacks = list(dict.fromkeys(s[1] for s in series))
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for model, attack, eps, acc in series:
        points = [(e, a) for e, a in zip(eps, acc) if a is not None]
        if points:
            ax.plot([e for e, _ in points], [100 * a for _, a in points], marker="o", markersize=3,
                    color=f"C{models.index(model) % 10}", linestyle=styles[attacks.index(attack) % len(styles)],
                    label=_text(f"{model} · {attack}"))
    if reference_eps is not None:
        ax.axvline(reference_eps, color="0.5", linestyle=":", linewidth=1)
    ax.set_xlabel("ε")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)


def hf_ratio_plot(rows: Sequence[tuple[str, dict[str, float]]], path: str | Path) -> Path:
    """Median high-frequency energy ratio per model/layer (x) and regularizer (bars).

    ``rows`` is ``[(label, {reg: median_hf_ratio})]``: the bar chart makes the noise
    of unregularized images (a high ratio) visible at a glance.
    """
    regs: list[str] = []
    for _, values in rows:
        regs += [r for r in values if r not in regs]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(rows) + 2), 3.2))
    width = 0.8 / max(len(regs), 1)
    for k, reg in enumerate(regs):
        xs = [i + (k - (len(regs) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(xs, [values.get(reg, 0.0) for _, values in rows], width=width, label=reg)
    ax.set_xticks(range(len(rows)), [_text(label) for label, _ in rows], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("median hf_ratio")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    if regs:
        ax.legend(fontsize=8)
    return save_figure(fig, path)
