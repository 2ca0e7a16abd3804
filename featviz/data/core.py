"""The in-memory dataset container shared by all sources."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..devices import generator


@dataclass
class Dataset:
    """Train/val/test tensors of one task.

    ``task`` is ``"classification"`` (y: int64 labels) or ``"regression"`` (y: float (N,)).
    Images are float32 in [0, 1], (N, C, H, W); synthetic inputs are (N, d).
    ``val`` may be empty (0 rows). ``info`` is what a checkpoint card records.
    """

    name: str
    task: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    teacher: Any = None  # the synthetic target, when there is one

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x_train.dim() == 4

    def to(self, device: torch.device | str) -> "Dataset":
        for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
            setattr(self, name, getattr(self, name).to(device))
        return self


def split_indices(labels: torch.Tensor, fractions: tuple[float, ...], seed: int) -> list[torch.Tensor]:
    """Deterministic stratified split of ``range(len(labels))`` into parts of the given
    fractions (the last part takes the remainder): each class is shuffled with a
    seeded generator and dealt out in proportion, so class balance is kept."""
    gen = generator(seed)
    parts: list[list[torch.Tensor]] = [[] for _ in fractions]
    for cls in torch.unique(labels):
        idx = torch.nonzero(labels == cls).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        start = 0
        for p, frac in enumerate(fractions):
            stop = len(idx) if p == len(fractions) - 1 else start + int(round(frac * len(idx)))
            parts[p].append(idx[start:stop])
            start = stop
    return [torch.sort(torch.cat(p)).values for p in parts]


def channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of (N, C, H, W) images, rounded for a readable card."""
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return [round(float(m), 6) for m in mean], [round(float(s), 6) for s in std]
