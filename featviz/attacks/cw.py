"""Carlini & Wagner's L2 attack with a per-example binary search over the trade-off c."""

from __future__ import annotations

import math

import torch

from ..errors import SpecError
from .core import Attack, AttackResult, Bounds, objective, reached


class CarliniWagnerL2(Attack):
    """CW-L2: minimize ‖δ‖₂² + c·max(margin, -κ) over x' = box(tanh(w)), per example.

    The tanh change of variables keeps x' inside ``bounds`` without clipping. After each
    of ``search_steps`` rounds, c halves toward the last success or grows ×10 until one
    is found (a per-example binary search). The smallest successful perturbation seen
    is kept; ``eps`` is ignored (this is a minimal-perturbation attack).

    Defaults: ``steps=100`` Adam steps of ``lr=0.01`` per round, ``search_steps=5``,
    ``c_init=1``, ``kappa=0`` (confidence margin).
    """

    name, norm, minimal = "cw", "l2", True

    def __init__(self, steps: int = 100, search_steps: int = 5, c_init: float = 1.0, kappa: float = 0.0,
                 lr: float = 0.01, bounds: Bounds = (0.0, 1.0)):
        if not isinstance(steps, int) or steps < 1 or not isinstance(search_steps, int) or search_steps < 1:
            raise SpecError(f"CW needs steps >= 1 and search_steps >= 1, got {steps} and {search_steps}")
        for label, v in (("c_init", c_init), ("lr", lr)):
            if not (math.isfinite(v) and v > 0):
                raise SpecError(f"CW {label} must be a positive number, got {v!r}")
        if not (math.isfinite(kappa) and kappa >= 0):
            raise SpecError(f"CW kappa must be >= 0, got {kappa!r}")
        self.steps, self.search_steps, self.c_init, self.kappa, self.lr = steps, search_steps, c_init, kappa, lr
        self.restarts = 1
        self.bounds = (float(bounds[0]), float(bounds[1]))

    def describe(self) -> dict:
        return super().describe() | {"search_steps": self.search_steps, "c_init": self.c_init, "kappa": self.kappa}

    def _run(self, model, x, y, eps, target, gen, init) -> AttackResult:
        lo, hi = self.bounds
        n = len(x)
        unit = ((x - lo) / (hi - lo) * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6)
        w0 = torch.atanh(unit)
        c = torch.full((n,), self.c_init, device=x.device)
        c_lo, c_hi = torch.zeros_like(c), torch.full_like(c, math.inf)
        best_x, best_pred = x.clone(), y.clone()
        best_ok = torch.zeros(n, dtype=torch.bool, device=x.device)
        best_l2 = torch.full((n,), math.inf, device=x.device)
        for _ in range(self.search_steps):
            w = w0.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=self.lr)
            found = torch.zeros(n, dtype=torch.bool, device=x.device)
            for _ in range(self.steps):
                xa = lo + (hi - lo) * (torch.tanh(w) + 1) / 2
                logits = model(xa)
                l2sq = (xa - x).flatten(1).pow(2).sum(1)
                # objective() is "how far past the decision boundary"; CW penalizes its negative.
                hinge = (-objective(logits, y, target, "margin")).clamp_min(-self.kappa)
                opt.zero_grad(set_to_none=True)
                (l2sq + c * hinge).sum().backward()
                opt.step()
                with torch.no_grad():
                    pred = logits.argmax(1)
                    ok = reached(pred, y, target)
                    l2 = l2sq.sqrt()
                    better = ok & (l2 < best_l2)
                    found |= ok
                    best_x[better], best_pred[better] = xa.detach()[better], pred[better]
                    best_l2[better], best_ok[better] = l2[better], True
            # Binary search: success -> try a smaller c; failure -> larger (×10 until bracketed).
            c_hi = torch.where(found, torch.minimum(c_hi, c), c_hi)
            c_lo = torch.where(found, c_lo, torch.maximum(c_lo, c))
            c = torch.where(torch.isfinite(c_hi), (c_lo + c_hi) / 2, c * 10)
        norm = (best_x - x).flatten(1).norm(dim=1)
        return AttackResult(best_x, best_ok, best_pred, norm, extra={"c": c_hi})
