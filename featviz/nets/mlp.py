"""Vector DenseNets with σ(z)=z² for synthetic hierarchical targets."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .base import HierarchicalNet, gaussian_init_, make_activation, make_norm, resolve_connections


class DenseLayer(nn.Module):
    """h = Norm(σ(W · concat(sources))), shape (N, in_features) -> (N, units).

    Why a normalization, and why a non-affine BatchNorm after σ: with σ(z)=z² each
    layer squares the scale of its input, so after L layers activations behave like
    s^(2^L) and overflow (or vanish) by depth 5-6 unless every layer is brought back
    to unit scale. A fixed scale would be right only at init; BatchNorm keeps each unit
    at zero mean and unit variance as the weights move, and at inference it is a fixed
    affine map, so the network stays a polynomial of its input. It is non-affine
    because the next layer and the readout are linear and absorb any scale and shift.
    """

    def __init__(self, in_features: int, units: int, act: str = "quadratic", norm: str = "batch"):
        super().__init__()
        self.units = units
        self.linear = nn.Linear(in_features, units)
        gaussian_init_(self.linear)
        self.act = make_activation(act)
        self.norm = make_norm(norm, units, act, dims=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.linear(z)))


class QuadraticDenseMLP(HierarchicalNet):
    """Hierarchical learner F(x) = Σ_ℓ Readout_ℓ(F_ℓ(x)) with F_ℓ = σ(W_ℓ · concat(F_j, j ∈ S_ℓ)).

    Args:
        in_dim: input dimension d; x has shape (N, d).
        widths: units per layer, e.g. ``(48, 48, 48)``; depth = len(widths).
        act: ``"quadratic"`` (σ(z)=z²) or ``"relu"``.
        connect: ``"dense"``, ``"chain"``, ``"skip2"`` or explicit source lists
            (see :func:`resolve_connections`; x is layer 0). Default ``"skip2"``, the
            teacher's pattern.
        out_dim: outputs per readout (1 for regression).
        norm: ``"batch"`` (non-affine BatchNorm after σ, default) or ``"none"``.

    ``forward`` returns (N, out_dim); ``features`` returns the L block outputs (N, m_ℓ).
    """

    def __init__(
        self,
        in_dim: int,
        widths: Sequence[int] = (48, 48, 48),
        act: str = "quadratic",
        connect: str | Sequence[Sequence[int]] = "skip2",
        out_dim: int = 1,
        norm: str = "batch",
    ):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1 or in_dim < 1:
            raise ValueError("in_dim and every width must be positive, with at least one layer")
        self.arch = {
            "class": type(self).__name__, "in_dim": int(in_dim), "widths": widths, "act": act,
            "connect": connect if isinstance(connect, str) else [list(s) for s in connect],
            "out_dim": int(out_dim), "norm": norm,
        }
        self.sources = resolve_connections(connect, len(widths))
        dims = [int(in_dim)] + widths
        for l, srcs in enumerate(self.sources, start=1):
            self.add_module(f"block{l}", DenseLayer(sum(dims[j] for j in srcs), widths[l - 1], act, norm))
        self.readouts = nn.ModuleList(nn.Linear(w, out_dim) for w in widths)

    def features(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        depth = self._check_depth(depth)
        outs = [x]
        for l in range(1, depth + 1):
            srcs = self.sources[l - 1]
            z = outs[srcs[0]] if len(srcs) == 1 else torch.cat([outs[j] for j in srcs], dim=1)
            outs.append(self.block(l)(z))
        return outs[1:]
