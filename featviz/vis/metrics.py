"""Image metrics that tell a noise pattern from an image.

- :func:`hf_ratio`: share of spectral energy above half the Nyquist frequency.
- :func:`total_variation`: mean absolute difference of neighbouring pixels.
- :func:`shift_stability`: how much of its activation an image keeps when moved by
  one pixel (pixel-aligned noise loses it; a structure a unit responds to does not).

Numbers alone overclaim, so three guards go with them:

- :func:`data_baseline`: the median hf_ratio and TV of the dataset's own images at
  the model's input size (a render is compared with what real inputs look like:
  8×8 digits upsampled to 16×16 score hf_ratio ≈ 0.03, white noise ≈ 0.8);
- :func:`white_noise_baseline` and :func:`noise_index`: the same medians for uniform
  white noise at the model's input size, and where a render lies between the two:
  ``(hf − hf_data) / (hf_white − hf_data)``, 0 = like the data, 1 = like white noise
  (the hf_ratio of the data alone mostly measures its resizing: 8×8 digits at their
  native size score ≈ 0.35, upsampled to 16×16 ≈ 0.02; so the index is measured
  where the model looks, between two references that went through the same size);
- :func:`is_flat`: an image whose TV is below :data:`FLAT_FRACTION` of the data's
  median TV (or below :data:`FLAT_TV_ABSOLUTE` without data) is nearly uniform; its
  spectrum is the spectrum of tiny ripples, so its hf_ratio is not scored;
- :func:`is_converged`: an activation that still moves by more than
  :data:`CONVERGENCE_TOLERANCE` when the optimization goes on (the check's
  continuation, :func:`~featviz.vis.render.check_steps`) has not converged.
"""

from __future__ import annotations

import math
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


# An image is flat when its TV is below this fraction of the data's median TV ...
FLAT_FRACTION = 0.1
# ... or, when there is no data to compare with, below this absolute TV (images in [0, 1]).
FLAT_TV_ABSOLUTE = 0.01
# A render converged when the check's continuation changes its activation by at most this fraction.
CONVERGENCE_TOLERANCE = 0.01
# The baseline is the median over at most this many dataset images (the first ones).
BASELINE_MAX_IMAGES = 4096


def data_baseline(images: torch.Tensor | None, reason: str | None = None, *, shape=None,
                  native: torch.Tensor | None = None) -> dict:
    """``{"hf_ratio", "tv", "n", "white_noise", "native"}``: medians of :func:`hf_ratio` and
    :func:`total_variation` over the first :data:`BASELINE_MAX_IMAGES` of ``images``
    (N, C, H, W) in [0, 1], which must already be at the model's input size (resized as
    the model's data is); ``white_noise`` the same for white noise at that size
    (:func:`white_noise_baseline`; needs ``images`` or ``shape``); ``native`` the same for
    the data at its native resolution when given (``{"hf_ratio", "tv", "n", "size"}``).
    Without images: the data's medians are ``None`` and ``reason`` says why."""
    ok = isinstance(images, torch.Tensor) and images.dim() == 4 and len(images) > 0
    shape = tuple(images.shape[1:]) if ok else shape
    white = white_noise_baseline(shape) if shape is not None else None
    if not ok:
        return {"hf_ratio": None, "tv": None, "n": 0, "reason": reason or "no dataset images to compare with",
                "white_noise": white, "native": None}
    out = _medians(images) | {"white_noise": white, "native": None}
    if isinstance(native, torch.Tensor) and native.dim() == 4 and len(native):
        out["native"] = _medians(native) | {"size": list(native.shape[-2:])}
    return out


def _medians(images: torch.Tensor) -> dict:
    x = images[:BASELINE_MAX_IMAGES].detach().float().cpu()
    # quantile(0.5) averages the two middle values of an even count (torch.median takes the lower one)
    return {"hf_ratio": float(hf_ratio(x).double().quantile(0.5)),
            "tv": float(total_variation(x).double().quantile(0.5)), "n": len(x)}


# White noise: the median over this many uniform-noise images, drawn from this seed.
WHITE_NOISE_IMAGES = 1024
WHITE_NOISE_SEED = 0
# Noise-index bands the gallery colours by: at most LIKE_DATA is "like the data",
# at least NOISY is "noise-like", between is "in between".
NOISE_INDEX_LIKE_DATA = 0.1
NOISE_INDEX_NOISY = 0.5


def white_noise_baseline(shape, n: int = WHITE_NOISE_IMAGES, seed: int = WHITE_NOISE_SEED) -> dict:
    """``{"hf_ratio", "tv", "n"}``: medians over ``n`` images of independent uniform [0, 1]
    pixels of ``shape`` (C, H, W), the model's input size (16×16: hf_ratio ≈ 0.81)."""
    from ..devices import generator

    gen, hf, tv = generator(seed), [], []
    for start in range(0, n, 32):  # in chunks: 1,024 images of a large input would not fit at once
        x = torch.rand((min(32, n - start), *[int(s) for s in shape]), generator=gen)
        hf.append(hf_ratio(x))
        tv.append(total_variation(x))
    return {"hf_ratio": float(torch.cat(hf).double().quantile(0.5)),
            "tv": float(torch.cat(tv).double().quantile(0.5)), "n": n}


def noise_index(hf: float | None, baseline: dict | None) -> float | None:
    """``(hf − data) / (white − data)`` with the data's and white noise's median hf_ratio
    from ``baseline`` (``hf_ratio`` and ``white_noise.hf_ratio``); None when either is
    missing or ``hf`` is None (a flat image)."""
    base = baseline or {}
    data, white = base.get("hf_ratio"), (base.get("white_noise") or {}).get("hf_ratio")
    if hf is None or data is None or white is None or white <= data:
        return None
    return (hf - data) / (white - data)


def noise_band(index: float | None) -> str:
    """``like-data`` / ``between`` / ``noisy`` / ``unknown`` by the thresholds above."""
    if index is None:
        return "unknown"
    return "like-data" if index <= NOISE_INDEX_LIKE_DATA else "noisy" if index >= NOISE_INDEX_NOISY else "between"


def flat_threshold(baseline: dict | None) -> float:
    """The TV below which an image counts as flat: :data:`FLAT_FRACTION` × the data's
    median TV, or :data:`FLAT_TV_ABSOLUTE` when there is no baseline."""
    tv = (baseline or {}).get("tv")
    return FLAT_FRACTION * tv if tv else FLAT_TV_ABSOLUTE


def is_flat(tv: float, baseline: dict | None) -> bool:
    """Whether an image of total variation ``tv`` is nearly uniform (see :func:`flat_threshold`)."""
    return tv < flat_threshold(baseline)


def is_converged(activation: float, continued: float, tolerance: float = CONVERGENCE_TOLERANCE) -> bool:
    """Whether ``continued`` (the activation the convergence check reached) is within
    ``tolerance`` × |activation| of ``activation``; never for non-finite values."""
    if not (math.isfinite(activation) and math.isfinite(continued)):
        return False
    return abs(continued - activation) <= tolerance * abs(activation)


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


__all__ = ["BASELINE_MAX_IMAGES", "CONVERGENCE_TOLERANCE", "FLAT_FRACTION", "FLAT_TV_ABSOLUTE", "NOISE_INDEX_LIKE_DATA",
           "NOISE_INDEX_NOISY", "ONE_PIXEL_SHIFTS", "WHITE_NOISE_IMAGES", "data_baseline", "flat_threshold", "hf_ratio",
           "is_converged", "is_flat", "noise_band", "noise_index", "objective_scores", "shift_stability",
           "total_variation", "white_noise_baseline"]
