"""One training loop; joint, layerwise and layerwise+joint are stage plans for it.

A *stage* says which blocks learn and how deep the forward pass goes:

- ``joint``: one stage, all blocks and readouts, full depth.
- ``layerwise``: stage ℓ = 1..L uses blocks 1..ℓ; block ℓ and readouts 1..ℓ learn,
  blocks < ℓ are frozen (no gradient, BatchNorm in eval mode so even their running
  statistics stay bit-identical). Every stage gets the full ``epochs`` budget.
- ``layerwise+joint``: the layerwise stages, then one joint stage with everything
  unfrozen (``joint_epochs``, default ``epochs``): the backward-feature-correction setting.

Each stage starts a fresh optimizer and learning-rate schedule.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import Dataset
from .devices import generator
from .errors import DivergenceError, FeatvizError

MODES = ("joint", "layerwise", "layerwise+joint")

# An adversary maps (model, x, y) to perturbed inputs for adversarial training.
Adversary = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
# Called after every epoch with (model, stage, epoch_record); used by the hierarchy study.
EpochCallback = Callable[[nn.Module, "Stage", dict], None]


@dataclass(frozen=True)
class Stage:
    name: str
    trainable: tuple[int, ...]  # 1-based block indices that learn
    depth: int  # blocks 1..depth take part in the forward pass
    epochs: int


@dataclass
class TrainConfig:
    """Optimization settings; ``epochs`` is per stage."""

    mode: str = "joint"
    epochs: int = 30
    joint_epochs: int | None = None
    lr: float = 3e-3
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | constant
    batch_size: int = 64
    seed: int = 0
    max_loss: float = 1e8  # a loss above this is treated as divergence

    def validate(self) -> None:
        if self.mode not in MODES:
            raise FeatvizError(f"unknown --mode {self.mode!r}", f"use one of {', '.join(MODES)}")
        if self.epochs < 1 or (self.joint_epochs is not None and self.joint_epochs < 1):
            raise FeatvizError(f"--epochs must be >= 1, got {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise FeatvizError(f"--lr must be a positive number, got {self.lr}")
        if self.batch_size < 1:
            raise FeatvizError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.optimizer not in ("adam", "sgd"):
            raise FeatvizError(f"unknown optimizer {self.optimizer!r}", "use adam or sgd")
        if self.schedule not in ("cosine", "constant"):
            raise FeatvizError(f"unknown schedule {self.schedule!r}", "use cosine or constant")


def plan_stages(mode: str, depth: int, epochs: int, joint_epochs: int | None = None) -> list[Stage]:
    """The stages of a training mode for a network of ``depth`` blocks."""
    everything = tuple(range(1, depth + 1))
    joint = Stage("joint", everything, depth, joint_epochs or epochs)
    if mode == "joint":
        return [Stage("joint", everything, depth, epochs)]
    layerwise = [Stage(f"layer{l}", (l,), l, epochs) for l in range(1, depth + 1)]
    if mode == "layerwise":
        return layerwise
    if mode == "layerwise+joint":
        return layerwise + [joint]
    raise FeatvizError(f"unknown mode {mode!r}", f"use one of {', '.join(MODES)}")


@dataclass
class TrainResult:
    stages: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _set_stage(model: nn.Module, stage: Stage) -> list[nn.Parameter]:
    """Freeze what the stage does not train; return the parameters it does."""
    model.train()
    params: list[nn.Parameter] = []
    for l in range(1, model.depth + 1):
        block, learns = model.block(l), l in stage.trainable
        for p in block.parameters():
            p.requires_grad_(learns)
        if learns:
            params += list(block.parameters())
        else:
            block.eval()  # frozen running statistics
        readout_learns = l <= stage.depth
        for p in model.readouts[l - 1].parameters():
            p.requires_grad_(readout_learns)
            if readout_learns:
                params.append(p)
    return params


def _loss(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if task == "regression":
        return F.mse_loss(out.squeeze(-1), y)
    return F.cross_entropy(out, y)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, depth: int | None = None,
             batch_size: int = 1024) -> dict[str, float]:
    """Test metrics in eval mode: ``accuracy`` and ``loss`` for classification;
    ``mse`` and ``rel_mse`` = MSE / Var(y) for regression. Every module's mode is restored
    (not just the model's: a frozen block of a layerwise stage must stay in eval mode)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        outs = [model(x[i:i + batch_size], depth=depth) for i in range(0, len(x), batch_size)]
    finally:
        for m, mode in modes:
            m.train(mode)
    out = torch.cat(outs)
    loss = _loss(task, out, y).item()
    if task == "regression":
        return {"mse": loss, "rel_mse": loss / max(float(y.var()), 1e-12)}
    return {"loss": loss, "accuracy": (out.argmax(1) == y).float().mean().item()}


def _make_optimizer(params, cfg: TrainConfig, steps: int):
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


def _divergence(stage: Stage, epoch: int, loss: float, cfg: TrainConfig) -> DivergenceError:
    return DivergenceError(
        f"training diverged in stage {stage.name}, epoch {epoch} (loss={loss:.3g})",
        f"quadratic activations amplify large steps: lower --lr (now {cfg.lr:g}) or keep BatchNorm (norm=batch)",
    )


def train_model(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    *,
    device: torch.device | str = "cpu",
    adversary: Adversary | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` (a :class:`~featviz.nets.HierarchicalNet`) on ``data`` in place.

    Minibatches are drawn from in-memory tensors with a generator seeded by
    ``config.seed``; per-epoch metrics go to ``TrainResult.history``, per-stage
    summaries to ``TrainResult.stages``. Raises :class:`DivergenceError` on NaN/Inf
    or runaway loss, before anything is saved.
    """
    config.validate()
    device = torch.device(device)
    model.to(device)
    data = data.to(device)
    gen = generator(config.seed)
    result = TrainResult()
    start = time.perf_counter()
    n = len(data.x_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    metric = "rel_mse" if data.task == "regression" else "accuracy"
    for stage in plan_stages(config.mode, model.depth, config.epochs, config.joint_epochs):
        stage_start = time.perf_counter()
        params = _set_stage(model, stage)
        opt, sched = _make_optimizer(params, config, stage.epochs * steps_per_epoch)
        bar = tqdm(range(1, stage.epochs + 1), desc=f"train {stage.name}", disable=not progress,
                   leave=False, unit="ep")
        for epoch in bar:
            order = torch.randperm(n, generator=gen).to(device)
            total, correct = 0.0, 0
            for i in range(0, n, config.batch_size):
                idx = order[i:i + config.batch_size]
                xb, yb = data.x_train[idx], data.y_train[idx]
                if adversary is not None:
                    xb = adversary(model, xb, yb)
                    _set_stage(model, stage)  # the adversary may have switched modes
                out = model(xb, depth=stage.depth)
                loss = _loss(data.task, out, yb)
                value = loss.item()
                if not math.isfinite(value) or value > config.max_loss:
                    raise _divergence(stage, epoch, value, config)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += value * len(idx)
                if data.task == "classification":
                    correct += int((out.argmax(1) == yb).sum())
            record = {"stage": stage.name, "epoch": epoch, "train_loss": total / n}
            if data.task == "classification":
                record["train_accuracy"] = correct / n
            test = evaluate(model, data.x_test, data.y_test, data.task, depth=stage.depth)
            record.update({f"test_{k}": v for k, v in test.items()})
            if len(data.x_val):
                val = evaluate(model, data.x_val, data.y_val, data.task, depth=stage.depth)
                record.update({f"val_{k}": v for k, v in val.items()})
            result.history.append(record)
            bar.set_postfix(loss=f"{record['train_loss']:.4g}", **{metric: f"{record['test_' + metric]:.4f}"})
            if on_epoch is not None:
                on_epoch(model, stage, record)
        summary = {"name": stage.name, "trainable": [f"block{l}" for l in stage.trainable], "depth": stage.depth,
                   "epochs": stage.epochs, "seconds": round(time.perf_counter() - stage_start, 3)}
        summary.update({k: v for k, v in result.history[-1].items() if k not in ("stage", "epoch")})
        result.stages.append(summary)
        if progress:
            tqdm.write(f"stage {stage.name}: test {metric} {summary['test_' + metric]:.4f}", file=sys.stderr)
    _set_stage(model, plan_stages("joint", model.depth, 1)[0])
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    result.seconds = time.perf_counter() - start
    final = result.history[-1]
    result.metrics = {k: v for k, v in final.items() if k.startswith(("test_", "train_", "val_"))}
    if data.task == "regression":
        result.metrics["rel_test_mse"] = final["test_rel_mse"]
    result.metrics["stages"] = result.stages
    return result


def config_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)
