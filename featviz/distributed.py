"""Multi-process runs on PyTorch's standard engine: ``torch.distributed``, launched by ``torchrun``.

``torchrun --nproc-per-node N -m featviz train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``;
:func:`init_distributed` reads them and joins the process group (gloo on CPU, nccl on CUDA). Without
them everything here degrades to a single process, so library code can call these helpers
unconditionally.

BatchNorm needs care: data-parallel training computes batch statistics per rank, which would make
results depend on the number of processes. :class:`GlobalBatchNorm` all-reduces the per-unit sums
(with gradients, through ``torch.distributed.nn``) so statistics are those of the global batch:
N ranks reproduce the single-process run up to float summation order. (``nn.SyncBatchNorm`` does
the same on GPUs only.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .devices import resolve_device
from .errors import FeatvizError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistContext()


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_spec: str | torch.device = "auto") -> DistContext:
    """Join the process group described by torchrun's environment, or return a
    single-process context. On CUDA each process takes ``cuda:LOCAL_RANK``."""
    if not launched_by_torchrun():
        return DistContext(device=resolve_device(device_spec))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    device = resolve_device(device_spec)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise FeatvizError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA devices",
                               "use --nproc-per-node <= the number of GPUs")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local, device=device)


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def shard_range(n: int, ctx: DistContext) -> range:
    """The contiguous part of ``range(n)`` this rank handles (sizes differ by at most one)."""
    per, extra = divmod(n, ctx.world_size)
    start = ctx.rank * per + min(ctx.rank, extra)
    return range(start, start + per + (1 if ctx.rank < extra else 0))


def gather_to_main(obj: Any, ctx: DistContext) -> list[Any] | None:
    """Collect one picklable object per rank on rank 0 (in rank order); ``None`` elsewhere.

    Objects exchanged here are produced by featviz processes of the same run, not read from files.
    """
    if not ctx.enabled:
        return [obj]
    out: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over ranks (in place on a copy); identity in a single process."""
    if not ctx.enabled:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


class GlobalBatchNorm(nn.Module):
    """Non-affine BatchNorm whose training statistics span all ranks' batches.

    Drop-in for the ``nn.BatchNorm1d/2d(affine=False)`` of featviz blocks: same buffers
    (``running_mean``, ``running_var``, ``num_batches_tracked``) so checkpoints are unchanged.
    """

    def __init__(self, source: nn.modules.batchnorm._BatchNorm):
        super().__init__()
        if source.affine:
            raise ValueError("GlobalBatchNorm replaces only non-affine BatchNorm")
        self.eps, self.momentum = source.eps, source.momentum
        self.source_class = type(source)
        self.register_buffer("running_mean", source.running_mean.clone())
        self.register_buffer("running_var", source.running_var.clone())
        self.register_buffer("num_batches_tracked", source.num_batches_tracked.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        if not self.training:
            return (x - self.running_mean.view(shape)) / torch.sqrt(self.running_var.view(shape) + self.eps)
        from torch.distributed.nn.functional import all_reduce

        dims = [0] + list(range(2, x.dim()))
        count = torch.tensor(float(x.numel() // x.shape[1]), device=x.device)
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), count.view(1)])
        stats = all_reduce(stats) if dist.is_initialized() else stats
        c = x.shape[1]
        total = stats[-1]
        mean = stats[:c] / total
        var = stats[c:2 * c] / total - mean * mean
        with torch.no_grad():
            unbiased = var * total / (total - 1).clamp_min(1)
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * unbiased.detach())
            self.num_batches_tracked.add_(1)
        return (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)


def use_global_batchnorm(model: nn.Module) -> nn.Module:
    """Replace every non-affine BatchNorm of ``model`` by :class:`GlobalBatchNorm`, in place."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not child.affine:
            setattr(model, name, GlobalBatchNorm(child))
        else:
            use_global_batchnorm(child)
    return model


def restore_batchnorm(model: nn.Module) -> nn.Module:
    """Undo :func:`use_global_batchnorm` (for saving and single-process use), in place."""
    for name, child in list(model.named_children()):
        if isinstance(child, GlobalBatchNorm):
            bn = child.source_class(child.running_mean.numel(), eps=child.eps, momentum=child.momentum, affine=False)
            bn.running_mean.copy_(child.running_mean)
            bn.running_var.copy_(child.running_var)
            bn.num_batches_tracked.copy_(child.num_batches_tracked)
            bn.train(child.training)
            setattr(model, name, bn.to(child.running_mean.device))
        else:
            restore_batchnorm(child)
    return model
