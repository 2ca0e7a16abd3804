"""Input normalization stated explicitly, never guessed from a model's class name.

featviz checkpoints normalize inside and take images in [0, 1]; a foreign model trained
on ``(x - mean) / std`` gets :class:`Normalize` as a preprocess (visualization) or is
wrapped in :class:`Normalized` (attacks, which want one ``x -> logits`` module).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .errors import SpecError


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel for (N, C, H, W) images in [0, 1];
    ``mean``/``std``: one value per channel (std > 0)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != len(std) or not len(std) or min(std) <= 0:
            raise SpecError("mean and std need the same number of values, and std > 0",
                            "e.g. --mean 0.5,0.5,0.5 --std 0.25,0.25,0.25")
        self.register_buffer("mean", torch.tensor([float(m) for m in mean]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([float(s) for s in std]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Normalized(Normalize):
    """``model`` preceded by :class:`Normalize`: takes raw images (N, C, H, W) in [0, 1],
    returns whatever ``model`` returns. State keys: ``mean``, ``std``, ``model.*``."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__(mean, std)
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(super().forward(x))


__all__ = ["Normalize", "Normalized"]
