"""Joint vs layerwise (vs layerwise+joint, vs adversarial) over seeds, at matched budgets.

One model of each training mode says little: a difference may belong to one
initialization. :func:`run_compare` trains (or reuses) ``seeds`` models per mode, all
with the **same total number of optimizer steps**, evaluates each one the same way
and reports mean ± std, per-seed values and a significance test per comparison::

    from featviz.studies.compare import CompareSpec, run_compare, write_compare
    results = run_compare(CompareSpec(modes=("joint", "layerwise"), seeds=5))
    write_compare(results, "runs/compare")        # results.json, robustness.png, render_metrics.png

Matched budgets: with ``epochs_total`` = T and a network of L blocks, ``joint`` (and
``adv``, adversarially trained joint) trains T epochs; ``layerwise`` trains T / L epochs
per stage (T must be a multiple of L); ``layerwise+joint`` trains ⌊T / (L+1)⌋ epochs per
layerwise stage and the rest in its joint stage. Every stage uses the same data, batch
size and learning rate, so every mode takes T × ⌈n_train / batch⌉ optimizer steps.

Seeds are paired: seed s initializes and shuffles the model of every mode the same way,
so "mode A beats mode B in every seed" compares models that differ only in training.

Per model: clean accuracy and robust accuracy at every ε under one attack
(``autoattack-fast`` when the installation has it, else PGD with 5 restarts on the
margin loss; the result says which), the median minimal ε, and render metrics of a
fixed subset of units per block (units 0..``render_units``-1) under ``none`` and
``standard``, beside the same metrics of the data (:func:`featviz.vis.metrics.data_baseline`).
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import SpecError
from ..stats import mean_std as _mean_std
from ..stats import median as _median

COMPARE_MODES = ("joint", "layerwise", "layerwise+joint", "adv")
DEFAULT_EPS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
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
            raise SpecError(f"--epochs-total must be >= 1, got {self.epochs_total}")
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
        for m in self.modes:  # an unsplittable budget is refused before anything runs
            stage_epochs(m, self.depth, self.epochs_total)

    @property
    def depth(self) -> int:
        from ..recipes import DEFAULTS

        return DEFAULTS["image"]["depth"]


# ---------------------------------------------------------------------- budgets
def stage_epochs(mode: str, depth: int, epochs_total: int) -> tuple[int, int | None]:
    """``(epochs per stage, joint_epochs)`` giving ``mode`` exactly ``epochs_total`` epochs
    in all (see the module docstring). Raises :class:`SpecError` when it cannot."""
    if mode in ("joint", "adv"):
        return epochs_total, None
    if mode == "layerwise":
        if epochs_total % depth:
            raise SpecError(f"--epochs-total {epochs_total} cannot be split evenly over {depth} layerwise stages",
                            f"use a multiple of {depth}, e.g. {depth * max(1, round(epochs_total / depth))}")
        return epochs_total // depth, None
    if mode == "layerwise+joint":
        per = epochs_total // (depth + 1)
        if per < 1:
            raise SpecError(f"--epochs-total {epochs_total} is too small for {depth} layerwise stages and a joint one",
                            f"use at least {depth + 1}")
        return per, epochs_total - depth * per
    raise SpecError(f"unknown mode {mode!r}", f"use some of {', '.join(COMPARE_MODES)}")


def mode_budget(mode: str, depth: int, epochs_total: int, n_train: int, batch_size: int) -> dict[str, Any]:
    """The stage plan of ``mode`` and its total optimizer steps."""
    from ..train import plan_stages

    epochs, joint_epochs = stage_epochs(mode, depth, epochs_total)
    train_mode = "joint" if mode == "adv" else mode
    stages = plan_stages(train_mode, depth, epochs, joint_epochs)
    per_epoch = math.ceil(n_train / batch_size)
    return {"stages": [{"name": s.name, "epochs": s.epochs} for s in stages],
            "epochs": sum(s.epochs for s in stages), "steps_per_epoch": per_epoch,
            "total_steps": sum(s.epochs for s in stages) * per_epoch}


# ---------------------------------------------------------------------- statistics
def mean_std(values: Sequence[float | None]) -> dict[str, Any]:
    """``{mean, std, values}`` with the sample standard deviation (n-1; 0 for one value).
    None values (undefined for that seed) are kept in ``values`` and left out of the rest."""
    mean, std = _mean_std(values)
    return {"mean": mean, "std": std, "values": [None if v is None else float(v) for v in values]}


def welch_test(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, float | None]:
    """Welch's two-sample t statistic (mean a − mean b) and its two-sided p-value.
    ``(None, None)`` when undefined (fewer than 2 values in a group, or no spread in either)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        return None, None
    va, vb = _var(a), _var(b)
    if va + vb == 0:
        return None, None
    res = stats.ttest_ind(a, b, equal_var=False)
    return float(res.statistic), float(res.pvalue)


def _var(x: Sequence[float]) -> float:
    m = sum(x) / len(x)
    return sum((v - m) ** 2 for v in x) / (len(x) - 1)


def permutation_test(a: Sequence[float], b: Sequence[float], max_exact: int = 200_000,
                     seed: int = 0) -> tuple[float, float]:
    """Two-sided permutation test of the difference of means: ``(mean a − mean b, p)``.

    Exact: every way of splitting the pooled values into groups of len(a) and len(b) is
    enumerated and p is the fraction whose |difference| is at least the observed one
    (so the smallest possible p with 5 + 5 values is 2/252 ≈ 0.008). Beyond
    ``max_exact`` splits, ``max_exact`` random splits are drawn from a generator seeded
    with ``seed`` instead (p then counts the observed split too)."""
    a, b = [float(v) for v in a], [float(v) for v in b]
    if not a or not b:
        raise SpecError("a permutation test needs values in both groups")
    pooled = a + b
    n, k = len(pooled), len(a)
    total = sum(pooled)
    observed = sum(a) / k - sum(b) / (n - k) if n > k else 0.0
    tol = 1e-9 * max(1.0, abs(observed))

    def diff(idx: Sequence[int]) -> float:
        s = sum(pooled[i] for i in idx)
        return s / k - (total - s) / (n - k)

    if math.comb(n, k) <= max_exact:
        splits = list(itertools.combinations(range(n), k))
        hits = sum(abs(diff(idx)) >= abs(observed) - tol for idx in splits)
        return observed, hits / len(splits)
    from ..devices import generator

    gen = generator(seed)
    hits = 1 + sum(abs(diff(torch.randperm(n, generator=gen)[:k].tolist())) >= abs(observed) - tol
                   for _ in range(max_exact))
    return observed, hits / (max_exact + 1)


def compare_groups(what: str, a_name: str, a: Sequence[float | None], b_name: str,
                   b: Sequence[float | None]) -> dict[str, Any]:
    """One ``tests`` entry: Welch t (``statistic``, ``p_value``), the exact permutation
    p-value, the mean difference and, seed by seed (paired), whether a < b and a > b held
    in every seed. Seeds where either value is undefined are left out."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    xa, xb = [p[0] for p in pairs], [p[1] for p in pairs]
    entry: dict[str, Any] = {"what": what, "a": a_name, "b": b_name, "n": len(pairs)}
    if not pairs:
        return entry | {"statistic": None, "p_value": None, "permutation_p_value": None, "difference": None}
    t, p = welch_test(xa, xb)
    d, perm = permutation_test(xa, xb)
    less = sum(x < y for x, y in pairs)
    greater = sum(x > y for x, y in pairs)
    return entry | {"statistic": t, "p_value": p, "test": "Welch t (two-sided)",
                    "permutation_p_value": perm, "permutation": "exact, difference of means, two-sided",
                    "difference": d, "mean_a": sum(xa) / len(xa), "mean_b": sum(xb) / len(xb),
                    "a_below_b_seeds": less, "a_above_b_seeds": greater,
                    "a_below_b_every_seed": less == len(pairs), "a_above_b_every_seed": greater == len(pairs)}


# ---------------------------------------------------------------------- attack
def resolve_attack(name: str | None) -> tuple[Any, dict[str, Any]]:
    """The attack to evaluate with and how to label it. ``None`` asks for
    ``autoattack-fast`` and falls back to PGD (20 steps, 5 restarts, margin loss) when this
    installation does not know it; the label says so."""
    from ..attacks import make_attack

    if name is not None:
        attack = make_attack(name)
        return attack, {"name": name, **_describe(attack), "fallback": False}
    try:
        attack = make_attack(DEFAULT_ATTACK)
        return attack, {"name": DEFAULT_ATTACK, **_describe(attack), "fallback": False}
    except SpecError:
        attack = make_attack("pgd", restarts=5, loss="margin")
        return attack, {"name": "pgd", **_describe(attack), "fallback": True,
                        "note": f"{DEFAULT_ATTACK} is not available in this version: PGD-20, 5 restarts, margin loss"}


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
    epochs, joint_epochs = stage_epochs(mode, depth, spec.epochs_total)
    adv = {"attack": "pgd", "eps": spec.adv_eps, "steps": spec.adv_steps} if mode == "adv" else None
    return {"mode": mode, "epochs": epochs, "joint_epochs": joint_epochs, "seed": seed, "adv": adv,
            "batch_size": batch_size, "lr": lr, "width": spec.width, "dataset": spec.dataset,
            "image_size": spec.image_size}


def _reuse(folder: Path | None, recipe: dict[str, Any]):
    from ..checkpoint import load_checkpoint
    from ..errors import CheckpointError

    if folder is None or not (folder / "card.json").is_file():
        return None
    try:
        ckpt = load_checkpoint(folder)
    except CheckpointError:
        return None
    return ckpt if ckpt.card.get("training", {}).get("compare") == recipe else None


def train_one(spec: CompareSpec, mode: str, seed: int, data, *, device: torch.device | str = "cpu",
              progress: bool = False):
    """Train one model of ``mode`` with ``seed`` at the matched budget; returns a
    :class:`~featviz.checkpoint.Checkpoint` (not saved) whose card records the recipe."""
    from ..checkpoint import Checkpoint, make_card
    from ..recipes import TrainSpec, build_for
    from ..train import TrainConfig, train_model

    tspec = TrainSpec(dataset=spec.dataset, mode="joint" if mode == "adv" else mode, width=spec.width, seed=seed,
                      image_size=spec.image_size)
    d = tspec.defaults()
    model = build_for(data, tspec)
    epochs, joint_epochs = stage_epochs(mode, model.depth, spec.epochs_total)
    config = TrainConfig(mode=tspec.mode, epochs=epochs, joint_epochs=joint_epochs, lr=d["lr"],
                         batch_size=d["batch_size"], seed=seed)
    recipe = _recipe(spec, mode, seed, model.depth, config.batch_size, config.lr)
    adversary = None
    if mode == "adv":
        from ..attacks.training import training_adversary

        adversary = training_adversary(recipe["adv"], seed=seed)
    start = time.perf_counter()
    result = train_model(model, data, config, device=device, adversary=adversary, progress=progress)
    model.cpu()
    steps = sum(s["epochs"] for s in result.stages) * math.ceil(len(data.x_train) / config.batch_size)
    training = {"mode": tspec.mode, "adv": recipe["adv"], "epochs": epochs, "joint_epochs": joint_epochs,
                "seed": seed, "lr": config.lr, "batch_size": config.batch_size, "optimizer": config.optimizer,
                "schedule": config.schedule, "seconds": round(time.perf_counter() - start, 2), "steps": steps,
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

    def finished(job: tuple[str, int], record: dict[str, Any]) -> None:
        done[job] = record
        bar.update(1)
        if progress:
            tqdm.write(f"compare: {job[0]} seed {job[1]}{' (reused)' if record['reused'] else ''}: clean "
                       f"{record['clean_accuracy']:.4f}, robust "
                       + " ".join(f"{e:g}:{a:.3f}" for e, a in record["robust"].items()), file=sys.stderr)

    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            finished(job, compare_job(spec, *job, data=data, **args))
    else:
        import concurrent.futures

        from .common import process_pool

        with process_pool(workers, initializer=_init_worker) as pool:
            futures = {pool.submit(compare_job, spec, *job, **args): job for job in jobs}
            for future in concurrent.futures.as_completed(futures):
                finished(futures[future], future.result())
    bar.close()
    per_model = {m: [done[(m, s)] for s in seeds] for m in spec.modes}
    modes = {m: _summarize(per_model[m], budgets[m]) for m in spec.modes}
    return {"format": FORMAT, "label": spec.label, "dataset": spec.dataset, "spec": _spec_dict(spec),
            "attack": attack_info, "budget": {"total_steps": {m: b["total_steps"] for m, b in budgets.items()},
                                              "epochs_total": spec.epochs_total, "per_mode": budgets},
            "eps": sorted(float(e) for e in spec.eps), "n_test": int(n_test),
            "render_setup": {"units_per_block": spec.render_units, "units": f"0..{spec.render_units - 1} of every block",
                             "steps": spec.render_steps, "regs": list(spec.regs),
                             "statistic": "median over the rendered units, then mean ± std (n-1) over seeds"},
            "baseline": data_baseline(data.x_test), "modes": modes, "tests": run_tests(modes),
            "reused": [f"{m}-seed{s}" for (m, s), r in done.items() if r["reused"]],
            "workers": workers, "seconds": round(time.perf_counter() - start, 2)}


def _init_worker() -> None:
    torch.set_num_threads(1)  # a worker process of this comparison: its thread count is ours to set


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
        ckpt = train_one(spec, mode, seed, data, device=device, progress=False)
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
                render.setdefault(block, {}).setdefault(reg, {})[metric] = mean_std(vals)
    return {"seeds": [m["seed"] for m in models], "budget": budget,
            "steps": [m["steps"] for m in models],
            "clean_accuracy": mean_std([m["clean_accuracy"] for m in models]),
            "robust": [{"eps": e, **mean_std([m["robust"][e] for m in models])} for e in eps],
            "min_eps": mean_std([m["min_eps"]["median"] for m in models]),
            "min_eps_broken": mean_std([m["min_eps"]["broken"] for m in models]),
            "render": render,
            "train_seconds": [m["train_seconds"] for m in models]}


def run_tests(modes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A test per pair of modes (in the order given) and per quantity: clean accuracy,
    robust accuracy at each ε > 0, median minimal ε, and the median hf_ratio of
    unregularized renders per block."""
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
    for t in tests:
        t["statement"] = statement(t)
    return tests


def statement(t: dict[str, Any]) -> str:
    """One sentence for a test entry: direction, means, seeds, p-values."""
    if t.get("difference") is None:
        return f"{t['what']}: {t['a']} vs {t['b']}: no values to compare"
    rel = "<" if t["difference"] < 0 else (">" if t["difference"] > 0 else "=")
    seeds = t["a_below_b_seeds"] if rel == "<" else t["a_above_b_seeds"]
    p = "undefined (no spread)" if t["p_value"] is None else f"{t['p_value']:.3g}"
    return (f"{t['what']}: {t['a']} {t['mean_a']:.4g} {rel} {t['b']} {t['mean_b']:.4g} "
            f"(in {seeds}/{t['n']} seeds; Welch p={p}, exact permutation p={t['permutation_p_value']:.3g})")


# ---------------------------------------------------------------------- output
def write_compare(results: dict[str, Any], out: str | Path) -> dict[str, str]:
    """Write ``results.json``, ``table.md``, ``robustness.png`` and ``render_metrics.png``
    into ``out`` (atomically, file by file); return the file names."""
    from ..fileio import atomic_write_json, atomic_write_text
    from ..report.compare_pages import compare_render_plot, compare_robustness_plot

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"results": "results.json", "table": "table.md", "robustness": "robustness.png",
             "render_metrics": "render_metrics.png"}
    title = f"{results['dataset']}, {len(next(iter(results['modes'].values()))['seeds'])} seeds per mode" + (
        f" ({results['label']})" if results.get("label") else "")
    compare_robustness_plot(results["modes"], out / files["robustness"],
                            title=f"{title}; attack {attack_label(results['attack'])}")
    compare_render_plot(results["modes"], results["baseline"], out / files["render_metrics"], title=title)
    atomic_write_text(out / files["table"], format_table(results))
    atomic_write_json(out / files["results"], results | {"files": files})
    return files


def attack_label(info: dict[str, Any]) -> str:
    text = info.get("name", "?")
    if info.get("fallback"):
        text += f" ({info.get('steps')} steps, {info.get('restarts')} restarts, {info.get('loss')} loss; fallback)"
    return text


def _pm(cell: dict[str, Any] | None, pct: bool = False, digits: int = 3) -> str:
    if not cell or cell.get("mean") is None:
        return "–"
    k = 100 if pct else 1
    return (f"{k * cell['mean']:.1f} ± {k * cell['std']:.1f}" if pct
            else f"{cell['mean']:.{digits}g} ± {cell['std']:.2g}")


def format_table(results: dict[str, Any]) -> str:
    """A Markdown summary: accuracy table, render table, tests."""
    modes = results["modes"]
    eps = [e for e in REPORT_EPS if e in results["eps"]] or [e for e in results["eps"] if e > 0][:2]
    lines = [f"# {results['dataset']}: {' vs '.join(modes)}" + (f" ({results['label']})" if results.get("label") else ""),
             "", f"Attack: {attack_label(results['attack'])}. Budget: {results['budget']['epochs_total']} epochs = "
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
    lines += ["", "## Tests (Welch t and exact permutation over seeds, two-sided)", ""]
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


__all__ = ["COMPARE_MODES", "CompareSpec", "demo_spec", "compare_groups", "format_table",
           "mean_std", "mode_budget", "permutation_test", "run_compare", "run_demo_compare", "run_tests",
           "stage_epochs", "train_one", "welch_test", "write_compare"]
