"""Pictures of an attack run: robustness curves and example grids (matplotlib, Agg)."""

from __future__ import annotations

import io
import os
from typing import Sequence

import torch

from ..fileio import atomic_write_bytes
from .evaluate import Examples, ModelReport


def _figure(rows: int, cols: int, size: tuple[float, float]):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    return plt, fig, axes


def _save(plt, fig, path: str | os.PathLike) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_curves(reports: Sequence[ModelReport], path: str | os.PathLike) -> None:
    """Robust accuracy vs ε, one line per (model, attack), one panel per norm."""
    norms = sorted({a.attack["norm"] for r in reports for a in r.attacks})
    plt, fig, axes = _figure(1, len(norms), (5.0 * len(norms), 3.6))
    for ax, norm in zip(axes[0], norms):
        for r in reports:
            for a in r.attacks:
                if a.attack["norm"] == norm:
                    ax.plot(a.eps, a.robust_accuracy(), marker="o", ms=3, label=f"{r.name} · {a.attack['attack']}")
        ax.set_xlabel(f"ε ({'L∞' if norm == 'linf' else 'L2'})")
        ax.set_ylabel("robust accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(plt, fig, path)


def _image(t: torch.Tensor):
    """(C, H, W) in [0, 1] -> what imshow wants (H, W) or (H, W, 3)."""
    t = t.detach().cpu().clamp(0, 1)
    return t[0].numpy() if t.shape[0] == 1 else t.permute(1, 2, 0).numpy()


def amplify(delta: torch.Tensor) -> torch.Tensor:
    """Perturbations (N, C, H, W) scaled per example into [0, 1] with 0 at mid-gray."""
    scale = delta.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, *([1] * (delta.dim() - 1)))
    return 0.5 + 0.5 * delta / scale


def plot_examples(ex: Examples, path: str | os.PathLike, *, title: str = "",
                  attributions: tuple[torch.Tensor, torch.Tensor] | None = None,
                  class_names: Sequence[str] | None = None) -> None:
    """One row per example: clean (label, prediction), adversarial (prediction, ε),
    amplified perturbation, then clean and adversarial attributions if given."""
    name = (lambda k: class_names[k]) if class_names else str
    cols = 3 + (2 if attributions is not None else 0)
    n = len(ex.x)
    plt, fig, axes = _figure(n, cols, (1.7 * cols, 1.8 * n + 0.4))
    delta = amplify(ex.x_adv - ex.x)
    heads = ["clean", "adversarial", "perturbation ×"] + (["attr. clean", "attr. adv."] if attributions else [])
    for i in range(n):
        label, p, pa = int(ex.label[i]), int(ex.pred[i]), int(ex.pred_adv[i])
        eps = float(ex.eps[i])
        panels = [(_image(ex.x[i]), f"y={name(label)} → {name(p)}", "gray"),
                  (_image(ex.x_adv[i]), f"→ {name(pa)}" + (f" (ε={eps:.3g})" if 0 < eps < float("inf") else ""),
                   "gray"),
                  (_image(delta[i]), f"max |δ|={float((ex.x_adv[i] - ex.x[i]).abs().max()):.3g}", "RdBu_r")]
        if attributions is not None:
            for attr in attributions:
                a = attr[i].detach().cpu().sum(0)
                bound = float(a.abs().max()) or 1.0
                panels.append((a.numpy(), "", ("RdBu_r", -bound, bound)))
        for j, (img, text, cmap) in enumerate(panels):
            ax = axes[i][j]
            if isinstance(cmap, tuple):
                ax.imshow(img, cmap=cmap[0], vmin=cmap[1], vmax=cmap[2])
            else:
                ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{heads[j]}\n{text}" if i == 0 else text, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    _save(plt, fig, path)
