"""The synthetic hierarchical target ("teacher") with an information gap."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..devices import generator
from .base import resolve_connections


def orthonormal_rows(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    """A (rows, cols) matrix with orthonormal rows (or columns if rows > cols), from
    the QR decomposition of a Gaussian matrix: perfectly conditioned, so no teacher
    unit is a near-copy of another."""
    big, small = max(rows, cols), min(rows, cols)
    q, r = torch.linalg.qr(torch.randn(big, small, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # unique Haar-distributed factor
    return (q.T if rows <= cols else q).contiguous()


class Teacher(nn.Module):
    """Target G(x) = Σ_ℓ alpha^(ℓ-1) · Sum(G_ℓ(x)) / normalizer, x ~ N(0, I_d).

    G_ℓ = standardize(σ(Σ_{j∈S_ℓ} c_j · W_{ℓ,j} · G_j)) with σ(z)=z², G_0 = x, every
    W with orthonormal rows, c = 1 for the nearest source and ``skip_scale`` for
    farther ones. Each unit is standardized to zero mean and unit variance with
    statistics estimated once on ``n_calibration`` samples and then frozen, and the
    output is divided by its standard deviation, so Var(y) ≈ 1 and layer ℓ carries
    a share ∝ alpha^(2(ℓ-1)) of the variance: the information gap.

    Args:
        d: input dimension. k: units per layer. depth: number of layers L.
        alpha: gap between consecutive layers (0 < alpha < 1 for a hierarchy).
        connect: source pattern (default ``"skip2"``: G_ℓ reads G_{ℓ-1} and G_{ℓ-2}).
        seed: seeds weights and calibration; same seed → same teacher, bit for bit.

    ``forward(x)`` returns y of shape (N,); ``features(x)`` the L layers (N, k).
    """

    def __init__(
        self,
        d: int = 20,
        k: int = 4,
        depth: int = 3,
        alpha: float = 0.3,
        connect: str | Sequence[Sequence[int]] = "skip2",
        seed: int = 0,
        skip_scale: float = 0.5,
        n_calibration: int = 100_000,
    ):
        super().__init__()
        self.config = {"d": d, "k": k, "depth": depth, "alpha": alpha, "connect": connect, "seed": seed,
                       "skip_scale": skip_scale}
        self.d, self.k, self.alpha = int(d), int(k), float(alpha)
        self.sources = resolve_connections(connect, depth)
        gen = generator(seed)
        dims = [self.d] + [self.k] * depth
        for l, srcs in enumerate(self.sources, start=1):
            for i, j in enumerate(srcs):
                w = orthonormal_rows(self.k, dims[j], gen) * (1.0 if i == 0 else skip_scale)
                self.register_buffer(f"w{l}_{j}", w.float())
            self.register_buffer(f"mean{l}", torch.zeros(self.k))
            self.register_buffer(f"std{l}", torch.ones(self.k))
        self.register_buffer("normalizer", torch.ones(()))
        self._calibrate(n_calibration, seed)

    @property
    def depth(self) -> int:
        return len(self.sources)

    @torch.no_grad()
    def _calibrate(self, n: int, seed: int) -> None:
        x = torch.randn(n, self.d, generator=generator(seed + 7919))
        outs = [x]
        for l in range(1, self.depth + 1):
            raw = self._raw_layer(l, outs)
            mean, std = raw.mean(0), raw.std(0).clamp_min(1e-8)
            getattr(self, f"mean{l}").copy_(mean)
            getattr(self, f"std{l}").copy_(std)
            outs.append((raw - mean) / std)
        self.normalizer.copy_(self._combine(outs[1:], normalize=False).std().clamp_min(1e-8))

    def _raw_layer(self, l: int, outs: list[torch.Tensor]) -> torch.Tensor:
        z = sum(outs[j] @ getattr(self, f"w{l}_{j}").T for j in self.sources[l - 1])
        return z * z

    def _combine(self, feats: list[torch.Tensor], normalize: bool = True) -> torch.Tensor:
        y = sum((self.alpha ** l) * g.sum(dim=1) for l, g in enumerate(feats))
        return y / self.normalizer if normalize else y

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for l in range(1, self.depth + 1):
            raw = self._raw_layer(l, outs)
            outs.append((raw - getattr(self, f"mean{l}")) / getattr(self, f"std{l}"))
        return outs[1:]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._combine(self.features(x))

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` inputs x ~ N(0, I_d) from ``gen`` and return (x, y).

        Rows are drawn in fixed blocks of 256 (torch's vectorized ``randn`` orders its
        draws by tensor size), so a larger ``n`` extends a smaller draw instead of
        reshuffling it.
        """
        blocks = [torch.randn(256, self.d, generator=gen) for _ in range(-(-n // 256))]
        x = torch.cat(blocks)[:n] if blocks else torch.zeros(0, self.d)
        return x, self(x)
