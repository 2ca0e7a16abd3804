"""Activation maximization end to end: render neuron specs under one or several
regularization settings, measure every image, rank dataset examples, save it all.

    from featviz.vis import maximize, save_maximization
    result = maximize(model, ["block2:*"], regs=["none", "standard"], dataset=x_train)
    metrics = save_maximization(result, "out/")   # PNGs, grid.png, metrics.json

``metrics.json`` (stable; the gallery reads it)::

    {"images": [{"neuron", "reg", "file", "activation", "relative_activation",
                 "hf_ratio", "tv", "shift_stability", "steps", "param", "objective",
                 "flat", "converged", "activation_doubled", "noise_index", "noise_band",
                 "judge"}],
     "dataset_examples": [{"neuron", "activations", "files", "indices"}],
     "summary": {REG: {"n", "median_activation", "median_relative_activation",
                       "median_hf_ratio", "median_tv", "median_shift_stability",
                       "above_best_example", "activation_vs_none", "none_hf_over_this",
                       "hf_over_data", "tv_over_data", "n_flat", "n_not_converged",
                       "median_noise_index", "n_like_data", "recognized", "n_judged"}},
     "baseline": {"hf_ratio", "tv", "n", "white_noise", "native"} (or nulls and a "reason"),
     "noise_index_bands", "priors": {REG: fitted prior}, "judge": judge info or null,
     "flat_tv_threshold", "convergence": {"checked", "tolerance", "extra_steps"},
     "settings": [recipe dicts], "grid": "grid.png", "steps", "lr", "seed", "input_shape", "seconds"}

``activation`` is the objective on the final, untransformed image;
``relative_activation`` divides it by the unit's strongest dataset example;
``activation_vs_none`` is the median over units of activation / activation under
``none``; ``none_hf_over_this`` is median hf_ratio under ``none`` / under this setting.

Honesty guards (see :mod:`featviz.vis.metrics`): ``baseline`` holds the median
hf_ratio and TV of the dataset's own images at the model's input size (and of white
noise at that size, and of the data at its native size); ``noise_index`` places each
render between the two references (0 = data, 1 = white noise); and
``hf_over_data`` / ``tv_over_data`` compare a setting's medians with it. An image
whose TV is below ``flat_tv_threshold`` is ``flat``: its ``hf_ratio`` is null and
it is left out of the hf medians. ``converged`` is false when the convergence check
(the render continued for as many steps again, at most ``CHECK_STEPS`` = 256; see
:func:`~featviz.vis.render.check_steps`) moved the activation by more than 1 %
(``activation_doubled`` is the activation the check reached; the name dates from
when the check ran as long as the render); null when the check was switched off.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch
from torch import nn

from ..distributed import SINGLE, DistContext, gather_to_main, shard_range
from ..errors import SpecError
from ..fileio import atomic_write_bytes, atomic_write_json, save_png
from ..modes import frozen_eval
from ..stats import median
from ..text import slug
from .examples import TopExamples, top_examples
from .hooks import LOGITS, Preprocess
from .metrics import (CONVERGENCE_TOLERANCE, NOISE_INDEX_LIKE_DATA, NOISE_INDEX_NOISY, data_baseline, flat_threshold,
                      hf_ratio, is_converged, noise_band, noise_index, shift_stability, total_variation,
                      white_noise_baseline)
from .neurons import Neuron, NeuronSet, layer_shapes, resolve_neurons
from .priors import fit_prior, prior_summary
from .regularizers import Recipe, parse_regs
from .render import DEFAULT_STEPS, check_steps, data_decorrelation, input_shape_of, model_device, render

if TYPE_CHECKING:
    from .judge import Judge

# What --compare-regs renders when no --reg is given: from nothing to the full recipe.
COMPARE_SETTINGS = ("none", "l2", "tv", "blur", "jitter", "fft", "standard")


@dataclass
class RenderedNeuron:
    """One synthesized image and its measurements (see the module docstring)."""

    neuron: Neuron
    reg: str
    param: str
    objective: str
    image: torch.Tensor  # (C, H, W) in [0, 1]
    activation: float
    hf_ratio: float | None  # None for a flat image
    tv: float
    shift_stability: float
    steps: int
    relative_activation: float | None = None
    file: str | None = None
    flat: bool = False
    converged: bool | None = None  # None: not checked
    activation_doubled: float | None = None
    noise_index: float | None = None  # 0 = like the data, 1 = like white noise; None: flat or no baseline
    judge: dict | None = None  # class renders: {"model", "predicted", "target"}

    def to_dict(self) -> dict[str, Any]:
        return {"neuron": self.neuron.label, "reg": self.reg, "file": self.file, "activation": self.activation,
                "relative_activation": self.relative_activation, "hf_ratio": self.hf_ratio, "tv": self.tv,
                "shift_stability": self.shift_stability, "steps": self.steps, "param": self.param,
                "objective": self.objective, "flat": self.flat, "converged": self.converged,
                "activation_doubled": self.activation_doubled, "noise_index": self.noise_index,
                "noise_band": noise_band(self.noise_index), "judge": self.judge}


@dataclass
class Maximization:
    """Result of :func:`maximize`: ``images`` (one per neuron and setting, settings
    outermost), ``examples`` (one per neuron, may be empty), the ``recipes`` used."""

    images: list[RenderedNeuron]
    examples: list[TopExamples]
    recipes: list[Recipe]
    neuron_sets: list[NeuronSet]
    config: dict[str, Any] = field(default_factory=dict)
    example_files: dict[str, list[str]] = field(default_factory=dict)
    grid_file: str | None = None

    def summary(self) -> dict[str, dict[str, Any]]:
        """Medians per setting (NaN-free: undefined values are skipped)."""
        by_reg: dict[str, list[RenderedNeuron]] = {}
        for img in self.images:
            by_reg.setdefault(img.reg, []).append(img)
        none = {img.neuron: img for img in by_reg.get("none", [])}
        none_hf = median([img.hf_ratio for img in none.values()])
        base = self.config.get("baseline") or {}
        out = {}
        for reg, imgs in by_reg.items():
            rel = [i.relative_activation for i in imgs if i.relative_activation is not None]
            judged = [i.judge for i in imgs if i.judge is not None]
            hf = median([i.hf_ratio for i in imgs])
            vs_none = [i.activation / none[i.neuron].activation for i in imgs
                       if i.neuron in none and none[i.neuron].activation > 0]
            out[reg] = {
                "n": len(imgs), "median_activation": median([i.activation for i in imgs]),
                "median_relative_activation": median(rel),
                "median_hf_ratio": hf, "median_tv": median([i.tv for i in imgs]),
                "median_shift_stability": median([i.shift_stability for i in imgs]),
                "above_best_example": (sum(r > 1 for r in rel) / len(rel)) if rel else None,
                "activation_vs_none": median(vs_none) if none else None,
                "none_hf_over_this": (none_hf / hf) if none_hf is not None and hf and hf > 0 else None,
                "hf_over_data": _ratio(hf, base.get("hf_ratio")),
                "tv_over_data": _ratio(median([i.tv for i in imgs]), base.get("tv")),
                "n_flat": sum(i.flat for i in imgs),
                "n_not_converged": sum(i.converged is False for i in imgs),
                "median_noise_index": median([i.noise_index for i in imgs]),
                "n_like_data": sum(i.noise_index is not None and i.noise_index <= NOISE_INDEX_LIKE_DATA for i in imgs),
                "recognized": (sum(j["predicted"] == j["target"] for j in judged) / len(judged)) if judged else None,
                "n_judged": len(judged),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """The metrics.json object."""
        return {
            "images": [img.to_dict() for img in self.images],
            "dataset_examples": [{"neuron": ex.neuron.label, "activations": ex.activations,
                                  "files": self.example_files.get(ex.neuron.label, []), "indices": ex.indices}
                                 for ex in self.examples],
            "summary": self.summary(),
            "settings": [r.to_dict() for r in self.recipes],
            "grid": self.grid_file,
            **self.config,
        }


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def maximize(model: nn.Module, neurons: str | Sequence[str],
             regs: Sequence[str | Sequence[str] | Recipe] = ("none",), *, shape: Sequence[int] | None = None,
             steps: int = DEFAULT_STEPS, lr: float = 0.05, param: str | None = None,
             seed: int = 0, device: torch.device | str | None = None, preprocess: Preprocess | None = None,
             dataset: torch.Tensor | Iterable | None = None, top_k: int = 6,
             decorrelation: torch.Tensor | None = None, max_batch: int = 256,
             progress: bool = False, dist: DistContext | None = None, check_convergence: bool = True,
             baseline: dict | None = None, native: torch.Tensor | None = None, judge: "Judge | None" = None,
             cache_dir: str | Path | None = None) -> Maximization:
    """Render every unit of every spec in ``neurons`` under every setting in ``regs``.

    Args:
        model: any ``nn.Module`` (see :func:`~featviz.vis.render.render`).
        neurons: spec(s) such as ``"block2:*"``, ``"block1:3@8,8"``, ``"logits:7"``.
        regs: settings to compare, each ``"standard"``, ``"tv:0.1+jitter:1"``, a
            list of names combined, or a :class:`Recipe` (which may carry user
            transforms and penalties, see :func:`~featviz.vis.regularizers.build_recipe`);
            default just ``"none"``.
        shape, steps, lr, param, seed, device, preprocess: as for ``render``; every
            setting starts from the same seeded initial image.
        dataset: images (N, C, H, W) in [0, 1] (or an iterable of batches) to rank
            the top-``top_k`` examples per unit from, and to estimate the colour
            decorrelation; ``None`` skips examples.
        max_batch: most units rendered in one batch (memory bound).
        dist: under ``torchrun``, the batches (settings × chunks of ``max_batch`` units)
            are dealt out to the ranks in contiguous runs and gathered on rank 0, which
            gets the same result as one process with the same ``max_batch``; other
            ranks get ``None``. Use ``max_batch`` = units / ranks to spread one layer.
        check_convergence: continue every render for ``check_steps(steps)`` more steps
            (as many again, at most :data:`~featviz.vis.render.CHECK_STEPS`; a second
            cosine cycle at a tenth of the rate, see ``continue_steps`` of
            :func:`~featviz.vis.render.render`) and flag units whose activation moved
            by more than 1 % as not converged.
        baseline: the data's ``{"hf_ratio", "tv"}`` medians; default computed from
            ``dataset`` when it is a tensor (see :func:`~featviz.vis.metrics.data_baseline`);
            white noise at the input size is added when missing.
        native: the dataset at its native resolution, reported beside the baseline.
        judge: a :class:`~featviz.vis.judge.Judge`; every ``logits:CLASS`` render then
            carries its verdict (``judge``) and the summary the ``recognized`` fraction.
        cache_dir: where the ``generator`` prior is cached (data priors are fitted
            once per setting from ``dataset``, which they need).

    Returns a :class:`Maximization`; images come in order setting, spec, unit.
    """
    dist = dist or SINGLE
    start = time.perf_counter()
    shape = input_shape_of(model, shape)
    specs = [neurons] if isinstance(neurons, str) else list(neurons)
    if not specs:
        raise SpecError("no neuron given", "pass at least one --neuron LAYER:UNIT")
    shapes = layer_shapes(model, shape, preprocess, device)
    sets = [resolve_neurons(model, s, shape, preprocess, shapes=shapes) for s in specs]
    recipes = [r if isinstance(r, Recipe) else parse_regs(r, max(shape[1:]), param) for r in regs]
    labels = [r.label for r in recipes]
    if len(set(labels)) != len(labels):
        raise SpecError(f"a regularization setting is listed twice ({', '.join(labels)})")
    if baseline is None:
        baseline = data_baseline(dataset if isinstance(dataset, torch.Tensor) else None, shape=shape, native=native)
    if baseline.get("white_noise") is None:
        baseline = baseline | {"white_noise": white_noise_baseline(shape)}
    flat_tv = flat_threshold(baseline)
    if decorrelation is None and isinstance(dataset, torch.Tensor):
        decorrelation = data_decorrelation(dataset, shape[0])

    examples: list[TopExamples] = []
    if dataset is not None and top_k > 0:
        examples = [ex for per_set in top_examples(model, sets, dataset, top_k, preprocess=preprocess,
                                                   device=device, progress=progress) for ex in per_set]
    best = {ex.neuron: ex.best for ex in examples}
    priors = {r.label: fit_prior(r.prior, r.prior_amount, dataset, seed=seed, cache_dir=cache_dir, progress=progress)
              for r in recipes if r.prior is not None}

    images: list[RenderedNeuron] = []
    jobs = [(recipe, replace(ns, units=ns.units[lo:lo + max_batch]))
            for recipe in recipes for ns in sets for lo in range(0, len(ns.units), max_batch)]
    for recipe, part in (jobs[i] for i in shard_range(len(jobs), dist)):
        objective = part.objective()
        result = render(model, objective, shape=shape, batch=len(part.units), regs=recipe, steps=steps,
                        lr=lr, seed=seed, device=device, preprocess=preprocess,
                        decorrelation=decorrelation, progress=progress, prior=priors.get(recipe.label),
                        continue_steps=check_steps(steps) if check_convergence else 0)
        hf = hf_ratio(result.images)
        tv = total_variation(result.images)
        with frozen_eval(model):  # in train mode BatchNorm would use (and update) batch statistics
            stable = shift_stability(model, objective, result.images.to(device or model_device(model)),
                                     preprocess).cpu()
        for i, neuron in enumerate(part.neurons):
            act = float(result.scores[i])
            ref = best.get(neuron)
            rel = act / ref if ref is not None and ref > 0 else None
            flat = float(tv[i]) < flat_tv
            doubled = float(result.continued_scores[i]) if result.continued_scores is not None else None
            verdict = judge.verdict(result.images[i], neuron.unit) if judge is not None and neuron.layer == LOGITS \
                else None
            images.append(RenderedNeuron(neuron, recipe.label, recipe.param, str(objective),
                                         result.images[i], act, None if flat else float(hf[i]), float(tv[i]),
                                         float(stable[i]), steps, rel, flat=flat,
                                         converged=None if doubled is None else is_converged(act, doubled),
                                         activation_doubled=doubled if doubled is None or math.isfinite(doubled)
                                         else None, noise_index=noise_index(None if flat else float(hf[i]), baseline),
                                         judge=verdict))
    if dist.enabled:
        gathered = gather_to_main(images, dist)
        if not dist.is_main:
            return None
        images = [img for part_images in gathered for img in part_images]
    config = {"steps": steps, "lr": lr, "seed": seed, "input_shape": list(shape), "neurons": specs,
              "baseline": baseline, "flat_tv_threshold": flat_tv,
              "noise_index_bands": {"like_data": NOISE_INDEX_LIKE_DATA, "noisy": NOISE_INDEX_NOISY},
              "priors": {label: prior_summary(p) for label, p in priors.items()},
              "judge": None if judge is None else judge.info,
              "convergence": {"checked": check_convergence, "tolerance": CONVERGENCE_TOLERANCE,
                              "extra_steps": check_steps(steps) if check_convergence else 0},
              "seconds": round(time.perf_counter() - start, 3)}
    return Maximization(images, examples, recipes, sets, config)


def to_pil(image: torch.Tensor, upscale: int = 1):
    """(C, H, W) in [0, 1] -> a PIL image (L for 1 channel, RGB for 3, the channel
    mean otherwise), enlarged ``upscale``× with nearest neighbour so pixels stay sharp."""
    from PIL import Image

    img = image.detach().float().cpu().clamp(0, 1)
    if img.shape[0] not in (1, 3):
        img = img.mean(dim=0, keepdim=True)
    arr = (img * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[..., 0], mode="L") if arr.shape[2] == 1 else Image.fromarray(arr, mode="RGB")
    if upscale > 1:
        pil = pil.resize((pil.width * upscale, pil.height * upscale), Image.NEAREST)
    return pil


def default_upscale(shape: Sequence[int], target: int = 128) -> int:
    """Enlargement that brings the longer side to about ``target`` pixels (at least 1)."""
    return max(1, target // max(shape[-2:]))


def save_maximization(result: Maximization, out: str | Path, upscale: int | None = None,
                      grid: bool = True) -> dict[str, Any]:
    """Write ``NEURON__REG.png`` per image, ``NEURON__exampleK.png`` per dataset example,
    ``grid.png`` (rows: neurons; columns: settings and the top example) and
    ``metrics.json`` into ``out``; return the metrics object. Files are written
    atomically; ``file`` fields are relative to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shape = result.config.get("input_shape") or list(result.images[0].image.shape)
    scale = upscale or default_upscale(shape)
    reg_slugs: dict[str, str] = {}
    for reg in dict.fromkeys(img.reg for img in result.images):  # unique even where long labels are cut
        reg_slugs[reg] = slug(reg, reg_slugs.values(), fallback="x")
    for img in result.images:
        img.file = f"{img.neuron.slug}__{reg_slugs[img.reg]}.png"
        save_png(out / img.file, to_pil(img.image, scale))
    for ex in result.examples:
        files = []
        for rank in range(len(ex.indices)):
            name = f"{ex.neuron.slug}__example{rank + 1}.png"
            save_png(out / name, to_pil(ex.images[rank], scale))
            files.append(name)
        result.example_files[ex.neuron.label] = files
    if grid and result.images:
        atomic_write_bytes(out / "grid.png", grid_png(result))
        result.grid_file = "grid.png"
    metrics = result.to_dict()
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def grid_png(result: Maximization, max_rows: int = 64) -> bytes:
    """A labelled sheet (matplotlib, Agg): one row per neuron, one column per
    setting, plus the strongest dataset example; activation under each tile."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    regs = [r.label for r in result.recipes]
    neurons = list(dict.fromkeys(img.neuron for img in result.images))[:max_rows]
    table = {(img.neuron, img.reg): img for img in result.images}
    examples = {ex.neuron: ex for ex in result.examples if ex.indices}
    cols = regs + (["top example"] if examples else [])
    fig = Figure(figsize=(1.25 * len(cols) + 0.8, 1.35 * len(neurons) + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(neurons), len(cols), squeeze=False)
    for r, neuron in enumerate(neurons):
        for c, col in enumerate(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if col == "top example":
                ex = examples.get(neuron)
                tile, note = (ex.images[0], f"{ex.best:.3g}") if ex else (None, "")
            else:
                img = table.get((neuron, col))
                tile, note = (img.image, f"{img.activation:.3g}") if img else (None, "")
            if tile is not None:
                pixels = tile.clamp(0, 1).permute(1, 2, 0).numpy()
                gray = pixels.shape[2] != 3
                ax.imshow(pixels.mean(axis=2) if gray else pixels, cmap="gray" if gray else None, vmin=0, vmax=1,
                          interpolation="nearest")
            ax.set_xlabel(note, fontsize=7, labelpad=1)
            if r == 0:
                ax.set_title(col, fontsize=8)
            if c == 0:
                ax.set_ylabel(neuron.label, fontsize=8)
    fig.tight_layout(pad=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


__all__ = ["COMPARE_SETTINGS", "Maximization", "RenderedNeuron", "default_upscale", "grid_png", "maximize",
           "save_maximization", "to_pil"]
