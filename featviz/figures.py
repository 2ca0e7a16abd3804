"""Writing matplotlib figures: the Agg backend (no display needed), PNGs written atomically
and byte-for-byte reproducible, labels taken literally."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # headless: never open a window, never need a display server
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .fileio import atomic_write_bytes  # noqa: E402
from .stats import median  # noqa: E402


def save_figure(fig: Figure, path: str | Path, svg: bool = False) -> Path:
    """Write ``fig`` as PNG atomically (and, with ``svg``, beside it the same figure as
    ``.svg``) and close it; no timestamp or version metadata and fixed SVG element ids,
    so the same data gives the same bytes. Returns the PNG's path."""
    path = Path(path)
    try:
        if svg:
            buf = io.BytesIO()
            with plt.rc_context({"svg.hashsalt": "featviz"}):
                fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
            atomic_write_bytes(path.with_suffix(".svg"), buf.getvalue())
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def literal(label: str) -> str:
    """A label as literal text: matplotlib would read ``$...$`` in a model name as math."""
    return label.replace("$", r"\$")


# A log y axis when every value is positive and they span more than this factor.
LOG_SPAN = 20.0
LABEL_CHARS = 48  # a setting's label in the plot is cut here (the page shows it whole)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")


def use_log_scale(values: Sequence[float]) -> bool:
    """Whether :func:`tradeoff_plot` draws its y axis on a log scale: all values positive and
    spanning more than :data:`LOG_SPAN`."""
    return bool(values) and min(values) > 0 and max(values) / min(values) > LOG_SPAN


def tradeoff_plot(series: Mapping[str, Sequence[tuple[float, float]]], path: str | Path, *, title: str,
                  bands: Mapping[str, float] | None = None, data_size: str | None = None, log: bool = False,
                  medians: Mapping[str, tuple[float, float] | None] | None = None, svg: bool = True) -> Path:
    """Renders' activation relative to the unit's best dataset example (y) against noise index
    (x): one labelled marker set per series (``series[label]`` holds ``(noise_index,
    relative_activation)`` per unit, e.g. one series per regularizer setting) with its median as
    a large marker — the median of its points, or ``medians[label]`` when given (None: no marker).

    Dashed vertical lines mark the data (0, at the model's input size ``data_size``) and white
    noise (1), a dotted horizontal line the best dataset example (1); ``bands``
    (``like_data``/``noisy``) shade the noise-index bands. Written as PNG and, with ``svg``, as
    SVG beside it (same stem); returns the PNG's path. Used by the gallery's layer pages and the
    prior-renders study.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    if bands:
        ax.axvspan(-1, bands["like_data"], color="#1e7b34", alpha=0.07, lw=0)
        ax.axvspan(bands["noisy"], 10, color="#b3261e", alpha=0.07, lw=0)
    ax.axvline(0, color="#1e7b34", ls="--", lw=1.2, label=literal(f"data ({data_size})" if data_size else "data"))
    ax.axvline(1, color="#b3261e", ls="--", lw=1.2, label="white noise")
    ax.axhline(1, color="0.4", ls=":", lw=1.2, label="best dataset example")
    xs = [x for pts in series.values() for x, _ in pts]
    for k, (label, pts) in enumerate(series.items()):
        if not pts:
            continue
        colour, marker = f"C{k % 10}", MARKERS[k % len(MARKERS)]
        ax.scatter([x for x, _ in pts], [y for _, y in pts], s=22, color=colour, marker=marker, alpha=0.55,
                   label=literal(f"{label[:LABEL_CHARS]} ({len(pts)} units)"))
        centre = (median(x for x, _ in pts), median(y for _, y in pts)) if medians is None else medians.get(label)
        if centre is not None:
            ax.scatter([centre[0]], [centre[1]], s=110, color=colour, marker=marker, edgecolor="black", linewidth=1.2,
                       zorder=3)
            ax.annotate(literal(f"{label[:LABEL_CHARS]} median"), centre, xytext=(6, 5), textcoords="offset points",
                        fontsize=9)
    if log:
        ax.set_yscale("log")
    ax.set_xlim(min(-0.1, min(xs, default=0) - 0.05), max(1.15, max(xs, default=1) + 0.05))
    ax.set_xlabel("noise index (0 = the data, 1 = white noise)")
    ax.set_ylabel("activation ÷ best dataset example" + (" (log)" if log else ""))
    ax.set_title(literal(f"{title[:80]}: what each setting keeps of the activation, and how noisy"), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save_figure(fig, path, svg=svg)


__all__ = ["literal", "plt", "save_figure", "tradeoff_plot", "use_log_scale"]
