"""Random image transforms for transformation robustness, one draw per image.

Each factory returns a function ``(images (N, C, H, W), generator) -> images``. Every
image of the batch gets its own random offset / scale / angle from the seeded CPU
``torch.Generator`` (a batch that shared one draw would just be one image rendered N
times with the same jitter). Draws are made on the CPU whatever the device, so a seed
gives the same transforms everywhere.

Sizes are in pixels of the image being rendered: the lucid recipe was designed for
~128-224 px images, so :func:`standard` scales it to the actual size (a 16-pixel
jitter would throw a 16×16 image out of the frame).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def warp(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Apply a per-image affine map (N, 2, 3) in normalized coordinates (output ->
    input, as :func:`torch.nn.functional.affine_grid`); outside pixels repeat the border."""
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def translate(images: torch.Tensor, dy: torch.Tensor | float, dx: torch.Tensor | float) -> torch.Tensor:
    """Shift image i by (dy[i], dx[i]) pixels (content moves down/right for positive
    values); integer shifts are exact copies, the uncovered border repeats the edge."""
    n, _, h, w = images.shape
    dy = torch.as_tensor(dy, dtype=torch.float32).expand(n)
    dx = torch.as_tensor(dx, dtype=torch.float32).expand(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * dx / w
    theta[:, 1, 2] = -2.0 * dy / h
    return warp(images, theta)


def pad(width: int, fill: float = 0.5) -> Transform:
    """Surround the image with ``width`` pixels of constant ``fill``: later shifts then
    move the image against a neutral background instead of repeating its own edge,
    and the edge pixels are treated like the others."""

    def fn(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return F.pad(images, (width,) * 4, mode="constant", value=fill) if width > 0 else images

    return fn


def jitter(pixels: int) -> Transform:
    """Shift each image by its own random integer offset in [-pixels, pixels] on both axes."""

    def fn(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        dy = torch.randint(-pixels, pixels + 1, (n,), generator=gen).float()
        dx = torch.randint(-pixels, pixels + 1, (n,), generator=gen).float()
        return translate(images, dy, dx)

    return fn


def _rotation_scale(images: torch.Tensor, angles: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Rotate by ``angles`` (radians) and zoom by ``scales`` about the centre, per image."""
    n, _, h, w = images.shape
    cos, sin = torch.cos(angles) / scales, torch.sin(angles) / scales
    theta = torch.zeros(n, 2, 3)
    # Normalized coordinates stretch x and y differently for non-square images;
    # the h/w factors make it a true rotation in pixel space.
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    return warp(images, theta)


def scale(amount: float) -> Transform:
    """Zoom each image by its own factor drawn uniformly from [1 - amount, 1 + amount]."""

    def fn(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        return _rotation_scale(images, torch.zeros(n), _uniform(n, 1.0 - amount, 1.0 + amount, gen))

    return fn


def rotate(degrees: float) -> Transform:
    """Rotate each image by its own angle drawn uniformly from [-degrees, degrees]."""

    def fn(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n = images.shape[0]
        angles = _uniform(n, -degrees, degrees, gen) * (math.pi / 180.0)
        return _rotation_scale(images, angles, torch.ones(n))

    return fn


def fit(images: torch.Tensor, size: tuple[int, int], fill: float = 0.5) -> torch.Tensor:
    """Centre-crop (or pad with ``fill``) (N, C, H, W) images to ``size`` = (H', W'):
    padding grows the canvas, but the model takes the size it was built for."""
    h, w = images.shape[-2:]
    th, tw = size
    if h < th or w < tw:
        py, px = max(0, th - h), max(0, tw - w)
        images = F.pad(images, (px // 2, px - px // 2, py // 2, py - py // 2), value=fill)
        h, w = images.shape[-2:]
    top, left = (h - th) // 2, (w - tw) // 2
    return images[..., top:top + th, left:left + tw]


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order."""

    def fn(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for t in transforms:
            images = t(images, gen)
        return images

    return fn


def standard_sizes(size: int) -> dict[str, float]:
    """The lucid recipe (pad 12, jitter 8, scale ±10%, rotate ±10°, jitter 4 at
    ~128 px) scaled to a ``size``-pixel image: pixel amounts shrink with the image,
    at least 1 pixel; scale and angle are size-free."""
    ratio = size / 128.0
    return {"pad": max(1, round(12 * ratio)), "jitter": max(1, round(8 * ratio)), "scale": 0.1,
            "rotate": 10.0, "jitter_late": max(1, round(4 * ratio))}


__all__ = ["Transform", "compose", "fit", "jitter", "pad", "rotate", "scale", "standard_sizes", "translate", "warp"]
