"""Warnings that an evaluation may be measuring gradient masking, not robustness.

Each flag is ``{"name", "message"}``; an empty list means none of these signs was seen.

- ``black-box beats white-box``: a score-based attack (Square) broke examples that the
  gradient attacks could not (more than ``tolerance`` of the examples), so the gradients
  the white-box attacks follow do not describe the model;
- ``vanishing input gradients``: the gradient of the logit margin with respect to the input
  is zero, tiny or not finite for some examples;
- ``random outputs``: two identical forward passes (in eval mode) disagree, e.g. dropout
  that stays on, so every attack aims at a moving target;
- ``probability outputs``: rows are non-negative and sum to 1, i.e. the model ends in a
  softmax and the attacks' losses (written for logits) saturate;
- ``check failed: ...``: one of the sanity checks of Carlini et al. (``--check``) failed.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .model import attack_mode

GRAD_FLOOR = 1e-10


def _flag(name: str, message: str) -> dict[str, str]:
    return {"name": name, "message": message}


def model_flags(model: nn.Module, x: torch.Tensor, y: torch.Tensor, tolerance: float = 0.01) -> list[dict[str, str]]:
    """The flags that need only the model and a few examples ``x`` (N, ...) with labels ``y``."""
    flags = []
    with attack_mode(model):
        with torch.no_grad():
            a, b = model(x), model(x)
        if not torch.equal(a, b):
            diff = float((a - b).abs().max())
            flags.append(_flag("random outputs", f"two identical forward passes differ by up to {diff:.3g} "
                                                 "(randomness left on at evaluation, e.g. dropout): attacks and "
                                                 "accuracy describe a moving target"))
        if bool((a >= 0).all()) and bool(((a.sum(1) - 1).abs() < 1e-3).all()):
            flags.append(_flag("probability outputs", "outputs are non-negative and every row sums to 1 (a softmax "
                                                      "head): losses written for logits saturate; attack the logits"))
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        own = out.gather(1, y[:, None]).squeeze(1)
        other = out.scatter(1, y[:, None], float("-inf")).amax(1)
        grad, = torch.autograd.grad((other - own).sum(), xg)
    size = grad.flatten(1).abs().amax(1)
    bad = ~torch.isfinite(size) | (size < GRAD_FLOOR)
    if float(bad.float().mean()) > tolerance:
        flags.append(_flag("vanishing input gradients", f"the logit margin's input gradient is zero, below "
                                                        f"{GRAD_FLOOR:g} or not finite for {float(bad.float().mean()):.1%} "
                                                        "of the examples: gradient attacks cannot move them"))
    return flags


def report_flags(attacks: Sequence[Any], tolerance: float = 0.01) -> list[dict[str, str]]:
    """``black-box beats white-box`` from the attack reports (:class:`~featviz.attacks.AttackReport`)."""
    flags = []
    for rep in attacks:
        parts = rep.attack.get("components") or []
        if rep.component is None:
            continue
        for i, part in enumerate(parts):
            if part.get("queries") is None:
                continue
            for j, e in enumerate(rep.eps):
                broken = float((rep.component[:, j] == i).float().mean())
                if broken > tolerance:
                    flags.append(_flag("black-box beats white-box",
                                       f"{rep.attack['attack']}: {part['attack']} broke {broken:.1%} of the examples "
                                       f"the gradient attacks left standing at ε={e:g}"))
                    break
    white = [r for r in attacks if "queries" not in r.attack and r.component is None]
    for rep in attacks:
        if "queries" not in rep.attack:
            continue
        for other in white:
            if other.attack["norm"] != rep.attack["norm"]:
                continue
            acc_b, acc_w = rep.robust_accuracy(), other.robust_accuracy()
            for j, e in enumerate(rep.eps):
                if e in other.eps and acc_b[j] < acc_w[other.eps.index(e)] - tolerance:
                    flags.append(_flag("black-box beats white-box",
                                       f"{rep.attack['attack']} {acc_b[j]:.3f} < {other.attack['attack']} "
                                       f"{acc_w[other.eps.index(e)]:.3f} at ε={e:g}"))
                    break
    return flags


def masking_flags(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[Any] = (),
                  checks: Sequence[dict[str, Any]] | None = None, tolerance: float = 0.01) -> list[dict[str, str]]:
    """All flags for one model: the model's own, the reports', and failed ``--check`` checks."""
    flags = model_flags(model, x, y, tolerance) + report_flags(attacks, tolerance)
    for c in checks or []:
        if not c["passed"]:
            flags.append(_flag(f"check failed: {c['name']}", c["detail"]))
    return flags
