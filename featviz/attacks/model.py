"""How attacks see a model: inputs in explicit bounds, normalization inside a wrapper
(:class:`~featviz.normalize.Normalized`, re-exported here), and a context that leaves
the model exactly as it was found."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from ..modes import frozen_eval
from ..normalize import Normalized


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
    """Eval mode and frozen parameters for the duration of an attack (gradients on),
    then every module's mode and parameter's flag restored: :func:`featviz.modes.frozen_eval`."""
    with frozen_eval(model), torch.enable_grad():
        yield model


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted labels (N,) of ``x`` (N, ...), in eval mode; the model's modes are restored."""
    with attack_mode(model):
        with torch.no_grad():
            return torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


__all__ = ["AtDepth", "Normalized", "attack_mode", "predict"]
