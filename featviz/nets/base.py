"""Pieces shared by the hierarchical networks: activations, connection patterns,
layer naming and the common base class."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import FeatvizError

ACTIVATIONS = ("quadratic", "relu")
CONNECT_PATTERNS = ("dense", "chain", "skip2")


class Square(nn.Module):
    """σ(z) = z², the activation of the paper's hierarchical learners."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * z


def make_activation(act: str) -> nn.Module:
    if act == "quadratic":
        return Square()
    if act == "relu":
        return nn.ReLU()
    raise FeatvizError(f"unknown activation {act!r}", f"use one of {', '.join(ACTIVATIONS)}")


def resolve_connections(connect: str | Sequence[Sequence[int]], depth: int) -> list[list[int]]:
    """Which earlier layers feed each layer; layer 0 is the input x.

    ``dense``: every earlier layer (DenseNet); ``chain``: only the previous one;
    ``skip2``: the previous two (the pattern of the synthetic teacher:
    G2 reads G1 and x, G3 reads G2 and G1). An explicit list gives, for each layer
    ℓ = 1..depth, the indices (each < ℓ) it reads. Sources are returned nearest-first.
    """
    if isinstance(connect, str):
        if connect == "dense":
            return [list(range(l - 1, -1, -1)) for l in range(1, depth + 1)]
        if connect == "chain":
            return [[l - 1] for l in range(1, depth + 1)]
        if connect == "skip2":
            return [[j for j in (l - 1, l - 2) if j >= 0] for l in range(1, depth + 1)]
        raise FeatvizError(f"unknown connection pattern {connect!r}", f"use one of {', '.join(CONNECT_PATTERNS)}")
    conns = [sorted({int(j) for j in srcs}, reverse=True) for srcs in connect]
    if len(conns) != depth:
        raise FeatvizError(f"connect lists {len(conns)} layers but the network has {depth}")
    for l, srcs in enumerate(conns, start=1):
        if not srcs or any(j < 0 or j >= l for j in srcs):
            raise FeatvizError(f"layer {l} must read from a non-empty subset of layers 0..{l - 1}, got {srcs}")
    return conns


def gaussian_init_(linear: nn.Module) -> None:
    """Gaussian init N(0, 1/fan_in): the random-feature regime the theory assumes, and
    with z² it keeps E[z²] = mean squared input at init, whatever the width."""
    weight = linear.weight
    fan_in = math.prod(weight.shape[1:])
    with torch.no_grad():
        weight.normal_(0.0, 1.0 / math.sqrt(fan_in))
        if getattr(linear, "bias", None) is not None:
            linear.bias.zero_()


# Moments of σ(z) for z ~ N(0, 1): (mean, variance).
_ACT_MOMENTS = {"quadratic": (1.0, 2.0), "relu": (1.0 / math.sqrt(2 * math.pi), 0.5 - 1.0 / (2 * math.pi))}


def make_norm(kind: str, units: int, act: str, dims: int) -> nn.Module:
    """Non-affine BatchNorm (``kind="batch"``) or identity (``"none"``).

    Its running statistics start at the moments σ(z) has for z ~ N(0, 1), which is what
    a Gaussian-initialized layer sees on standardized inputs: so an untrained model in
    eval mode already keeps every layer at unit scale instead of compounding z² over
    depth (torch's default 0/1 statistics overflow by depth 6).
    """
    if kind == "none":
        return nn.Identity()
    if kind != "batch":
        raise FeatvizError(f"unknown normalization {kind!r}", "use batch or none")
    norm = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(units, affine=False)
    mean, var = _ACT_MOMENTS[act]
    norm.running_mean.fill_(mean)
    norm.running_var.fill_(var)
    return norm


@dataclass(frozen=True)
class LayerInfo:
    """A named, addressable layer: ``name`` is also its path in ``named_modules()``."""

    name: str
    units: int
    kind: str  # "dense" | "conv"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HierarchicalNet(nn.Module):
    """Base of the DenseNet-style learners: blocks ``block1..blockL`` (registered under
    those names, so hooks and neuron specs can address them), one readout per block,
    and an output that is the sum of the readouts.

    ``forward(x, depth=d)`` uses only blocks 1..d and their readouts, which is what a
    layerwise training stage needs.
    """

    arch: dict[str, Any]
    readouts: nn.ModuleList

    @property
    def depth(self) -> int:
        return len(self.readouts)

    def block(self, index: int) -> nn.Module:
        """Block ``index`` (1-based)."""
        return getattr(self, f"block{index}")

    def layer_info(self) -> list[LayerInfo]:
        kind = self.layer_kind
        return [LayerInfo(f"block{l}", self.block(l).units, kind) for l in range(1, self.depth + 1)]

    layer_kind = "dense"

    def _check_depth(self, depth: int | None) -> int:
        if depth is None:
            return self.depth
        if not 1 <= depth <= self.depth:
            raise ValueError(f"depth must be in 1..{self.depth}, got {depth}")
        return depth

    def forward(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        feats = self.features(x, depth)
        out = self.readout_of(1, feats[0])
        for l, h in enumerate(feats[1:], start=2):
            out = out + self.readout_of(l, h)
        return out

    def readout_of(self, index: int, h: torch.Tensor) -> torch.Tensor:
        return self.readouts[index - 1](h)

    def features(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        raise NotImplementedError
