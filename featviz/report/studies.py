"""Study pages of the gallery: one page per result folder of a study command.

A study folder is what ``featviz compare``, ``featviz hierarchy images``, ``featviz purify``,
``featviz hierarchy run``, ``featviz hierarchy alpha-sweep`` or ``featviz hierarchy scaling``
writes: a ``results.json`` and its figures. :func:`study_kind` recognises the command from
the fields of ``results.json`` (see docs/formats.md); the comparison of training modes and
the image study have pages of their own, every other kind gets the generic study page
(command, findings, headline numbers, figures). Nothing here runs a model or loads data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import FeatvizError
from ..text import slug
from ..fileio import inside, read_json
from .schema import STUDIES as SCHEMAS
from .schema import validate
from .site import Site

TITLES = {
    "compare": "Training modes over seeds",
    "image-study": "Backward feature correction on images",
    "purification": "Feature purification",
    "hierarchy": "Hierarchy study (synthetic teacher)",
    "alpha-sweep": "Information gap: the α sweep",
    "scaling": "Sample complexity: scaling with n and d",
}
MAX_FIGURES = 12
HEADLINE_EPS = (0.05, 0.1)  # the robust-accuracy radii the overview quotes for digits


def study_kind(data: dict[str, Any]) -> str | None:
    """The command that wrote ``data`` (a parsed ``results.json``), or None."""
    if str(data.get("format", "")).startswith("featviz-compare"):
        return "compare"
    if isinstance(data.get("teacher"), dict) and isinstance(data.get("frozen_vs_unfrozen"), dict):
        return "image-study"
    if isinstance(data.get("purification"), dict) and "per_seed" in data:
        return "purification"
    if "alphas" in data and "slopes" in data:
        return "alpha-sweep"
    if "exponents" in data:
        return "scaling"
    if isinstance(data.get("summary"), dict) and "curves" in data:
        return "hierarchy"
    return None


def read_study(folder: str | Path) -> tuple[str, dict[str, Any]]:
    """``(kind, results)`` of a study folder; one clear error if it is none."""
    folder = Path(folder)
    data = read_json(folder / "results.json", "results.json of a study (compare, hierarchy, purify)")
    kind = study_kind(data)
    if kind is None:
        raise FeatvizError(f"{folder / 'results.json'} is not the result of a study command",
                           "pass folders written by featviz compare, purify or hierarchy run|images|alpha-sweep|scaling")
    validate(data, SCHEMAS[kind], folder / "results.json")
    check_named_files(folder, data)
    return kind, data


def check_named_files(folder: Path, data: dict[str, Any]) -> None:
    """Every file a study's ``results.json`` names (``files``, and the image study's
    ``units[].files``) resolves to a file inside ``folder``: checked before any page is written."""
    source = folder / "results.json"
    files = data.get("files")
    if isinstance(files, dict):
        for key, name in files.items():
            if name is not None:
                inside(folder, name, source, f"files.{key}")
    elif isinstance(files, list):
        for name in files:
            inside(folder, name, source, "files[]")
    elif files is not None:
        raise FeatvizError(f"{source}: 'files' must be an object or a list of file names", "regenerate the results")
    units = data.get("units")
    if units is not None and not isinstance(units, list):
        raise FeatvizError(f"{source}: 'units' must be a list", "regenerate the results")
    for unit in units or []:
        unit_files = unit.get("files") if isinstance(unit, dict) else None
        if not isinstance(unit_files, dict):
            raise FeatvizError(f"{source}: every entry of 'units' needs a 'files' object", "regenerate the results")
        for key, name in unit_files.items():
            inside(folder, name, source, f"units[].files.{key}")


def _pm(entry: Any, digits: int = 3) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("mean"), (int, float)):
        return "–"
    std = entry.get("std")
    return f"{entry['mean']:.{digits}g}" + (f" ± {std:.2g}" if isinstance(std, (int, float)) else "")


def _interval(entry: Any) -> str:
    if not isinstance(entry, dict) or not isinstance(entry.get("value"), (int, float)):
        return "–"
    low, high = entry.get("low"), entry.get("high")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        return f"{entry['value']:.3g} [{low:.3g}, {high:.3g}]"
    return f"{entry['value']:.3g}"


def purification_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Headline rows of a ``purification`` section: median hf_ratio of unregularized renders
    per model and block (mean ± std over seeds), the data's value and the weight residuals."""
    section = data.get("purification") or {}
    hf = section.get("hf_ratio") or {}
    rows = [(f"adversarial / clean median hf_ratio, {block}", _pm(entry))
            for block, entry in sorted((section.get("adv_over_clean") or {}).items())]
    for model in ("clean", "adversarial", "clean_scratch"):
        for block, entry in sorted((hf.get(model) or {}).items()):
            rows.append((f"median hf_ratio, {model}, {block}", _pm(entry)))
    if isinstance(hf.get("data"), (int, float)):
        rows.append(("median hf_ratio of the data's own images", f"{hf['data']:.3g}"))
    residual = section.get("residual_ratio")
    if isinstance(residual, dict):
        for block, entry in sorted(residual.items()):
            rows.append((f"‖v‖ / ‖β·w_adv‖, {block} (w_clean = β·w_adv + v)", _pm(entry) if isinstance(entry, dict)
                         else str(entry)))
    return rows


def _rows(kind: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    """The headline numbers of the generic page."""
    if kind == "purification":
        return purification_rows(data)
    if kind == "alpha-sweep":
        rows = [("α values", ", ".join(f"{a:g}" for a in data.get("alphas", [])))]
        for name, entry in (data.get("slopes") or {}).items():
            rows.append((f"log-log slope, {name}", _interval(entry)))
        return rows
    if kind == "scaling":
        rows = [(f"d-exponent of n*, {name}", _interval(entry)) for name, entry in (data.get("exponents") or {}).items()]
        for name, entry in (data.get("n_exponents") or {}).items():
            rows.append((f"n-exponent of the error, {name}", _interval(entry)))
        return rows
    if kind == "hierarchy":
        rows = []
        for name, entry in (data.get("summary") or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("rel_test_mse"), (int, float)):
                std = entry.get("rel_test_mse_std")
                rows.append((f"relative test MSE, {name}", f"{entry['rel_test_mse']:.3g}"
                             + (f" ± {std:.2g}" if isinstance(std, (int, float)) else "")))
        return rows
    return []


def _figures(site: Site, folder: Path, data: dict[str, Any]) -> list[dict[str, Any]]:
    pngs = sorted(p for p in folder.glob("*.png"))
    pngs += sorted(p for p in folder.glob("*/*.png"))[: max(0, MAX_FIGURES - len(pngs))]
    return site.copy_images(pngs, f"img/{slug(folder.name)}", MAX_FIGURES, within=folder)


def write_study_page(site: Site, folder: str | Path, page: str, kind: str, data: dict[str, Any],
                     label: str = "") -> dict[str, Any]:
    """The generic study page: command, findings, headline numbers and figures."""
    folder = Path(folder)
    title = TITLES.get(kind, "Study") + (f" ({label})" if label else "")
    findings = [str(f) for f in data.get("findings", []) if isinstance(f, str)]
    rows = _rows(kind, data)
    site.render(page, "study.html", study={
        "title": title, "command": data.get("command"), "seconds": data.get("seconds"), "findings": findings,
        "rows": rows, "figures": _figures(site, folder, data),
        "warnings": [str(w) for w in data.get("lr_edge_warnings", [])]})
    headline = findings[0] if findings else "; ".join(f"{k}: {v}" for k, v in rows[:2])
    return {"page": page, "title": title, "headline": headline}


def _compare_page(site: Site, folder: Path, page: str, data: dict[str, Any], label: str) -> dict[str, Any]:
    from .compare_pages import write_compare_page

    entry = write_compare_page(site, folder, page=page)
    tests = [t for t in data.get("tests", []) if isinstance(t, dict) and t.get("statement")]
    # the headline: joint vs layerwise robustness at the reference radii ε = 0.05 and 0.1 (every
    # tested ε is on the page), else the first comparison
    robust = [t for t in tests if "robust" in str(t.get("what")) and {t.get("a"), t.get("b")} == {"joint", "layerwise"}
              and t.get("eps") in HEADLINE_EPS]
    picked = robust or tests[:1]
    return {"page": entry["page"], "title": entry["title"] + (f" ({label})" if label else ""),
            "headline": "; ".join(str(t["statement"]) for t in picked)}


def _image_page(site: Site, folder: Path, page: str, data: dict[str, Any], label: str) -> dict[str, Any]:
    from .images_page import write_image_study_page

    entry = write_image_study_page(site, folder, page=page)
    head = entry["headline"]
    text = (f"layerwise / joint relative test MSE {_pm(head['ratio'])}; block-1 R² gain of the joint stage "
            f"{_pm(head['block1_r2_gain'])}")
    return {"page": entry["page"], "title": entry["title"] + (f" ({label})" if label else ""), "headline": text}


PAGES: dict[str, Callable[..., dict[str, Any]]] = {"compare": _compare_page, "image-study": _image_page}


Study = tuple[Path, str, str, dict[str, Any]]


def read_studies(studies: Sequence[tuple[str | Path, str]]) -> list[Study]:
    """``(folder, label, kind, results)`` of every ``(folder, label)``: read them all before any
    page is written, so a broken folder fails fast."""
    return [(Path(folder), label, *read_study(folder)) for folder, label in studies]


def write_study_pages(site: Site, studies: Sequence[Study]) -> list[dict[str, Any]]:
    """One page per study of :func:`read_studies`; returns the index entries ``{page, title,
    headline, kind, label}``. ``label`` says where the numbers come from (e.g. "demo-sized,
    2 seeds" or "shipped study, 5 seeds")."""
    entries, taken = [], []
    for folder, label, kind, data in studies:
        name = slug(f"{kind}-{label or folder.name}", taken, max_len=60)
        taken.append(name)
        page = f"study-{name}.html"
        writer = PAGES.get(kind)
        if writer is not None:
            entry = writer(site, folder, page, data, label)
        else:
            entry = write_study_page(site, folder, page, kind, data, label)
        entries.append(entry | {"kind": kind, "label": label})
    return entries
