"""Joint vs layerwise (vs layerwise+joint, vs adversarial) over seeds, at matched budgets.

One model of each training mode says little: a difference may belong to one
initialization. :func:`run_compare` trains (or reuses) ``seeds`` models per mode, all
with the **same total number of optimizer steps**, evaluates each one the same way
and reports mean ± std, per-seed values and a significance test per comparison::

    from featviz.studies.compare import CompareSpec, run_compare, write_compare
    results = run_compare(CompareSpec(modes=("joint", "layerwise"), seeds=5))
    write_compare(results, "runs/compare")        # results.json, robustness.png, render_metrics.png

Matched budgets: with ``epochs_total`` = T and a network of L blocks, ``joint`` (and
``adv``, adversarially trained joint) trains T epochs; ``layerwise`` splits T over its L
stages and ``layerwise+joint`` over its L + 1 (:func:`featviz.train.split_budget`: as
evenly as integers allow, the last stages take the remainder). Every stage uses the same
data, batch size and learning rate, so every mode takes T × ⌈n_train / batch⌉ optimizer
steps.

Seeds are paired: seed s initializes and shuffles the model of every mode the same way,
so "mode A beats mode B in every seed" compares models that differ only in training.

Per model: clean accuracy and robust accuracy at every ε under one attack
(``autoattack-fast`` unless another is named), the median minimal ε, and render metrics of a
fixed subset of units per block (units 0..``render_units``-1) under ``none`` and
``standard``, beside the same metrics of the data (:func:`featviz.vis.metrics.data_baseline`).
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import SpecError
from ..figures import literal, plt, save_figure
from ..stats import holm, mean_std_text, paired_difference, paired_test, unpaired_test
from ..stats import median as _median
from .common import map_jobs, primary_endpoint, spread, train_stages
from .names import COMPARE_MODES, DEFAULT_EPS

DEFAULT_ATTACK = "autoattack-fast"
# What the gallery and the tables single out (the ε of the adversarial models' training).
REPORT_EPS = (0.05, 0.1)
RENDER_METRICS = ("hf_ratio", "tv", "shift_stability", "relative_activation")
FORMAT = "featviz-compare/1"


@dataclass
class CompareSpec:
    """What to compare and how hard. ``seed`` is the first seed; seeds are
    ``seed, seed+1, ..., seed+seeds-1``, the same for every mode."""

    dataset: str = "digits"
    modes: tuple[str, ...] = ("joint", "layerwise", "layerwise+joint")
    seeds: int = 5
    seed: int = 0
    epochs_total: int = 30
    eps: tuple[float, ...] = DEFAULT_EPS
    attack: str | None = None  # None: autoattack-fast if available, else the PGD fallback
    adv_eps: float = 0.1  # adversarial training (mode "adv"): PGD, L∞
    adv_steps: int = 5
    width: int | None = None  # block-1 channels (None: the dataset default)
    image_size: int | None = None  # None: the dataset default (digits 16)
    n_examples: int | None = None  # test images attacked (None: all)
    render_units: int = 4  # units 0..render_units-1 of every block are rendered
    render_steps: int = 128
    regs: tuple[str, ...] = ("none", "standard")
    bisect_steps: int = 5
    data_root: str | None = None
    label: str = ""  # e.g. "demo-sized": shown with every figure

    def validate(self) -> None:
        if not self.modes:
            raise SpecError("no --modes given", f"use some of {', '.join(COMPARE_MODES)}")
        for m in self.modes:
            if m not in COMPARE_MODES:
                raise SpecError(f"unknown mode {m!r}", f"use some of {', '.join(COMPARE_MODES)}")
        if len(set(self.modes)) != len(self.modes):
            raise SpecError(f"a mode is listed twice in --modes {','.join(self.modes)}")
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise SpecError(f"--seeds must be >= 1, got {self.seeds}")
        if not isinstance(self.epochs_total, int) or self.epochs_total < 1:
            raise SpecError(f"--epochs must be >= 1, got {self.epochs_total}")
        if not self.eps:
            raise SpecError("no ε given", "e.g. --eps 0,0.05,0.1")
        for e in self.eps:
            if not (isinstance(e, (int, float)) and math.isfinite(e) and 0 <= e <= 1):
                raise SpecError(f"ε must lie in [0, 1] (images in [0, 1], L∞), got {e}", "e.g. --eps 0,0.05,0.1")
        if not 0 < self.adv_eps <= 1:
            raise SpecError(f"--adv-eps must lie in (0, 1], got {self.adv_eps}")
        if (self.width is not None and self.width < 1) or (self.image_size is not None and self.image_size < 4):
            raise SpecError("--width must be >= 1 and --image-size >= 4")
        if self.render_units < 0 or self.render_steps < 1:
            raise SpecError("--render-units must be >= 0 and --render-steps >= 1")
        if self.n_examples is not None and self.n_examples < 1:
            raise SpecError(f"--n-examples must be >= 1, got {self.n_examples}")
        # the mode with the most stages sets the smallest budget: one message for all modes, so
        # following its hint never meets another mode's refusal
        from ..train import stage_count

        most = max(self.modes, key=lambda m: stage_count(_train_mode(m), self.depth))
        need = stage_count(_train_mode(most), self.depth)
        if self.epochs_total < need:
            raise SpecError(f"--epochs {self.epochs_total} is too small for --modes {','.join(self.modes)}: {most} "
                            f"has {need} stages and each needs an epoch", f"use at least {need}")
        for m in self.modes:  # an unsplittable budget is refused before anything runs
            stage_epochs(m, self.depth, self.epochs_total)

    @property
    def depth(self) -> int:
        from ..recipes import DEFAULTS

        return DEFAULTS["image"]["depth"]


# ---------------------------------------------------------------------- budgets
def stage_epochs(mode: str, depth: int, epochs_total: int) -> tuple[int, ...]:
    """Epochs of each stage of ``mode``, ``epochs_total`` in all (see the module
    docstring). Raises :class:`SpecError` when a stage would get none."""
    if mode not in COMPARE_MODES:
        raise SpecError(f"unknown mode {mode!r}", f"use some of {', '.join(COMPARE_MODES)}")
    from ..train import split_budget, stage_count

    return split_budget(epochs_total, stage_count(_train_mode(mode), depth))


def _train_mode(mode: str) -> str:
    return "joint" if mode == "adv" else mode


def mode_budget(mode: str, depth: int, epochs_total: int, n_train: int, batch_size: int) -> dict[str, Any]:
    """The stage plan of ``mode`` and its total optimizer steps."""
    from ..train import plan_stages

    epochs = stage_epochs(mode, depth, epochs_total)
    stages = plan_stages(_train_mode(mode), depth, epochs[0], stage_epochs=epochs)
    per_epoch = math.ceil(n_train / batch_size)
    return {"stages": [{"name": s.name, "epochs": s.epochs} for s in stages],
            "epochs": sum(s.epochs for s in stages), "steps_per_epoch": per_epoch,
            "total_steps": sum(s.epochs for s in stages) * per_epoch}


# ---------------------------------------------------------------------- statistics
def seed_spread(values: Sequence[float | None]) -> dict[str, Any]:
    """:func:`featviz.studies.common.spread` in this study's format: ``{mean, std, values}``
    (sample std; None values, undefined for that seed, kept in ``values``)."""
    s = spread(values)
    return {"mean": s["mean"], "std": s["std"], "values": s["per_seed"]}


def compare_groups(what: str, a_name: str, a: Sequence[float | None], b_name: str,
                   b: Sequence[float | None]) -> dict[str, Any]:
    """One ``tests`` entry (:mod:`featviz.stats`): Welch t (``statistic``, ``p_value``) and
    the exact permutation p-value of the difference of means as if the groups were
    independent; ``paired``: the tests over seeds as pairs (seed s initializes and shuffles
    every mode alike), paired t, sign test and exact sign-flip permutation; the mean
    difference and, seed by seed, whether a < b and a > b held in every seed. Seeds where
    either value is undefined are left out."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    xa, xb = [p[0] for p in pairs], [p[1] for p in pairs]
    entry: dict[str, Any] = {"what": what, "a": a_name, "b": b_name, "n": len(pairs)}
    if not pairs:
        return entry | {"statistic": None, "p_value": None, "permutation_p_value": None, "difference": None,
                        "paired": None}
    u, pt = unpaired_test(xa, xb), paired_test(xa, xb)
    less = sum(x < y for x, y in pairs)
    greater = sum(x > y for x, y in pairs)
    return entry | {"statistic": u["t"], "p_value": u["p_welch"], "test": "Welch t (two-sided)",
                    "permutation_p_value": u["p_permutation"], "permutation": "exact, difference of means, two-sided",
                    "paired": {"t": pt["t"], "p_t": pt["p_t"], "p_sign": pt["p_sign"],
                               "p_permutation": pt["p_permutation"]},
                    "difference": u["mean_difference"], "mean_a": sum(xa) / len(xa), "mean_b": sum(xb) / len(xb),
                    "a_below_b_seeds": less, "a_above_b_seeds": greater,
                    "a_below_b_every_seed": less == len(pairs), "a_above_b_every_seed": greater == len(pairs)}


# ---------------------------------------------------------------------- attack
def resolve_attack(name: str | None) -> tuple[Any, dict[str, Any]]:
    """The attack to evaluate with (``None``: :data:`DEFAULT_ATTACK`) and what the results
    say of it: its name, its settings and the ``label`` figures and pages show."""
    from ..attacks import make_attack

    name = name or DEFAULT_ATTACK
    attack = make_attack(name)
    return attack, {"name": name, **_describe(attack), "label": name}


def _describe(attack: Any) -> dict[str, Any]:
    try:
        d = dict(attack.describe())
    except Exception:  # an attack without describe(): its name is enough
        d = {}
    d.pop("attack", None)
    return d


# ---------------------------------------------------------------------- training
def _recipe(spec: CompareSpec, mode: str, seed: int, depth: int, batch_size: int, lr: float) -> dict[str, Any]:
    """What a trained model's card must say for :func:`run_compare` to reuse it."""
    epochs = stage_epochs(mode, depth, spec.epochs_total)
    adv = {"attack": "pgd", "eps": spec.adv_eps, "steps": spec.adv_steps} if mode == "adv" else None
    return {"mode": mode, "stage_epochs": list(epochs), "seed": seed, "adv": adv,
            "batch_size": batch_size, "lr": lr, "width": spec.width, "dataset": spec.dataset,
            "image_size": spec.image_size}


def _reuse(folder: Path | None, recipe: dict[str, Any]):
    """A model saved by an earlier comparison with exactly this recipe (None: train it)."""
    from ..reuse import load_if

    return load_if(folder, lambda card: card.get("training", {}).get("compare") == recipe)


def train_one(spec: CompareSpec, mode: str, seed: int, data, *, device: torch.device | str = "cpu"):
    """Train one model of ``mode`` with ``seed`` at the matched budget; returns a
    :class:`~featviz.checkpoint.Checkpoint` (not saved) whose card records the recipe."""
    from ..checkpoint import Checkpoint, make_card
    from ..recipes import TrainSpec, build_for
    from ..train import TrainConfig

    tspec = TrainSpec(dataset=spec.dataset, mode=_train_mode(mode), width=spec.width, seed=seed,
                      image_size=spec.image_size)
    d = tspec.defaults()
    model = build_for(data, tspec)
    epochs = stage_epochs(mode, model.depth, spec.epochs_total)
    recipe = _recipe(spec, mode, seed, model.depth, d["batch_size"], d["lr"])
    adversary = None
    if mode == "adv":
        from ..attacks.training import training_adversary

        adversary = training_adversary(recipe["adv"], seed=seed)
    start = time.perf_counter()
    result = train_stages(model, data, tspec.mode, epochs, seed=seed, device=device, lr=d["lr"],
                          batch_size=d["batch_size"], adversary=adversary)
    model.cpu()
    steps = sum(s["epochs"] for s in result.stages) * math.ceil(len(data.x_train) / d["batch_size"])
    training = {"mode": tspec.mode, "adv": recipe["adv"], "epochs": epochs[0], "stage_epochs": list(epochs),
                "seed": seed, "lr": d["lr"], "batch_size": d["batch_size"], "optimizer": TrainConfig.optimizer,
                "schedule": TrainConfig.schedule, "seconds": round(time.perf_counter() - start, 2), "steps": steps,
                "compare": recipe}
    card = make_card(model, dataset=data.info, training=training, metrics=result.metrics,
                     name=f"{spec.dataset}-{mode}-seed{seed}")
    return Checkpoint(model=model, card=card, path=Path("."))


# ---------------------------------------------------------------------- evaluation
def evaluate_robustness(model, x, y, attack, eps: Sequence[float], *, seed: int, bisect_steps: int = 5,
                        device: torch.device | str = "cpu", progress: bool = False) -> dict[str, Any]:
    """Clean accuracy, robust accuracy per ε and the median minimal ε of one model."""
    from ..attacks import robustness_curve

    report = robustness_curve(model, x, y, attack, eps, seed=seed, bisect_steps=bisect_steps, n_show=0,
                              progress=progress, device=device)
    return {"clean_accuracy": report.clean_accuracy,
            "robust": dict(zip(report.eps, report.robust_accuracy())),
            "min_eps": report.min_eps_summary(), "seconds": round(report.seconds, 2)}


def evaluate_renders(model, spec: CompareSpec, x_train: torch.Tensor, *, seed: int,
                     device: torch.device | str = "cpu") -> dict[str, Any]:
    """Per block and setting, the median over the rendered units of each render metric;
    and per block the same metrics of each unit's top dataset example (``data``)."""
    from ..vis import maximize
    from ..vis.metrics import hf_ratio, shift_stability, total_variation

    if spec.render_units == 0:
        return {}
    layers = [(f"block{l}", model.block(l).units) for l in range(1, model.depth + 1)]
    specs = [f"{name}:0-{min(spec.render_units, units) - 1}" for name, units in layers]
    res = maximize(model, specs, regs=list(spec.regs), steps=spec.render_steps, seed=seed, device=device,
                   dataset=x_train, top_k=1)
    out: dict[str, dict[str, Any]] = {}
    for img in res.images:
        block = img.neuron.label.split(":")[0]
        cell = out.setdefault(block, {}).setdefault(img.reg, {m: [] for m in RENDER_METRICS + ("flat", "converged")})
        for m in RENDER_METRICS:
            cell[m].append(getattr(img, m, None))
        for flag in ("flat", "converged"):  # present when this version's maximize measures them
            if getattr(img, flag, None) is not None:
                cell[flag].append(float(bool(getattr(img, flag))))
    summary = {block: {reg: {m: _median(v) for m, v in cell.items() if v} for reg, cell in regs.items()}
               for block, regs in out.items()}
    # The data side: the same metrics of each unit's strongest training image.
    tops = {ex.neuron: ex.images[0] for ex in res.examples if len(ex.indices)}
    for (name, _), ns in zip(layers, res.neuron_sets):
        imgs = [tops.get(n) for n in ns.neurons]
        if not imgs or any(i is None for i in imgs):
            continue
        batch = torch.stack(imgs)
        stable = shift_stability(model, ns.objective(), batch.to(device))
        summary.setdefault(name, {})["data"] = {"hf_ratio": _median(hf_ratio(batch).tolist()),
                                                "tv": _median(total_variation(batch).tolist()),
                                                "shift_stability": _median(stable.tolist())}
    return summary


# ---------------------------------------------------------------------- the study
def run_compare(spec: CompareSpec, *, out_models: str | Path | None = None, reuse: str | Path | None = None,
                device: torch.device | str = "cpu", workers: int = 1, progress: bool = True) -> dict[str, Any]:
    """Train (or reuse) and evaluate ``spec.seeds`` models per mode; return the results
    object (see :func:`write_compare`). ``out_models``: save each model under
    ``out_models/<mode>-seed<s>``. ``reuse``: a folder of such models (e.g. an earlier
    run's ``models/``); a model there is reused only if its card records exactly this
    recipe (mode, stage epochs, seed, adversary, batch size, learning rate, width).
    ``workers`` > 1 runs the (mode, seed) jobs in that many processes with one torch
    thread each; every job seeds its own generators, so the numbers do not change."""
    from ..data import load_dataset
    from ..recipes import DEFAULTS
    from ..vis.metrics import data_baseline

    spec.validate()
    start = time.perf_counter()
    _, attack_info = resolve_attack(spec.attack)
    data = load_dataset(spec.dataset, data_root=spec.data_root, image_size=spec.image_size, seed=spec.seed)
    if not data.is_image or data.task != "classification":
        raise SpecError(f"--dataset {spec.dataset} is not an image classification dataset",
                        "use digits, mnist, fashion-mnist or cifar10")
    n_test = len(data.x_test) if spec.n_examples is None else min(spec.n_examples, len(data.x_test))
    seeds = list(range(spec.seed, spec.seed + spec.seeds))
    d = DEFAULTS["image"]
    budgets = {m: mode_budget(m, spec.depth, spec.epochs_total, len(data.x_train), d["batch_size"])
               for m in spec.modes}
    jobs = [(m, s) for m in spec.modes for s in seeds]
    args = {"reuse": str(reuse) if reuse else None, "out_models": str(out_models) if out_models else None,
            "device": str(device)}
    done: dict[tuple[str, int], dict[str, Any]] = {}
    bar = tqdm(total=len(jobs), desc="compare", unit="model", disable=not progress, leave=False)

    def finished(i: int, record: dict[str, Any]) -> None:
        job = jobs[i]
        done[job] = record
        bar.update(1)
        if progress:
            tqdm.write(f"compare: {job[0]} seed {job[1]}{' (reused)' if record['reused'] else ''}: clean "
                       f"{record['clean_accuracy']:.4f}, robust "
                       + " ".join(f"{e:g}:{a:.3f}" for e, a in record["robust"].items()), file=sys.stderr)

    map_jobs(partial(compare_job, **args), [(spec, *job) for job in jobs], workers=workers,
             local=partial(compare_job, data=data, **args), done=finished)
    bar.close()
    per_model = {m: [done[(m, s)] for s in seeds] for m in spec.modes}
    modes = {m: _summarize(per_model[m], budgets[m]) for m in spec.modes}
    eps = sorted(float(e) for e in spec.eps)
    return {"format": FORMAT, "label": spec.label, "dataset": spec.dataset, "spec": _spec_dict(spec),
            "headline_eps": headline_eps(eps), "primary": primary(modes, eps),
            "attack": attack_info, "budget": {"total_steps": {m: b["total_steps"] for m, b in budgets.items()},
                                              "epochs_total": spec.epochs_total, "per_mode": budgets},
            "eps": eps, "n_test": int(n_test),
            "render_setup": {"units_per_block": spec.render_units, "units": f"0..{spec.render_units - 1} of every block",
                             "steps": spec.render_steps, "regs": list(spec.regs),
                             "statistic": "median over the rendered units, then mean ± std (n-1) over seeds"},
            "baseline": data_baseline(data.x_test), "modes": modes,
            "tests": run_tests(modes, primary_eps=(headline_eps(eps) or [None])[0]),
            "reused": [f"{m}-seed{s}" for (m, s), r in done.items() if r["reused"]],
            "workers": workers, "seconds": round(time.perf_counter() - start, 2)}


def compare_job(spec: CompareSpec, mode: str, seed: int, *, reuse: str | None = None, out_models: str | None = None,
                device: str = "cpu", data=None) -> dict[str, Any]:
    """One (mode, seed): train or reuse the model, save it if asked, evaluate it."""
    from ..checkpoint import save_checkpoint
    from ..data import load_dataset
    from ..recipes import DEFAULTS

    if data is None:
        data = load_dataset(spec.dataset, data_root=spec.data_root, image_size=spec.image_size, seed=spec.seed)
    d = DEFAULTS["image"]
    name = f"{mode}-seed{seed}"
    ckpt = _reuse(Path(reuse) / name if reuse else None,
                  _recipe(spec, mode, seed, spec.depth, d["batch_size"], d["lr"]))
    reused = ckpt is not None
    if not reused:
        ckpt = train_one(spec, mode, seed, data, device=device)
        if out_models is not None:
            save_checkpoint(Path(out_models) / name, ckpt.model, ckpt.card)
    model = ckpt.model.to(device).eval()
    attack, _ = resolve_attack(spec.attack)
    x_test, y_test = data.x_test, data.y_test
    if spec.n_examples is not None:
        x_test, y_test = x_test[:spec.n_examples], y_test[:spec.n_examples]
    robust = evaluate_robustness(model, x_test, y_test, attack, spec.eps, seed=seed, bisect_steps=spec.bisect_steps,
                                 device=device)
    render = evaluate_renders(model, spec, data.x_train, seed=seed, device=device)
    return {"seed": seed, "reused": reused, "steps": ckpt.card["training"].get("steps"),
            "train_seconds": ckpt.card["training"].get("seconds"), **robust, "render": render}


def _spec_dict(spec: CompareSpec) -> dict[str, Any]:
    out = asdict(spec)
    out["modes"], out["eps"], out["regs"] = list(spec.modes), list(spec.eps), list(spec.regs)
    return out


def _summarize(models: list[dict[str, Any]], budget: dict[str, Any]) -> dict[str, Any]:
    eps = sorted(models[0]["robust"]) if models else []
    render: dict[str, Any] = {}
    for block in (models[0]["render"] if models else {}):
        for reg in models[0]["render"][block]:
            for metric in models[0]["render"][block][reg]:
                vals = [m["render"].get(block, {}).get(reg, {}).get(metric) for m in models]
                render.setdefault(block, {}).setdefault(reg, {})[metric] = seed_spread(vals)
    return {"seeds": [m["seed"] for m in models], "budget": budget,
            "steps": [m["steps"] for m in models],
            "clean_accuracy": seed_spread([m["clean_accuracy"] for m in models]),
            "robust": [{"eps": e, **seed_spread([m["robust"][e] for m in models])} for e in eps],
            "min_eps": seed_spread([m["min_eps"]["median"] for m in models]),
            "min_eps_broken": seed_spread([m["min_eps"]["broken"] for m in models]),
            "render": render,
            "train_seconds": [m["train_seconds"] for m in models]}


def run_tests(modes: dict[str, dict[str, Any]], primary_eps: float | None = None) -> list[dict[str, Any]]:
    """A test per pair of modes (in the order given) and per quantity: clean accuracy,
    robust accuracy at each ε > 0, median minimal ε, and the median hf_ratio of
    unregularized renders per block.

    ``primary_eps``: the ε of the declared primary endpoint (:func:`primary`); the test of
    the first two modes' robust accuracy there is marked ``role`` "primary" and left out of
    the multiple-comparison family (its p-value stands alone, ``p_holm`` null). Every other
    test is "secondary", with ``p_holm`` Holm-adjusted across all the secondary tests."""
    tests = []
    names = list(modes)
    for a, b in itertools.combinations(names, 2):
        A, B = modes[a], modes[b]
        tests.append(compare_groups("clean accuracy", a, A["clean_accuracy"]["values"], b,
                                    B["clean_accuracy"]["values"]))
        for ra, rb in zip(A["robust"], B["robust"]):
            if ra["eps"] > 0:
                tests.append(compare_groups(f"robust accuracy at ε={ra['eps']:g}", a, ra["values"], b, rb["values"])
                             | {"eps": ra["eps"]})
        tests.append(compare_groups("median minimal ε", a, A["min_eps"]["values"], b, B["min_eps"]["values"]))
        for block in A["render"]:
            va = A["render"][block].get("none", {}).get("hf_ratio")
            vb = B["render"].get(block, {}).get("none", {}).get("hf_ratio")
            if va and vb:
                tests.append(compare_groups(f"{block} hf_ratio (none)", a, va["values"], b, vb["values"]))
    first = tuple(names[:2])
    for t in tests:
        t["role"] = ("primary" if primary_eps is not None and (t["a"], t["b"]) == first
                     and t.get("eps") == primary_eps else "secondary")
    # Holm across every secondary comparison, on the exact paired permutation p
    secondary = [t for t in tests if t["role"] == "secondary"]
    adjusted = holm([(t.get("paired") or {}).get("p_permutation") for t in secondary])
    for t, p in zip(secondary, adjusted):
        t["p_holm"] = p
    for t in tests:
        t.setdefault("p_holm", None)
        t["statement"] = statement(t)
    return tests


def headline_eps(eps: Sequence[float]) -> list[float]:
    """The robust-accuracy radii a result is quoted at: :data:`REPORT_EPS` where measured,
    else the two smallest measured radii above 0."""
    return [e for e in REPORT_EPS if e in eps] or [e for e in eps if e > 0][:2]


def primary(modes: dict[str, dict[str, Any]], eps: Sequence[float]) -> dict[str, Any]:
    """The comparison's primary endpoint, declared before any run: robust accuracy of the
    first mode minus the second's at the first headline ε (0.05 where measured), paired
    over seeds, with a bootstrap CI."""
    names = list(modes)
    at = headline_eps(eps)
    if len(names) < 2 or not at:
        return primary_endpoint("none (needs two modes and a radius above 0)", {})
    e = at[0]
    a, b = ([r["values"] for r in modes[m]["robust"] if r["eps"] == e][0] for m in names[:2])
    return primary_endpoint(f"robust accuracy at ε={e:g}: {names[0]} − {names[1]} (paired over seeds)",
                            paired_difference(a, b)) | {"eps": e}


def statement(t: dict[str, Any]) -> str:
    """One sentence for a test entry: direction, means, seeds, p-values."""
    if t.get("difference") is None:
        return f"{t['what']}: {t['a']} vs {t['b']}: no values to compare"
    rel = "<" if t["difference"] < 0 else (">" if t["difference"] > 0 else "=")
    seeds = t["a_below_b_seeds"] if rel == "<" else t["a_above_b_seeds"]
    p = "undefined (no spread)" if t["p_value"] is None else f"{t['p_value']:.3g}"
    return (f"{t['what']}: {t['a']} {t['mean_a']:.4g} {rel} {t['b']} {t['mean_b']:.4g} "
            f"(in {seeds}/{t['n']} seeds; Welch p={p}, exact permutation p={t['permutation_p_value']:.3g}"
            + (f"; paired permutation p={t['paired']['p_permutation']:.3g}, Holm {t['p_holm']:.3g}"
               if t.get("p_holm") is not None else "")
            + ("; primary endpoint, outside the Holm family" if t.get("role") == "primary" else "") + ")")


# ---------------------------------------------------------------------- output
def write_compare(results: dict[str, Any], out: str | Path) -> dict[str, str]:
    """Write ``results.json``, ``table.md``, ``robustness.png`` and ``render_metrics.png``
    into ``out`` (atomically, file by file); return the file names."""
    from ..fileio import atomic_write_json, atomic_write_text

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"results": "results.json", "table": "table.md", "robustness": "robustness.png",
             "render_metrics": "render_metrics.png"}
    title = f"{results['dataset']}, {len(next(iter(results['modes'].values()))['seeds'])} seeds per mode" + (
        f" ({results['label']})" if results.get("label") else "")
    compare_robustness_plot(results["modes"], out / files["robustness"],
                            title=f"{title}; attack {results['attack'].get('label', results['attack']['name'])}")
    compare_render_plot(results["modes"], results["baseline"], out / files["render_metrics"], title=title)
    atomic_write_text(out / files["table"], format_table(results))
    atomic_write_json(out / files["results"], results | {"files": files})
    return files


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
        ax.plot(eps, mean, color=color, marker="o", markersize=3, label=literal(f"{mode} (n={len(r['seeds'])})"))
    ax.set_xlabel("ε (L∞)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(literal(title), fontsize=9)
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
                       capsize=2, color=f"C{i % 10}", label=literal(mode) if row == 0 and col == 0 else None)
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
        fig.suptitle(literal(title), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def _pm(cell: dict[str, Any] | None, pct: bool = False, digits: int = 3) -> str:
    return mean_std_text(cell, ".1f", ".1f", 100) if pct else mean_std_text(cell, f".{digits}g")


def format_table(results: dict[str, Any]) -> str:
    """A Markdown summary: accuracy table, render table, tests."""
    modes = results["modes"]
    eps = results.get("headline_eps") or headline_eps(results["eps"])
    lines = [f"# {results['dataset']}: {' vs '.join(modes)}" + (f" ({results['label']})" if results.get("label") else ""),
             "", f"Attack: {results['attack'].get('label', results['attack']['name'])}. Budget: {results['budget']['epochs_total']} epochs = "
             + ", ".join(f"{m} {s} steps" for m, s in results["budget"]["total_steps"].items())
             + f". Test images: {results['n_test']}. Mean ± std over seeds (per-seed values in results.json).", "",
             "| mode | seeds | clean acc. (%) | " + " | ".join(f"robust ε={e:g} (%)" for e in eps)
             + " | median min ε |", "|---" * (4 + len(eps)) + "|"]
    for m, r in modes.items():
        rob = {p["eps"]: p for p in r["robust"]}
        lines.append(f"| {m} | {len(r['seeds'])} | {_pm(r['clean_accuracy'], True)} | "
                     + " | ".join(_pm(rob.get(e), True) for e in eps) + f" | {_pm(r['min_eps'])} |")
    base = results["baseline"]
    lines += ["", f"Render metrics: median over units {results['render_setup']['units']}, "
              f"{results['render_setup']['steps']} steps; data: the dataset's images (hf_ratio {base['hf_ratio']:.3g}, "
              f"TV {base['tv']:.3g}) and each unit's top training image (`data` rows).", "",
              "| mode | block | setting | hf_ratio | shift_stability | relative activation |", "|---" * 6 + "|"]
    for m, r in modes.items():
        for block, regs in r["render"].items():
            for reg, cell in regs.items():
                lines.append(f"| {m} | {block} | {reg} | {_pm(cell.get('hf_ratio'))} | "
                             f"{_pm(cell.get('shift_stability'))} | {_pm(cell.get('relative_activation'))} |")
    lines += ["", "## Tests (two-sided: Welch t and exact permutation as if unpaired; paired over seeds: exact "
              "sign-flip permutation, Holm-adjusted across every secondary test; the primary endpoint's test stands "
              "alone)", ""]
    lines += [f"- {t['statement']}" for t in results["tests"]]
    return "\n".join(lines) + "\n"


def demo_spec(seed: int = 0) -> CompareSpec:
    """The demo-sized comparison: 2 seeds, 6 epochs, 96 test images, 2 units per block
    rendered for 32 steps, 1 bisection (labelled as such wherever it is shown)."""
    return CompareSpec(modes=("joint", "layerwise", "layerwise+joint"), seeds=2, seed=seed, epochs_total=6,
                       eps=(0.0, 0.05, 0.1, 0.2), n_examples=96, render_units=2, render_steps=32, bisect_steps=1,
                       label="demo-sized: 2 seeds, 6 epochs, 96 test images")


def run_demo_compare(out: str | Path, *, seed: int = 0, device: torch.device | str = "cpu", workers: int = 1,
                     progress: bool = False, spec: CompareSpec | None = None) -> dict[str, Any]:
    """Run :func:`demo_spec` and write its files into ``out``; return the results."""
    results = run_compare(spec or demo_spec(seed), device=device, workers=workers, progress=progress)
    write_compare(results, out)
    return results


# the surface every study module has (docs/studies.md)
Config = CompareSpec
PRESETS: Mapping[str, CompareSpec] = MappingProxyType({"default": CompareSpec(), "demo": demo_spec()})
run = run_compare
write = write_compare

__all__ = ["COMPARE_MODES", "FORMAT", "PRESETS", "Config", "CompareSpec", "demo_spec", "run", "write", "compare_groups", "format_table",
           "mode_budget", "run_compare", "run_demo_compare", "run_tests", "seed_spread", "stage_epochs",
           "train_one", "write_compare"]
