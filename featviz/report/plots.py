"""Plots for the gallery, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..figures import literal as _text
from ..figures import plt, save_figure
from ..stats import median


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


# A log y axis when every value is positive and they span more than this factor.
LOG_SPAN = 20.0
LABEL_CHARS = 48  # a setting's label in the plot is cut here (the page shows it whole)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def use_log_scale(values: Sequence[float]) -> bool:
    """Whether :func:`tradeoff_plot` draws its y axis on a log scale: all values positive and
    spanning more than :data:`LOG_SPAN`."""
    return bool(values) and min(values) > 0 and max(values) / min(values) > LOG_SPAN


def tradeoff_plot(series: dict[str, Sequence[tuple[float, float]]], path: str | Path, *, title: str,
                  bands: dict[str, float] | None = None, data_size: str | None = None, log: bool = False) -> Path:
    """One layer's renders: activation relative to the unit's best dataset example (y) against
    noise index (x), one labelled marker set per regularizer setting (``series[label]`` holds
    ``(noise_index, relative_activation)`` per unit) with its median as a large marker.

    Dashed vertical lines mark the data (0, at the model's input size ``data_size``) and white
    noise (1), a dotted horizontal line the best dataset example (1); ``bands``
    (``like_data``/``noisy``) shade the noise-index bands the page's outlines use. Written as
    PNG and SVG (same stem); returns the PNG's path.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    if bands:
        ax.axvspan(-1, bands["like_data"], color="#1e7b34", alpha=0.07, lw=0)
        ax.axvspan(bands["noisy"], 10, color="#b3261e", alpha=0.07, lw=0)
    ax.axvline(0, color="#1e7b34", ls="--", lw=1.2, label=_text(f"data ({data_size})" if data_size else "data"))
    ax.axvline(1, color="#b3261e", ls="--", lw=1.2, label="white noise")
    ax.axhline(1, color="0.4", ls=":", lw=1.2, label="best dataset example")
    xs = [x for pts in series.values() for x, _ in pts]
    for k, (label, pts) in enumerate(series.items()):
        if not pts:
            continue
        colour, marker = f"C{k % 10}", MARKERS[k % len(MARKERS)]
        ax.scatter([x for x, _ in pts], [y for _, y in pts], s=22, color=colour, marker=marker, alpha=0.55,
                   label=_text(f"{label[:LABEL_CHARS]} ({len(pts)} units)"))
        mx, my = median(x for x, _ in pts), median(y for _, y in pts)
        ax.scatter([mx], [my], s=110, color=colour, marker=marker, edgecolor="black", linewidth=1.2, zorder=3)
        ax.annotate(_text(f"{label[:LABEL_CHARS]} median"), (mx, my), xytext=(6, 5), textcoords="offset points", fontsize=9)
    if log:
        ax.set_yscale("log")
    ax.set_xlim(min(-0.1, min(xs, default=0) - 0.05), max(1.15, max(xs, default=1) + 0.05))
    ax.set_xlabel("noise index (0 = the data, 1 = white noise)")
    ax.set_ylabel("activation ÷ best dataset example" + (" (log)" if log else ""))
    ax.set_title(_text(f"{title[:80]}: what each setting keeps of the activation, and how noisy"), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save_figure(fig, path, svg=True)
