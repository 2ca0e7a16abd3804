"""Pictures of quadratic units: plain ascent, the lucid recipe and three data priors,
measured on one checkpoint (``featviz study prior-renders``, or :func:`run`).

Every unit of the rendered blocks is maximized under each setting in ``Config.regs``
(``none``, ``standard``, ``sphere``, ``pca``, ``generator``; see
:mod:`featviz.vis.priors`), and every class logit under ``Config.class_regs``. Each
render is scored by

- ``relative_activation``: its activation ÷ the unit's highest activation over the
  training images (1 = as strong as the best real image);
- ``noise_index``: its hf_ratio placed between the data's median (0) and white noise's
  median (1), both at the model's input size (:func:`featviz.vis.metrics.noise_index`);
- ``converged``: the convergence check of :func:`featviz.vis.maximize.maximize`;
- for class renders, the class an independently trained ReLU CNN predicts
  (:mod:`featviz.vis.judge`).

The best prior is chosen by a rule fixed before looking: among the priors whose median
noise index is at most :data:`~featviz.vis.metrics.NOISE_INDEX_LIKE_DATA` in every block,
the one with the highest smallest-over-blocks median relative activation. The primary
endpoint is that prior's median relative activation over the last block's units, with a
95 % bootstrap interval over units.

    from featviz.studies import prior_renders
    results = prior_renders.run(prior_renders.PRESETS["full"])
    prior_renders.write(results, "studies/prior-renders")
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from ..stats import bootstrap, median
from ..vis.render import DEFAULT_STEPS

FORMAT = "featviz-prior-renders/1"


@dataclass(frozen=True)
class Config:
    """One run's settings."""

    checkpoint: str = "models/digits-joint"
    blocks: tuple[str, ...] = ("block2", "block3")
    units: str = "*"  # which units of each block: "*" or "A-B"
    regs: tuple[str, ...] = ("none", "standard", "sphere", "pca", "generator")
    class_regs: tuple[str, ...] = ("none", "standard", "pca", "generator")
    steps: int = DEFAULT_STEPS
    lr: float = 0.05
    seed: int = 0
    top_k: int = 3
    figure_units: int = 8  # units per block drawn in the row figure
    level: float = 0.95


PRESETS = MappingProxyType({
    "full": Config(),
    # seconds on a laptop: a smoke test of the pipeline, not a measurement
    "quick": Config(units="0-3", regs=("none", "pca"), class_regs=("none", "pca"), steps=24, figure_units=2),
})


def _median_ci(values: list[float], level: float, seed: int) -> dict[str, Any]:
    vals = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(vals) == 0:
        return {"value": None, "low": None, "high": None, "level": level, "n": 0}
    ci = bootstrap(vals, lambda r: float(np.median(r)), level=level, seed=seed)
    return {"value": float(np.median(vals)), "low": ci["low"], "high": ci["high"], "level": level, "n": len(vals)}


def best_prior(units: dict[str, dict[str, dict[str, Any]]], priors: list[str], noise_limit: float) -> str | None:
    """The rule of the module docstring, on ``units[block][reg]`` summaries."""
    ok = [p for p in priors if all((units[b][p]["noise_index"]["value"] is not None
                                    and units[b][p]["noise_index"]["value"] <= noise_limit) for b in units)]
    if not ok:
        return None
    return max(ok, key=lambda p: min(units[b][p]["relative_activation"]["value"] or -np.inf for b in units))


def check_units(model, config: Config, input_shape, preprocess) -> None:
    """Every ``--blocks`` layer and the ``--units`` range exist in ``model``; else exit 2 naming
    the option (not the neuron spec the study builds from them)."""
    from ..errors import SpecError
    from ..vis.neurons import layer_shapes, resolve_neurons

    shapes = layer_shapes(model, input_shape, preprocess)
    for block in config.blocks:
        try:
            resolve_neurons(model, f"{block}:{config.units}", input_shape, preprocess, shapes=shapes)
        except SpecError as error:
            raise SpecError(f"--blocks {block} --units {config.units}: {str(error).split(': ', 1)[-1]}") from None


def run(config: Config, *, device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
        progress: bool = False) -> dict[str, Any]:
    """Render, measure and summarize (see the module docstring); returns the results.json
    dict, with the two :class:`~featviz.vis.maximize.Maximization` objects the figures are
    drawn from riding along under ``_units`` and ``_classes`` (:func:`write` leaves them
    out of the file)."""
    from ..data.images import native_images
    from ..sources import load_target
    from ..vis.judge import load_or_train_judge
    from ..vis.maximize import maximize
    from ..vis.metrics import NOISE_INDEX_LIKE_DATA
    from ..vis.regularizers import PRIORS, parse_regs

    start = time.perf_counter()
    target = load_target(Path(config.checkpoint), device=device)
    data = target.data
    if data is None:
        from ..errors import DataError

        raise DataError(f"{config.checkpoint}: its dataset could not be loaded ({target.note})")
    check_units(target.model, config, target.input_shape, target.preprocess)  # before the judge is trained
    native = native_images(data)
    judge = load_or_train_judge(data.x_train, data.y_train, data.x_test, data.y_test, cache_dir=cache_dir)
    common = dict(shape=target.input_shape, steps=config.steps, lr=config.lr, seed=config.seed, device=device,
                  preprocess=target.preprocess, dataset=data.x_train, native=native, cache_dir=cache_dir,
                  progress=progress)
    specs = [f"{b}:{config.units}" for b in config.blocks]
    units = maximize(target.model, specs, list(config.regs), top_k=config.top_k, **common)
    classes = maximize(target.model, ["logits:*"], list(config.class_regs), top_k=1, judge=judge, **common)

    labels = {r: parse_regs(r, target.input_shape[-1]).label for r in config.regs}
    per_unit: dict[str, dict[str, dict[str, Any]]] = {}
    for block in config.blocks:
        per_unit[block] = {}
        for reg in config.regs:
            imgs = [i for i in units.images if i.reg == labels[reg] and i.neuron.layer == block]
            rel = [i.relative_activation for i in imgs]
            ni = [i.noise_index for i in imgs]
            per_unit[block][reg] = {
                "n": len(imgs),
                "relative_activation": _median_ci(rel, config.level, config.seed),
                "noise_index": _median_ci(ni, config.level, config.seed),
                "above_best_example": sum(r is not None and r > 1 for r in rel) / max(1, len(imgs)),
                "converged": sum(i.converged is True for i in imgs) / max(1, len(imgs)),
                "median_hf_ratio": median([i.hf_ratio for i in imgs]),
                "median_tv": median([i.tv for i in imgs]),
                "per_unit": [{"unit": i.neuron.unit, "relative_activation": i.relative_activation,
                              "noise_index": i.noise_index, "converged": i.converged} for i in imgs],
            }
    class_summary = {}
    for reg in config.class_regs:
        imgs = [i for i in classes.images if i.reg == parse_regs(reg, target.input_shape[-1]).label]
        hits = [i.judge["predicted"] == i.judge["target"] for i in imgs]
        class_summary[reg] = {"recognized": sum(hits), "n": len(hits),
                              "predicted": [i.judge["predicted"] for i in imgs],
                              "noise_index": median([i.noise_index for i in imgs]),
                              "relative_activation": median([i.relative_activation for i in imgs]),
                              "converged": sum(i.converged is True for i in imgs) / max(1, len(imgs))}
    priors = [r for r in config.regs if parse_regs(r, target.input_shape[-1]).prior in PRIORS]
    best = best_prior(per_unit, priors, NOISE_INDEX_LIKE_DATA)
    last = config.blocks[-1]
    primary = {"name": f"median relative_activation of {last} units under the best prior ({best})", "value": None,
               "low": None, "high": None, "level": config.level}
    if best is not None:
        ci = per_unit[last][best]["relative_activation"]
        primary.update(value=ci["value"], low=ci["low"], high=ci["high"])
    all_imgs = units.images + classes.images
    by_reg = {reg: [i for i in all_imgs if i.reg == labels.get(reg, reg)] for reg in dict.fromkeys(
        list(config.regs) + list(config.class_regs))}
    convergence = {reg: sum(i.converged is True for i in imgs) / max(1, len(imgs)) for reg, imgs in by_reg.items()}
    acceptance = None
    if best is not None:
        acceptance = {
            "best_prior": best,
            "relative_activation_at_least_1": {b: per_unit[b][best]["relative_activation"]["value"] >= 1.0
                                               for b in config.blocks},
            "noise_index_at_most_0.1": {b: per_unit[b][best]["noise_index"]["value"] <= 0.1 for b in config.blocks},
            "classes_recognized": class_summary.get(best, {}).get("recognized"),
            "classes_recognized_at_least_8": (class_summary.get(best, {}).get("recognized") or 0) >= 8,
            "converged_at_least_80_percent": convergence.get(best, 0.0) >= 0.8,
            "every_setting_converged_at_least_80_percent": all(v >= 0.8 for v in convergence.values()),
        }
    results = {
        "format": FORMAT, "config": asdict(config), "model": target.name,
        "baseline": units.config["baseline"], "noise_index_bands": units.config["noise_index_bands"],
        "priors": units.config["priors"], "judge": judge.info,
        "units": per_unit, "classes": class_summary, "convergence": convergence,
        "convergence_check": units.config["convergence"],
        "best_prior": best, "rule": "among priors with median noise_index <= 0.1 in every block, the highest "
                                    "smallest-over-blocks median relative_activation",
        "primary": primary, "acceptance": acceptance,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return results | {"_units": units, "_classes": classes}


def write(results: dict[str, Any], out: str | Path) -> list[str]:
    """``results.json``, ``tradeoff.png`` and, when the renders ride along (``_units``),
    ``rows.png`` (per unit: none, standard, the best prior, top dataset examples) into
    ``out`` (atomically)."""
    from .common import write_results

    def figures(data: dict[str, Any], folder: Path) -> list[str]:
        from ..fileio import atomic_write_bytes

        files = []
        if results.get("_units") is not None:
            atomic_write_bytes(folder / "rows.png", rows_png(results))
            files.append("rows.png")
        write_tradeoff(data, folder / "tradeoff.png")
        return files + ["tradeoff.png"]

    return write_results({k: v for k, v in results.items() if not k.startswith("_")}, out, figures)


BAND_COLOURS = {"like-data": "#1a9850", "between": "#fdae61", "noisy": "#d73027", "unknown": "#999999"}


def rows_png(results: dict[str, Any]) -> bytes:
    """One row per unit (the first ``figure_units`` of each block): ``none``,
    ``standard``, the best prior, the top dataset examples; relative activation and
    noise index under each render; the frame coloured by the noise-index band."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..vis.metrics import NOISE_INDEX_LIKE_DATA, NOISE_INDEX_NOISY, noise_band

    cfg, units = results["config"], results["_units"]
    best = results["best_prior"]
    cols = [r for r in ("none", "standard", best) if r and r in cfg["regs"]]
    table = {(i.neuron, i.reg): i for i in units.images}
    examples = {ex.neuron: ex for ex in units.examples}
    rendered = list(dict.fromkeys(i.neuron for i in units.images))
    neurons = [n for block in cfg["blocks"] for n in [m for m in rendered if m.layer == block][:cfg["figure_units"]]]
    k = cfg["top_k"]
    height = 1.35 * len(neurons) + 1.0
    fig = Figure(figsize=(1.2 * (len(cols) + k) + 0.8, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(neurons), len(cols) + k, squeeze=False)
    for r, neuron in enumerate(neurons):
        for c in range(len(cols) + k):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(cols):
                img = table.get((neuron, cols[c]))
                if img is None:
                    continue
                tile = img.image
                rel = "-" if img.relative_activation is None else f"{img.relative_activation:.3g}"
                ni = "-" if img.noise_index is None else f"{img.noise_index:.2f}"
                ax.set_xlabel(f"rel {rel} · NI {ni}", fontsize=6.5, labelpad=1)
                for spine in ax.spines.values():
                    spine.set_edgecolor(BAND_COLOURS[noise_band(img.noise_index)])
                    spine.set_linewidth(2.5)
                title = cols[c]
            else:
                ex = examples.get(neuron)
                if ex is None or len(ex.indices) <= c - len(cols):
                    continue
                tile = ex.images[c - len(cols)]
                ax.set_xlabel(f"act {ex.activations[c - len(cols)]:.3g}", fontsize=6.5, labelpad=1)
                title = f"example {c - len(cols) + 1}"
            ax.imshow(tile.clamp(0, 1).mean(0).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(neuron.label, fontsize=8)
    fig.suptitle(f"frame: noise index ≤ {NOISE_INDEX_LIKE_DATA:g} green (like the data), ≥ {NOISE_INDEX_NOISY:g} "
                 f"red (noise-like), orange between; rel = activation ÷ best training image", fontsize=7)
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - 0.45 / height))
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_tradeoff(results: dict[str, Any], path: str | Path) -> Path:
    """The trade-off plot (:func:`featviz.figures.tradeoff_plot`, PNG): per setting and block, each
    unit's render (noise index, activation ÷ best training image, log scale), with the medians of
    ``results["units"]`` as large labelled markers and the noise-index bands shaded."""
    from ..figures import tradeoff_plot
    from ..vis.metrics import NOISE_INDEX_LIKE_DATA, NOISE_INDEX_NOISY

    series, medians = {}, {}
    for b, regs in results["units"].items():
        for reg, s in regs.items():
            label = f"{reg} ({b})"
            series[label] = [(u["noise_index"], u["relative_activation"]) for u in s["per_unit"]
                             if u["noise_index"] is not None and u["relative_activation"] and u["relative_activation"] > 0]
            x, y = s["noise_index"]["value"], s["relative_activation"]["value"]
            medians[label] = (x, y) if x is not None and y and y > 0 else None
    blocks = " and ".join(results["units"])
    return tradeoff_plot(series, path, title=f"renders of {blocks} units", log=True, medians=medians, svg=False,
                         bands={"like_data": NOISE_INDEX_LIKE_DATA, "noisy": NOISE_INDEX_NOISY})


__all__ = ["Config", "FORMAT", "PRESETS", "best_prior", "rows_png", "run", "write", "write_tradeoff"]
