"""Attacks by name, as the command line and the training recipes ask for them."""

from __future__ import annotations

from ..errors import SpecError
from .core import Attack, fgsm, pgd, pgd_l2
from .cw import CarliniWagnerL2
from .deepfool import DeepFool

ATTACKS = ("fgsm", "pgd", "pgd-l2", "cw", "deepfool")
# Default sweeps per norm: L∞ 0..0.3 covers digits from clean to broken; an L2 ball of
# radius r holds L∞ perturbations of size r/√d, so 0..3 spans the same range at 16×16.
DEFAULT_SWEEP = {"linf": "0:0.3:8", "l2": "0:3:8"}


def make_attack(name: str, *, steps: int | None = None, restarts: int = 1, step_size: float | None = None,
                loss: str = "ce", random_start: bool | None = None) -> Attack:
    """Build an attack by name with the usual defaults.

    ``fgsm`` (1 step of ε), ``pgd`` / ``pgd-l2`` (20 steps of 2.5·ε/steps, random start),
    ``cw`` (5 binary-search rounds × ``steps`` = 100 Adam steps), ``deepfool`` (≤ 50 steps).
    ``restarts``, ``step_size``, ``loss`` and ``random_start`` apply to the gradient attacks.
    """
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise SpecError(f"--steps must be a positive integer, got {steps!r}")
    gradient = {"restarts": restarts, "step_size": step_size, "loss": loss}
    if random_start is not None:
        gradient["random_start"] = random_start
    if name == "fgsm":
        if steps not in (None, 1):
            raise SpecError(f"fgsm takes exactly one step, got --steps {steps}", "use --attack pgd for more steps")
        return fgsm(**gradient)
    if name == "pgd":
        return pgd(steps or 20, **gradient)
    if name == "pgd-l2":
        return pgd_l2(steps or 20, **gradient)
    if restarts != 1:
        raise SpecError(f"--restarts applies to gradient attacks, not {name}")
    if name == "cw":
        return CarliniWagnerL2(steps=steps or 100)
    if name == "deepfool":
        return DeepFool(steps=steps or 50)
    raise SpecError(f"unknown attack {name!r}", f"use one of {', '.join(ATTACKS)}")
