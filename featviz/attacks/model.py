"""How attacks see a model: inputs in explicit bounds, normalization inside a wrapper
(:class:`~featviz.normalize.Normalized`, re-exported here), and a context that leaves
the model exactly as it was found."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from ..errors import DivergenceError
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
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512, what: str = "clean inputs") -> torch.Tensor:
    """Predicted labels (N,) of ``x`` (N, ...), in eval mode; the model's modes are restored.

    Logits that are NaN or Inf raise :class:`~featviz.errors.DivergenceError` (exit 2) naming
    ``what`` the inputs were: an accuracy computed from them would be a number about nothing."""
    preds = []
    with attack_mode(model):
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                logits = model(x[i:i + batch_size])
                if not torch.is_tensor(logits) or logits.ndim != 2:
                    raise DivergenceError(f"the model returns {type(logits).__name__}"
                                          f"{tuple(logits.shape) if torch.is_tensor(logits) else ''} on {what}, "
                                          "not logits of shape (N, classes)", "check --model and --input-shape")
                bad = ~torch.isfinite(logits).all(dim=1)
                if bad.any():
                    raise DivergenceError(f"the model outputs NaN/Inf logits on {int(bad.sum())} of "
                                          f"{len(logits)} {what} (batch from example {i})",
                                          "its weights or normalization are broken; no accuracy can be reported")
                preds.append(logits.argmax(1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long)


__all__ = ["AtDepth", "Normalized", "attack_mode", "predict"]
