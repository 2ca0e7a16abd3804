"""Writing matplotlib figures: the Agg backend (no display needed), PNGs written atomically
and byte-for-byte reproducible, labels taken literally."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never open a window, never need a display server
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .fileio import atomic_write_bytes  # noqa: E402


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


__all__ = ["literal", "plt", "save_figure"]
