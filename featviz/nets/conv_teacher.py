"""A convolutional teacher with an information gap: a hierarchical regression target on images."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..devices import generator
from .base import LayerInfo, resolve_connections
from .conv import resample
from .teacher import orthonormal_rows


class TeacherConvBlock(nn.Module):
    """G = standardize((Conv_k×k(concat(sources)))²) with fixed weights.

    (N, C_in, R, R) -> (N, units, R, R). The filters are rows of an orthonormal matrix
    (one row per output channel over the C_in·k·k inputs), source groups farther than
    the nearest one scaled by ``skip_scale``; the per-channel mean and std start at 0/1
    and are set once by :meth:`ConvTeacher.calibrate`. Buffers only: nothing learns.
    """

    def __init__(self, source_channels: Sequence[int], units: int, resolution: int, kernel_size: int,
                 skip_scale: float, gen: torch.Generator):
        super().__init__()
        self.units, self.resolution, self.kernel_size = int(units), int(resolution), int(kernel_size)
        fan_in = sum(source_channels) * kernel_size * kernel_size
        w = orthonormal_rows(units, fan_in, gen).view(units, sum(source_channels), kernel_size, kernel_size)
        scale = torch.cat([torch.full((c,), 1.0 if i == 0 else skip_scale, dtype=w.dtype)
                           for i, c in enumerate(source_channels)])
        # unit-norm rows: z has about unit variance on standardized, weakly correlated inputs
        self.register_buffer("weight", (w * scale.view(1, -1, 1, 1)).float())
        self.register_buffer("mean", torch.zeros(units))
        self.register_buffer("std", torch.ones(units))

    def raw(self, z: torch.Tensor) -> torch.Tensor:
        z = F.conv2d(z, self.weight, padding=self.kernel_size // 2)
        return z * z

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (self.raw(z) - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)


class ConvTeacher(nn.Module):
    """Target y(x) = Σ_ℓ alpha^(ℓ-1) · r̃_ℓ(x) / normalizer for images x.

    The blocks ``block1..blockL`` follow the layout of
    :class:`~featviz.nets.QuadraticDenseConvNet` (same resolutions, strides, DenseNet
    connections, resampling), so a learner of that family can represent the teacher
    exactly. Block ℓ has ``k`` channels, each standardized (per channel, over images and
    positions) on calibration images; its readout r_ℓ = Σ_c mean_{y,x} G_ℓ,c is
    standardized too (r̃_ℓ), so layer ℓ carries a share ∝ alpha^(2(ℓ-1)) of Var(y): the
    information gap, as in the vector :class:`~featviz.nets.Teacher`.

    Args:
        in_channels, image_size: input images (N, C, S, S) in [0, 1].
        k: channels per block. depth: blocks. alpha: the gap (0 < alpha < 1).
        strides: per-block downsampling (default 1, 2, 2, ...). connect: default ``"dense"``.
        kernel_size: conv kernel. skip_scale: weight of the farther sources.
        input_mean, input_std: per-channel input normalization (the dataset's).
        seed: seeds the filters; same seed and calibration images -> same teacher, bit for bit.

    Call :meth:`calibrate` on images before use. ``forward(x)`` -> (N, 1); ``label(x)`` -> (N,);
    ``features(x, depth)`` -> list of (N, k, R_ℓ, R_ℓ).
    """

    layer_kind = "conv"

    def __init__(self, in_channels: int = 1, image_size: int = 16, k: int = 4, depth: int = 3, alpha: float = 0.3,
                 strides: Sequence[int] | None = None, connect: str | Sequence[Sequence[int]] = "dense",
                 kernel_size: int = 3, skip_scale: float = 0.5, input_mean: Sequence[float] | None = None,
                 input_std: Sequence[float] | None = None, seed: int = 0):
        super().__init__()
        strides = [1] + [2] * (depth - 1) if strides is None else [int(s) for s in strides]
        if len(strides) != depth or not 0 < alpha:
            raise ValueError("strides need one entry per block and alpha must be > 0")
        mean = [0.0] * in_channels if input_mean is None else [float(m) for m in input_mean]
        std = [1.0] * in_channels if input_std is None else [float(s) for s in input_std]
        self.config: dict[str, Any] = {
            "in_channels": int(in_channels), "image_size": int(image_size), "k": int(k), "depth": int(depth),
            "alpha": float(alpha), "strides": strides, "connect": connect, "kernel_size": int(kernel_size),
            "skip_scale": float(skip_scale), "input_mean": mean, "input_std": std, "seed": int(seed)}
        self.alpha = float(alpha)
        self.register_buffer("input_mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("input_std", torch.tensor(std).view(1, -1, 1, 1))
        self.sources = resolve_connections(connect, depth)
        gen = generator(seed)
        channels = [int(in_channels)] + [int(k)] * depth
        resolution = int(image_size)
        for l, srcs in enumerate(self.sources, start=1):
            resolution = max(1, resolution // strides[l - 1])
            self.add_module(f"block{l}", TeacherConvBlock([channels[j] for j in srcs], k, resolution, kernel_size,
                                                          skip_scale, gen))
        self.register_buffer("readout_mean", torch.zeros(depth))
        self.register_buffer("readout_std", torch.ones(depth))
        self.register_buffer("normalizer", torch.ones(()))

    @property
    def depth(self) -> int:
        return len(self.sources)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.config["in_channels"], self.config["image_size"], self.config["image_size"])

    def block(self, index: int) -> TeacherConvBlock:
        return getattr(self, f"block{index}")

    def layer_info(self) -> list[LayerInfo]:
        return [LayerInfo(f"block{l}", self.block(l).units, "conv") for l in range(1, self.depth + 1)]

    def features(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        """Standardized block outputs, (N, k, R_ℓ, R_ℓ) for ℓ = 1..depth (differentiable in x)."""
        depth = self.depth if depth is None else depth
        outs = [(x - self.input_mean) / self.input_std]
        for l in range(1, depth + 1):
            block = self.block(l)
            parts = [resample(outs[j], block.resolution) for j in self.sources[l - 1]]
            outs.append(block(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]))
        return outs[1:]

    def readouts(self, x: torch.Tensor) -> torch.Tensor:
        """(N, depth): the standardized per-block readouts r̃_ℓ, before the alpha weights."""
        r = torch.stack([g.mean(dim=(2, 3)).sum(dim=1) for g in self.features(x)], dim=1)
        return (r - self.readout_mean) / self.readout_std

    def contributions(self, x: torch.Tensor) -> torch.Tensor:
        """(N, depth): block ℓ's term alpha^(ℓ-1) · r̃_ℓ / normalizer of y (they sum to y)."""
        weights = self.alpha ** torch.arange(self.depth, dtype=torch.float32, device=x.device)
        return self.readouts(x) * weights / self.normalizer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1): shaped like the output of a one-output learner."""
        return self.contributions(x).sum(dim=1, keepdim=True)

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, batch_size: int = 2048) -> "ConvTeacher":
        """Fix every block's channel mean/std, the readout mean/std and the output
        normalizer (Var y = 1) on ``images`` (N, C, S, S), one block at a time."""
        x = (images.float() - self.input_mean) / self.input_std
        outs = [x]
        for l in range(1, self.depth + 1):
            block = self.block(l)
            parts = [resample(outs[j], block.resolution) for j in self.sources[l - 1]]
            raw = torch.cat([block.raw(p) for p in torch.split(torch.cat(parts, dim=1), batch_size)])
            block.mean.copy_(raw.mean(dim=(0, 2, 3)))
            block.std.copy_(raw.std(dim=(0, 2, 3)).clamp_min(1e-8))
            outs.append(block(torch.cat(parts, dim=1)))
        r = torch.stack([g.mean(dim=(2, 3)).sum(dim=1) for g in outs[1:]], dim=1)
        self.readout_mean.copy_(r.mean(0))
        self.readout_std.copy_(r.std(0).clamp_min(1e-8))
        self.normalizer.fill_(1.0)
        self.normalizer.copy_(self.contributions(images.float()).sum(dim=1).std().clamp_min(1e-8))
        return self

    def label(self, images: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        """Regression targets y (N,) for ``images`` (N, C, S, S), computed in batches without gradients."""
        with torch.no_grad():
            parts = [self(b)[:, 0] for b in torch.split(images.float(), batch_size)]
        return torch.cat(parts) if parts else torch.zeros(0)
