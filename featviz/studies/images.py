"""Backward feature correction on real images: a conv teacher, three learners, and
the frozen-lower-layer control.

The study, in order:

1. A :class:`~featviz.nets.conv_teacher.ConvTeacher` (quadratic conv DenseNet with an
   information gap) labels the images of a dataset (digits by default, plus shifted
   copies of the training images, which the teacher labels like any other image) with a
   regression target. ``joint``, ``layerwise`` and ``layerwise+joint``
   :class:`~featviz.nets.QuadraticDenseConvNet` learners are trained on it with the same
   total number of optimizer steps, and every learner block is aligned to the teacher's
   block on held-out images (:func:`alignment`).
2. The frozen-lower-layer control, on classification and on the teacher task: from the
   same layerwise-trained model, a joint stage with block 1 learning (``unfrozen``) or
   frozen (``frozen``), next to ``joint`` at the same total budget; and how far each
   block moved in the joint stage (CKA between the model before and after it).

Features for alignment are *per position*: a block's (N, C, H, W) map becomes an
(N·H·W, C) matrix, one row per image and position (teacher and learner blocks share
resolutions). Linear maps are fitted on the first half of the held-out images and
scored on the second half.

Three lines::

    from featviz.studies.images import image_study_preset, run_image_study, write_image_study
    results = run_image_study(image_study_preset("quick"))
    write_image_study(results, "runs/image-study")
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..data import Dataset, load_dataset
from ..devices import generator, seeded
from ..errors import FeatvizError
from ..fileio import atomic_directory, atomic_write_json, read_json, save_png
from ..hierarchy.metrics import feature_r2, linear_cka
from ..modes import restored_modes
from ..nets import QuadraticDenseConvNet
from ..nets.conv_teacher import ConvTeacher
from ..stats import mean_std
from ..train import evaluate, split_budget, stage_count
from .common import map_jobs, primary_endpoint, ratio, spread, train_stages

FORMAT = "featviz-image-study/1"
LARGE_DATASET_CAP = (6000, 2000)  # train / test images used from mnist, fashion-mnist, cifar10 by default


# ---------------------------------------------------------------- alignment metrics
def r2_both_ways(learned: torch.Tensor, teacher: torch.Tensor) -> tuple[float, float]:
    """Held-out R² of the best linear map learner -> teacher and teacher -> learner.

    ``learned`` (N, P) and ``teacher`` (N, Q), rows in example order: the first half fits,
    the second half scores. ``r2_to_teacher`` high: the learner's block contains the
    teacher's features; ``r2_from_teacher`` high: it contains little else.
    """
    half = len(learned) // 2
    to_teacher = feature_r2(learned[:half], teacher[:half], learned[half:], teacher[half:])
    from_teacher = feature_r2(teacher[:half], learned[:half], teacher[half:], learned[half:])
    return to_teacher, from_teacher


def positions(h: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N·H·W, C): one row per image and position, grouped by image."""
    return h.permute(0, 2, 3, 1).reshape(-1, h.shape[1]) if h.dim() == 4 else h


@torch.no_grad()
def block_features(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> list[torch.Tensor]:
    """Every block's output on images ``x`` in eval mode (modes restored), as (N·H·W, C) float32."""
    with restored_modes(model):
        model.eval()
        chunks = [model.features(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return [positions(torch.cat([c[l] for c in chunks])).float() for l in range(len(chunks[0]))]


def alignment(learner_feats: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]) -> dict[str, list[float]]:
    """Per block: ``r2_to_teacher``, ``r2_from_teacher`` and ``cka`` (lists, block 1 first)."""
    out: dict[str, list[float]] = {"r2_to_teacher": [], "r2_from_teacher": [], "cka": []}
    for a, t in zip(learner_feats, teacher_feats):
        to_t, from_t = r2_both_ways(a, t)
        out["r2_to_teacher"].append(to_t)
        out["r2_from_teacher"].append(from_t)
        out["cka"].append(linear_cka(a, t))
    return out


# ---------------------------------------------------------------- configuration
@dataclass
class ImageStudyConfig:
    """Settings of the image study.

    Budgets: a layerwise stage gets ``stage_epochs`` (S) in ``layerwise+joint`` and the
    joint stage S more, 4·S in all for a 3-block net; ``joint`` gets 4·S epochs and the
    ``layerwise`` learner splits 4·S over its 3 stages (:func:`featviz.train.split_budget`),
    so all three take the same number of optimizer steps. ``class_stage_epochs`` is the
    same for the classification control.
    """

    dataset: str = "digits"
    data_root: str | None = None
    image_size: int = 16
    max_train: int | None = None  # cap on the base training images (default: all digits, 6000 of the others)
    max_test: int | None = None
    shifted_copies: int = 2  # extra training images: randomly shifted copies, labeled by the teacher
    max_shift: int = 2
    k: int = 4  # teacher channels per block
    alpha: float = 0.45
    teacher_seed: int = 0
    widths: tuple[int, ...] = (4, 16, 16)  # learner channels per block
    stage_epochs: int = 6
    class_stage_epochs: int = 6
    lr: float = 3e-3
    batch_size: int = 256  # teacher task
    class_batch_size: int = 64  # classification control (digits has 1,437 training images)
    seeds: tuple[int, ...] = (0, 1, 2)
    render_steps: int = 256  # feature-visualization steps for the unit pictures (0: no pictures)
    freeze: tuple[str, ...] = ("block1",)  # what the control freezes in the joint stage
    conv_heads: bool = True  # also train layerwise with conv heads (ConvHeadReadout) beside the linear ones

    def validate(self) -> None:
        depth = len(self.widths)
        if len(self.seeds) < 1:
            raise FeatvizError("--seeds must be >= 1")
        if depth < 2:
            raise FeatvizError("the image study needs a learner of at least 2 blocks")
        for name, epochs in (("stage_epochs", self.stage_epochs), ("class_stage_epochs", self.class_stage_epochs)):
            if epochs < 1:
                raise FeatvizError(f"{name} must be >= 1, got {epochs}")
        if not 0 < self.alpha < 1:
            raise FeatvizError(f"--alpha must be in (0, 1), got {self.alpha}")
        if self.k < 1 or min(self.widths) < 1 or self.shifted_copies < 0 or self.max_shift < 0:
            raise FeatvizError("k, widths, shifted copies and max shift must be positive")
        names = [f"block{l}" for l in range(1, depth + 1)]
        for name in self.freeze:
            if name not in names:
                raise FeatvizError(f"--freeze {name}: the learner has no block of that name",
                                   f"use one of {', '.join(names)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_PRESET_CHANGES: dict[str, dict[str, Any]] = {
    "default": {},
    # the demo's stage: one seed, the digits without shifted copies, short schedules and renders
    "demo": {"seeds": (0,), "stage_epochs": 3, "class_stage_epochs": 3, "shifted_copies": 0, "render_steps": 64,
             "conv_heads": False},
    # seconds, for tests
    "quick": {"seeds": (0, 1), "max_train": 192, "max_test": 64, "shifted_copies": 0, "stage_epochs": 3,
              "class_stage_epochs": 3, "widths": (4, 8, 8), "render_steps": 4, "batch_size": 64},
}


PRESETS: Mapping[str, ImageStudyConfig] = MappingProxyType(
    {name: ImageStudyConfig(**changes) for name, changes in _PRESET_CHANGES.items()})


def image_study_preset(name: str = "default", **overrides: Any) -> ImageStudyConfig:
    """A named configuration with ``overrides`` (``None`` values are ignored)."""
    if name not in PRESETS:
        raise FeatvizError(f"unknown preset {name!r}", f"use one of {', '.join(PRESETS)}")
    config = replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
    config.validate()
    return config


# ---------------------------------------------------------------- data
def shifted_copies(x: torch.Tensor, copies: int, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """``copies`` randomly translated versions of images ``x`` (N, C, H, W), zero-filled at
    the border (the digits' background), shifts uniform in [-max_shift, max_shift]² -> (copies·N, C, H, W)."""
    if copies == 0 or len(x) == 0:
        return x[:0]
    n, _, h, w = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p)).repeat(copies, 1, 1, 1)
    dy = torch.randint(0, 2 * p + 1, (copies * n,), generator=gen)
    dx = torch.randint(0, 2 * p + 1, (copies * n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]  # (M, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]  # (M, 1, 1, W)
    index = torch.arange(copies * n)[:, None, None, None]
    chans = torch.arange(x.shape[1])[None, :, None, None]
    return padded[index, chans, rows, cols]


@dataclass
class ImageTasks:
    """The classification data, the teacher and its regression data on the same images."""

    classification: Dataset
    regression: Dataset
    teacher: ConvTeacher


def make_tasks(config: ImageStudyConfig) -> ImageTasks:
    """Load the images, build and calibrate the teacher on the training images (with
    their shifted copies) and label train and test images with it."""
    data = load_dataset(config.dataset, data_root=config.data_root, image_size=config.image_size)
    # the larger datasets default to a digits-like size: the study trains 13 models per seed
    small = config.dataset == "digits"
    max_train = config.max_train or (None if small else LARGE_DATASET_CAP[0])
    max_test = config.max_test or (None if small else LARGE_DATASET_CAP[1])
    if max_train:
        data.x_train, data.y_train = data.x_train[:max_train], data.y_train[:max_train]
    if max_test:
        data.x_test, data.y_test = data.x_test[:max_test], data.y_test[:max_test]
    data.info = dict(data.info, n_train=len(data.x_train), n_test=len(data.x_test))
    norm = data.info["normalization"]
    c, s = data.x_train.shape[1], data.x_train.shape[-1]
    teacher = ConvTeacher(c, s, k=config.k, depth=len(config.widths), alpha=config.alpha,
                          input_mean=norm["mean"], input_std=norm["std"], seed=config.teacher_seed)
    x_train = torch.cat([data.x_train, shifted_copies(data.x_train, config.shifted_copies, config.max_shift,
                                                      generator(config.teacher_seed + 1))])
    teacher.calibrate(x_train)
    y_train, y_test = teacher.label(x_train), teacher.label(data.x_test)
    for y in (y_train, y_test):
        if not torch.isfinite(y).all():
            raise FeatvizError("the teacher produced NaN/Inf targets", "lower --alpha or check the images")
    info = {"name": f"{data.name}-teacher", "task": "regression", "images": data.name, "n_train": len(x_train),
            "n_test": len(data.x_test), "shifted_copies": config.shifted_copies, "normalization": norm}
    regression = Dataset(info["name"], "regression", x_train, y_train, x_train[:0], y_train[:0], data.x_test, y_test,
                         info=info, teacher=teacher)
    return ImageTasks(data, regression, teacher)


# ---------------------------------------------------------------- training
def make_learner(data: Dataset, widths: Sequence[int], seed: int, outputs: int,
                 head: str = "linear") -> QuadraticDenseConvNet:
    norm = data.info["normalization"]
    c, s = data.x_train.shape[1], data.x_train.shape[-1]
    with seeded(seed):
        return QuadraticDenseConvNet(c, outputs, list(widths), image_size=s, input_mean=norm["mean"],
                                     input_std=norm["std"], head=head)


def budgets(stage_epochs: int, depth: int) -> dict[str, list[int]]:
    """Epochs per stage of each schedule, all with the same total (``(depth + 1)·stage_epochs``),
    split by :func:`featviz.train.split_budget`."""
    total = (depth + 1) * stage_epochs
    return {mode: list(split_budget(total, stage_count(mode, depth))) for mode in ("joint", "layerwise", "layerwise+joint")}


def total_steps(epochs: Sequence[int], n_train: int, batch_size: int) -> int:
    return sum(epochs) * math.ceil(n_train / batch_size)


@dataclass
class ControlRun:
    """One seed of the frozen-lower-layer control on one task."""

    before: nn.Module  # after the layerwise stages
    models: dict[str, nn.Module] = field(default_factory=dict)  # joint, layerwise, unfrozen, frozen
    metrics: dict[str, float] = field(default_factory=dict)


def _batch_size(data: Dataset, config: ImageStudyConfig) -> int:
    return config.batch_size if data.task == "regression" else config.class_batch_size


def _train(model: nn.Module, data: Dataset, mode: str, epochs: int | Sequence[int], config: ImageStudyConfig,
           seed: int, device, freeze: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train ``model`` for ``epochs`` per stage (one number for every stage, or one per stage)."""
    return train_stages(model, data, mode, epochs, seed=seed, device=device, lr=config.lr,
                        batch_size=_batch_size(data, config), freeze=freeze).metrics


def _metric(model: nn.Module, data: Dataset) -> float:
    test = evaluate(model, data.x_test, data.y_test, data.task)
    return test["rel_mse"] if data.task == "regression" else test["accuracy"]


def run_control(data: Dataset, config: ImageStudyConfig, stage_epochs: int, seed: int, device="cpu",
                with_layerwise: bool = False) -> ControlRun:
    """Train joint, layerwise (optional) and layerwise then a joint stage with the
    ``config.freeze`` blocks learning (``unfrozen``) or frozen (``frozen``), all at the
    same total budget; both joint stages continue the same layerwise model."""
    depth = len(config.widths)
    plan = budgets(stage_epochs, depth)
    outputs = 1 if data.task == "regression" else data.num_classes
    run = ControlRun(before=make_learner(data, config.widths, seed, outputs))
    _train(run.before, data, "layerwise", stage_epochs, config, seed, device)
    run.before.cpu()
    run.metrics["before"] = _metric(run.before, data)
    for name, freeze in (("unfrozen", ()), ("frozen", tuple(config.freeze))):
        model = copy.deepcopy(run.before)
        _train(model, data, "joint", stage_epochs, config, seed + 1000, device, freeze)
        run.models[name] = model.cpu()
    joint = make_learner(data, config.widths, seed, outputs)
    _train(joint, data, "joint", plan["joint"][0], config, seed, device)
    run.models["joint"] = joint.cpu()
    if with_layerwise:
        layerwise = make_learner(data, config.widths, seed, outputs)
        _train(layerwise, data, "layerwise", plan["layerwise"], config, seed, device)
        run.models["layerwise"] = layerwise.cpu()
    if config.conv_heads:  # the layerwise stages again, each block read out through a conv head
        conv = make_learner(data, config.widths, seed, outputs, head="conv")
        _train(conv, data, "layerwise", stage_epochs, config, seed, device)
        run.metrics["before_conv_heads"] = _metric(conv.cpu(), data)
    run.metrics.update({name: _metric(m, data) for name, m in run.models.items()})
    return run


def _blockwise(runs: list[list[float]]) -> tuple[list[float], list[float]]:
    """Mean and std over seeds of per-block lists."""
    stats = [mean_std(c) for c in zip(*runs)]
    return [s[0] for s in stats], [s[1] for s in stats]


def _movement(before: nn.Module, after: nn.Module, x: torch.Tensor) -> list[float]:
    """Per-block CKA between a model before and after its joint stage (1 = the block did not move)."""
    return [linear_cka(a, b) for a, b in zip(block_features(before, x), block_features(after, x))]


def _control_summary(runs: list[ControlRun], data: Dataset, config: ImageStudyConfig, stage_epochs: int) -> dict:
    metric = "rel_test_mse" if data.task == "regression" else "test_accuracy"
    n = len(data.x_train)
    plan = budgets(stage_epochs, len(config.widths))
    out: dict[str, Any] = {"dataset": data.name, "metric": metric, "freeze": list(config.freeze),
                           "stage_epochs": stage_epochs}
    for name in ("before", "unfrozen", "frozen", "joint"):
        out[name] = spread([r.metrics[name] for r in runs])
    out["difference"] = spread([r.metrics["unfrozen"] - r.metrics["frozen"] for r in runs])
    out["difference_definition"] = f"unfrozen - frozen {metric}"
    batch = _batch_size(data, config)
    out["total_steps"] = {"joint": total_steps(plan["joint"], n, batch),
                          "unfrozen": total_steps(plan["layerwise+joint"], n, batch),
                          "frozen": total_steps(plan["layerwise+joint"], n, batch)}
    for name in ("unfrozen", "frozen"):
        mean, std = _blockwise([_movement(r.before, r.models[name], data.x_test) for r in runs])
        out[f"cka_before_after_{name}"] = {"mean": mean, "std": std}
    if all("before_conv_heads" in r.metrics for r in runs):
        out["layerwise_heads"] = {"linear": out["before"],
                                  "conv": spread([r.metrics["before_conv_heads"] for r in runs]),
                                  "note": f"layerwise, {stage_epochs} epochs per stage, {metric}"}
    return out


# ---------------------------------------------------------------- the study
def _seed_runs(config: ImageStudyConfig, seed: int, device="cpu",
               tasks: ImageTasks | None = None) -> tuple[ControlRun, ControlRun]:
    """Both parts of the study for one seed: (teacher-task run, classification run)."""
    if tasks is None:  # in a worker process: one thread each, and its own copy of the data
        torch.set_num_threads(1)
        tasks = make_tasks(config)
    return (run_control(tasks.regression, config, config.stage_epochs, seed, device, with_layerwise=True),
            run_control(tasks.classification, config, config.class_stage_epochs, seed, device))


def run_image_study(config: ImageStudyConfig, *, device="cpu", progress: bool = True, workers: int = 1,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run both parts of the study for every seed and return the ``results.json`` dict.

    Sections: ``config``, ``teacher`` (``summary``, ``alignment.<learner>``, ``ratio``,
    ``correction``), ``frozen_vs_unfrozen`` (``classification``, ``teacher``), ``units``
    (teacher units matched to learner units, for the pictures) and ``seconds``. More
    sections can be added to the dict before :func:`write_image_study`. ``workers`` > 1
    runs the seeds in that many processes (same numbers).
    """
    config.validate()
    start = time.perf_counter()
    tasks = make_tasks(config)
    reg, cls, teacher = tasks.regression, tasks.classification, tasks.teacher
    teacher_feats = block_features(teacher, reg.x_test)
    depth = len(config.widths)
    teacher_runs: list[ControlRun] = []
    class_runs: list[ControlRun] = []
    bar = tqdm(total=len(config.seeds), desc="image study", unit="seed", disable=not progress, leave=False)
    pairs = map_jobs(_seed_runs, [(config, seed, "cpu") for seed in config.seeds], workers=workers,
                     local=lambda config, seed, _: _seed_runs(config, seed, device, tasks),
                     done=lambda *_: bar.update())
    for seed, (teacher_run, class_run) in zip(config.seeds, pairs):
        teacher_runs.append(teacher_run)
        class_runs.append(class_run)
        if log:
            m = teacher_runs[-1].metrics
            log(f"seed {seed}: teacher rel. test MSE joint {m['joint']:.4g}, layerwise {m['layerwise']:.4g}, "
                f"layerwise+joint {m['unfrozen']:.4g}; "
                f"digits accuracy unfrozen {class_runs[-1].metrics['unfrozen']:.4f}, "
                f"frozen {class_runs[-1].metrics['frozen']:.4f}")

    learner_of = {"joint": "joint", "layerwise": "layerwise", "layerwise+joint": "unfrozen",
                  "layerwise (before the joint stage)": "before",
                  f"layerwise+joint ({'+'.join(config.freeze)} frozen)": "frozen"}
    plan = budgets(config.stage_epochs, depth)
    summary, aligned = {}, {}
    for learner, key in learner_of.items():
        per_seed = [alignment(block_features(r.before if key == "before" else r.models[key], reg.x_test),
                              teacher_feats) for r in teacher_runs]
        entry: dict[str, Any] = {}
        for metric in ("r2_to_teacher", "r2_from_teacher", "cka"):
            mean, std = _blockwise([a[metric] for a in per_seed])
            entry[metric], entry[f"{metric}_std"] = mean, std
        entry["per_seed"] = per_seed
        aligned[learner] = entry
        values = [r.metrics[key] for r in teacher_runs]
        epochs = plan["layerwise+joint"][:depth] if key == "before" else plan.get(learner, plan["layerwise+joint"])
        summary[learner] = {"rel_test_mse": spread(values)["mean"], "rel_test_mse_std": spread(values)["std"],
                            "rel_test_mse_per_seed": values, "epochs": epochs,
                            "total_steps": total_steps(epochs, len(reg.x_train), config.batch_size)}
    layerwise_over_joint = ratio([r.metrics["layerwise"] for r in teacher_runs], [r.metrics["joint"] for r in teacher_runs])
    before, after = aligned["layerwise (before the joint stage)"], aligned["layerwise+joint"]
    correction = {}
    for metric in ("r2_to_teacher", "cka"):
        gains = [[a - b for a, b in zip(pa[metric], pb[metric])]
                 for pa, pb in zip(after["per_seed"], before["per_seed"])]
        correction[metric] = {f"block{l + 1}": spread([g[l] for g in gains]) for l in range(depth)}
    shares = teacher.contributions(reg.x_test).var(0)
    results: dict[str, Any] = {
        "format": FORMAT,
        "config": config.to_dict(),
        "primary": primary_endpoint("layerwise/joint relative test MSE on the teacher task (ratio of means, paired)",
                                    layerwise_over_joint),
        "teacher": {
            "config": {k: v for k, v in teacher.config.items() if k not in ("input_mean", "input_std")},
            "variance_share": [float(v) for v in shares / shares.sum()],
            "data": reg.info | {"normalization": None},
            "summary": summary,
            "alignment": aligned,
            "ratio": {"layerwise/joint": layerwise_over_joint},
            "correction": correction,
            "features": "per position: (N·H·W, C) rows on held-out images, "
                        "fit on the first half, scored on the second",
        },
        "frozen_vs_unfrozen": {
            "classification": _control_summary(class_runs, cls, config, config.class_stage_epochs),
            "teacher": _control_summary(teacher_runs, reg, config, config.stage_epochs),
        },
    }
    results["units"] = match_teacher_units(teacher, {n: teacher_runs[0].models[k] for n, k in
                                                     (("layerwise", "layerwise"), ("joint", "joint"))}, reg.x_test)
    # kept (not serialized) so the writer can render the unit pictures of the first seed
    results["_models"] = {"teacher": teacher, "layerwise": teacher_runs[0].models["layerwise"],
                          "joint": teacher_runs[0].models["joint"]}
    results["seconds"] = round(time.perf_counter() - start, 2)
    return results


def match_teacher_units(teacher: ConvTeacher, learners: dict[str, nn.Module], x: torch.Tensor) -> list[dict]:
    """For every teacher unit, the one-to-one matched unit of each learner's same block
    (Hungarian matching on the per-position correlation over images ``x``)."""
    from ..vis.matching import match_units

    tfeats = block_features(teacher, x)
    lfeats = {name: block_features(m, x) for name, m in learners.items()}
    units = []
    for l, t in enumerate(tfeats, start=1):
        pairs = {name: match_units(t, feats[l - 1]) for name, feats in lfeats.items()}
        for u in range(t.shape[1]):
            units.append({"layer": f"block{l}", "unit": u,
                          "matches": {name: {"unit": p[u][0], "corr": p[u][1]} for name, p in pairs.items()}})
    return units


# ---------------------------------------------------------------- files
def render_units(results: dict[str, Any], out: Path, steps: int, seed: int = 0) -> None:
    """Render every teacher unit and the matched learner units (``standard`` recipe) into
    ``out/units/`` and record each file in ``results["units"]``."""
    from ..vis import render, to_pil

    models = results["_models"]
    layers = sorted({u["layer"] for u in results["units"]})
    for name, model in models.items():
        for layer in layers:
            res = render(model, f"{layer}:*", regs="standard", steps=steps, seed=seed)
            for u in results["units"]:
                if u["layer"] != layer:
                    continue
                unit = u["unit"] if name == "teacher" else u["matches"][name]["unit"]
                if unit is None:
                    continue
                rel = f"units/{name}-{layer}-{unit:02d}.png"
                save_png(out / rel, to_pil(res.images[unit], upscale=4))
                u.setdefault("files", {})[name] = rel


def write_image_study(results: dict[str, Any], out: str | Path) -> list[str]:
    """Write ``results.json``, the figures and the unit pictures into folder ``out``
    (built aside and swapped in: never half-written). Returns the file names."""
    from ..hierarchy.image_plots import write_image_plots

    steps = int(results["config"].get("render_steps", 0))
    with atomic_directory(out) as tmp:
        if steps > 0 and "_models" in results:
            render_units(results, tmp, steps)
        files = sorted({f for u in results.get("units", []) for f in u.get("files", {}).values()})
        files += write_image_plots(results, tmp)
        results["files"] = ["results.json"] + files
        atomic_write_json(tmp / "results.json", {k: v for k, v in results.items() if not k.startswith("_")})
    return results["files"]


def run_demo_image_study(out: str | Path, *, device="cpu", progress: bool = True, seed: int = 0) -> dict[str, Any]:
    """The demo-sized study (preset ``demo``: one seed, short schedules) written to ``out``."""
    config = image_study_preset("demo", seeds=(seed,))
    results = run_image_study(config, device=device, progress=progress)
    write_image_study(results, out)
    return results


def attach_purification(results: dict[str, Any], purify_dir: str | Path) -> dict[str, Any]:
    """Put the ``purification`` section of a ``featviz purify`` folder into the image study's
    ``results`` (the two studies share the digits and the conv net family; see docs/formats.md),
    with ``purification_source`` naming where it came from. Returns ``results``."""
    folder = Path(purify_dir)
    data = read_json(folder / "results.json", "results.json of featviz purify")
    if not isinstance(data.get("purification"), dict):
        raise FeatvizError(f"{folder / 'results.json'} has no purification section", "pass a featviz purify folder")
    results["purification"] = data["purification"]
    results["purification_source"] = {"folder": folder.name, "config": data.get("config"),
                                      "seeds": [s.get("seed") for s in data.get("per_seed", [])]}
    return results


# the surface every study module has (docs/studies.md)
Config = ImageStudyConfig
run = run_image_study
write = write_image_study
