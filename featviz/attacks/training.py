"""Adversaries for adversarial training (``featviz train --adv fgsm|pgd --eps E``)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..errors import SpecError
from .core import fgsm, pgd
from .model import AtDepth
from .specs import REGISTRY, TRAINING_ATTACKS

ADV_ATTACKS = TRAINING_ATTACKS


def check_adv(adv: dict[str, Any]) -> dict[str, Any]:
    """Validate and complete an ``adv`` spec: ``{"attack": "fgsm"|"pgd", "eps": E, "steps": N}``.

    ``steps`` defaults to 5 for PGD (1 for FGSM); ε must lie in (0, 1] (inputs are [0, 1]
    images, L∞). Returns the completed dict, which is what the model card records.
    """
    if not isinstance(adv, dict):
        raise SpecError(f"adversarial training spec must be a dict, got {type(adv).__name__}")
    attack = adv.get("attack")
    if attack not in ADV_ATTACKS:
        raise SpecError(f"--adv {attack!r} is not supported", f"use one of {', '.join(ADV_ATTACKS)}")
    eps = adv.get("eps")
    if not isinstance(eps, (int, float)) or not math.isfinite(eps) or not 0 < eps <= 1:
        raise SpecError(f"--eps must be in (0, 1] for adversarial training, got {eps!r}", "e.g. --adv pgd --eps 0.1")
    steps = adv.get("steps") or REGISTRY[attack].train_steps
    if not isinstance(steps, int) or steps < 1 or (attack == "fgsm" and steps != 1):
        raise SpecError(f"--adv-steps must be a positive integer (1 for fgsm), got {steps!r}")
    return {**adv, "attack": attack, "eps": float(eps), "steps": steps, "norm": "linf",
            "random_start": attack == "pgd", "rel_step": 1.0 if attack == "fgsm" else 2.5 / steps}


def _stage_depth(model: nn.Module) -> int | None:
    """How deep the current training stage runs: the last readout that is learning.

    The training loop's adversary receives only (model, x, y); a layerwise stage ℓ
    trains readouts 1..ℓ and must be attacked through the network it optimizes, not
    through the untrained blocks above it.
    """
    readouts = getattr(model, "readouts", None)
    if readouts is None:
        return None
    learning = [i + 1 for i, r in enumerate(readouts) if any(p.requires_grad for p in r.parameters())]
    return max(learning) if learning and max(learning) < len(readouts) else None


class TrainingAdversary:
    """An adversary ``(model, x, y) -> x_adv`` for :func:`featviz.train.train_model`.

    FGSM: one step of ε from x. PGD: random start and ``steps`` steps of 2.5·ε/steps,
    L∞, last iterate (no early stop: every example gets the full attack). Random starts
    come from a generator seeded with ``seed``; its state is part of a resumable
    checkpoint (``get_state``/``set_state``), so an interrupted adversarial run resumes
    bit-identically. The model's modes and parameters are left as they were (the attack
    itself runs in eval mode).
    """

    def __init__(self, adv: dict[str, Any], seed: int = 0):
        self.spec = check_adv(adv)
        self.attack = (fgsm(keep_best=False, early_stop=False) if self.spec["attack"] == "fgsm"
                       else pgd(self.spec["steps"], keep_best=False, early_stop=False))
        self.seed = int(seed)
        self.gen: torch.Generator | None = None  # created on first use, on the batch's device
        self._pending: torch.Tensor | None = None

    def _generator(self, device: torch.device) -> torch.Generator:
        if self.gen is None:
            self.gen = torch.Generator(device=device)
            self.gen.manual_seed(self.seed)
            if self._pending is not None:
                self.gen.set_state(self._pending)
        return self.gen

    def get_state(self) -> torch.Tensor | None:
        """The random generator's state (None before the first batch)."""
        return None if self.gen is None else self.gen.get_state()

    def set_state(self, state: torch.Tensor | None) -> None:
        """Continue from :meth:`get_state` (applied when the generator is created)."""
        self._pending = state
        if self.gen is not None and state is not None:
            self.gen.set_state(state)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gen = self._generator(x.device)
        depth = _stage_depth(model)
        target = model if depth is None else AtDepth(model, depth)
        return self.attack(target, x, y, self.spec["eps"], gen=gen).x_adv.detach()


def training_adversary(adv: dict[str, Any], seed: int = 0) -> TrainingAdversary:
    """The adversary for ``featviz train --adv``; see :class:`TrainingAdversary`."""
    return TrainingAdversary(adv, seed)
