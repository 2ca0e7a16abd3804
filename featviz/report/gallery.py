"""``write_gallery``: a static, offline HTML site over checkpoints and result folders.

It only reads: checkpoints' cards, ``featviz maximize``/``attack``/``hierarchy`` folders
and the unit matches (``matches.json``); whatever needs models run or data loaded is
produced beforehand by :mod:`featviz.gallery`, which also builds the whole folder
under a temporary name and swaps it into place (an interrupted rebuild leaves the
previous gallery intact). The site is plain files: HTML pages rendered from
autoescaped Jinja2 templates, one stylesheet, PNGs referenced by relative links (never
inlined as base64, so pages stay small) and loaded lazily. No script runs and nothing
is fetched from the network; each page carries a Content-Security-Policy that forbids
both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from ..errors import FeatvizError
from ..figures import tradeoff_plot, use_log_scale
from ..stats import median
from ..text import slug
from . import plots
from .results import (ModelCard, Visuals, hierarchy_rows, read_attacks, read_card, read_hierarchy, read_matches,
                      read_visuals, robust_accuracy_at)
from .site import Site
from .studies import read_studies, write_study_pages

# Bounds that keep every page small whatever the inputs hold.
MAX_UNITS = 64          # units per layer page and per comparison page
MAX_EXAMPLES = 5        # dataset examples per unit
MAX_ATTACK_IMAGES = 120
MAX_HIERARCHY_IMAGES = 40
# An image with at least this share of its spectral energy beyond half the Nyquist
# radius is flagged as noise (white noise has about 0.8, a smooth blob about 0).
NOISE_HF = 0.5


@dataclass
class GalleryModel:
    """A checkpoint as the gallery shows it."""

    checkpoint: ModelCard  # or a loaded featviz.checkpoint.Checkpoint: the same name, card and path
    slug: str
    visuals: Visuals = field(default_factory=Visuals)
    robust: dict[str, Any] | None = None  # {"eps", "robust_accuracy", "attack"} at the reference ε

    @property
    def label(self) -> str:
        return self.checkpoint.name

    @property
    def layers(self) -> list[str]:
        return [str(layer.get("name")) for layer in self.checkpoint.card.get("layers", [])]

    def layer_page(self, layer: str) -> str:
        return f"model-{self.slug}-{slug(layer)}.html"


def layer_summary(vis: Visuals, layer: str) -> list[dict[str, Any]]:
    """Median image metrics of one layer, one row per regularizer setting."""
    units = vis.layers.get(layer, {})
    rows = []
    for reg in vis.regs:
        images = [u.images[reg] for u in units.values() if reg in u.images]
        if images:
            rows.append({"reg": reg, "units": len(images),
                         **{k: median(getattr(im, k) for im in images)
                            for k in ("activation", "relative_activation", "hf_ratio", "noise_index", "tv",
                                      "shift_stability")}})
    if rows and vis.baseline:  # what real images score, beside the renders
        rows.append({"reg": "data (real images)", "units": vis.baseline.get("n"), "activation": None,
                     "relative_activation": None, "hf_ratio": vis.baseline.get("hf_ratio"),
                     "noise_index": 0.0 if (vis.baseline.get("white_noise") or {}).get("hf_ratio") else None,
                     "tv": vis.baseline.get("tv"), "shift_stability": None})
    return rows


def _reference_eps(models: list[GalleryModel], attacks: dict[str, Any] | None, given: float | None) -> float | None:
    """The ε the index reports: as given, else the ε an adversarially trained model was
    trained at, else the middle of the attack sweep."""
    if given is not None:
        return given
    for m in models:
        adv = m.checkpoint.card.get("training", {}).get("adv")
        if isinstance(adv, dict) and isinstance(adv.get("eps"), (int, float)):
            return float(adv["eps"])
    if attacks:
        eps = sorted({p["eps"] for model in attacks["models"] for a in model["attacks"] for p in a["curve"]})
        if eps:
            return eps[len(eps) // 2]
    return None


# A study run with fewer seeds than this is labelled demo-sized wherever its numbers are shown.
DEMO_SEEDS = 3

# The hierarchy figures in reading order: the training story first, then the sweeps.
FIGURE_ORDER = ("training_error", "error_curves", "feature_r2", "error_vs_n", "error_vs_width")


def _figure_order(path: Path) -> tuple[int, str]:
    stem = path.stem.lower()
    return (FIGURE_ORDER.index(stem) if stem in FIGURE_ORDER else len(FIGURE_ORDER), stem)


# The attack the overview quotes when a model was evaluated with several: the strongest first.
STRONGEST_FIRST = ("autoattack", "autoattack-fast", "apgd-t", "apgd-ce", "pgd", "pgd-linf", "square", "fgsm")


def _strength(name: Any) -> int:
    name = str(name).lower()
    return STRONGEST_FIRST.index(name) if name in STRONGEST_FIRST else len(STRONGEST_FIRST)


def _pick_attack(attacks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The attack the index summarizes: the strongest L∞ evaluation present (see
    :data:`STRONGEST_FIRST`), else the first."""
    return min(attacks, key=lambda a: _strength(a.get("attack")), default=None)


def _robust_headline(data: dict[str, Any], models: list["GalleryModel"], ref_eps: float | None) -> None:
    """Set each model's overview figure from a ``featviz attack`` folder run at the reference ε
    with a strong attack (``robust=``): the strongest evaluation nearest ``ref_eps``, labelled
    with the attack and the number of test images."""
    if ref_eps is None:
        return
    for entry in data["models"]:
        owner = _owner(entry, models)
        rows = [r for r in entry.get("evaluations", []) if isinstance(r.get("eps"), (int, float))]
        if owner is None or not rows:
            continue
        best = min(rows, key=lambda r: (abs(r["eps"] - ref_eps), _strength(r.get("attack"))))
        owner.robust = {"eps": best["eps"], "robust_accuracy": best.get("robust_accuracy"),
                        "attack": f"{best.get('attack')}, {best.get('n_examples', '?')} test images"}


def _owner(entry: dict[str, Any], models: list[GalleryModel]) -> GalleryModel | None:
    """The gallery model an attack result belongs to (same folder, else same name)."""
    ref = str(entry.get("checkpoint") or "")
    for m in models:
        if ref and Path(ref).resolve() == m.checkpoint.path.resolve():
            return m
    names = {str(entry.get("name") or ""), Path(ref).name if ref else ""} - {""}
    for m in models:
        if names & {m.checkpoint.path.name, m.label}:
            return m
    return None


def write_gallery(site_dir: str | Path, checkpoints: Sequence[str | Path | Any], *,
                  visuals: Sequence[Sequence[Path]] | None = None, matches: str | Path | None = None,
                  attacks: str | Path | None = None, hierarchy: str | Path | None = None,
                  robust: str | Path | None = None,
                  reference_eps: float | None = None, title: str = "featviz gallery", notes: Sequence[str] = (),
                  studies: Sequence[tuple[str | Path, str]] = (), progress: bool = True) -> dict[str, Any]:
    """Write the gallery's files into the existing folder ``site_dir`` from result folders.

    ``checkpoints``: checkpoint folders (their ``card.json`` is read) or loaded checkpoints;
    ``visuals[i]``: ``featviz maximize`` folders of checkpoint ``i``; ``matches``: the
    ``matches.json`` of :func:`featviz.gallery.compute_matches` (no comparison
    pages without it); ``attacks``, ``hierarchy``, ``reference_eps``, ``title``,
    ``notes``: see :func:`featviz.gallery.build_gallery`; ``robust``: a ``featviz attack``
    folder at the reference ε whose strongest evaluation the overview quotes (else the curves of
    ``attacks``); ``studies``: ``(folder, label)``
    of study result folders (compare, purify, hierarchy run|images|alpha-sweep|scaling), one page
    each (:mod:`featviz.report.studies`). Runs no model and loads
    no dataset (checkpoints are read for their cards and layer names).
    """
    site_dir = Path(site_dir)
    if not checkpoints:
        raise FeatvizError("the gallery needs at least one checkpoint", "pass checkpoint folders made by `featviz train`")
    # read every result folder first: a broken one fails fast, before any page is written
    attack_data = read_attacks(Path(attacks)) if attacks else None
    robust_data = read_attacks(Path(robust)) if robust else None
    hier_data = read_hierarchy(Path(hierarchy)) if hierarchy else None
    models: list[GalleryModel] = []
    for i, item in enumerate(checkpoints):
        ckpt = read_card(Path(item)) if isinstance(item, (str, Path)) else item
        folders = [Path(f) for f in visuals[i]] if visuals is not None and i < len(visuals) else []
        models.append(GalleryModel(ckpt, slug(ckpt.name, (m.slug for m in models)), read_visuals(folders)))
    study_data = read_studies(studies)
    match_data = read_matches(Path(matches), [m.label for m in models]) if matches else None
    ref_eps = _reference_eps(models, attack_data, reference_eps)

    site = Site(site_dir, title=title)
    bar = tqdm(total=4 + sum(len(m.layers) for m in models), desc="gallery", unit="page", leave=False,
               disable=not progress)
    if robust_data:  # first: the attack page says where the overview's figure differs from its curves
        _robust_headline(robust_data, models, ref_eps)
    attack_ctx = _attack_pages(site, attack_data, Path(attacks), models, ref_eps) if attack_data else None
    notes = list(notes)
    for label, data in (("--attacks", attack_data), ("--robust", robust_data)):
        if data and not any(_owner(entry, models) for entry in data["models"]):
            names = ", ".join(str(e.get("name") or e.get("checkpoint")) for e in data["models"])
            notes.append(f"The {label} folder holds results for {names}, none of which is a model of this gallery: "
                         "its numbers are not shown as any model's robust accuracy.")
    bar.update()
    hier_ctx = _hierarchy_pages(site, hier_data, Path(hierarchy)) if hier_data else None
    bar.update()
    hf_rows = _layer_pages(site, models, bar)
    hf_plot = site.plot("img/hf_ratio.png", lambda p: plots.hf_ratio_plot(hf_rows, p)) if hf_rows else None
    compare = _comparisons(site, models, match_data)
    bar.update()
    study_pages = write_study_pages(site, study_data)
    site.render("index.html", "index.html", models=models, attacks=attack_ctx, hierarchy=hier_ctx,
                reference_eps=ref_eps, compare=compare, hf_plot=hf_plot, notes=notes, studies=study_pages)
    bar.update()
    bar.close()
    site.write_static()
    return site.summary() | {
        "models": [{"name": m.label, "slug": m.slug, "checkpoint": str(m.checkpoint.path),
                    "mode": m.checkpoint.card.get("training", {}).get("mode"),
                    "test_accuracy": m.checkpoint.card.get("metrics", {}).get("test_accuracy"),
                    "robust_accuracy": (m.robust or {}).get("robust_accuracy")} for m in models],
        "reference_eps": ref_eps,
        "comparisons": [c["page"] for c in compare.get("pages", [])],
        "studies": study_pages,
    }


def _attack_pages(site: Site, data: dict[str, Any], folder: Path, models: list[GalleryModel],
                  ref_eps: float | None) -> dict[str, Any]:
    """``attacks.html`` and the robustness plot; sets each model's robust accuracy at ``ref_eps``
    (unless a ``--robust`` evaluation set it: then the page says where the two differ)."""
    series, rows, differ = [], [], []
    for entry in data["models"]:
        owner = _owner(entry, models)
        label = owner.label if owner else Path(str(entry.get("checkpoint", "?"))).name
        for attack in entry["attacks"]:
            curve = attack["curve"]
            name = str(attack.get("attack", "?"))
            series.append((label, name, [p["eps"] for p in curve], [p["robust_accuracy"] for p in curve]))
            min_eps = attack.get("min_eps") if isinstance(attack.get("min_eps"), dict) else {}
            rows.append({"model": label, "slug": owner.slug if owner else None, "attack": name,
                         "norm": attack.get("norm"), "steps": attack.get("steps"), "restarts": attack.get("restarts"),
                         "clean": entry["clean_accuracy"], "curve": curve, "min_eps_median": min_eps.get("median"),
                         "min_eps_measured": min_eps.get("measured", True) is not False})
        chosen = _pick_attack(entry["attacks"])
        if owner and chosen and ref_eps is not None:
            at = robust_accuracy_at(chosen["curve"], ref_eps)
            if at and owner.robust is None:  # a separate strong evaluation (--robust) takes precedence
                owner.robust = {"eps": at[0], "robust_accuracy": at[1], "attack": chosen.get("attack")}
            elif at and owner.robust is not None and abs(at[1] - owner.robust["robust_accuracy"]) > 1e-9:
                differ.append(f"{owner.label}: the overview quotes {100 * owner.robust['robust_accuracy']:.1f}% "
                              f"({owner.robust['attack']}, ε={owner.robust['eps']:g}), a separate evaluation; "
                              f"this page's {chosen.get('attack')} curve gives {100 * at[1]:.1f}% at ε={at[0]:g}"
                              + (" — an upper bound: weaker attacks find fewer adversarial examples"
                                 if _strength(chosen.get("attack")) > _strength(str(owner.robust["attack"]).split(",")[0])
                                 else ""))
    plot = site.plot("img/robustness.png", lambda p: plots.robustness_plot(series, p, ref_eps))
    # the attack's own curve plot is replaced by ours (all models, marked reference ε)
    images = site.copy_images(sorted(folder.rglob("*.png")), "img/attacks", limit=MAX_ATTACK_IMAGES,
                              within=folder, exclude=("robust",))
    attribution = [im for im in images if "attr" in im["caption"].lower() or "saliency" in im["caption"].lower()]
    ctx = {"plot": plot, "rows": rows, "examples": [im for im in images if im not in attribution],
           "attributions": attribution, "eps": sorted({p["eps"] for r in rows for p in r["curve"]}),
           "differ": differ}
    site.render("attacks.html", "attacks.html", attacks=ctx, reference_eps=ref_eps)
    return ctx


def _hierarchy_pages(site: Site, data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """``hierarchy.html``: the study's table, findings and figures."""
    findings = data.get("findings")
    config = data.get("config") or {}
    seeds = config.get("seeds") if isinstance(config.get("seeds"), list) else []
    demo = len(seeds) < DEMO_SEEDS
    provenance = (f"Numbers from the results folder {folder.name}: {len(seeds)} seed{'s' if len(seeds) != 1 else ''}, "
                  f"{config.get('n_train', '?')} training samples"
                  + (f" — demo-sized (fewer than {DEMO_SEEDS} seeds): a first look, not a measurement; the studies "
                     "list the shipped numbers." if demo else "."))
    ctx = {"rows": hierarchy_rows(data), "config": config, "provenance": provenance, "demo": demo,
           "findings": [str(f) for f in findings] if isinstance(findings, list) else [],
           "seconds": data.get("seconds"), "warnings": [str(w) for w in data.get("lr_edge_warnings") or []],
           "images": site.copy_images(sorted(folder.glob("*.png"), key=_figure_order), "img/hierarchy",
                                      limit=MAX_HIERARCHY_IMAGES, within=folder)}
    site.render("hierarchy.html", "hierarchy.html", hierarchy=ctx)
    return ctx


def _layer_pages(site: Site, models: list[GalleryModel], bar) -> list[tuple[str, dict[str, float]]]:
    """One page per model and layer (a row per unit and the trade-off plot, see :func:`unit_rows`);
    returns the median hf_ratio rows for the index plot."""
    hf_rows = []
    for m in models:
        for layer in m.layers:
            units = m.visuals.layers.get(layer, {})
            summary = layer_summary(m.visuals, layer)
            if summary:
                hf_rows.append((f"{m.label[:18]} {layer}", {r["reg"]: r["hf_ratio"] or 0.0 for r in summary}))
            bands = m.visuals.noise_bands
            best = best_prior(summary, m.visuals.priors, bands["like_data"]) if bands else None
            columns = row_columns([reg for reg in m.visuals.regs if any(reg in u.images for u in units.values())], best)
            folder = f"img/{m.slug}/{slug(layer)}"
            rows = unit_rows(site, units, columns, folder)
            tradeoff = _tradeoff(site, m, layer, units, columns, best, folder)
            site.render(m.layer_page(layer), "layer.html", model=m, layer=layer, summary=summary, rows=rows,
                        columns=columns, best=best, rule=BEST_PRIOR_RULE,
                        layer_priors=[c["reg"] for c in columns if c["reg"] in m.visuals.priors],
                        tradeoff=tradeoff, total_units=len(units), top_k=max((len(r["examples"]) for r in rows),
                                                                          default=0),
                        models=models, noise_hf=NOISE_HF, bands=bands,
                        white=(m.visuals.baseline or {}).get("white_noise"))
            bar.update()
    return hf_rows


# Stated on every layer page and in docs/guide.md.
BEST_PRIOR_RULE = ("among the data-prior settings rendered for the layer, the one with the highest median "
                   "relative activation among those whose median noise index is at most {like_data:g} "
                   "(like the data); when none is, the one with the lowest median noise index")


def best_prior(summary: list[dict[str, Any]], priors: Sequence[str], like_data: float) -> str | None:
    """The layer's best prior by :data:`BEST_PRIOR_RULE`, from :func:`layer_summary` rows;
    None when no data prior was rendered. A median that is missing counts last; ties go to
    the setting rendered first."""
    rows = [r for r in summary if r["reg"] in priors]
    if not rows:
        return None
    like = [r for r in rows if r["noise_index"] is not None and r["noise_index"] <= like_data]
    if like:
        return max(like, key=lambda r: -math.inf if r["relative_activation"] is None else r["relative_activation"])["reg"]
    return min(rows, key=lambda r: math.inf if r["noise_index"] is None else r["noise_index"])["reg"]


def row_columns(regs: Sequence[str], best: str | None) -> list[dict[str, str]]:
    """The picture columns of a layer page's unit rows, in order: ``none``, ``standard``, the
    best prior, then any other setting rendered (each ``{"reg", "role"}``; role ``"best-prior"``
    marks the prior's column, ``"reg"`` the others)."""
    first = [r for r in ("none", "standard") if r in regs and r != best]
    columns = [{"reg": r, "role": "reg"} for r in first]
    if best is not None:
        columns.append({"reg": best, "role": "best-prior"})
    return columns + [{"reg": r, "role": "reg"} for r in regs if r not in first and r != best]


def unit_rows(site: Site, units: dict[int, Any], columns: list[dict[str, str]], folder: str) -> list[dict[str, Any]]:
    """Per unit (the first :data:`MAX_UNITS`): one cell per column (its image and metrics, or
    None where the unit has no such render) and its top dataset examples, each with its
    activation and its activation relative to the unit's best example."""
    rows = []
    for unit in sorted(units)[:MAX_UNITS]:
        uv = units[unit]
        cells = [dict(site.image(uv.images[c["reg"]].file, folder), **c, metrics=uv.images[c["reg"]])
                 if c["reg"] in uv.images else None for c in columns]
        top = uv.examples[0][1] if uv.examples else None
        examples = [dict(site.image(f, f"{folder}/examples"), activation=a,
                         relative=a / top if a is not None and top else None)
                    for f, a in uv.examples[:MAX_EXAMPLES]]
        rows.append({"unit": unit, "cells": cells, "examples": examples})
    return rows


def _tradeoff(site: Site, m: GalleryModel, layer: str, units: dict[int, Any], columns: list[dict[str, str]],
              best: str | None, folder: str) -> dict[str, Any] | None:
    """The layer's trade-off plot (PNG and SVG) with what its caption states; None when no
    render has both a noise index and a relative activation."""
    series = {c["reg"]: [(uv.images[c["reg"]].noise_index, uv.images[c["reg"]].relative_activation)
                         for uv in units.values() if c["reg"] in uv.images] for c in columns}
    shown = {reg: [(x, y) for x, y in pts if x is not None and y is not None] for reg, pts in series.items()}
    if not any(shown.values()):
        return None
    shape = m.visuals.input_shape
    size = f"{shape[-2]}×{shape[-1]}" if shape and len(shape) >= 2 else None
    bands = m.visuals.noise_bands
    labels = {reg: f"{reg} (best prior)" if reg == best else reg for reg in shown}
    log = use_log_scale([y for pts in shown.values() for _, y in pts])
    entry = site.plot(f"{folder}/tradeoff.png", lambda path: tradeoff_plot(
        {labels[r]: pts for r, pts in shown.items()}, path, title=f"{m.label} {layer}", bands=bands, data_size=size,
        log=log))
    missing = sum(len(series[r]) - len(shown[r]) for r in series)
    return dict(entry, svg=f"{folder}/tradeoff.svg", log=log, data_size=size, missing=missing,
                n=sum(len(p) for p in shown.values()), settings=[labels[r] for r in shown])


def _comparisons(site: Site, models: list[GalleryModel], matches: dict[str, Any] | None) -> dict[str, Any]:
    """Write ``compare-<layer>.html`` pages from the unit matches: models trained on the same
    data side by side, the first of each group being the reference the others are matched to."""
    if matches is None:
        return {"pages": [], "note": None if len(models) == 1 else "units were not matched across models"}
    groups = matches["groups"]
    pages = []
    for group in groups:
        prefix = "compare-" if len(groups) == 1 else f"compare-{slug(group['dataset'])}-"
        pages += _compare_group(site, [models[i] for i in group["members"]], group, prefix)
    return {"pages": pages, "note": matches.get("note")}


def _compare_group(site: Site, group: list[GalleryModel], matches: dict[str, Any],
                   prefix: str) -> list[dict[str, Any]]:
    ref, members, dataset, pages = group[0], list(matches["members"]), str(matches["dataset"]), []
    for entry in matches["layers"]:
        layer = str(entry["layer"])
        peers = [group[members.index(int(p["model"]))] for p in entry["peers"]]
        pairs = {m.slug: [tuple(pair) for pair in p["pairs"]] for m, p in zip(peers, entry["peers"])}
        rows = []
        for unit in range(min(len(pairs[peers[0].slug]), MAX_UNITS)):
            cells = [_compare_cell(site, ref, layer, unit, None)]
            for m in peers:
                other, corr = pairs[m.slug][unit]
                cells.append(_compare_cell(site, m, layer, other, corr))
            rows.append({"unit": unit, "cells": cells})
        median_corr = {m.slug: median(c for _, c in pairs[m.slug]) for m in peers}
        page = f"{prefix}{slug(layer)}.html"
        site.render(page, "compare.html", layer=layer, models=[ref] + peers, rows=rows, median_corr=median_corr,
                    n_examples=matches["n_examples"], dataset=dataset)
        pages.append({"page": page, "layer": layer if len(prefix) == len("compare-") else f"{dataset} {layer}"})
    return pages


def _compare_cell(site: Site, m: GalleryModel, layer: str, unit: int | None, corr: float | None) -> dict[str, Any]:
    cell: dict[str, Any] = {"unit": unit, "corr": corr, "image": None, "example": None}
    uv = m.visuals.layers.get(layer, {}).get(unit) if unit is not None else None
    if uv:
        reg = next((r for r in reversed(m.visuals.regs) if r in uv.images), None)
        if reg:
            cell["image"] = dict(site.image(uv.images[reg].file, f"img/{m.slug}/{slug(layer)}"), reg=reg)
        if uv.examples:
            cell["example"] = site.image(uv.examples[0][0], f"img/{m.slug}/{slug(layer)}/examples")
    return cell


__all__ = ["BEST_PRIOR_RULE", "GalleryModel", "best_prior", "layer_summary", "row_columns", "unit_rows",
           "write_gallery"]
