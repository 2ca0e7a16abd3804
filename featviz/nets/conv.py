"""Convolutional DenseNets with σ(z)=z² for images."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import HierarchicalNet, gaussian_init_, make_activation, make_norm, resolve_connections


def resample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bring a (N, C, H, W) map to (N, C, size, size): area averaging down, nearest up."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if x.shape[-1] > size:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=(size, size), mode="nearest")


class ConvBlock(nn.Module):
    """h = BatchNorm(σ(Conv_k×k(concat(sources at this block's resolution)))).

    (N, C_in, R, R) -> (N, units, R, R). BatchNorm is non-affine for the same reason
    as in :class:`~featviz.nets.mlp.DenseLayer`: z² squares the scale every block.
    """

    def __init__(self, in_channels: int, units: int, resolution: int, act: str, norm: str, kernel_size: int):
        super().__init__()
        self.units = units
        self.resolution = resolution
        self.conv = nn.Conv2d(in_channels, units, kernel_size, padding=kernel_size // 2, bias=False)
        gaussian_init_(self.conv)
        self.act = make_activation(act)
        self.norm = make_norm(norm, units, act, dims=2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.conv(z)))


class GlobalPoolReadout(nn.Module):
    """(N, C, H, W) -> (N, classes): global average pool then a linear map."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(h.mean(dim=(2, 3)))


class ConvHeadReadout(nn.Module):
    """(N, C, H, W) -> (N, classes): 3×3 conv, ReLU, global average pool, linear. The small
    auxiliary classifier of greedy layerwise training (Belilovsky et al. 2019), stronger
    than a linear readout of the pooled block."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(F.relu(self.conv(h)).mean(dim=(2, 3)))


READOUT_HEADS = {"linear": GlobalPoolReadout, "conv": ConvHeadReadout}


class QuadraticDenseConvNet(HierarchicalNet):
    """Image classifier with DenseNet connections and per-block readouts summed into logits.

    Args:
        in_channels: image channels (1 grayscale, 3 RGB).
        num_classes: number of logits.
        widths: channels per block, default ``(16, 32, 32)``.
        image_size: side of the square input; block ℓ works at
            ``image_size // prod(strides[:ℓ])``.
        strides: per-block downsampling factors, default 1 for block 1 and 2 after.
        act: ``"quadratic"`` or ``"relu"``. connect: as for the MLP, default ``"dense"``
            (every block reads the image and all earlier blocks, resampled).
        input_mean, input_std: per-channel normalization applied inside the model, so
            the model takes images in [0, 1] and every tool feeds it the same way.
        head: per-block readout, ``"linear"`` (global average pool + linear, default) or
            ``"conv"`` (:class:`ConvHeadReadout`).

    Input (N, C, H, W) in [0, 1]; output logits (N, num_classes).
    """

    layer_kind = "conv"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (16, 32, 32),
        image_size: int = 16,
        strides: Sequence[int] | None = None,
        act: str = "quadratic",
        connect: str | Sequence[Sequence[int]] = "dense",
        kernel_size: int = 3,
        norm: str = "batch",
        input_mean: Sequence[float] | None = None,
        input_std: Sequence[float] | None = None,
        head: str = "linear",
    ):
        super().__init__()
        widths = [int(w) for w in widths]
        strides = [1] + [2] * (len(widths) - 1) if strides is None else [int(s) for s in strides]
        if len(strides) != len(widths):
            raise ValueError("strides must have one entry per block")
        mean = [0.0] * in_channels if input_mean is None else [float(m) for m in input_mean]
        std = [1.0] * in_channels if input_std is None else [float(s) for s in input_std]
        if len(mean) != in_channels or len(std) != in_channels or min(std) <= 0:
            raise ValueError("input_mean/input_std need one entry per channel and std > 0")
        if head not in READOUT_HEADS:
            raise ValueError(f"head must be one of {', '.join(READOUT_HEADS)}, got {head!r}")
        self.arch = {
            "class": type(self).__name__, "in_channels": int(in_channels), "num_classes": int(num_classes),
            "widths": widths, "image_size": int(image_size), "strides": strides, "act": act,
            "connect": connect if isinstance(connect, str) else [list(s) for s in connect],
            "kernel_size": int(kernel_size), "norm": norm, "input_mean": mean, "input_std": std,
        }
        self.register_buffer("input_mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("input_std", torch.tensor(std).view(1, -1, 1, 1))
        self.sources = resolve_connections(connect, len(widths))
        channels = [int(in_channels)] + widths
        resolution = int(image_size)
        for l, srcs in enumerate(self.sources, start=1):
            resolution = max(1, resolution // strides[l - 1])
            block = ConvBlock(sum(channels[j] for j in srcs), widths[l - 1], resolution, act, norm, kernel_size)
            self.add_module(f"block{l}", block)
        if head != "linear":  # cards of linear-head models stay as they were
            self.arch["head"] = head
        self.readouts = nn.ModuleList(READOUT_HEADS[head](w, num_classes) for w in widths)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.arch["in_channels"], self.arch["image_size"], self.arch["image_size"])

    def features(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        depth = self._check_depth(depth)
        outs = [(x - self.input_mean) / self.input_std]
        for l in range(1, depth + 1):
            block = self.block(l)
            parts = [resample(outs[j], block.resolution) for j in self.sources[l - 1]]
            outs.append(block(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)))
        return outs[1:]
