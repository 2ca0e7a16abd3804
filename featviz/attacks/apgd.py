"""APGD and APGD-T (Croce & Hein, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks", ICML 2020).

Projected gradient ascent without a step size to tune: the step starts at 2ε and is
halved at checkpoints w_j (p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03,
0.06), w_j = ⌈p_j·N⌉) when, since the last checkpoint, the loss rose in fewer than
ρ = 0.75 of the steps, or when the step was not halved last time and the best loss did
not improve; a halved run restarts from its best point. Steps mix the projected gradient
step with the previous move (momentum α = 0.75). Losses: cross-entropy and the
Difference of Logits Ratio (DLR, invariant to the logits' scale, so it does not saturate
on confident networks); APGD-T runs targeted DLR against each of the k most likely other
classes in turn. Per-example ε, explicit generator, best iterate, and early stop: an
example leaves the batch as soon as it is fooled, so the remaining steps cost less.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import SpecError
from .core import GEOMETRIES, Attack, AttackResult, _per_example, eps_tensor, reached

RHO, MOMENTUM = 0.75, 0.75


def checkpoints(steps: int) -> list[int]:
    """The iterations w_1 < w_2 < ... (≤ steps) at which the step size may be halved."""
    p_prev, p = 0.0, 0.22
    out = []
    while p <= 1.0:
        w = math.ceil(p * steps - 1e-9)  # p is a sum of decimals: no float rounding up
        if w > (out[-1] if out else 0) and w <= steps:
            out.append(w)
        p_prev, p = p, p + max(p - p_prev - 0.03, 0.06)
    return out


def dlr(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Per-example DLR loss to *ascend*: -(z_y - max_{i≠y} z_i) / (z_π1 - z_π3), or targeted
    -(z_y - z_t) / (z_π1 - (z_π3 + z_π4)/2), with π the logits sorted in decreasing order
    (fewer classes: the smallest logit stands in for π3/π4)."""
    z = logits.float()
    srt = z.sort(dim=1, descending=True).values
    c = z.shape[1]
    p1, p3, p4 = srt[:, 0], srt[:, min(2, c - 1)], srt[:, min(3, c - 1)]
    zy = z.gather(1, y[:, None]).squeeze(1)
    if target is None:
        other = z.scatter(1, y[:, None], float("-inf")).amax(1)
        return -(zy - other) / (p1 - p3 + 1e-12)
    zt = z.gather(1, target[:, None]).squeeze(1)
    return -(zy - zt) / (p1 - (p3 + p4) / 2 + 1e-12)


def apgd_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, loss: str) -> torch.Tensor:
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none") if target is None else \
            -F.cross_entropy(logits, target, reduction="none")
    return dlr(logits, y, target)


def _first_per_example(mask: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """Positions of ``mask``'s true rows, one per example of ``owner`` (its first row), so that
    writes into per-example buffers never mix two rows of one example."""
    rows = torch.nonzero(mask).flatten()
    if len(rows) <= 1:
        return rows
    _, inverse = torch.unique(owner[rows], return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), len(rows), device=rows.device)
    first = first.scatter_reduce(0, inverse, torch.arange(len(rows), device=rows.device), "amin")
    return rows[first]


class APGD(Attack):
    """APGD (``targets=0``) or APGD-T (``targets=k``: targeted DLR against the k most likely
    other classes of the clean input, one full run per (example, target) pair; an example
    leaves as soon as any of its runs fools it).

    Args:
        norm: ``"linf"`` or ``"l2"``.
        steps: iterations N per run (one gradient each, plus one at the start).
        loss: ``"ce"`` or ``"dlr"`` (APGD-T always uses targeted DLR).
        targets: 0 for the untargeted attack, else the number of target classes.
        restarts: independent random starts per run, on the examples still standing.

    ``target`` given to the call (a user's ``--targeted``): the goal becomes that class and
    the loss is the targeted version of ``loss``.
    """

    def __init__(self, norm: str = "linf", steps: int = 100, *, loss: str = "ce", targets: int = 0,
                 restarts: int = 1, name: str | None = None, bounds: tuple[float, float] = (0.0, 1.0)):
        if norm not in GEOMETRIES:
            raise SpecError(f"unknown norm {norm!r}", f"use one of {', '.join(GEOMETRIES)}")
        for label, v in (("steps", steps), ("restarts", restarts)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(f"{label} must be a positive integer, got {v!r}", f"e.g. --{label} 100")
        if loss not in ("ce", "dlr"):
            raise SpecError(f"unknown APGD loss {loss!r}", "use ce or dlr")
        if not isinstance(targets, int) or targets < 0:
            raise SpecError(f"targets must be an integer >= 0, got {targets!r}")
        self.norm, self.steps, self.restarts, self.targets = norm, steps, restarts, targets
        self.loss = "dlr" if targets else loss
        self.geometry = GEOMETRIES[norm]
        self.bounds = (float(bounds[0]), float(bounds[1]))
        suffix = "" if norm == "linf" else "-l2"
        self.name = name or (f"apgd-t{suffix}" if targets else f"apgd-{loss}{suffix}")

    def describe(self) -> dict:
        return super().describe() | {"loss": self.loss, "targets": self.targets}

    def _start(self, x0: torch.Tensor, eps: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        lo, hi = self.bounds
        if self.norm == "linf":
            t = torch.rand(x0.shape, generator=gen, device=gen.device).to(x0.device) * 2 - 1
            t = t / _per_example(t.flatten(1).abs().amax(1).clamp_min(1e-12), t)
        else:
            t = torch.randn(x0.shape, generator=gen, device=gen.device).to(x0.device)
            t = t / _per_example(torch.linalg.vector_norm(t.flatten(1), dim=1).clamp_min(1e-12), t)
        return (x0 + eps * t).clamp(lo, hi)

    def _run(self, model, x, y, eps, target, gen, init) -> AttackResult:
        self._check_ball(x, eps, gen, "draws random starts")
        n = len(x)
        eps_n = eps_tensor(eps, n, x)
        best_x, best_pred = x.clone(), y.clone()
        success = torch.zeros(n, dtype=torch.bool, device=x.device)
        best_loss = torch.full((n,), -math.inf, device=x.device)
        aims = None
        if self.targets and target is None:
            with torch.no_grad():
                order = model(x).sort(dim=1, descending=True).indices
            aims = order[:, 1:min(self.targets, order.shape[1] - 1) + 1]  # (n, k): 2nd..(k+1)-th likeliest
        for _ in range(self.restarts):
            todo = torch.nonzero(~success).flatten()
            if len(todo) == 0:
                break
            if aims is None:
                rows, loss_target = todo, (None if target is None else target[todo])
            else:  # every (example, target) pair at once; an example leaves when any pair fools it
                rows, loss_target = todo.repeat_interleave(aims.shape[1]), aims[todo].flatten()
            self._descend(model, x, y, eps_n, rows, loss_target, None if target is None else target[rows],
                          gen, best_x, success, best_loss, best_pred)
        norm = self.geometry.norm(best_x - x)
        return AttackResult(best_x, success, best_pred, norm)

    def _descend(self, model, x, y, eps_n, idx, loss_target, goal, gen, best_x, success, best_loss,
                 best_pred) -> None:
        """One APGD run over rows ``idx`` (example indices, repeated for APGD-T's targets);
        improves the best buffers in place. A row leaves once its example is fooled."""
        geo, (lo, hi) = self.geometry, self.bounds
        s = {"idx": idx, "x0": x[idx], "y": y[idx], "t": loss_target, "goal": goal,
             "eps": _per_example(eps_n[idx], x[idx])}
        s["xk"] = self._start(s["x0"], s["eps"], gen)
        s["eta"] = 2 * s["eps"].clone()

        def evaluate(xs, ys, ts):
            xs = xs.clone().requires_grad_(True)
            logits = model(xs)
            loss = apgd_loss(logits, ys, ts, self.loss)
            grad, = torch.autograd.grad(loss.sum(), xs)
            return loss.detach(), grad.detach(), logits.detach()

        def fold(loss, logits) -> torch.Tensor:
            """Record fooled examples and the loss-best point of the others; returns the rows
            whose example is now fooled (they leave)."""
            pred = logits.argmax(1)
            ok = reached(pred, s["y"], s["goal"])
            w = s["idx"]
            better = _first_per_example(~ok & (loss > best_loss[w]) & ~success[w], w)
            if len(better):
                best_x[w[better]], best_loss[w[better]], best_pred[w[better]] = s["xk"][better], loss[better], \
                    pred[better]
            if bool(ok.any()):
                won = _first_per_example(ok, w)
                best_x[w[won]], success[w[won]], best_pred[w[won]] = s["xk"][won], True, pred[won]
                return success[w]
            return ok

        def keep(mask: torch.Tensor) -> bool:
            for k, v in s.items():
                if v is not None:
                    s[k] = v[mask]
            return len(s["idx"]) > 0

        f, g, logits = evaluate(s["xk"], s["y"], s["t"])
        ok = fold(f, logits)
        s.update(f=f, g=g, fmax=f.clone(), xmax=s["xk"].clone(), gmax=g.clone(), xprev=s["xk"].clone(),
                 count=torch.zeros_like(f), fmax_ck=f.clone(),
                 reduced_ck=torch.zeros(len(f), dtype=torch.bool, device=f.device))
        if bool(ok.any()) and not keep(~ok):
            return
        marks, last = set(checkpoints(self.steps)), 0
        for k in range(1, self.steps + 1):
            with torch.no_grad():
                xk, x0, eps = s["xk"], s["x0"], s["eps"]
                z = (x0 + geo.project(xk + s["eta"] * geo.direction(s["g"]) - x0, eps)).clamp(lo, hi)
                a = 1.0 if k == 1 else MOMENTUM
                xn = xk + a * (z - xk) + (1 - a) * (xk - s["xprev"])
                s["xprev"], s["xk"] = xk, (x0 + geo.project(xn - x0, eps)).clamp(lo, hi)
            f, g, logits = evaluate(s["xk"], s["y"], s["t"])
            with torch.no_grad():
                s["count"] += (f > s["f"]).float()
                s["f"], s["g"] = f, g
                ok = fold(f, logits)
                if bool(ok.any()) and not keep(~ok):
                    return
                up = s["f"] > s["fmax"]
                s["fmax"] = torch.where(up, s["f"], s["fmax"])
                s["xmax"][up], s["gmax"][up] = s["xk"][up], s["g"][up]
                if k in marks:
                    halve = (s["count"] < RHO * (k - last)) | (~s["reduced_ck"] & (s["fmax"] <= s["fmax_ck"]))
                    s["eta"] = torch.where(_per_example(halve, s["eta"]), s["eta"] / 2, s["eta"])
                    s["xk"][halve], s["g"][halve], s["f"][halve] = s["xmax"][halve], s["gmax"][halve], \
                        s["fmax"][halve]
                    s["reduced_ck"], s["fmax_ck"], s["count"], last = halve, s["fmax"].clone(), \
                        torch.zeros_like(s["count"]), k


def apgd_ce(steps: int = 100, restarts: int = 1) -> APGD:
    return APGD("linf", steps, loss="ce", restarts=restarts)


def apgd_dlr(steps: int = 100, restarts: int = 1) -> APGD:
    return APGD("linf", steps, loss="dlr", restarts=restarts)


def apgd_t(steps: int = 100, restarts: int = 1, targets: int = 9) -> APGD:
    return APGD("linf", steps, targets=targets, restarts=restarts)


def apgd_ce_l2(steps: int = 100, restarts: int = 1) -> APGD:
    return APGD("l2", steps, loss="ce", restarts=restarts)


def apgd_t_l2(steps: int = 100, restarts: int = 1, targets: int = 9) -> APGD:
    return APGD("l2", steps, targets=targets, restarts=restarts)


__all__ = ["APGD", "apgd_ce", "apgd_ce_l2", "apgd_dlr", "apgd_t", "apgd_t_l2", "checkpoints", "dlr"]
