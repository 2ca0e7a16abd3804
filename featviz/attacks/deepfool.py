"""DeepFool (Moosavi-Dezfooli et al.), batched: every example steps toward its nearest
linearized decision boundary; examples leave the batch once fooled."""

from __future__ import annotations

import math

import torch

from ..errors import SpecError
from .core import GEOMETRIES, Attack, AttackResult, Bounds, _per_example, reached


class DeepFool(Attack):
    """Minimal-perturbation attack for ``norm`` ``"l2"`` (default) or ``"linf"``.

    Each iteration linearizes the logits around the current point and moves to the
    closest boundary among the candidate classes (all other classes, or only the target
    when targeted): r = (|f_k| + 1e-4) / ‖w_k‖_q · dual direction, q the dual norm. The
    accumulated perturbation is applied with ``overshoot`` (default 0.02) and clipped
    to ``bounds``. ``steps`` (default 50) caps the iterations; ``eps`` is ignored.
    """

    name, minimal = "deepfool", True

    def __init__(self, steps: int = 50, overshoot: float = 0.02, norm: str = "l2", bounds: Bounds = (0.0, 1.0)):
        if not isinstance(steps, int) or steps < 1:
            raise SpecError(f"DeepFool needs steps >= 1, got {steps!r}")
        if not (math.isfinite(overshoot) and overshoot >= 0):
            raise SpecError(f"DeepFool overshoot must be >= 0, got {overshoot!r}")
        if norm not in GEOMETRIES:
            raise SpecError(f"unknown norm {norm!r}", f"use one of {', '.join(GEOMETRIES)}")
        self.steps, self.overshoot, self.norm, self.restarts = steps, overshoot, norm, 1
        self.bounds = (float(bounds[0]), float(bounds[1]))

    def describe(self) -> dict:
        return super().describe() | {"overshoot": self.overshoot}

    def _step(self, f: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Minimal step onto the hyperplane f + <w, r> = 0; f (N,), w (N, ...)."""
        flat = w.flatten(1)
        if self.norm == "l2":
            scale = (f.abs() + 1e-4) / flat.pow(2).sum(1).clamp_min(1e-12)
            return _per_example(scale, w) * w
        scale = (f.abs() + 1e-4) / flat.abs().sum(1).clamp_min(1e-12)
        return _per_example(scale, w) * w.sign()

    def _run(self, model, x, y, eps, target, gen, init) -> AttackResult:
        lo, hi = self.bounds
        n = len(x)
        r_tot = torch.zeros_like(x)
        x_adv = x.clone()
        live = torch.arange(n, device=x.device)
        for it in range(self.steps + 1):
            xa = x_adv[live].requires_grad_(True)
            logits = model(xa)
            yy, tt = y[live], None if target is None else target[live]
            done = reached(logits.argmax(1), yy, tt)
            if bool(done.all()) or it == self.steps:
                break
            keep = ~done
            live = live[keep]
            num_classes = logits.shape[1]
            classes = range(num_classes) if target is None else [None]
            own = yy[keep]
            g_own, = torch.autograd.grad(logits.gather(1, yy[:, None]).sum(), xa, retain_graph=True)
            best_dist = torch.full((len(live),), math.inf, device=x.device)
            best_r = torch.zeros_like(xa[keep])
            for k in classes:
                kk = (tt if k is None else torch.full_like(yy, k))
                g_k, = torch.autograd.grad(logits.gather(1, kk[:, None]).sum(), xa, retain_graph=True)
                f = (logits.gather(1, kk[:, None]) - logits.gather(1, yy[:, None])).squeeze(1).detach()[keep]
                w = (g_k - g_own)[keep]
                dist = (f.abs() + 1e-4) / w.flatten(1).norm(p=2.0 if self.norm == "l2" else 1.0, dim=1).clamp_min(1e-12)
                dist = torch.where(kk[keep] == own, torch.full_like(dist, math.inf), dist)
                closer = dist < best_dist
                if bool(closer.any()):
                    best_dist = torch.where(closer, dist, best_dist)
                    best_r[closer] = self._step(f[closer], w[closer])
            with torch.no_grad():
                r_tot[live] += best_r
                x_adv[live] = (x[live] + (1 + self.overshoot) * r_tot[live]).clamp(lo, hi)
        with torch.no_grad():
            pred = torch.cat([model(x_adv[i:i + 1024]).argmax(1) for i in range(0, n, 1024)])
        norm = GEOMETRIES[self.norm].norm(x_adv - x)
        return AttackResult(x_adv, reached(pred, y, target), pred, norm)
