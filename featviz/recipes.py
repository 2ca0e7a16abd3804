"""Ready-made training recipes: a dataset name and a few choices in, a trained,
carded checkpoint out. ``featviz train`` and ``featviz demo`` both go through here."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch

from .checkpoint import Checkpoint, load_checkpoint, make_card, read_card, save_checkpoint
from .data import Dataset, load_dataset
from .devices import seeded
from .distributed import SINGLE, DistContext, barrier
from .errors import FeatvizError
from .nets import HierarchicalNet, QuadraticDenseConvNet, QuadraticDenseMLP
from .train import Adversary, TrainConfig, TrainingInterrupted, train_model

# Per-task defaults: what each dataset trains well with on a laptop CPU.
DEFAULTS = {
    "synthetic": {"width": 48, "depth": 3, "epochs": 90, "batch_size": 1024, "lr": 1e-2},
    "image": {"width": 16, "depth": 3, "epochs": 30, "batch_size": 64, "lr": 3e-3},
}


@dataclass
class TrainSpec:
    """Everything ``featviz train`` needs; ``None`` means the dataset's default."""

    dataset: str = "digits"
    mode: str = "joint"
    act: str = "quadratic"
    depth: int | None = None
    width: int | None = None
    epochs: int | None = None  # per stage
    stage_epochs: list[int] | None = None  # epochs of each stage (a whole-run budget split; overrides epochs)
    lr: float | None = None
    batch_size: int | None = None
    optimizer: str = "adam"
    seed: int = 0
    data_root: str | None = None
    download: bool = False
    image_size: int | None = None
    synthetic: dict[str, Any] = field(default_factory=dict)  # d, k, depth, alpha, n_train...
    adv: dict[str, Any] | None = None  # {"attack": "fgsm"|"pgd", "eps": ..., ...}
    name: str | None = None
    amp: str | None = None  # "bf16" autocast (GPU fast path)
    channels_last: bool = False
    compile: bool = False
    freeze: list[str] = field(default_factory=list)  # blocks that learn in no stage
    init_from: str | None = None  # a checkpoint folder whose weights the run starts from

    def defaults(self) -> dict[str, Any]:
        return DEFAULTS["synthetic" if self.dataset == "synthetic" else "image"]


def build_for(data: Dataset, spec: TrainSpec) -> HierarchicalNet:
    """The default learner for a dataset: a quadratic DenseNet (MLP for synthetic
    data with ``depth`` layers of ``width``; conv with widths W, 2W, 2W... for images)."""
    d = spec.defaults()
    depth = spec.depth or (data.info.get("depth") if data.task == "regression" else None) or d["depth"]
    width = spec.width or d["width"]
    if depth < 1 or width < 1:
        raise FeatvizError(f"--depth and --width must be >= 1, got {depth} and {width}")
    with seeded(spec.seed):
        if data.task == "regression":
            return QuadraticDenseMLP(data.input_shape[0], [width] * depth, act=spec.act)
        c, h, _ = data.input_shape
        norm = data.info["normalization"]
        return QuadraticDenseConvNet(c, data.num_classes, [width] + [2 * width] * (depth - 1), image_size=h,
                                     act=spec.act, input_mean=norm["mean"], input_std=norm["std"])


def inherit_weights(model: HierarchicalNet, parent: str | Path) -> dict[str, Any]:
    """Copy a parent checkpoint's weights (and BatchNorm statistics) into ``model``,
    bit for bit; the parent must have exactly ``model``'s architecture. Returns the
    card's ``training.init_from`` record: the parent's path, name, weights digest and
    training summary."""
    import hashlib

    from .checkpoint import WEIGHTS

    ckpt = load_checkpoint(parent)
    if dict(ckpt.card["arch"]) != dict(model.arch):
        diff = sorted(k for k in set(ckpt.card["arch"]) | set(model.arch)
                      if ckpt.card["arch"].get(k) != model.arch.get(k))
        raise FeatvizError(f"--init-from {parent}: its architecture differs from the model this run trains "
                           f"(in {', '.join(diff)})", "pass the parent's --dataset/--width/--depth/--act")
    model.load_state_dict(ckpt.model.state_dict(), strict=True)
    trained = ckpt.card.get("training", {})
    return {"path": str(parent), "name": ckpt.name,
            "sha256": hashlib.sha256((Path(parent) / WEIGHTS).read_bytes()).hexdigest(),
            "mode": trained.get("mode"), "adv": trained.get("adv"), "epochs": trained.get("epochs"),
            "seed": trained.get("seed"), "init_from": trained.get("init_from")}


def run_training(spec: TrainSpec, out: str | Path | None, *, device: torch.device | str = "cpu",
                 adversary: Adversary | None = None, progress: bool = True, command: str = "",
                 resume_from: str | Path | None = None, should_stop: Callable[[], bool] | None = None,
                 dist: DistContext | None = None, on_epoch: Callable | None = None) -> Checkpoint:
    """Load data, build, train, card and (if ``out``) save a model. Returns the checkpoint.

    ``resume_from`` continues an interrupted run from its checkpoint folder (weights and
    resume state; ``spec`` must be the one stored in its card, see :func:`spec_from_card`).
    When ``should_stop()`` turns true, the run stops at the next epoch boundary, writes a
    resumable checkpoint to ``out`` and raises :class:`~featviz.train.TrainingInterrupted`.
    Under torchrun only rank 0 writes. ``on_epoch(model, stage, record)`` is called after
    every epoch (see :func:`~featviz.train.train_model`).
    """
    from .resume import load_resume_state, resume_files

    dist = dist or SINGLE
    d = spec.defaults()
    start = time.perf_counter()
    data = load_dataset(spec.dataset, data_root=spec.data_root, download=spec.download,
                        image_size=spec.image_size, seed=spec.seed, **spec.synthetic)
    state = None
    parent = None
    if resume_from is None:
        model = build_for(data, spec)
        if spec.init_from:
            parent = inherit_weights(model, spec.init_from)
    else:
        state = load_resume_state(resume_from)
        model = load_checkpoint(resume_from).model
    config = TrainConfig(mode=spec.mode, epochs=spec.epochs or d["epochs"],
                         stage_epochs=tuple(spec.stage_epochs) if spec.stage_epochs else None, lr=spec.lr or d["lr"],
                         batch_size=spec.batch_size or d["batch_size"], optimizer=spec.optimizer, seed=spec.seed,
                         amp=spec.amp, channels_last=spec.channels_last, compile=spec.compile,
                         freeze=tuple(spec.freeze))
    training = {"mode": spec.mode, "adv": spec.adv, "epochs": config.epochs, "seed": spec.seed,
                "optimizer": config.optimizer, "lr": config.lr, "batch_size": config.batch_size,
                "schedule": config.schedule, "command": command, "spec": asdict(spec)}
    if parent is not None or resume_from is not None and spec.init_from:
        training["init_from"] = parent or read_card(resume_from)["training"].get("init_from")
    if adversary is None and spec.adv:
        from .attacks.training import training_adversary

        adversary = training_adversary(spec.adv, seed=spec.seed)
    try:
        result = train_model(model, data, config, device=device, adversary=adversary, progress=progress,
                             resume=state, should_stop=should_stop, dist=dist, on_epoch=on_epoch)
    except TrainingInterrupted as stop:
        model.cpu()
        partial = {"test_" + k[5:]: v for k, v in (stop.state.history[-1] if stop.state.history else {}).items()
                   if k.startswith("test_")}
        training.update(resumable=True, interrupted={"stage": stop.state.stage_index + 1, "epoch": stop.state.epoch},
                        seconds=round(stop.state.seconds, 2))
        card = make_card(model, dataset=data.info, training=training, metrics=partial, name=spec.name)
        if out is not None and dist.is_main:
            save_checkpoint(out, model, card, extra_files=resume_files(stop.state))
        raise
    model.cpu()
    training["seconds"] = round(time.perf_counter() - start + (state.seconds if state else 0.0), 2)
    card = make_card(model, dataset=data.info, training=training, metrics=result.metrics, name=spec.name)
    if out is not None and dist.is_main:
        save_checkpoint(out, model, card)
    barrier(dist)
    return Checkpoint(model=model, card=card, path=Path(out) if out else Path("."))


def spec_from_card(card: dict[str, Any]) -> TrainSpec:
    """The :class:`TrainSpec` a checkpoint was trained with (for ``--resume``)."""
    stored = card.get("training", {}).get("spec")
    if not isinstance(stored, dict):
        raise FeatvizError("the checkpoint's card has no training spec to resume from",
                           "only checkpoints written by `featviz train` can be resumed")
    known = {f.name for f in fields(TrainSpec)}
    return TrainSpec(**{k: v for k, v in stored.items() if k in known})
