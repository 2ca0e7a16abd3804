"""Image parameterizations: ``nn.Module``s whose ``forward()`` returns the images.

Gradient ascent moves the parameters, not the pixels. What those parameters are
decides which images are easy to reach:

- :class:`PixelImage`: one free logit per pixel and channel. Every pixel moves
  independently, so the steepest direction is usually high-frequency noise.
- :class:`FourierImage`: the image's 2-D spectrum, each frequency scaled by
  ``1 / f**decay``. Equal steps on every coefficient then change low frequencies
  more than high ones, which matches the ~1/f spectrum of natural images and
  makes ascent favour smooth structure.

Both squash with a sigmoid into [0, 1] (the range every featviz model takes) after
an optional colour decorrelation: a (C, C) matrix mapping decorrelated channels to
actual ones, estimated from data (:func:`color_decorrelation`), so that a step
moves the image along the dataset's natural colour axes. It works for any number of
channels; for one channel it is a no-op.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PARAMS = ("pixel", "fft")


def color_decorrelation(images: torch.Tensor) -> torch.Tensor:
    """(C, C) square root of the channel covariance of (N, C, H, W) images, scaled so
    its largest column has norm 1 (so it reshapes, but does not enlarge, a step)."""
    x = images.detach().float().transpose(0, 1).reshape(images.shape[1], -1)
    cov = torch.cov(x) if x.shape[0] > 1 else x.var().reshape(1, 1)
    evals, evecs = torch.linalg.eigh(cov.reshape(x.shape[0], x.shape[0]))
    root = evecs @ torch.diag(evals.clamp_min(1e-8).sqrt()) @ evecs.T
    return root / root.norm(dim=0).max()


class ImageParam(nn.Module):
    """Base class: ``forward() -> (N, C, H, W)`` images in [0, 1].

    Subclasses give the pre-sigmoid, pre-colour ``latent()`` (N, C, H, W) and an
    in-place :meth:`blur_`.
    """

    def __init__(self, shape: Sequence[int], batch: int, decorrelation: torch.Tensor | None = None):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.batch = int(batch)
        channels = self.shape[0]
        if decorrelation is not None and tuple(decorrelation.shape) != (channels, channels):
            raise ValueError(f"decorrelation must be ({channels}, {channels}), got {tuple(decorrelation.shape)}")
        self.register_buffer("decorrelation", None if decorrelation is None else decorrelation.float().clone())

    def latent(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        z = self.latent()
        if self.decorrelation is not None:
            z = torch.einsum("cd,ndhw->nchw", self.decorrelation, z)
        return torch.sigmoid(z)

    @torch.no_grad()
    def blur_(self, sigma: float) -> None:
        """Gaussian-blur the latent image in place (``sigma`` in pixels)."""
        raise NotImplementedError


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """1-D normalized Gaussian taps, radius ceil(3 sigma)."""
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) images, reflecting at the borders."""
    if sigma <= 0:
        return images
    k = gaussian_kernel(sigma).to(images)
    c = images.shape[1]
    r = len(k) // 2
    out = images
    for kernel, padding in ((k.view(1, 1, -1, 1), (0, 0, r, r)), (k.view(1, 1, 1, -1), (r, r, 0, 0))):
        mode = "reflect" if min(images.shape[-2:]) > r else "replicate"
        out = F.conv2d(F.pad(out, padding, mode=mode), kernel.expand(c, 1, *kernel.shape[2:]), groups=c)
    return out


class PixelImage(ImageParam):
    """One logit per pixel: ``image = sigmoid(colour(z))``, z ~ N(0, init_std²) at start
    (a mid-grey image)."""

    def __init__(self, shape: Sequence[int], batch: int = 1, *, generator: torch.Generator | None = None,
                 init_std: float = 0.01, decorrelation: torch.Tensor | None = None):
        super().__init__(shape, batch, decorrelation)
        self.pixels = nn.Parameter(init_std * torch.randn((self.batch, *self.shape), generator=generator))

    def latent(self) -> torch.Tensor:
        return self.pixels

    @torch.no_grad()
    def blur_(self, sigma: float) -> None:
        self.pixels.copy_(gaussian_blur(self.pixels, sigma))


def spectrum_frequencies(h: int, w: int) -> torch.Tensor:
    """Radial frequency (cycles per pixel) of each coefficient of ``rfft2`` on h×w: (h, w//2+1)."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fy * fy + fx * fx)


class FourierImage(ImageParam):
    """Spectral parameterization: ``latent = irfft2(coefficients · 1/f^decay)``.

    ``coefficients`` (N, C, H, W//2+1, 2) are real/imaginary parts. The 1/f weights
    are floored at f = 1/max(H, W) (the lowest non-zero frequency, which the mean also
    gets) and rescaled to unit root-mean-square, so that one Adam step moves the image
    by about as much as one step of :class:`PixelImage`: same learning rate, same
    budget, different direction.
    """

    def __init__(self, shape: Sequence[int], batch: int = 1, *, generator: torch.Generator | None = None,
                 init_std: float = 0.01, decay: float = 1.0, decorrelation: torch.Tensor | None = None):
        super().__init__(shape, batch, decorrelation)
        _, h, w = self.shape
        freqs = spectrum_frequencies(h, w)
        weights = 1.0 / freqs.clamp_min(1.0 / max(h, w)) ** decay
        self.register_buffer("freqs", freqs)
        self.register_buffer("weights", weights / weights.pow(2).mean().sqrt())
        self.coefficients = nn.Parameter(
            init_std * torch.randn((self.batch, *self.shape[:1], h, w // 2 + 1, 2), generator=generator))

    def latent(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.coefficients) * self.weights
        return torch.fft.irfft2(spectrum, s=self.shape[1:], norm="ortho")

    @torch.no_grad()
    def blur_(self, sigma: float) -> None:
        # A Gaussian blur multiplies the spectrum by the Gaussian's transfer function.
        self.coefficients.mul_(torch.exp(-2 * math.pi ** 2 * sigma ** 2 * self.freqs ** 2)[..., None])


def image_param(kind: str, shape: Sequence[int], batch: int = 1, *, generator: torch.Generator | None = None,
                init_std: float = 0.01, decay: float = 1.0, decorrelation: torch.Tensor | None = None) -> ImageParam:
    """Build a ``"pixel"`` or ``"fft"`` parameterization of ``batch`` images of
    ``shape`` = (C, H, W); parameters are drawn on the CPU from ``generator``."""
    if kind == "pixel":
        return PixelImage(shape, batch, generator=generator, init_std=init_std, decorrelation=decorrelation)
    if kind == "fft":
        return FourierImage(shape, batch, generator=generator, init_std=init_std, decay=decay,
                            decorrelation=decorrelation)
    raise ValueError(f"unknown parameterization {kind!r}; use one of {', '.join(PARAMS)}")


__all__ = ["FourierImage", "ImageParam", "PARAMS", "PixelImage", "color_decorrelation", "gaussian_blur",
           "image_param", "spectrum_frequencies"]
