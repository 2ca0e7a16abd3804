"""Readers for the result folders the gallery shows (formats in docs/formats.md).

Each reader validates what the gallery needs and raises a :class:`FeatvizError`
naming the file and the field when something is missing, so a broken folder gives
one clear line instead of a half-built site. Paths of images are resolved against
the folder they came from and must stay inside it (a hostile ``file`` field such as
``../../etc/passwd`` is refused).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FeatvizError
from ..stats import interval_text, mean_std_text
from ..fileio import inside, read_json
from .schema import HIERARCHY, validate

NEURON = re.compile(r"^(?P<layer>[A-Za-z_][\w.]*):(?P<unit>\d+)(?:@\d+,\d+)?$")


def _number(value: Any) -> float | None:
    """A finite float, or None for missing/null/NaN values (results may hold nulls)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# ---------------------------------------------------------------- checkpoints

@dataclass
class ModelCard:
    """What the gallery knows of a checkpoint: its folder and its ``card.json`` (never its
    weights). A loaded :class:`featviz.checkpoint.Checkpoint` offers the same attributes."""

    card: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return self.card.get("name") or self.path.name


def read_card(folder: Path) -> ModelCard:
    """The ``card.json`` of a checkpoint folder (docs/formats.md), checked for its format tag."""
    card = read_json(folder / "card.json", "card.json of a checkpoint made by featviz train")
    if not str(card.get("format", "")).startswith("featviz-checkpoint/"):
        raise FeatvizError(f"{folder / 'card.json'} is not a featviz checkpoint card", "pass checkpoint folders")
    return ModelCard(card, folder)


# ---------------------------------------------------------------- visualizations

@dataclass
class UnitImage:
    """One synthesized image of a unit under one regularizer setting."""

    reg: str
    file: Path
    activation: float | None = None
    relative_activation: float | None = None  # activation / the unit's strongest dataset example
    hf_ratio: float | None = None
    tv: float | None = None
    shift_stability: float | None = None
    steps: int | None = None
    noise_index: float | None = None  # 0 = like the data, 1 = like white noise (metrics.json, when written)
    converged: bool | None = None  # None: not checked (or not written)
    flat: bool = False  # TV below the flat threshold: no hf_ratio, no noise index


@dataclass
class UnitVisuals:
    """Everything shown for one unit: images per regularizer and top dataset examples."""

    layer: str
    unit: int
    images: dict[str, UnitImage] = field(default_factory=dict)
    examples: list[tuple[Path, float | None]] = field(default_factory=list)


@dataclass
class Visuals:
    """The ``featviz maximize`` results of one model: ``layers[layer][unit]``."""

    layers: dict[str, dict[int, UnitVisuals]] = field(default_factory=dict)
    regs: list[str] = field(default_factory=list)
    baseline: dict[str, Any] | None = None  # the data's median hf_ratio and TV, when metrics.json has them
    noise_bands: dict[str, float] | None = None  # metrics.json's noise_index_bands, when written
    priors: list[str] = field(default_factory=list)  # the settings that are data priors (metrics.json's priors)
    input_shape: list[int] | None = None  # the model's input (C, H, W), when metrics.json has it

    def unit(self, layer: str, unit: int) -> UnitVisuals:
        units = self.layers.setdefault(layer, {})
        return units.setdefault(unit, UnitVisuals(layer, unit))


def _parse_neuron(spec: Any, source: Path) -> tuple[str, int]:
    match = NEURON.match(spec) if isinstance(spec, str) else None
    if not match:
        raise FeatvizError(f"{source}: neuron {spec!r} is not LAYER:UNIT", "regenerate the results")
    return match["layer"], int(match["unit"])


def read_visuals(folders: list[Path], into: Visuals | None = None) -> Visuals:
    """Merge the ``metrics.json`` of several ``featviz maximize`` output folders.

    Entries whose neuron is not a single unit (``logits:3`` is kept, ``block2:*`` never
    appears in a result) are grouped by layer and unit; regularizer settings keep the
    order in which they first appear.
    """
    vis = into or Visuals()
    for folder in folders:
        folder = Path(folder)
        source = folder / "metrics.json"
        metrics = read_json(source, "metrics.json written by `featviz maximize`")
        images = metrics.get("images")
        if not isinstance(images, list):
            raise FeatvizError(f"{source} has no 'images' list", "regenerate it with `featviz maximize`")
        base = metrics.get("baseline")
        if isinstance(base, dict) and _number(base.get("hf_ratio")) is not None:
            vis.baseline = base
        bands = metrics.get("noise_index_bands")
        if isinstance(bands, dict) and all(_number(bands.get(k)) is not None for k in ("like_data", "noisy")):
            vis.noise_bands = {"like_data": float(bands["like_data"]), "noisy": float(bands["noisy"])}
        if isinstance(metrics.get("priors"), dict):
            vis.priors += [str(reg) for reg in metrics["priors"] if str(reg) not in vis.priors]
        shape = metrics.get("input_shape")
        if isinstance(shape, list) and shape and all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
            vis.input_shape = shape
        for entry in images:
            if not isinstance(entry, dict):
                raise FeatvizError(f"{source}: 'images' must hold objects")
            layer, unit = _parse_neuron(entry.get("neuron"), source)
            reg = str(entry.get("reg") or "none")
            steps = _number(entry.get("steps"))
            vis.unit(layer, unit).images[reg] = UnitImage(
                reg=reg, file=inside(folder, entry.get("file"), source, "images[].file"),
                activation=_number(entry.get("activation")),
                relative_activation=_number(entry.get("relative_activation")), hf_ratio=_number(entry.get("hf_ratio")),
                tv=_number(entry.get("tv")), shift_stability=_number(entry.get("shift_stability")),
                steps=None if steps is None else int(steps), noise_index=_number(entry.get("noise_index")),
                converged=entry["converged"] if isinstance(entry.get("converged"), bool) else None,
                flat=entry.get("flat") is True)
            if reg not in vis.regs:
                vis.regs.append(reg)
        for entry in metrics.get("dataset_examples") or []:
            if not isinstance(entry, dict):
                raise FeatvizError(f"{source}: 'dataset_examples' must hold objects")
            layer, unit = _parse_neuron(entry.get("neuron"), source)
            files = entry.get("files") or []
            acts = entry.get("activations") or [None] * len(files)
            if not isinstance(files, list) or not isinstance(acts, list):
                raise FeatvizError(f"{source}: dataset example files/activations must be lists")
            vis.unit(layer, unit).examples = [(inside(folder, f, source, "dataset_examples[].files"), _number(a))
                                              for f, a in zip(files, acts + [None] * len(files))]
    return vis


# ---------------------------------------------------------------- attacks

def read_attacks(folder: Path) -> dict[str, Any]:
    """``results.json`` of ``featviz attack``, checked for the fields the gallery reads.

    Returns the parsed object with curves sorted by ε and every number made finite or None.
    """
    folder = Path(folder)
    source = folder / "results.json"
    data = read_json(source, "results.json written by `featviz attack`")
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise FeatvizError(f"{source} has no 'models' list", "is this a `featviz attack` output folder?")
    for model in models:
        if not isinstance(model, dict) or not isinstance(model.get("attacks"), list):
            raise FeatvizError(f"{source}: every model needs an 'attacks' list")
        model["clean_accuracy"] = _number(model.get("clean_accuracy"))
        for attack in model["attacks"]:
            curve = attack.get("curve") if isinstance(attack, dict) else None
            if not isinstance(curve, list):
                raise FeatvizError(f"{source}: every attack needs a 'curve' list of {{eps, robust_accuracy}}")
            points = []
            for p in curve:
                eps = _number(p.get("eps")) if isinstance(p, dict) else None
                if eps is None:
                    raise FeatvizError(f"{source}: a curve point has no numeric 'eps'")
                points.append({"eps": eps, "robust_accuracy": _number(p.get("robust_accuracy")),
                               "mean_norm": _number(p.get("mean_norm"))})
            attack["curve"] = sorted(points, key=lambda p: p["eps"])
    return data


def robust_accuracy_at(curve: list[dict[str, Any]], eps: float) -> tuple[float, float | None] | None:
    """The curve point whose ε is closest to ``eps``: ``(eps_used, robust_accuracy)``."""
    if not curve:
        return None
    point = min(curve, key=lambda p: (abs(p["eps"] - eps), p["eps"]))
    return point["eps"], point["robust_accuracy"]


# ---------------------------------------------------------------- hierarchy

LEARNERS = ("joint", "layerwise", "layerwise+joint", "shallow", "kernel")


def read_hierarchy(folder: Path) -> dict[str, Any]:
    """``results.json`` of ``featviz hierarchy run`` (needs ``config`` and ``summary``)."""
    folder = Path(folder)
    source = folder / "results.json"
    data = read_json(source, "results.json written by `featviz hierarchy run`")
    if not isinstance(data.get("summary"), dict):
        raise FeatvizError(f"{source} has no 'summary' object", "is this a `featviz hierarchy run` output folder?")
    validate(data, HIERARCHY, source)
    return data


def hierarchy_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One table row per learner: relative test MSE, its ratio to joint, feature R² per layer."""
    summary = data["summary"]
    names = [n for n in LEARNERS if n in summary] + [n for n in summary if n not in LEARNERS]
    joint = _number((summary.get("joint") or {}).get("rel_test_mse"))
    rows = []
    for name in names:
        entry = summary[name] if isinstance(summary[name], dict) else {}
        mse = _number(entry.get("rel_test_mse"))
        r2 = entry.get("feature_r2")
        rows.append({"learner": name, "rel_test_mse": mse,
                     "vs_joint": mse / joint if mse is not None and joint else None,
                     "feature_r2": [_number(v) for v in r2] if isinstance(r2, list) else [],
                     "epochs": entry.get("epochs")})
    return rows


# ---------------------------------------------------------------- unit matches

def read_matches(path: Path, models: list[str]) -> dict[str, Any]:
    """``matches.json`` (see :func:`featviz.gallery.compute_matches`), checked against
    the names of the gallery's checkpoints ``models``, in order."""
    data = read_json(path, "unit matches (matches.json, written by the gallery command)")
    if data.get("models") != models:
        raise FeatvizError(f"{path} matches the units of {data.get('models')}, not of {models}",
                           "recompute it for these checkpoints, in this order")
    groups = data.get("groups")
    if not isinstance(groups, list):
        raise FeatvizError(f"{path}: 'groups' must be a list", "regenerate the matches")
    for group in groups:
        try:
            members = [int(i) for i in group["members"]]
            ok = members and all(0 <= i < len(models) for i in members) and int(group["n_examples"]) >= 0
            for layer in group["layers"]:
                str(layer["layer"])
                for peer in layer["peers"]:
                    ok = ok and int(peer["model"]) in members and all(len(p) == 2 for p in peer["pairs"])
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise FeatvizError(f"{path}: a group is malformed", "regenerate the matches")
    return data


# ---------------------------------------------------------------- study numbers as text

def pm_text(entry: Any, digits: int = 3) -> str:
    """``mean ± std`` of a spread entry (``{mean, std, ...}``), or "–" (see
    :func:`featviz.stats.mean_std_text`)."""
    return mean_std_text(entry, f".{digits}g")


def primary_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The study's primary endpoint (``primary: {name, value, low, high, level}``) as a row."""
    p = data.get("primary")
    if not isinstance(p, dict) or not p.get("name"):
        return []
    level = p.get("level")
    ci = f" ({100 * level:.0f} % CI)" if isinstance(level, (int, float)) and p.get("low") is not None else ""
    return [(f"primary: {p['name']}", interval_text(p) + ci)]


def verdict(data: dict[str, Any], label: str = "", folder: str | Path | None = None) -> dict[str, str] | None:
    """The verdict box of a study page: its primary endpoint in plain words with its CI, and
    where the numbers come from (``label``, e.g. "shipped study ..." or "demo-sized, 1 seed";
    else the results folder). None when the study declares no primary endpoint."""
    p = data.get("primary")
    if not isinstance(p, dict) or not p.get("name") or not isinstance(p.get("value"), (int, float)):
        return None
    name, value, low, high = str(p["name"]), float(p["value"]), p.get("low"), p.get("high")
    level = p.get("level") if isinstance(p.get("level"), (int, float)) else None
    ratio = "ratio" in name or ("/" in name and "−" not in name and "minus" not in name)
    null = 1.0 if ratio else 0.0
    if isinstance(low, (int, float)) and isinstance(high, (int, float)):
        ci = f"{100 * level:.0f} % CI" if level else "interval"
        span = f"{value:.3g} ({ci} {low:.3g} to {high:.3g})"
        if low > null or high < null:
            side = "above" if low > null else "below"
            plain = f"the whole interval lies {side} {null:g}: a clear effect at this size."
        else:
            plain = f"the interval includes {null:g}: no clear difference at this size."
    else:
        span, plain = f"{value:.3g}", "no interval was computed: read it as one estimate."
    return {"statement": f"{name[:1].upper()}{name[1:]}: {span}; {plain}",
            "detail": "The study's primary endpoint, declared before it ran; every other number on this page is "
                      "secondary.",
            "provenance": provenance(label, folder)}


def provenance(label: str = "", folder: str | Path | None = None) -> str:
    """Where a page's numbers come from (``label``, else the results folder), with the
    demo-sized warning when the label says demo or quick."""
    where = label or (f"results folder {Path(folder).name}" if folder else "this run")
    demo = "demo" in where.lower() or "quick" in where.lower()
    return f"Numbers from: {where}" + (" — demo-sized, for a first look, not a measurement." if demo else ".")


def purification_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Headline rows of a ``purification`` section: the adversarial / clean ratio of median
    hf_ratio per block (ratio of means with its CI), the median hf_ratio of unregularized
    renders per model and block (mean ± std over seeds), the data's value and the weight
    residuals."""
    section = data.get("purification") or {}
    hf = section.get("hf_ratio") or {}
    rows = [(f"adversarial / clean median hf_ratio, {block}", interval_text(entry))
            for block, entry in sorted((section.get("adv_over_clean") or {}).items())]
    for model in ("clean", "adversarial", "clean_scratch", "noise", "weight_decay"):
        for block, entry in sorted((hf.get(model) or {}).items()):
            rows.append((f"median hf_ratio, {model}, {block}", pm_text(entry)))
    for block, claim in sorted((section.get("claims") or {}).items()):
        rows.append((f"purification claimed, {block} (adversarial below the noise and weight-decay controls, "
                     "paired CIs excluding 0)", "yes" if claim.get("purification") else "no"))
    if isinstance(hf.get("data"), (int, float)):
        rows.append(("median hf_ratio of the data's own images", f"{hf['data']:.3g}"))
    residual = section.get("residual_ratio")
    if isinstance(residual, dict):
        for block, entry in sorted(residual.items()):
            rows.append((f"‖v‖ / ‖β·w_adv‖, {block} (w_clean = β·w_adv + v)", pm_text(entry) if isinstance(entry, dict)
                         else str(entry)))
    return rows


def _estimate_text(entry: dict[str, Any]) -> str:
    """A comparison's estimate with its interval where the study wrote one."""
    value = _number(entry.get("value"))
    if value is None:
        value = _number(entry.get("difference"))
    low, high = _number(entry.get("low")), _number(entry.get("high"))
    text = interval_text({"value": value, "low": low, "high": high})
    if value is None:
        return text
    if low is None or high is None:
        return f"{text} (no interval)"
    level = _number(entry.get("level"))
    return text + (f" ({100 * level:.0f} % CI)" if level else "")


def _test_p(entry: dict[str, Any]) -> tuple[float | None, str]:
    """The p-value a comparison reports and the test it comes from (paired permutation first)."""
    paired = entry.get("paired") if isinstance(entry.get("paired"), dict) else {}
    tests = entry.get("tests") if isinstance(entry.get("tests"), dict) else {}
    for source, key, name in ((paired, "p_permutation", "paired permutation"), (tests, "p_permutation", "paired sign-flip permutation"),
                              (entry, "permutation_p_value", "permutation"), (entry, "p_value", str(entry.get("test") or "t")),
                              (tests, "p_t", "paired t")):
        p = _number(source.get(key))
        if p is not None and 0 <= p <= 1:
            return p, name
    return None, ""


def significance_table(data: dict[str, Any]) -> dict[str, Any] | None:
    """The statistical tests of a study's ``results.json`` as one table, primary endpoint first:
    rows ``{comparison, estimate, p, test, p_holm, role}``. Read from ``tests`` (``featviz
    compare``: each with ``role`` and ``p_holm``) or ``comparisons`` (``featviz hierarchy run``:
    each with ``p_holm``). The primary endpoint stands outside the multiple-comparison family;
    the Holm-adjusted p of the others is the study's own where it wrote one, else computed here
    across the page's secondary tests (``holm_source`` says which). None when the file has no
    tests."""
    from ..stats import holm

    primary = data.get("primary") if isinstance(data.get("primary"), dict) else {}
    rows: list[dict[str, Any]] = []
    if isinstance(data.get("tests"), list):
        for t in data["tests"]:
            if not isinstance(t, dict):
                continue
            name = str(t.get("what") or "test")
            if t.get("a") is not None and t.get("b") is not None:
                name += f": {t['a']} − {t['b']}"
            if t.get("eps") is not None and "ε" not in name:
                name += f" (ε={t['eps']:g})" if isinstance(t.get("eps"), (int, float)) else ""
            rows.append({"comparison": name, "entry": t, "role": t.get("role") or "secondary",
                         "written": _number(t.get("p_holm")), "has_holm": "p_holm" in t})
    elif isinstance(data.get("comparisons"), dict):
        for key, c in data["comparisons"].items():
            if not isinstance(c, dict):
                continue
            if c.get("role") in ("primary", "secondary"):
                role = c["role"]
            else:  # files written before comparisons carried their role
                is_primary = (_number(c.get("value")) is not None and _number(c.get("value")) == _number(primary.get("value"))
                              and str(key).split(" ")[0] in str(primary.get("name", "")))
                role = "primary" if is_primary else "secondary"
            rows.append({"comparison": str(key), "entry": c, "role": role,
                         "written": _number(c.get("p_holm")), "has_holm": "p_holm" in c})
    if not rows:
        return None
    for r in rows:
        r["p"], r["test"] = _test_p(r["entry"])
        entry = r["entry"]
        if r["role"] == "primary" and _number(entry.get("low")) is None and _number(primary.get("low")) is not None:
            entry = primary  # the primary endpoint's interval, as the verdict box quotes it
        r["estimate"] = _estimate_text(entry)
    secondary = [r for r in rows if r["role"] != "primary"]
    from_file = bool(secondary) and all(r["has_holm"] for r in secondary)
    # a study that adjusted over every comparison, the primary included (hierarchy run)
    with_primary = from_file and any(r["role"] == "primary" and r["written"] is not None for r in rows)
    adjusted = [r["written"] for r in secondary] if from_file else holm([r["p"] for r in secondary])
    for r, p in zip(secondary, adjusted):
        r["p_holm"] = p
    for r in rows:
        r.setdefault("p_holm", None)
        del r["entry"], r["written"], r["has_holm"]
    rows.sort(key=lambda r: r["role"] != "primary")
    family = (f"the study's own, over all {len(rows)} comparisons with the primary included (conservative for "
              "the others)" if with_primary else
              f"the study's own, over the {len(secondary)} secondary tests" if from_file else
              f"computed here over the {len(secondary)} secondary tests")
    return {"rows": rows, "holm_source": family, "secondary": len(secondary)}
