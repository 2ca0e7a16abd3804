"""Data priors: parameterizations that keep a render where the data lives.

A quadratic unit maximized over the [0, 1] pixel box is pushed to the box's corners
(binary images) whatever the penalty, because its activation grows as a power of the
image's norm. These priors bound *where* the ascent may go instead of charging for it:

- :class:`SphereImage` (``--reg sphere``): the sphere ‖x − μ‖₂ = r around the data mean
  μ, r = W × the data's median distance to μ; projected back after every step. For a
  unit that is a quadratic form in x − μ the optimum is its top eigenvector.
- :class:`PCAImage` (``--reg pca``): x = μ + Σ cₖ σₖ vₖ over the data's top W principal
  components vₖ (standard deviations σₖ), with ‖c‖ (the Mahalanobis norm) projected
  into the ball that holds 99 % of the data's own images.
- :class:`LatentImage` (``--reg generator``): x = decoder(z) of a small Gaussian VAE
  trained on the data (:mod:`~featviz.vis.generator`), z inside the χ² ball that holds
  99 % of the prior N(0, I).

Penalties do not work here: block-2 units of a three-block quadratic net are degree 4
in the pixels and block-3 units degree 8, so any fixed penalty is outgrown. Projection
holds. Every prior starts from real images (their coefficients / codes), so restarts
begin at different plausible images; :func:`~featviz.vis.render.render` keeps the best.
Images are clamped to [0, 1] (the range the models take).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import SpecError
from .param import ImageParam

# The share of the data's own images each ball holds.
BALL_QUANTILE = 0.99
# Restarts (from different real images) each prior renders; the best one per unit is kept.
PRIOR_RESTARTS = 4


@dataclass
class DataPrior:
    """What a prior knows about the data, fitted by :func:`fit_prior`.

    ``kind``: sphere / pca / generator; ``amount``: the WEIGHT of ``--reg``;
    ``mean`` (D,) the data mean; ``radius`` the sphere's radius or the ball's;
    ``basis`` (K, D) principal directions scaled by their standard deviations (pca);
    ``decoder``/``encoder`` (generator); ``inits`` (M, C, H, W) real images the
    restarts start from; ``info`` what is reported (explained variance, generator
    quality, ...).
    """

    kind: str
    amount: float
    shape: tuple[int, int, int]
    mean: torch.Tensor
    radius: float
    inits: torch.Tensor
    basis: torch.Tensor | None = None
    decoder: nn.Module | None = None
    encoder: nn.Module | None = None
    info: dict | None = None

    def image_param(self, batch: int, generator: torch.Generator, restart: int = 0) -> "ImageParam":
        """The parameterization of ``batch`` images, started from ``batch`` real images
        drawn with ``generator`` (a different draw for each restart)."""
        pick = torch.randint(len(self.inits), (batch,), generator=generator)
        start = self.inits[pick]
        if self.kind == "sphere":
            return SphereImage(self, start)
        if self.kind == "pca":
            return PCAImage(self, start)
        return LatentImage(self, start)


def _flat(images: torch.Tensor) -> torch.Tensor:
    return images.detach().float().flatten(1)


def pca(images: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean (D,), top-``k`` principal directions (k, D) and their standard deviations
    (k,) of (N, C, H, W) images."""
    x = _flat(images)
    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    std = s / math.sqrt(max(1, len(x) - 1))
    return mean, vt[:k], std[:k]


def fit_prior(kind: str, amount: float, images: torch.Tensor, *, seed: int = 0,
              cache_dir: str | Path | None = None, progress: bool = False) -> DataPrior:
    """Fit prior ``kind`` (sphere, pca, generator) with WEIGHT ``amount`` to dataset
    ``images`` (N, C, H, W) in [0, 1] at the model's input size. The generator is
    trained once per data and settings and cached (see :mod:`~featviz.vis.generator`)."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or len(images) < 2:
        raise SpecError(f"--reg {kind} needs dataset images to fit its prior",
                        "pass --dataset (or data=images to render)")
    images = images.detach().float().cpu()
    shape = tuple(images.shape[1:])
    x = _flat(images)
    mean = x.mean(0)
    if kind == "sphere":
        if not amount > 0:
            raise SpecError(f"--reg sphere:{amount:g}: the radius factor must be > 0")
        dist = (x - mean).norm(dim=1)
        radius = float(amount * dist.double().quantile(0.5))
        return DataPrior(kind, amount, shape, mean, radius, images,
                         info={"radius": radius, "median_distance": float(dist.double().quantile(0.5))})
    if kind == "pca":
        k = int(round(amount))
        if not 1 <= k <= min(x.shape):
            raise SpecError(f"--reg pca:{amount:g}: components must be 1..{min(x.shape)}")
        mean, vt, std = pca(images, k)
        total = (x - mean).pow(2).sum() / max(1, len(x) - 1)
        coef = ((x - mean) @ vt.T) / std.clamp_min(1e-12)
        radius = float(coef.norm(dim=1).double().quantile(BALL_QUANTILE))
        return DataPrior(kind, amount, shape, mean, radius, images, basis=std[:, None] * vt,
                         info={"components": k, "explained_variance": float(std.pow(2).sum() / total),
                               "radius": radius, "ball_quantile": BALL_QUANTILE})
    if kind == "generator":
        from .generator import chi2_quantile, load_or_train_vae

        latent = int(round(amount))
        if not 1 <= latent <= 256:
            raise SpecError(f"--reg generator:{amount:g}: latent dimensions must be 1..256")
        vae, info = load_or_train_vae(images, latent, seed=seed, cache_dir=cache_dir, progress=progress)
        radius = math.sqrt(chi2_quantile(latent, BALL_QUANTILE))
        return DataPrior(kind, amount, shape, mean, radius, images, decoder=vae.decoder, encoder=vae,
                         info=info | {"radius": radius, "ball_quantile": BALL_QUANTILE})
    raise SpecError(f"unknown prior {kind!r}", "use sphere, pca or generator")


class _PriorImage(ImageParam):
    """A prior's parameterization: ``forward()`` the clamped images, :meth:`project_`
    after every optimizer step."""

    def __init__(self, prior: DataPrior, batch: int):
        super().__init__(prior.shape, batch)
        self.prior = prior

    def pixels(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        return self.pixels().reshape(self.batch, *self.shape).clamp(0.0, 1.0)

    @torch.no_grad()
    def blur_(self, sigma: float) -> None:
        raise SpecError("blur does not combine with a data prior")


def _to_ball(v: torch.Tensor, radius: float, sphere: bool = False) -> torch.Tensor:
    norm = v.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return v * (radius / norm if sphere else (radius / norm).clamp(max=1.0))


class SphereImage(_PriorImage):
    """x = μ + r u/‖u‖: the ascent moves ``u`` (N, D), kept at norm 1.

    Its optimizer (:class:`SphereStep`) turns each ``u`` by ``lr`` radians along the
    gradient's tangent part: Adam's per-coordinate scaling bends the direction of
    ascent on a sphere and stalls short of the top eigenvector of a quadratic unit."""

    def __init__(self, prior: DataPrior, start: torch.Tensor):
        super().__init__(prior, len(start))
        self.register_buffer("mean", prior.mean.clone())
        self.direction = nn.Parameter(_to_ball(_flat(start) - prior.mean, 1.0, sphere=True))

    def pixels(self) -> torch.Tensor:
        return self.mean + self.prior.radius * self.direction

    def optimizer(self, lr: float) -> torch.optim.Optimizer:
        return SphereStep([self.direction], lr=lr)

    @torch.no_grad()
    def project_(self) -> None:
        self.direction.copy_(_to_ball(self.direction, 1.0, sphere=True))


class SphereStep(torch.optim.Optimizer):
    """Descent on the unit sphere, one row at a time: ``u ← u − lr · t/‖t‖`` with ``t`` the
    gradient's component tangent to the sphere at ``u`` (rows of a (N, D) parameter);
    :meth:`SphereImage.project_` renormalizes after the step."""

    def __init__(self, params, lr: float):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for u in group["params"]:
                if u.grad is None:
                    continue
                g = u.grad
                tangent = g - (g * u).sum(1, keepdim=True) * u
                u.sub_(group["lr"] * tangent / tangent.norm(dim=1, keepdim=True).clamp_min(1e-30))


class PCAImage(_PriorImage):
    """x = μ + c · (σₖ vₖ): the ascent moves the whitened coefficients ``c`` (N, K),
    kept in the ball ‖c‖ ≤ the data's 99th percentile."""

    def __init__(self, prior: DataPrior, start: torch.Tensor):
        super().__init__(prior, len(start))
        self.register_buffer("mean", prior.mean.clone())
        self.register_buffer("basis", prior.basis.clone())
        whitened = (_flat(start) - prior.mean) @ prior.basis.T / prior.basis.pow(2).sum(1)
        self.coefficients = nn.Parameter(_to_ball(whitened, prior.radius))

    def pixels(self) -> torch.Tensor:
        return self.mean + self.coefficients @ self.basis

    @torch.no_grad()
    def project_(self) -> None:
        self.coefficients.copy_(_to_ball(self.coefficients, self.prior.radius))


class LatentImage(_PriorImage):
    """x = decoder(z): the ascent moves the codes ``z`` (N, L), kept in the χ² ball."""

    def __init__(self, prior: DataPrior, start: torch.Tensor):
        super().__init__(prior, len(start))
        self.decoder = prior.decoder
        for p in self.decoder.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            code = prior.encoder.encode(_flat(start))[0]
        self.code = nn.Parameter(_to_ball(code, prior.radius))

    def pixels(self) -> torch.Tensor:
        return self.decoder(self.code)

    @torch.no_grad()
    def project_(self) -> None:
        self.code.copy_(_to_ball(self.code, self.prior.radius))


def prior_summary(prior: DataPrior | None) -> dict | None:
    """What metrics.json records about a fitted prior."""
    return None if prior is None else {"kind": prior.kind, "amount": prior.amount, **(prior.info or {})}


__all__ = ["BALL_QUANTILE", "DataPrior", "LatentImage", "PCAImage", "PRIOR_RESTARTS", "SphereImage", "fit_prior",
           "pca", "prior_summary"]
