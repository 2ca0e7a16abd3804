"""The training-mode comparison over seeds (``featviz compare``): its plots and its
gallery page.

    from featviz.report.compare_pages import write_compare_page
    page = write_compare_page(site, "runs/compare")   # -> {"page": "modes.html", ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FeatvizError
from ..fileio import inside, read_json
from .schema import COMPARE, validate
from .plots import _text, plt, save_figure

PAGE = "modes.html"


def compare_robustness_plot(modes: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Robust accuracy vs ε per mode: the mean over seeds as a line, ± one standard
    deviation as a band, and every seed as a thin line."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, (mode, r) in enumerate(modes.items()):
        eps = [p["eps"] for p in r["robust"]]
        mean = [100 * p["mean"] for p in r["robust"]]
        std = [100 * p["std"] for p in r["robust"]]
        color = f"C{i % 10}"
        for s in range(len(r["seeds"])):
            ax.plot(eps, [100 * p["values"][s] for p in r["robust"]], color=color, linewidth=0.6, alpha=0.35)
        ax.fill_between(eps, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)], color=color,
                        alpha=0.18, linewidth=0)
        ax.plot(eps, mean, color=color, marker="o", markersize=3, label=_text(f"{mode} (n={len(r['seeds'])})"))
    ax.set_xlabel("ε (L∞)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(_text(title), fontsize=9)
    if modes:
        ax.legend(fontsize=8, loc="best")
    return save_figure(fig, path)


def compare_render_plot(modes: dict[str, dict[str, Any]], baseline: dict[str, Any], path: str | Path,
                        title: str = "", metrics: tuple[str, ...] = ("hf_ratio", "shift_stability")) -> Path:
    """Bars per block (x) and mode (colour) with ± std error bars over seeds; one row
    of panels per render setting, one column per metric. Dashed: the data's value (the
    dataset's median hf_ratio; the units' top training images for the others)."""
    regs: list[str] = []
    blocks: list[str] = []
    for r in modes.values():
        for block, cells in r["render"].items():
            blocks += [block] if block not in blocks else []
            regs += [g for g in cells if g != "data" and g not in regs]
    fig, axes = plt.subplots(max(len(regs), 1), len(metrics), figsize=(4.2 * len(metrics), 2.6 * max(len(regs), 1)),
                             squeeze=False)
    width = 0.8 / max(len(modes), 1)
    for row, reg in enumerate(regs):
        for col, metric in enumerate(metrics):
            ax = axes[row][col]
            for i, (mode, r) in enumerate(modes.items()):
                cells = [r["render"].get(b, {}).get(reg, {}).get(metric) or {} for b in blocks]
                xs = [k + (i - (len(modes) - 1) / 2) * width for k in range(len(blocks))]
                ax.bar(xs, [c.get("mean") or 0.0 for c in cells], width=width, yerr=[c.get("std") or 0.0 for c in cells],
                       capsize=2, color=f"C{i % 10}", label=_text(mode) if row == 0 and col == 0 else None)
                data = [r["render"].get(b, {}).get("data", {}).get(metric) or {} for b in blocks]
                for k, c in enumerate(data):
                    if metric != "hf_ratio" and c.get("mean") is not None:
                        ax.plot([xs[k] - width / 2, xs[k] + width / 2], [c["mean"]] * 2, color="k", linestyle="--",
                                linewidth=1)
            if metric == "hf_ratio" and baseline.get("hf_ratio") is not None:
                ax.axhline(baseline["hf_ratio"], color="k", linestyle="--", linewidth=1,
                           label="data (median)" if row == 0 and col == 0 else None)
            ax.set_xticks(range(len(blocks)), blocks, fontsize=8)
            ax.set_title(f"{metric} · {reg}", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
    if regs:
        axes[0][0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(_text(title), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def read_compare(results_dir: str | Path) -> dict[str, Any]:
    """The ``results.json`` of a ``featviz compare`` folder, checked for the fields the page reads."""
    path = Path(results_dir) / "results.json"
    results = read_json(path, "results.json of `featviz compare` (point at a `featviz compare --out` folder)")
    if not isinstance(results.get("modes"), dict) or "tests" not in results:
        raise FeatvizError(f"{path} is not a featviz compare result", "point at a `featviz compare --out` folder")
    validate(results, COMPARE, path)
    return results


def page_context(results: dict[str, Any]) -> dict[str, Any]:
    """What the page shows: rows of the accuracy table, render rows, the headline tests."""
    from ..studies.compare import REPORT_EPS, attack_label

    eps = [e for e in REPORT_EPS if e in results.get("eps", [])] or [e for e in results.get("eps", []) if e > 0][:2]
    rows = []
    for mode, r in results["modes"].items():
        rob = {p["eps"]: p for p in r.get("robust", [])}
        rows.append({"mode": mode, "n": len(r.get("seeds", [])), "clean": r.get("clean_accuracy"),
                     "robust": [rob.get(e) for e in eps], "min_eps": r.get("min_eps"),
                     "steps": results.get("budget", {}).get("total_steps", {}).get(mode)})
    render = []
    for mode, r in results["modes"].items():
        for block, cells in r.get("render", {}).items():
            for reg, cell in cells.items():
                render.append({"mode": mode, "block": block, "reg": reg, **{m: cell.get(m) for m in
                                                                             ("hf_ratio", "shift_stability",
                                                                              "relative_activation")}})
    headline = [t for t in results["tests"] if t.get("what", "").startswith(("robust accuracy", "clean accuracy"))]
    return {"eps": eps, "rows": rows, "render": render, "headline": headline, "attack": attack_label(results["attack"]),
            "label": results.get("label", ""), "baseline": results.get("baseline", {}),
            "render_setup": results.get("render_setup", {}), "budget": results.get("budget", {}),
            "n_test": results.get("n_test"), "dataset": results.get("dataset", "")}


def write_compare_page(site, results_dir: str | Path, page: str = PAGE) -> dict[str, Any]:
    """Render ``page`` (``modes.html``) into ``site`` (a :class:`~featviz.report.site.Site`) from a
    ``featviz compare`` folder; its plots are copied in. Returns ``{"page", "title",
    "label"}`` for the index to link."""
    results_dir = Path(results_dir)
    results = read_compare(results_dir)
    ctx = page_context(results)
    plots = []
    for key, caption in (("robustness", "robust accuracy vs ε: mean, ± std band, each seed thin"),
                         ("render_metrics", "render metrics per block, mean ± std over seeds; dashed: data")):
        name = (results.get("files") or {}).get(key)
        if name is not None:
            path = inside(results_dir, name, results_dir / "results.json", f"files.{key}")
            plots.append(dict(site.image(path, "compare"), caption=caption))
    site.render(page, "compare_modes.html", plots=plots, **ctx)
    return {"page": page, "title": "Training modes over seeds", "label": ctx["label"]}


__all__ = ["PAGE", "compare_render_plot", "compare_robustness_plot", "page_context", "read_compare",
           "write_compare_page"]
