"""How attacks see a model: inputs in explicit bounds, normalization inside a wrapper,
and a context that leaves the model exactly as it was found."""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn


class Normalized(nn.Module):
    """Wrap a model that expects normalized inputs so that it takes raw images in [0, 1].

    featviz checkpoints normalize inside already and need no wrapper; a foreign
    ``nn.Module`` trained on ``(x - mean) / std`` gets one here, so an attack never
    guesses a preprocessing from a class name. ``mean``/``std``: one value per channel.
    Input (N, C, H, W) in [0, 1]; output whatever ``model`` returns.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


class AtDepth(nn.Module):
    """A :class:`~featviz.nets.HierarchicalNet` truncated to its first ``depth`` blocks
    (what a layerwise training stage optimizes), as a plain ``x -> logits`` module."""

    def __init__(self, model: nn.Module, depth: int):
        super().__init__()
        self.model = model
        self.depth = int(depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, depth=self.depth)


@contextlib.contextmanager
def attack_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters for the duration of an attack, then restore.

    Eval mode so BatchNorm uses (and does not update) its running statistics; frozen
    parameters so no gradient is recorded for them. Modes are restored *per module*
    because a layerwise training stage mixes training and frozen (eval) blocks.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted labels (N,) of ``x`` (N, ...), in eval mode; the model's modes are restored."""
    with attack_mode(model):
        with torch.no_grad():
            return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
