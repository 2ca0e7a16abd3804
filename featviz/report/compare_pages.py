"""The gallery page of the training-mode comparison over seeds (``featviz compare``); the
study draws its figures (:mod:`featviz.studies.compare`), the page copies them.

    from featviz.report.compare_pages import write_compare_page
    page = write_compare_page(site, "runs/compare")   # -> {"page": "modes.html", ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import FeatvizError
from ..fileio import inside, read_json
from .results import significance_table
from .schema import COMPARE, validate

PAGE = "modes.html"


def read_compare(results_dir: str | Path) -> dict[str, Any]:
    """The ``results.json`` of a ``featviz compare`` folder, checked for the fields the page reads."""
    path = Path(results_dir) / "results.json"
    results = read_json(path, "results.json of `featviz compare` (point at a `featviz compare --out` folder)")
    if not isinstance(results, dict) or not isinstance(results.get("modes"), dict) or "tests" not in results:
        raise FeatvizError(f"{path} is not a featviz compare result", "point at a `featviz compare --out` folder")
    validate(results, COMPARE, path)
    return results


def page_context(results: dict[str, Any]) -> dict[str, Any]:
    """What the page shows: rows of the accuracy table, render rows, the table of tests."""
    eps = results.get("headline_eps") or [e for e in results.get("eps", []) if e > 0][:2]
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
    return {"eps": eps, "rows": rows, "render": render, "tests": significance_table(results),
            "attack": _attack_label(results.get("attack") or {}),
            "label": results.get("label", ""), "baseline": results.get("baseline", {}),
            "render_setup": results.get("render_setup", {}), "budget": results.get("budget", {}),
            "n_test": results.get("n_test"), "dataset": results.get("dataset", "")}


def _attack_label(info: dict[str, Any]) -> str:
    """The label the study wrote for its attack (older results: the attack's name)."""
    return str(info.get("label") or info.get("name") or info.get("attack") or "?")


def write_compare_page(site, results_dir: str | Path, page: str = PAGE,
                       verdict: dict[str, str] | None = None) -> dict[str, Any]:
    """Render ``page`` (``modes.html``) into ``site`` (a :class:`~featviz.report.site.Site`) from a
    ``featviz compare`` folder; its plots are copied in. Returns ``{"page", "title",
    "label"}`` for the index to link. ``verdict``: the box that opens the page
    (:func:`~featviz.report.results.verdict`)."""
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
    site.render(page, "compare_modes.html", plots=plots, verdict=verdict, **ctx)
    return {"page": page, "title": "Training modes over seeds", "label": ctx["label"]}


__all__ = ["PAGE", "page_context", "read_compare", "write_compare_page"]
