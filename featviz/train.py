"""One training loop; joint, layerwise and layerwise+joint are stage plans for it.

A *stage* says which blocks learn and how deep the forward pass goes:

- ``joint``: one stage, all blocks and readouts, full depth.
- ``layerwise``: stage ℓ = 1..L uses blocks 1..ℓ; block ℓ and readouts 1..ℓ learn,
  blocks < ℓ are frozen (no gradient, BatchNorm in eval mode so even their running
  statistics stay bit-identical). Every stage gets the full ``epochs`` budget.
- ``layerwise+joint``: the layerwise stages, then one joint stage with everything
  unfrozen (``joint_epochs``, default ``epochs``): the backward-feature-correction setting.

``freeze`` names blocks that learn in no stage (parameters and BatchNorm statistics stay
bit-identical; their readouts still learn): with a layerwise-trained model as the start,
``mode="joint", freeze=("block1",)`` is the frozen-lower-layer control of a joint stage;
``mode="layerwise+joint", joint_freeze=("block1",)`` is the same control within one run (block 1
learns in its layerwise stage and stays frozen in the joint stage).

Each stage starts a fresh optimizer and learning-rate schedule. ``stage_epochs`` gives every
stage its own length (e.g. to split one total budget over the stages), and the joint stage
that follows layerwise stages can continue gently instead of restarting at full rate:
``joint_lr_scale`` lowers its rate and ``joint_warmup`` ramps it up linearly over that
share of its steps.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .data import Dataset
from .devices import generator
from .distributed import SINGLE, DistContext, all_reduce_sum, restore_batchnorm, shard_range, use_global_batchnorm
from .errors import DivergenceError, FeatvizError, SpecError
from .modes import frozen_eval

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
    stage_epochs: tuple[int, ...] | None = None  # epochs of each stage, in order (overrides the two above)
    joint_lr_scale: float = 1.0  # layerwise+joint: the joint stage's rate is lr * this
    joint_warmup: float = 0.0  # layerwise+joint: share of the joint stage's steps spent ramping its rate up
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | constant
    batch_size: int = 64
    seed: int = 0
    max_loss: float = 1e8  # a loss above this is treated as divergence
    # GPU fast paths (all off by default; results stay correct, bf16 only less precise):
    amp: str | None = None  # "bf16": autocast the forward pass and loss to bfloat16
    channels_last: bool = False  # NHWC memory layout for conv nets (faster convolutions on GPUs)
    compile: bool = False  # torch.compile the model, falling back to eager if it cannot
    freeze: tuple[str, ...] = ()  # blocks that never learn (block1, ...); their readouts still do
    joint_freeze: tuple[str, ...] = ()  # blocks frozen only in the joint stage after layerwise stages

    def validate(self) -> None:
        if self.mode not in MODES:
            raise FeatvizError(f"unknown --mode {self.mode!r}", f"use one of {', '.join(MODES)}")
        if self.epochs < 1 or (self.joint_epochs is not None and self.joint_epochs < 1):
            raise FeatvizError(f"--epochs must be >= 1, got {self.epochs}")
        if self.stage_epochs is not None and (not self.stage_epochs or min(self.stage_epochs) < 1):
            raise FeatvizError(f"every stage needs >= 1 epoch, got {list(self.stage_epochs)}")
        if not (self.joint_lr_scale > 0 and 0 <= self.joint_warmup < 1):
            raise FeatvizError("joint_lr_scale must be > 0 and joint_warmup in [0, 1)")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise FeatvizError(f"--lr must be a positive number, got {self.lr}")
        if self.batch_size < 1:
            raise FeatvizError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.optimizer not in ("adam", "sgd"):
            raise FeatvizError(f"unknown optimizer {self.optimizer!r}", "use adam or sgd")
        if self.amp not in (None, "bf16"):
            raise FeatvizError(f"unknown --amp {self.amp!r}", "use bf16 (or leave it off)")
        if self.schedule not in ("cosine", "constant"):
            raise FeatvizError(f"unknown schedule {self.schedule!r}", "use cosine or constant")


def stage_key(name: str) -> str:
    """A stage's name as featviz now writes it: layerwise stages were called ``layer1, layer2, ...``
    before they were named after the block they train (``block1, ...``); old names map to new."""
    return f"block{name[5:]}" if name.startswith("layer") and name[5:].isdigit() else name


class StageMap(dict):
    """A dict keyed by stage name that also answers to the old names (``layer1`` -> ``block1``)."""

    def __missing__(self, key: str):
        new = stage_key(key)
        if new == key:
            raise KeyError(key)
        return self[new]

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or (isinstance(key, str) and dict.__contains__(self, stage_key(key)))

    def get(self, key, default=None):
        return self[key] if key in self else default


def plan_stages(mode: str, depth: int, epochs: int, joint_epochs: int | None = None,
                stage_epochs: tuple[int, ...] | None = None) -> list[Stage]:
    """The stages of a training mode for a network of ``depth`` blocks; ``stage_epochs``
    (one entry per stage) replaces ``epochs``/``joint_epochs``."""
    everything = tuple(range(1, depth + 1))
    joint = Stage("joint", everything, depth, joint_epochs or epochs)
    if mode == "joint":
        stages = [Stage("joint", everything, depth, epochs)]
    elif mode in ("layerwise", "layerwise+joint"):
        stages = [Stage(f"block{l}", (l,), l, epochs) for l in range(1, depth + 1)]  # named after the block it trains
        stages += [joint] if mode == "layerwise+joint" else []
    else:
        raise FeatvizError(f"unknown mode {mode!r}", f"use one of {', '.join(MODES)}")
    if stage_epochs is None:
        return stages
    if len(stage_epochs) != len(stages):
        raise FeatvizError(f"{mode} has {len(stages)} stages but {len(stage_epochs)} stage lengths were given")
    return [replace(stage, epochs=int(e)) for stage, e in zip(stages, stage_epochs)]


def stage_count(mode: str, depth: int) -> int:
    """How many stages ``mode`` has for a network of ``depth`` blocks."""
    if mode not in MODES:
        raise FeatvizError(f"unknown mode {mode!r}", f"use one of {', '.join(MODES)}")
    return {"joint": 1, "layerwise": depth, "layerwise+joint": depth + 1}[mode]


def split_budget(total: int, stages: int) -> tuple[int, ...]:
    """Split a budget of ``total`` units (epochs, or steps) over ``stages`` stages, as
    evenly as integers allow: every stage gets ``total // stages`` and the last
    ``total % stages`` stages one more. The parts sum to exactly ``total``, never more and
    never less, so learners with different stage counts make the same number of optimizer
    steps. A stage of zero would not train: ``total < stages`` raises :class:`SpecError`.

    The one matched-budget rule of featviz: every study splits its budget with it.
    """
    if stages < 1:
        raise SpecError(f"a budget is split over at least one stage, got {stages}")
    if total < stages:
        raise SpecError(f"a budget of {total} epochs is too small for {stages} stages (each needs one)",
                        f"use at least {stages}")
    base, extra = divmod(int(total), stages)
    return tuple(base + (i >= stages - extra) for i in range(stages))


@dataclass
class TrainResult:
    stages: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _set_stage(model: nn.Module, stage: Stage, frozen: tuple[str, ...] = ()) -> list[nn.Parameter]:
    """Freeze what the stage does not train (and the ``frozen`` blocks); return the parameters it does."""
    model.train()
    params: list[nn.Parameter] = []
    for l in range(1, model.depth + 1):
        block, learns = model.block(l), l in stage.trainable and f"block{l}" not in frozen
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


def check_freeze(model: nn.Module, freeze: tuple[str, ...]) -> None:
    """Refuse ``freeze`` names that are not blocks of ``model``."""
    names = [f"block{l}" for l in range(1, model.depth + 1)]
    for name in freeze:
        if name not in names:
            raise FeatvizError(f"--freeze {name}: the model has no block of that name",
                               f"use one of {', '.join(names)}")


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
    with frozen_eval(model):
        outs = [model(x[i:i + batch_size], depth=depth) for i in range(0, len(x), batch_size)]
    out = torch.cat(outs)
    loss = _loss(task, out, y).item()
    if task == "regression":
        return {"mse": loss, "rel_mse": loss / max(float(y.var()), 1e-12)}
    return {"loss": loss, "accuracy": (out.argmax(1) == y).float().mean().item()}


def _make_optimizer(params, cfg: TrainConfig, steps: int, lr: float | None = None, warmup: float = 0.0):
    lr = cfg.lr if lr is None else lr
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if warmup > 0:  # linear ramp over the first steps, then the schedule
        ramp, total = max(1, round(warmup * steps)), max(steps, 1)
        decay = (lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total))) if cfg.schedule == "cosine" \
            else (lambda s: 1.0)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / ramp) * decay(s))
    elif cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return opt, sched


def _divergence(stage: Stage, epoch: int, loss: float, cfg: TrainConfig) -> DivergenceError:
    return DivergenceError(
        f"training diverged in stage {stage.name}, epoch {epoch} (loss={loss:.3g})",
        f"quadratic activations amplify large steps: lower --lr (now {cfg.lr:g}) or keep BatchNorm (norm=batch)",
    )


@dataclass
class ResumeState:
    """Where an interrupted run stopped: after ``epoch`` completed epochs of stage
    ``stage_index``, with the optimizer, schedule and shuffling generator as they were.
    Restoring it and training on gives bit-identical weights to an uninterrupted run."""

    stage_index: int
    epoch: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: torch.Tensor
    history: list[dict[str, Any]]
    stages: list[dict[str, Any]]
    seconds: float
    adversary: torch.Tensor | None = None  # the adversary's generator state, if it has one


class TrainingInterrupted(Exception):
    """Raised at an epoch boundary when ``should_stop()`` turned true; carries the state to resume."""

    def __init__(self, state: ResumeState):
        super().__init__(f"interrupted after epoch {state.epoch} of stage {state.stage_index + 1}")
        self.state = state


def train_model(
    model: nn.Module,
    data: Dataset,
    config: TrainConfig,
    *,
    device: torch.device | str = "cpu",
    adversary: Adversary | None = None,
    on_epoch: EpochCallback | None = None,
    progress: bool = True,
    resume: ResumeState | None = None,
    should_stop: Callable[[], bool] | None = None,
    dist: DistContext | None = None,
) -> TrainResult:
    """Train ``model`` (a :class:`~featviz.nets.HierarchicalNet`) on ``data`` in place.

    Minibatches are drawn from in-memory tensors with a generator seeded by
    ``config.seed``; per-epoch metrics go to ``TrainResult.history``, per-stage
    summaries to ``TrainResult.stages``. Raises :class:`DivergenceError` on NaN/Inf
    or runaway loss, before anything is saved.

    ``should_stop`` is polled after every epoch; when it returns true the loop raises
    :class:`TrainingInterrupted` carrying a :class:`ResumeState`, which ``resume=``
    continues from. Under ``torchrun`` (``dist`` with several ranks) every global batch
    is split across ranks, BatchNorm statistics and gradients are reduced over all of
    them, and the result matches one process up to float summation order.
    """
    config.validate()
    check_freeze(model, tuple(config.freeze) + tuple(config.joint_freeze))
    dist = dist or SINGLE
    device = torch.device(device)
    model.to(device)
    data = data.to(device)
    if dist.enabled:
        use_global_batchnorm(model)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    gen = generator(config.seed)
    result = TrainResult()
    elapsed = 0.0
    if resume is not None:
        gen.set_state(resume.generator)
        if resume.adversary is not None and hasattr(adversary, "set_state"):
            adversary.set_state(resume.adversary)
        # a run stopped by an older featviz named its layerwise stages layer1, ...: continue with block1, ...
        result.history = [dict(r, stage=stage_key(r["stage"])) if "stage" in r else r for r in resume.history]
        result.stages = [dict(s, name=stage_key(s["name"])) if "name" in s else s for s in resume.stages]
        elapsed = resume.seconds
    start = time.perf_counter() - elapsed
    n = len(data.x_train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    metric = "rel_mse" if data.task == "regression" else "accuracy"
    show = progress and dist.is_main
    stages = plan_stages(config.mode, model.depth, config.epochs, config.joint_epochs, config.stage_epochs)
    for stage_index, stage in enumerate(stages):
        if resume is not None and stage_index < resume.stage_index:
            continue
        stage_start = time.perf_counter()
        continues = stage.name == "joint" and stage_index > 0  # the joint stage after layerwise stages
        frozen = tuple(config.freeze) + (tuple(config.joint_freeze) if continues else ())
        params = _set_stage(model, stage, frozen)
        opt, sched = _make_optimizer(params, config, stage.epochs * steps_per_epoch,
                                     config.lr * (config.joint_lr_scale if continues else 1.0),
                                     config.joint_warmup if continues else 0.0)
        first = 1
        if resume is not None and stage_index == resume.stage_index:
            opt.load_state_dict(resume.optimizer)
            sched.load_state_dict(resume.scheduler)
            first = resume.epoch + 1
        net = fast_forward(_data_parallel(model, dist), config.compile)
        bar = tqdm(range(first, stage.epochs + 1), desc=f"train {stage.name}", disable=not show,
                   leave=False, unit="ep")
        for epoch in bar:
            order = torch.randperm(n, generator=gen).to(device)
            sums = torch.zeros(2, dtype=torch.float64)  # loss * count, correct
            for i in range(0, n, config.batch_size):
                idx = order[i:i + config.batch_size]
                local = idx[_shard(len(idx), dist)]
                xb, yb = data.x_train[local], data.y_train[local]
                if config.channels_last and xb.dim() == 4:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                if adversary is not None:
                    xb = adversary(model, xb, yb)
                    _set_stage(model, stage, frozen)  # the adversary may have switched modes
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp == "bf16"):
                    out = net(xb, depth=stage.depth)
                    loss = _loss(data.task, out.float(), yb)
                # scale so that averaging gradients over ranks gives the global-batch mean
                scaled = loss * (len(local) * dist.world_size / len(idx)) if dist.enabled else loss
                opt.zero_grad(set_to_none=True)
                scaled.backward()
                batch = all_reduce_sum(torch.tensor([loss.item() * len(local), float(len(local))],
                                                    dtype=torch.float64), dist)
                value = float(batch[0] / batch[1])
                if not math.isfinite(value) or value > config.max_loss:
                    raise _divergence(stage, epoch, value, config)
                opt.step()
                sched.step()
                sums[0] += batch[0]
                if data.task == "classification":
                    sums[1] += float((out.argmax(1) == yb).sum())
            if data.task == "classification":
                sums[1] = all_reduce_sum(sums[1:], dist)[0]
            record = {"stage": stage.name, "epoch": epoch, "train_loss": float(sums[0]) / n}
            if data.task == "classification":
                record["train_accuracy"] = float(sums[1]) / n
            test = evaluate(model, data.x_test, data.y_test, data.task, depth=stage.depth)
            record.update({f"test_{k}": v for k, v in test.items()})
            if len(data.x_val):
                val = evaluate(model, data.x_val, data.y_val, data.task, depth=stage.depth)
                record.update({f"val_{k}": v for k, v in val.items()})
            result.history.append(record)
            bar.set_postfix(loss=f"{record['train_loss']:.4g}", **{metric: f"{record['test_' + metric]:.4f}"})
            if on_epoch is not None:
                on_epoch(model, stage, record)
            finished = stage_index == len(stages) - 1 and epoch == stage.epochs
            if should_stop is not None and not finished and should_stop():
                if dist.enabled:
                    restore_batchnorm(model)
                raise TrainingInterrupted(ResumeState(
                    stage_index, epoch, opt.state_dict(), sched.state_dict(), gen.get_state(),
                    list(result.history), list(result.stages), time.perf_counter() - start,
                    adversary.get_state() if hasattr(adversary, "get_state") else None))
        summary = {"name": stage.name, "depth": stage.depth,
                   "trainable": [f"block{l}" for l in stage.trainable if f"block{l}" not in frozen],
                   "epochs": stage.epochs, "seconds": round(time.perf_counter() - stage_start, 3)}
        summary.update({k: v for k, v in result.history[-1].items() if k not in ("stage", "epoch")})
        result.stages.append(summary)
        if show:
            tqdm.write(f"stage {stage.name}: test {metric} {summary['test_' + metric]:.4f}", file=sys.stderr)
    if dist.enabled:
        restore_batchnorm(model)
    for p in model.parameters():  # hand the model back unfrozen, in eval mode
        p.requires_grad_(True)
    model.eval()
    result.seconds = time.perf_counter() - start
    final = result.history[-1]
    result.metrics = {k: v for k, v in final.items() if k.startswith(("test_", "train_", "val_"))}
    if data.task == "regression":
        result.metrics["rel_test_mse"] = final["test_rel_mse"]
    result.metrics["stages"] = result.stages
    return result


class fast_forward:
    """Call ``module`` through ``torch.compile`` when asked and possible; if compiling
    fails (no compiler toolchain, unsupported platform) warn once and run eagerly."""

    def __init__(self, module: nn.Module, compile: bool):
        self.module = module
        self.compiled = None
        if compile:
            try:
                self.compiled = torch.compile(module)
            except Exception as exc:  # torch.compile unavailable on this build
                self._fallback(exc)

    def _fallback(self, exc: Exception) -> None:
        print(f"featviz: torch.compile unavailable ({exc.__class__.__name__}); running eagerly", file=sys.stderr)
        self.compiled = None

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # compilation happens at the first call
                self._fallback(exc)
        return self.module(*args, **kwargs)


def _shard(batch: int, dist: DistContext) -> slice:
    part = shard_range(batch, dist)
    return slice(part.start, part.stop)


def _data_parallel(model: nn.Module, dist: DistContext) -> nn.Module:
    """Wrap for this stage: DDP registers only parameters that require grad now, so the
    frozen blocks of a layerwise stage are left out of gradient synchronization."""
    if not dist.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [dist.device.index] if dist.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
