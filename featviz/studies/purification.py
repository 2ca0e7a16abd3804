"""Feature purification (Allen-Zhu & Li, 2020), measured with equal training budgets.

The claim: clean training leaves small dense "mixtures" in the learned features, and
adversarial training removes them. Two measurements test it on a quadratic DenseNet:

- **Weights**: for every unit of a block, decompose the clean model's weights against
  the adversarial model's, ``w_clean = β·w_adv + v`` with the least-squares ``β``
  (``β = <w_clean, w_adv> / |w_adv|²``, so ``v ⟂ w_adv``), and report the residual
  ``|v| / |β·w_adv|`` and the cosines of both models' weights to the initialization.
- **Images**: unregularized activation maximization (plain pixel ascent) of every unit
  of blocks 2–3 in both models, with the convergence check on, scored by ``hf_ratio``
  beside the data's own median hf_ratio (:mod:`featviz.vis.metrics`).

Equal budgets: every model gets the same number of training epochs ``E`` (the same
number of parameter updates; adversarial epochs cost more compute, not more updates):

- ``parent``: clean, ``E/2`` epochs from the seed's random initialization;
- ``clean``: the parent plus ``E/2`` clean epochs (the matched control);
- ``adversarial``: the parent plus ``E/2`` PGD epochs (``featviz train --init-from``);
- ``clean_scratch``: clean, ``E`` epochs in one run from the same initialization;
- ``noise`` (control): the parent plus ``E/2`` epochs on Gaussian-noise-augmented inputs
  of matched size: σ = ε per pixel, so the noise has the L2 norm (ε√D) of a PGD
  perturbation at the corners of its L∞ ball (clamped to [0, 1] like it);
- ``weight_decay`` (control): the parent plus ``E/2`` clean epochs with weight decay
  ``weight_decay`` (Adam's L2 term);
- ``clean_b`` (baseline): the parent plus ``E/2`` clean epochs with another minibatch
  order (seed + :data:`CLEAN_B_SEED_OFFSET`): the clean-vs-clean weight residual is what
  the clean-vs-adversarial one must exceed to mean anything.


``clean`` and ``adversarial`` share the parent, the minibatch order and the schedule;
the only difference is the adversarial examples. Everything is repeated over seeds and
reported as mean ± std of the per-seed medians.

Controls. "Adversarial training purifies features" must beat "any input-noise training
(or any shrinkage) removes leftover random-initialization components the data never
exercises". So beside the renders the study measures, per block and model, the share
of each filter's energy in the input-patch directions the data does not use (the
smallest-variance principal directions of the block's input patches that together hold
:data:`UNUSED_SHARE` of the patch variance; :func:`unused_energy`), against a fresh
initialization; robust accuracy is measured with ``autoattack-fast`` (full preset).
Beside the primary endpoint (adversarial / clean), the paired differences of median render
hf_ratio against each control carry bootstrap CIs; purification is claimed for a block
only where the adversarial arm is below both the noise and the weight-decay control with
both paired CIs excluding 0, over at least :data:`MIN_SEEDS_FOR_CLAIM` seeds (``claims``).

    from featviz.studies import purification
    results = purification.run(purification.PRESETS["full"], seeds=3, out="out/")
    results["purification"]["hf_ratio"]["adversarial"]["block2"]["mean"]
"""

from __future__ import annotations

import copy
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import FeatvizError
from ..stats import median
from .common import primary_endpoint, ratio, spread, train_stages

MODELS = ("clean", "adversarial", "clean_scratch", "noise", "weight_decay")
CONTROLS = ("noise", "weight_decay")
CLEAN_B_SEED_OFFSET = 1000
# A bootstrap interval over fewer seeds than this is no evidence: no claim is made below it.
MIN_SEEDS_FOR_CLAIM = 3
# Training images the unused input directions are estimated from.
UNUSED_IMAGES = 512
# The unused input directions: the lowest-variance patch directions holding this share of the variance.
UNUSED_SHARE = 0.02
FORMAT = "featviz-purification/2"
# The adversarial model's median hf_ratio should be at most this fraction of the clean one's.
TARGET_RATIO = 0.7


@dataclass(frozen=True)
class PurificationConfig:
    """One study's settings (see the module docstring for the budget design)."""

    epochs: int = 20  # E: every model's total budget; the parent gets E // 2
    width: int = 16
    eps: float = 0.1  # L∞ radius of the PGD training examples
    adv_steps: int = 5
    render_steps: int = 512
    render_lr: float = 0.05
    blocks: tuple[int, ...] = (2, 3)  # blocks whose units are rendered
    robust_eval_steps: int = 20  # PGD steps of the robust-accuracy check (0: skip)
    robust_attack: str = "pgd"  # the robust-accuracy attack: "pgd" (robust_eval_steps steps) or a registered name
    noise_sigma: float | None = None  # the noise control's σ per pixel (None: eps, matched to the PGD ball)
    weight_decay: float = 5e-4  # the weight-decay control's Adam L2 coefficient
    level: float = 0.95  # the CIs' level
    dataset: str = "digits"
    image_size: int | None = None  # None: the dataset's default (digits: 16)


PRESETS = {
    "full": PurificationConfig(robust_attack="autoattack-fast"),
    # about 30 s on 2 CPU cores: a demo, not a measurement
    "quick": PurificationConfig(epochs=4, width=8, adv_steps=2, render_steps=64, robust_eval_steps=5),
}


# ------------------------------------------------------------------ weight decomposition

def decompose(w_clean: torch.Tensor, w_adv: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per unit (row) of (units, fan_in) weights: ``w_clean = β·w_adv + v`` with the
    least-squares ``β``. Returns ``beta`` (units,), ``residual`` = v (units, fan_in) and
    ``residual_ratio`` = |v| / |β·w_adv| (units,), inf where β·w_adv is zero."""
    wc = w_clean.detach().double().flatten(1)
    wa = w_adv.detach().double().flatten(1)
    if wc.shape != wa.shape:
        raise FeatvizError(f"weights of shapes {tuple(wc.shape)} and {tuple(wa.shape)} cannot be compared")
    denom = (wa * wa).sum(dim=1)
    beta = torch.where(denom > 0, (wc * wa).sum(dim=1) / denom.clamp_min(1e-300), torch.zeros_like(denom))
    fit = beta[:, None] * wa
    v = wc - fit
    fit_norm = fit.norm(dim=1)
    ratio = torch.where(fit_norm > 0, v.norm(dim=1) / fit_norm.clamp_min(1e-300),
                        torch.full_like(fit_norm, math.inf))
    return {"beta": beta, "residual": v, "residual_ratio": ratio}


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row cosine similarity of two (units, ...) weight tensors: (units,)."""
    a, b = a.detach().double().flatten(1), b.detach().double().flatten(1)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)


def block_weights(model: nn.Module, block: int) -> torch.Tensor:
    """The convolution weights of ``block`` (1-based): (units, fan_in, k, k)."""
    conv = getattr(model.block(block), "conv", None)
    if conv is None:
        raise FeatvizError(f"block{block} of {type(model).__name__} has no convolution to decompose")
    return conv.weight


# ------------------------------------------------------------------ one seed

def _train(model: nn.Module, data, epochs: int, seed: int, device, adversary=None,
           weight_decay: float = 0.0) -> dict[str, Any]:
    result = train_stages(model, data, "joint", epochs, seed=seed, device=device, adversary=adversary,
                          weight_decay=weight_decay)
    return {"epochs": epochs, "test_accuracy": result.metrics.get("test_accuracy"),
            "seconds": round(result.seconds, 2)}


def _robust_accuracy(model: nn.Module, data, cfg: PurificationConfig, seed: int, device) -> float | None:
    if cfg.robust_eval_steps <= 0:
        return None
    from ..attacks.factory import make_attack
    from ..devices import generator

    x, y = data.x_test.to(device), data.y_test.to(device)
    attack = make_attack("pgd", steps=cfg.robust_eval_steps) if cfg.robust_attack == "pgd" else \
        make_attack(cfg.robust_attack)
    result = attack(model, x, y, cfg.eps, gen=generator(seed))
    return float((~result.success).float().mean())


class GaussianNoise:
    """The noise control's "adversary": ``x + σ·N(0, 1)`` clamped to [0, 1], drawn from a
    seeded CPU generator (``model`` and ``y`` are ignored)."""

    def __init__(self, sigma: float, seed: int):
        from ..devices import generator

        self.sigma = float(sigma)
        self.gen = generator(seed)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        noise = torch.randn(x.shape, generator=self.gen).to(x)
        return (x + self.sigma * noise).clamp(0.0, 1.0)

    def get_state(self) -> torch.Tensor:
        return self.gen.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.gen.set_state(state)


def train_models(cfg: PurificationConfig, seed: int, data, device="cpu") -> tuple[dict[str, nn.Module], dict]:
    """The seed's ``init``, ``parent``, ``clean``, ``adversarial``, ``clean_scratch``,
    ``noise``, ``weight_decay`` and ``clean_b`` models (all on the CPU, eval mode) and
    their training records."""
    from ..attacks.training import training_adversary
    from ..recipes import TrainSpec, build_for

    from ..train import split_budget

    half, rest = split_budget(cfg.epochs, 2)  # the parent's clean epochs, then the fine-tuning
    spec = TrainSpec(dataset=cfg.dataset, width=cfg.width, seed=seed, image_size=cfg.image_size)
    init = build_for(data, spec)
    records: dict[str, Any] = {}
    parent = copy.deepcopy(init)
    records["parent"] = _train(parent, data, half, seed, device)
    models = {"init": init, "parent": parent}
    clean = copy.deepcopy(parent)
    records["clean"] = _train(clean, data, rest, seed, device)
    adversarial = copy.deepcopy(parent)
    adversary = training_adversary({"attack": "pgd", "eps": cfg.eps, "steps": cfg.adv_steps}, seed=seed)
    records["adversarial"] = _train(adversarial, data, rest, seed, device, adversary)
    scratch = copy.deepcopy(init)
    records["clean_scratch"] = _train(scratch, data, cfg.epochs, seed, device)
    noisy = copy.deepcopy(parent)
    sigma = cfg.eps if cfg.noise_sigma is None else cfg.noise_sigma
    records["noise"] = _train(noisy, data, rest, seed, device, GaussianNoise(sigma, seed)) | {"sigma": sigma}
    decayed = copy.deepcopy(parent)
    records["weight_decay"] = _train(decayed, data, rest, seed, device, weight_decay=cfg.weight_decay) | {
        "weight_decay": cfg.weight_decay}
    clean_b = copy.deepcopy(parent)
    records["clean_b"] = _train(clean_b, data, rest, seed + CLEAN_B_SEED_OFFSET, device)
    models.update(clean=clean, adversarial=adversarial, clean_scratch=scratch, noise=noisy, weight_decay=decayed,
                  clean_b=clean_b)
    for name, model in models.items():
        model.cpu().eval()
        if name in MODELS:
            records[name]["robust_accuracy"] = _robust_accuracy(model, data, cfg, seed, "cpu")
            records[name]["robust_attack"] = cfg.robust_attack
            records[name]["total_epochs"] = cfg.epochs
    return models, records


def block_inputs(model: nn.Module, block: int, x: torch.Tensor) -> torch.Tensor:
    """What ``block``'s convolution sees on images ``x``: (N, C, H, W)."""
    block_weights(model, block)  # refuses a block without a convolution
    seen: list[torch.Tensor] = []
    module = model.block(block).conv
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            model.eval()
            model(x)
    finally:
        handle.remove()
    if not seen:
        raise FeatvizError(f"block{block}'s convolution did not run")
    return seen[0]


def unused_directions(inputs: torch.Tensor, kernel: tuple[int, int], share: float = UNUSED_SHARE,
                      padding: int | tuple[int, int] = 0, stride: int | tuple[int, int] = 1) -> torch.Tensor:
    """Orthonormal rows (r, C·k·k) spanning the input-patch directions the data does not
    use: the lowest-variance principal directions of the (uncentred) patches of ``inputs``
    (N, C, H, W) that together hold at most ``share`` of the patches' second moment."""
    patches = torch.nn.functional.unfold(inputs.double(), kernel, padding=padding, stride=stride)
    patches = patches.transpose(1, 2).reshape(-1, patches.shape[1])
    second = patches.T @ patches / len(patches)
    evals, evecs = torch.linalg.eigh(second)  # ascending
    cum = torch.cumsum(evals.clamp_min(0), 0) / evals.clamp_min(0).sum().clamp_min(1e-300)
    r = int((cum <= share).sum())
    return evecs[:, :r].T


def unused_energy(weights: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Per filter of (units, C, k, k) ``weights``: the share of its squared norm in the
    span of ``directions`` (r, C·k·k): (units,), 0 when ``r`` is 0."""
    w = weights.detach().double().flatten(1)
    if len(directions) == 0:
        return torch.zeros(len(w), dtype=torch.float64)
    return (w @ directions.T).pow(2).sum(1) / w.pow(2).sum(1).clamp_min(1e-300)


def measure_weights(models: dict[str, nn.Module], depth: int, x: torch.Tensor | None = None) -> dict[str, Any]:
    """Per block: the decomposition of ``clean`` (and ``clean_scratch``, and the second
    clean run ``clean_b``) against ``adversarial`` (``clean``), the cosines of every
    model's units to the initialization, and (with data ``x``) each model's filter energy
    in the input directions its data does not use."""
    out = {}
    for b in range(1, depth + 1):
        w = {name: block_weights(m, b) for name, m in models.items()}
        dec = decompose(w["clean"], w["adversarial"])
        dec_scratch = decompose(w["clean_scratch"], w["adversarial"])
        out[f"block{b}"] = {
            "residual_ratio": dec["residual_ratio"].tolist(),
            "beta": dec["beta"].tolist(),
            "residual_ratio_scratch": dec_scratch["residual_ratio"].tolist(),
            "residual_ratio_clean_clean": decompose(w["clean"], w["clean_b"])["residual_ratio"].tolist()
            if "clean_b" in w else None,
            "cos_clean_adversarial": cosines(w["clean"], w["adversarial"]).tolist(),
            "cos_to_init": {name: cosines(w[name], w["init"]).tolist() for name in ("parent",) + MODELS},
            "norm": {name: w[name].detach().double().flatten(1).norm(dim=1).tolist() for name in ("init",) + MODELS},
        }
        if x is not None:
            energy = {}
            for name in ("init",) + MODELS:
                conv = models[name].block(b).conv
                directions = unused_directions(block_inputs(models[name], b, x), conv.kernel_size,
                                               padding=conv.padding, stride=conv.stride)
                energy[name] = unused_energy(w[name], directions).tolist()
            out[f"block{b}"]["unused_energy"] = energy
    return out


def measure_images(models: dict[str, nn.Module], data, cfg: PurificationConfig, seed: int,
                   device="cpu") -> dict[str, Any]:
    """Unregularized renders of every unit of ``cfg.blocks`` per model, with the
    convergence check: per model and block, the median hf_ratio (non-flat units), the
    median over converged non-flat units only, and the counts."""
    from ..vis.maximize import maximize
    from ..vis.metrics import data_baseline

    baseline = data_baseline(data.x_train)
    specs = [f"block{b}:*" for b in cfg.blocks]
    out: dict[str, Any] = {"baseline": baseline, "models": {}, "renders": {}}
    for name in MODELS:
        result = maximize(models[name], specs, ["none"], steps=cfg.render_steps, lr=cfg.render_lr, seed=seed,
                          device=device, dataset=None, top_k=0, baseline=baseline, check_convergence=True)
        per_block = {}
        for b in cfg.blocks:
            imgs = [i for i in result.images if i.neuron.layer == f"block{b}"]
            conv = [i for i in imgs if i.converged]
            per_block[f"block{b}"] = {
                "median_hf_ratio": median(i.hf_ratio for i in imgs),
                "median_hf_ratio_converged": median(i.hf_ratio for i in conv),
                "median_tv": median(i.tv for i in imgs),
                "median_activation": median(i.activation for i in imgs),
                "n": len(imgs), "n_flat": sum(i.flat for i in imgs), "n_converged": len(conv),
                "hf_ratio": [i.hf_ratio for i in imgs],
            }
        out["models"][name] = per_block
        out["renders"][name] = result
    return out


# ------------------------------------------------------------------ the study

def _controls(cfg: PurificationConfig, seeds_out: list[dict], blocks: list[str]) -> dict[str, Any]:
    """Paired (over seeds) differences of median render hf_ratio, adversarial − each of
    clean and the controls, per block, with bootstrap CIs; the claim per block (adversarial
    below both controls, both CIs below 0)."""
    from ..stats import paired_difference

    comparisons: dict[str, dict[str, Any]] = {}
    claims: dict[str, Any] = {}
    for b in blocks:
        adv = [s["images"]["adversarial"][b]["median_hf_ratio"] for s in seeds_out]
        comparisons[b] = {}
        for other in ("clean",) + CONTROLS:
            ref = [s["images"][other][b]["median_hf_ratio"] for s in seeds_out]
            comparisons[b][f"adversarial_minus_{other}"] = paired_difference(adv, ref, cfg.level, seed=0)
        below = [comparisons[b][f"adversarial_minus_{c}"] for c in CONTROLS]
        enough = len(seeds_out) >= MIN_SEEDS_FOR_CLAIM
        claims[b] = {"purification": enough and all(d["high"] is not None and d["high"] < 0 for d in below),
                     "rule": "adversarial median hf_ratio below the noise and the weight-decay controls, both paired "
                             f"{cfg.level:.0%} CIs excluding 0, over at least {MIN_SEEDS_FOR_CLAIM} seeds"}
    return {"comparisons": comparisons, "claims": claims}


def _summarize(cfg: PurificationConfig, seeds_out: list[dict], baseline: dict) -> dict[str, Any]:
    blocks = [f"block{b}" for b in cfg.blocks]
    weight_blocks = list(seeds_out[0]["weights"])
    hf = {name: {b: spread([s["images"][name][b]["median_hf_ratio"] for s in seeds_out]) for b in blocks}
          for name in MODELS}
    hf_conv = {name: {b: spread([s["images"][name][b]["median_hf_ratio_converged"] for s in seeds_out])
                      for b in blocks} for name in MODELS}
    adv_over_clean = {b: ratio([s["images"]["adversarial"][b]["median_hf_ratio"] for s in seeds_out],
                               [s["images"]["clean"][b]["median_hf_ratio"] for s in seeds_out]) for b in blocks}
    converged = {name: {b: sum(s["images"][name][b]["n_converged"] for s in seeds_out) /
                        max(1, sum(s["images"][name][b]["n"] for s in seeds_out)) for b in blocks}
                 for name in MODELS}
    residual = {b: spread([median(s["weights"][b]["residual_ratio"]) for s in seeds_out]) for b in weight_blocks}
    cos_init = {name: {b: spread([median(s["weights"][b]["cos_to_init"][name]) for s in seeds_out])
                       for b in weight_blocks} for name in ("parent",) + MODELS}
    accuracy = {name: {k: spread([s["training"][name][k] for s in seeds_out])
                       for k in ("test_accuracy", "robust_accuracy")} for name in MODELS}
    controls = _controls(cfg, seeds_out, blocks)
    return {
        "hf_ratio": {**hf, "data": baseline.get("hf_ratio")},
        "hf_ratio_converged_only": hf_conv,
        "adv_over_clean": adv_over_clean,
        "residual_ratio": residual,
        "residual_ratio_scratch": {b: spread([median(s["weights"][b]["residual_ratio_scratch"])
                                              for s in seeds_out]) for b in weight_blocks},
        "residual_ratio_clean_clean": {b: spread([median(s["weights"][b].get("residual_ratio_clean_clean") or [])
                                                  for s in seeds_out]) for b in weight_blocks},
        "unused_energy": {name: {b: spread([median((s["weights"][b].get("unused_energy") or {}).get(name) or [])
                                            for s in seeds_out]) for b in weight_blocks}
                          for name in ("init",) + MODELS},
        "controls": controls["comparisons"],
        "claims": controls["claims"],

        "cos_to_init": cos_init,
        "converged_fraction": converged,
        "accuracy": accuracy,
        "target": {"adv_over_clean_at_most": TARGET_RATIO,
                   "met": {b: adv_over_clean[b]["value"] is not None and adv_over_clean[b]["value"] <= TARGET_RATIO
                           for b in blocks}},
        "budget": (f"every model {cfg.epochs} epochs: parent {cfg.epochs // 2} clean; clean = parent + "
                   f"{cfg.epochs - cfg.epochs // 2} clean; adversarial = parent + {cfg.epochs - cfg.epochs // 2} "
                   f"PGD-{cfg.adv_steps} (eps {cfg.eps}); clean_scratch = {cfg.epochs} clean from the same init; "
                   f"noise = parent + {cfg.epochs - cfg.epochs // 2} on Gaussian noise "
                   f"(sigma {cfg.eps if cfg.noise_sigma is None else cfg.noise_sigma}); weight_decay = parent + "
                   f"{cfg.epochs - cfg.epochs // 2} clean with weight decay {cfg.weight_decay}; clean_b = parent + "
                   f"{cfg.epochs - cfg.epochs // 2} clean, another minibatch order"),

        "seeds": len(seeds_out),
    }


def run(config: PurificationConfig | None = None, *, seeds: int = 3, first_seed: int = 0,
        out: str | Path | None = None, quick: bool = False, device: str = "cpu",
        progress: bool = True) -> dict[str, Any]:
    """Run the study (``config``, else the ``quick`` or ``full`` preset) for ``seeds``
    seeds from ``first_seed`` and return the results (the renders of the first seed ride
    along under ``_renders`` for :func:`write`, which ``out`` calls). ``results["purification"]``
    is self-contained (hf_ratio per model and block with the data's value, residual ratios
    per block, cosines, accuracies, the target)."""
    from ..data import load_dataset

    if seeds < 1:
        raise FeatvizError(f"seeds must be >= 1, got {seeds}")
    cfg = config or PRESETS["quick" if quick else "full"]
    start = time.perf_counter()
    data = load_dataset(cfg.dataset, image_size=cfg.image_size)
    seeds_out, renders = [], None
    bar = tqdm(range(first_seed, first_seed + seeds), desc="purification", unit="seed", file=sys.stderr,
               disable=not progress)
    for seed in bar:
        models, training = train_models(cfg, seed, data, device)
        depth = models["clean"].depth
        weights = measure_weights(models, depth, data.x_train[:UNUSED_IMAGES])
        images = measure_images(models, data, cfg, seed, device)
        if renders is None:
            renders = images.pop("renders")
        else:
            images.pop("renders")
        seeds_out.append({"seed": seed, "training": training, "weights": weights,
                          "images": images["models"], "baseline": images["baseline"]})
    results = _results(cfg, seeds_out, time.perf_counter() - start) | {"_renders": renders}
    if out is not None:
        write(results, out)
    return results


def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the results of runs over disjoint seeds with the same config (e.g. one
    process per seed) into the results one run over all those seeds would give."""
    if not parts:
        raise FeatvizError("nothing to combine")
    if any(p["config"] != parts[0]["config"] for p in parts):
        raise FeatvizError("the runs to combine have different configs")
    seeds_out = sorted((s for p in parts for s in p["per_seed"]), key=lambda s: s["seed"])
    if len({s["seed"] for s in seeds_out}) != len(seeds_out):
        raise FeatvizError("the runs to combine share a seed")
    cfg = PurificationConfig(**{**parts[0]["config"], "blocks": tuple(parts[0]["config"]["blocks"])})
    return _results(cfg, seeds_out, sum(p["seconds"] for p in parts))


def _results(cfg: PurificationConfig, seeds_out: list[dict], seconds: float) -> dict[str, Any]:
    """The ``results.json`` dict from the per-seed records."""
    baseline = seeds_out[0]["baseline"]
    summary = _summarize(cfg, seeds_out, baseline)
    last = f"block{cfg.blocks[-1]}"
    return {"format": FORMAT, "headline_eps": [cfg.eps],
            "primary": primary_endpoint(f"adversarial / clean median hf_ratio of {last} renders "
                                        "(ratio of means, paired)", summary["adv_over_clean"][last]),
            "purification": summary, "config": asdict(cfg), "baseline": baseline, "per_seed": seeds_out,
            "seconds": round(seconds, 1)}


def write(results: dict[str, Any], out: str | Path) -> Path:
    """``results.json``, the two plots and the first seed's renders (block grids per model,
    when the results carry them), atomically."""
    from ..fileio import atomic_directory, atomic_write_bytes, atomic_write_json

    out = Path(out)
    with atomic_directory(out) as tmp:
        atomic_write_json(tmp / "results.json", {k: v for k, v in results.items() if not k.startswith("_")})
        atomic_write_bytes(tmp / "hf_ratio.png", hf_plot(results))
        atomic_write_bytes(tmp / "residual.png", residual_plot(results))
        if results.get("_renders"):
            atomic_write_bytes(tmp / "renders.png", renders_png(results["_renders"]))
    return out


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def hf_plot(results: dict[str, Any]) -> bytes:
    """Bars: median hf_ratio of unregularized renders per block and model (mean ± std
    over seeds), with the data's median as a dashed line."""
    p = results["purification"]
    blocks = list(p["adv_over_clean"])
    fig = _figure(5.5, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(MODELS)
    for k, name in enumerate(MODELS):
        means = [p["hf_ratio"][name][b]["mean"] or 0.0 for b in blocks]
        stds = [p["hf_ratio"][name][b]["std"] or 0.0 for b in blocks]
        ax.bar([i + (k - (len(MODELS) - 1) / 2) * width for i in range(len(blocks))], means, width, yerr=stds,
               capsize=3, label=name)
    if p["hf_ratio"]["data"] is not None:
        ax.axhline(p["hf_ratio"]["data"], color="k", ls="--", lw=1, label="data")
    ax.set_xticks(range(len(blocks)))
    ax.set_xticklabels(blocks)
    ax.set_ylabel("median hf_ratio (unregularized)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    ax.set_title(f"{p['seeds']} seeds, equal budgets", fontsize=9)
    return _png(fig)


def residual_plot(results: dict[str, Any]) -> bytes:
    """Per block: |v| / |β·w_adv| of every unit, all seeds pooled (log scale)."""
    seeds = results["per_seed"]
    blocks = list(seeds[0]["weights"])
    fig = _figure(5.5, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    data = [[r for s in seeds for r in s["weights"][b]["residual_ratio"] if math.isfinite(r)] for b in blocks]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(blocks) + 1))
    ax.set_xticklabels(blocks)
    ax.set_yscale("log")
    ax.set_ylabel("|v| / |β·w_adv| per unit")
    ax.set_title("w_clean = β·w_adv + v", fontsize=9)
    return _png(fig)


def renders_png(renders: dict, units: int = 8) -> bytes:
    """First seed: the first ``units`` unregularized renders of each rendered block, one row per model."""
    result0 = next(iter(renders.values()))
    layers = list(dict.fromkeys(i.neuron.layer for i in result0.images))
    rows = [(name, layer) for layer in layers for name in MODELS]
    fig = _figure(1.1 * units + 1.2, 1.15 * len(rows))
    axes = fig.subplots(len(rows), units, squeeze=False)
    for r, (name, layer) in enumerate(rows):
        imgs = [i for i in renders[name].images if i.neuron.layer == layer][:units]
        for c in range(units):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(imgs):
                ax.imshow(imgs[c].image.mean(dim=0).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                hf = imgs[c].hf_ratio
                ax.set_xlabel("flat" if hf is None else f"hf {hf:.2f}", fontsize=6, labelpad=1)
            if c == 0:
                ax.set_ylabel(f"{name}\n{layer}", fontsize=7)
    return _png(fig)


Config = PurificationConfig

__all__ = ["CONTROLS", "FORMAT", "GaussianNoise", "MODELS", "PRESETS", "Config", "PurificationConfig", "TARGET_RATIO",
           "block_inputs", "block_weights", "combine", "cosines", "decompose", "measure_images", "measure_weights",
           "run", "train_models", "unused_directions", "unused_energy", "write"]
