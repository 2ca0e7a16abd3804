"""The image-study page: the conv teacher vs the learners (numbers and unit pictures),
then the frozen-lower-layer control. Reads a ``featviz hierarchy images`` folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import FeatvizError
from ..fileio import inside, read_json
from .results import purification_rows
from .schema import IMAGE_STUDY, validate
from .site import Site

IMAGE_STUDY_PAGE = "image-study.html"
_FIGURES = ("teacher_error", "teacher_alignment", "frozen_vs_unfrozen")


def _pm(entry: dict[str, Any] | None) -> dict[str, Any]:
    entry = entry or {}
    return {"mean": entry.get("mean"), "std": entry.get("std")}


def _estimate(entry: dict[str, Any] | None) -> dict[str, Any]:
    entry = entry or {}
    return {"value": entry.get("value"), "low": entry.get("low"), "high": entry.get("high"), "level": entry.get("level")}


def read_image_study(folder: Path) -> dict[str, Any]:
    """``results.json`` of an image-study folder, checked for the sections the page shows."""
    data = read_json(folder / "results.json", "image study's results.json (featviz hierarchy images)")
    for key in ("teacher", "frozen_vs_unfrozen"):
        if not isinstance(data.get(key), dict):
            raise FeatvizError(f"{folder / 'results.json'} has no {key!r} section", "regenerate the image study")
    if not isinstance(data["teacher"].get("alignment"), dict) or not data["teacher"]["alignment"]:
        raise FeatvizError(f"{folder / 'results.json'} has no teacher.alignment", "regenerate the image study")
    validate(data, IMAGE_STUDY, folder / "results.json")
    return data


def write_image_study_page(site: Site, results_dir: str | Path, page: str = IMAGE_STUDY_PAGE,
                           verdict: dict[str, str] | None = None) -> dict[str, Any]:
    """Render ``page`` (``image-study.html``) into ``site`` from the study folder ``results_dir``.

    Returns ``{"page", "title", "headline"}`` for the index (headline: the layerwise/joint
    error ratio ``{value, low, high, level}``, the block-1 alignment gain of the joint stage,
    and the frozen-vs-unfrozen differences, each ``{"mean", "std"}``).
    """
    folder = Path(results_dir)
    data = read_image_study(folder)
    source = folder / "results.json"
    teacher, control = data["teacher"], data["frozen_vs_unfrozen"]
    rows = []
    for name, align in teacher["alignment"].items():
        summary = teacher.get("summary", {}).get(name, {})
        rows.append({"learner": name, "rel_test_mse": summary.get("rel_test_mse"),
                     "rel_test_mse_std": summary.get("rel_test_mse_std"), "total_steps": summary.get("total_steps"),
                     "blocks": list(zip(align.get("r2_to_teacher", []), align.get("r2_from_teacher", []),
                                        align.get("cka", [])))})
    units = []
    for unit in data.get("units", []):
        files = unit.get("files") or {}
        cells = {name: dict(site.image(inside(folder, rel, source, f"units[].files.{name}"), "img/image-study"),
                            unit=(unit.get("matches", {}).get(name) or {}).get("unit"),
                            corr=(unit.get("matches", {}).get(name) or {}).get("corr"))
                 for name, rel in files.items()}
        if "teacher" in cells:
            units.append({"layer": unit.get("layer"), "unit": unit.get("unit"), "cells": cells})
    learners = sorted({name for u in units for name in u["cells"] if name != "teacher"}, reverse=True)
    figures = [dict(site.image(inside(folder, f"{stem}.png", source, f"figure {stem}.png"), "img/image-study"),
                    caption=stem.replace("_", " "))
               for stem in _FIGURES if os.path.lexists(folder / f"{stem}.png")]
    correction = teacher.get("correction", {})
    headline = {
        "ratio": _estimate(teacher.get("ratio", {}).get("layerwise/joint")),
        "block1_r2_gain": _pm(correction.get("r2_to_teacher", {}).get("block1")),
        "block1_cka_gain": _pm(correction.get("cka", {}).get("block1")),
        "frozen_vs_unfrozen": {task: _pm(entry.get("difference")) for task, entry in control.items()},
    }
    title = "Backward feature correction on images"
    site.render(page, "image_study.html", verdict=verdict, study={
        "title": title, "headline": headline, "rows": rows, "units": units, "learners": learners,
        "figures": figures, "control": control, "freeze": (data.get("config") or {}).get("freeze") or ["block1"],
        "teacher": teacher, "config": data.get("config") or {},
        "purification": purification_rows(data) if data.get("purification") else None, "seconds": data.get("seconds"), "command": data.get("command")})
    return {"page": page, "title": title, "headline": headline}
