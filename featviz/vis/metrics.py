"""Image metrics that tell a noise pattern from an image.

- :func:`hf_ratio`: share of spectral energy above half the Nyquist frequency.
- :func:`total_variation`: mean absolute difference of neighbouring pixels.
- :func:`shift_stability`: how much of its activation an image keeps when moved by
  one pixel (pixel-aligned noise loses it; a structure a unit responds to does not).
"""

from __future__ import annotations

from typing import Callable

import torch

from .hooks import ActivationCapture, Preprocess
from .objectives import Objective
from .param import spectrum_frequencies
from .transforms import translate


def hf_ratio(images: torch.Tensor, cutoff: float = 0.25) -> torch.Tensor:
    """Per image: spectral energy at radial frequency > ``cutoff`` cycles/pixel (default
    half the Nyquist frequency, 0.5) divided by the total, after removing each
    channel's mean. (N, C, H, W) -> (N,), in [0, 1]; 0 for a constant image."""
    x = images.detach().float()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.rfft2(x, norm="ortho").abs().pow(2)
    # rfft2 stores the columns 1..W/2-1 once for two conjugate halves: count them twice.
    w = x.shape[-1]
    weight = torch.full((power.shape[-1],), 2.0)
    weight[0] = 1.0
    if w % 2 == 0:
        weight[-1] = 1.0
    power = power * weight.to(power.device)
    high = spectrum_frequencies(*x.shape[-2:]).to(power.device) > cutoff
    total = power.sum(dim=(1, 2, 3))
    return torch.where(total > 0, (power * high).sum(dim=(1, 2, 3)) / total.clamp_min(1e-30),
                       torch.zeros_like(total))


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Per image: mean |vertical difference| + mean |horizontal difference| over all
    channels. (N, C, H, W) -> (N,); 0 for a constant image, 2 for a 1-pixel checkerboard
    of 0 and 1 (1 per direction)."""
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(dim=1)
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(dim=1)
    return dy + dx


ONE_PIXEL_SHIFTS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


@torch.no_grad()
def objective_scores(model: torch.nn.Module, objective: Objective, images: torch.Tensor,
                     preprocess: Preprocess | None = None) -> torch.Tensor:
    """``objective`` on ``images`` (N, C, H, W) without gradients: (N,). The model's
    train/eval mode is left as the caller set it."""
    with ActivationCapture(model, objective.modules, preprocess) as cap:
        return objective(cap.run(images)).float()


@torch.no_grad()
def shift_stability(model: torch.nn.Module, objective: Objective, images: torch.Tensor,
                    preprocess: Preprocess | None = None,
                    scores: Callable[[torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """Mean objective over the 8 one-pixel shifts of each image (edges repeated),
    divided by the image's own objective: (N,). About 1 for a pattern the unit
    responds to wherever it sits; low (or negative) for noise tuned pixel by pixel.
    NaN where the image's own score is not positive (the ratio means nothing there)."""
    score = scores or (lambda x: objective_scores(model, objective, x, preprocess))
    own = score(images)
    shifted = torch.stack([score(translate(images, dy, dx)) for dy, dx in ONE_PIXEL_SHIFTS]).mean(dim=0)
    return torch.where(own > 0, shifted / own.clamp_min(1e-30), torch.full_like(own, float("nan")))


__all__ = ["ONE_PIXEL_SHIFTS", "hf_ratio", "objective_scores", "shift_stability", "total_variation"]
