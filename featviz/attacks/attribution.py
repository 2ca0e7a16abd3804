"""Attributions (captum) of clean and adversarial inputs, for the same examples."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import SpecError
from .model import attack_mode

METHODS = ("ig", "saliency")


def attribute(model: nn.Module, x: torch.Tensor, target: torch.Tensor, method: str = "ig",
              ig_steps: int = 32) -> torch.Tensor:
    """Attribution maps (N, C, H, W) of the logit ``target`` (N,) for inputs ``x`` (N, C, H, W).

    ``ig``: Integrated Gradients from a black (all-zero) baseline with ``ig_steps``
    (default 32) Riemann steps; ``saliency``: |∂logit/∂x|. The model's modes and
    parameters are left as they were.
    """
    from captum.attr import IntegratedGradients, Saliency

    if method not in METHODS:
        raise SpecError(f"unknown attribution method {method!r}", f"use one of {', '.join(METHODS)}")
    with attack_mode(model):
        x = x.detach().clone()
        if method == "ig":
            return IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target,
                                                        n_steps=ig_steps).detach()
        return Saliency(model).attribute(x, target=target, abs=True).detach()


def clean_vs_adversarial(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, pred: torch.Tensor,
                         pred_adv: torch.Tensor, method: str = "ig") -> tuple[torch.Tensor, torch.Tensor]:
    """Attributions of each input for the class the model predicts on it: why it says
    ``pred`` on the clean image and ``pred_adv`` on the adversarial one. Both (N, C, H, W)."""
    return attribute(model, x, pred, method), attribute(model, x_adv, pred_adv, method)
