"""Study pages of the gallery: one page per result folder of a study command.

A study folder is what ``featviz compare``, ``featviz hierarchy images``, ``featviz purify``,
``featviz hierarchy run``, ``featviz hierarchy alpha-sweep`` or ``featviz hierarchy scaling``
writes: a ``results.json`` and its figures. :func:`study_kind` reads the command from the
``format`` tag of ``results.json`` (see docs/formats.md); the comparison of training modes and
the image study have pages of their own, every other kind gets the generic study page
(command, findings, headline numbers, figures). Nothing here runs a model or loads data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import FeatvizError
from ..fileio import inside, read_json
from ..stats import interval_text, mean_std_text
from ..text import slug
from .schema import GENERIC, validate
from .schema import STUDIES as SCHEMAS
from .results import (pm_text, primary_rows, provenance, purification_rows, significance_table,
                      verdict)
from .site import Site

TITLES = {
    "compare": "Training modes over seeds",
    "image-study": "Backward feature correction on images",
    "purification": "Feature purification",
    "hierarchy": "Hierarchy study (synthetic teacher)",
    "alpha-sweep": "Information gap: the α sweep",
    "scaling": "Sample complexity: scaling with n and d",
    "prior-renders": "Pictures of quadratic units: data priors and a noise index",
}
MAX_FIGURES = 12
# format tags whose kind is not the tag's own name (the part between "featviz-" and "/<version>")
KINDS = {"featviz-hierarchy-alpha": "alpha-sweep", "featviz-hierarchy-scaling": "scaling"}


def study_kind(data: dict[str, Any]) -> str | None:
    """The kind of study that wrote ``data`` (a parsed ``results.json``), from its ``format``
    tag alone: ``featviz-<kind>/<version>`` (a few older names mapped by :data:`KINDS`) on a
    result that declares its ``primary`` endpoint, as every study's does. None for anything
    else."""
    tag = str(data.get("format", "")).split("/")[0]
    if not tag.startswith("featviz-") or not isinstance(data.get("primary"), dict):
        return None
    return KINDS.get(tag, tag[len("featviz-"):])


def read_study(folder: str | Path) -> tuple[str, dict[str, Any]]:
    """``(kind, results)`` of a study folder; one clear error if it is none."""
    folder = Path(folder)
    data = read_json(folder / "results.json", "results.json of a study (compare, hierarchy, purify)")
    kind = study_kind(data)
    if kind is None:
        raise FeatvizError(f"{folder / 'results.json'} is not the result of a study command (format "
                           f"{data.get('format')!r})", "pass folders written by featviz compare, purify or hierarchy "
                           "run|images|alpha-sweep|scaling (folders from before the format tag: run the study again)")
    validate(data, SCHEMAS.get(kind, GENERIC), folder / "results.json")
    validate(data, GENERIC, folder / "results.json")
    check_named_files(folder, data, kind)
    return kind, data


def check_named_files(folder: Path, data: dict[str, Any], kind: str | None = None) -> None:
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
    if kind != "image-study":
        return
    units = data.get("units")
    if units is not None and not isinstance(units, list):
        raise FeatvizError(f"{source}: 'units' must be a list", "regenerate the results")
    for unit in units or []:
        unit_files = unit.get("files") if isinstance(unit, dict) else None
        if not isinstance(unit_files, dict):
            raise FeatvizError(f"{source}: every entry of 'units' needs a 'files' object", "regenerate the results")
        for key, name in unit_files.items():
            inside(folder, name, source, f"units[].files.{key}")


def prior_render_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Headline rows of a prior-renders study: per block and setting the median relative
    activation and noise index (with the bands the colours use), the judge's verdicts."""
    bands = data.get("noise_index_bands") or {}
    rows = [("noise index bands (0 = data, 1 = white noise)",
             f"≤ {bands.get('like_data', '–')} like the data (green), ≥ {bands.get('noisy', '–')} noise-like (red)")]
    for block, regs in (data.get("units") or {}).items():
        for reg, s in (regs or {}).items():
            rows.append((f"{block}, {reg}: activation ÷ best image · noise index · converged",
                         f"{interval_text(s.get('relative_activation'))} · {interval_text(s.get('noise_index'))} · "
                         f"{s.get('converged', 0):.0%}"))
    judge = data.get("judge") or {}
    for reg, s in (data.get("classes") or {}).items():
        rows.append((f"class renders recognized by the judge ({judge.get('name', 'judge')}), {reg}",
                     f"{s.get('recognized')}/{s.get('n')}"))
    return rows


def _rows(kind: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    """The headline numbers of the generic page."""
    if kind == "prior-renders":
        return primary_rows(data) + prior_render_rows(data)
    if kind == "purification":
        return primary_rows(data) + purification_rows(data)
    if kind == "alpha-sweep":
        rows = primary_rows(data) + [("α values", ", ".join(f"{a:g}" for a in data.get("alphas", [])))]
        for name, entry in (data.get("slopes") or {}).items():
            rows.append((f"log-log slope, {name}", interval_text(entry)))
        return rows
    if kind == "scaling":
        rows = primary_rows(data) + [(f"d-exponent of n*, {name}", interval_text(entry))
                                     for name, entry in (data.get("exponents") or {}).items()]
        for name, entry in (data.get("n_exponents") or {}).items():
            rows.append((f"n-exponent of the error, {name}", interval_text(entry)))
        return rows
    if kind == "hierarchy":
        rows = primary_rows(data)
        for name, entry in (data.get("summary") or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("rel_test_mse"), (int, float)):
                rows.append((f"relative test MSE, {name}",
                             mean_std_text({"mean": entry["rel_test_mse"], "std": entry.get("rel_test_mse_std")})))
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
    title = TITLES.get(kind, kind.replace("-", " ").capitalize()) + (f" ({label})" if label else "")
    findings = [str(f) for f in data.get("findings", []) if isinstance(f, str)]
    rows = _rows(kind, data)
    site.render(page, "study.html", verdict=verdict(data, label, folder), study={
        "title": title, "provenance": provenance(label, folder), "command": data.get("command"),
        "seconds": data.get("seconds"), "findings": findings, "rows": rows, "tests": significance_table(data), "figures": _figures(site, folder, data),
        "warnings": [str(w) for w in data.get("lr_edge_warnings", [])]})
    headline = findings[0] if findings else "; ".join(f"{k}: {v}" for k, v in rows[:2])
    return {"page": page, "title": title, "headline": headline}


def _compare_page(site: Site, folder: Path, page: str, data: dict[str, Any], label: str) -> dict[str, Any]:
    from .compare_pages import write_compare_page

    entry = write_compare_page(site, folder, page=page, verdict=verdict(data, label, folder))
    tests = [t for t in data.get("tests", []) if isinstance(t, dict) and t.get("statement")]
    # the headline: the primary endpoint, then joint vs layerwise robustness at the radii the study
    # quotes (every tested ε is on the page), else the first comparison
    robust = [t for t in tests if "robust" in str(t.get("what")) and {t.get("a"), t.get("b")} == {"joint", "layerwise"}
              and t.get("eps") in (data.get("headline_eps") or [])]
    picked = [text for _, text in primary_rows(data)] + [str(t["statement"]) for t in robust or tests[:1]]
    return {"page": entry["page"], "title": entry["title"] + (f" ({label})" if label else ""),
            "headline": "; ".join(picked)}


def _image_page(site: Site, folder: Path, page: str, data: dict[str, Any], label: str) -> dict[str, Any]:
    from .images_page import write_image_study_page

    entry = write_image_study_page(site, folder, page=page, verdict=verdict(data, label, folder))
    head = entry["headline"]
    text = (f"layerwise / joint relative test MSE {interval_text(head['ratio'])}; block-1 R² gain of the joint "
            f"stage {pm_text(head['block1_r2_gain'])}")
    return {"page": entry["page"], "title": entry["title"] + (f" ({label})" if label else ""), "headline": text}


PAGES: dict[str, Callable[..., dict[str, Any]]] = {"compare": _compare_page, "image-study": _image_page}


Study = tuple[Path, str, str, dict[str, Any]]


def study_label(label: str, data: dict[str, Any]) -> str:
    """Where a study's numbers come from, as its page says it: ``label`` (given by the caller,
    e.g. the folder's name) joined with the label the study wrote into its ``results.json``
    (``label``, e.g. "demo-sized: 2 seeds, ..." of a ``--quick`` run). A result from a
    ``--quick`` command that wrote no label is labelled demo-sized all the same."""
    own = str(data.get("label") or "").strip()
    if not own and "--quick" in str(data.get("command") or "").split():
        own = "demo-sized: a --quick run"
    if not own or own.lower() in label.lower() or "demo-sized" in label.lower():
        return label  # the caller already says it (the demo labels its own demo-sized studies)
    return f"{label}, {own}" if label else own


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
        label = study_label(label, data)
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
