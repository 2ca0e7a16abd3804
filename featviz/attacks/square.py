"""The Square attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020).

Score-based and gradient-free: random search that changes one square window of the
perturbation at a time and keeps the change when the margin (true-class logit minus the
best other logit) goes down. It needs only the model's outputs, so masked or obfuscated
gradients do not stop it: when it beats the gradient attacks, the gradients are lying.
The window covers a fraction p of the image, halved on a fixed schedule of the query
budget. L∞: the window is set to ±ε per channel (the perturbation stays on the ball's
vertices, from vertical-stripe initialization). L2: mass moves between two windows as a
centred bump with a sign-flipped half, rescaled to use the unused part of the ε budget.
Per example: one query per iteration while it stands, stop once fooled, queries counted.
"""

from __future__ import annotations

import math

import torch

from ..errors import SpecError
from .core import GEOMETRIES, Attack, AttackResult, _per_example, eps_tensor, reached

# Fractions of a 10,000-query budget after which the window area is halved again.
_SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def window_fraction(p_init: float, i: int, budget: int) -> float:
    """p at iteration ``i`` of ``budget``: p_init halved at each passed schedule point."""
    it = int(i / budget * 10000)
    return p_init / 2 ** sum(it > m for m in _SCHEDULE)


def margin(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Per-example score the attack *lowers*; < 0 means the goal is reached."""
    label = y if target is None else target
    own = logits.gather(1, label[:, None]).squeeze(1)
    other = logits.scatter(1, label[:, None], float("-inf")).amax(1)
    return own - other if target is None else other - own


def _window(n: int, h: int, w: int, s: int, gen: torch.Generator, device) -> torch.Tensor:
    """(n, 1, h, w) bool masks of one random s×s window per example."""
    r = torch.randint(0, h - s + 1, (n,), generator=gen, device=gen.device).to(device)
    c = torch.randint(0, w - s + 1, (n,), generator=gen, device=gen.device).to(device)
    rows = torch.arange(h, device=device)[None, :]
    cols = torch.arange(w, device=device)[None, :]
    mr = (rows >= r[:, None]) & (rows < r[:, None] + s)
    mc = (cols >= c[:, None]) & (cols < c[:, None] + s)
    return (mr[:, :, None] & mc[:, None, :])[:, None]


def _bump(s: int, device) -> torch.Tensor:
    """An s×s centred bump (weights 1/(k+1)² on concentric square rings, summed inwards),
    with one half sign-flipped, unit L2 norm."""
    m = torch.zeros(s, s, device=device)
    for k in range((s + 1) // 2):
        m[k:s - k, k:s - k] += 1.0 / (k + 1) ** 2
    m[:, s // 2:] *= -1
    return m / m.norm().clamp_min(1e-12)


class Square(Attack):
    """Square attack with a query budget ``steps`` (default 5,000) per example and restart.

    ``p_init``: initial window area as a fraction of the image (0.8). Returns
    ``extra["queries"]`` (N,): model evaluations spent on each example.
    """

    counts_queries = True

    def __init__(self, norm: str = "linf", steps: int = 5000, *, restarts: int = 1, p_init: float = 0.8,
                 name: str | None = None, bounds: tuple[float, float] = (0.0, 1.0)):
        if norm not in GEOMETRIES:
            raise SpecError(f"unknown norm {norm!r}", f"use one of {', '.join(GEOMETRIES)}")
        for label, v in (("queries (--steps)", steps), ("restarts", restarts)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise SpecError(f"{label} must be a positive integer, got {v!r}", "e.g. --steps 5000")
        if not 0 < p_init <= 1:
            raise SpecError(f"p_init must be in (0, 1], got {p_init!r}")
        self.norm, self.steps, self.restarts, self.p_init = norm, steps, restarts, float(p_init)
        self.geometry = GEOMETRIES[norm]
        self.bounds = (float(bounds[0]), float(bounds[1]))
        self.name = name or ("square" if norm == "linf" else "square-l2")

    def describe(self) -> dict:
        return super().describe() | {"queries": self.steps, "p_init": self.p_init}

    def _run(self, model, x, y, eps, target, gen, init) -> AttackResult:
        self._check_ball(x, eps, gen, "is a random search")
        if x.dim() != 4:
            raise SpecError(f"{self.name} attacks images (N, C, H, W), got inputs of shape {tuple(x.shape)}")
        n = len(x)
        eps_n = eps_tensor(eps, n, x)
        best_x, pred = x.clone(), y.clone()
        success = torch.zeros(n, dtype=torch.bool, device=x.device)
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        best_m = torch.full((n,), math.inf, device=x.device)
        for _ in range(self.restarts):
            todo = torch.nonzero(~success).flatten()
            if len(todo) == 0:
                break
            self._search(model, x, y, eps_n, target, gen, todo, best_x, pred, success, queries, best_m)
        norm = self.geometry.norm(best_x - x)
        return AttackResult(best_x, success, pred, norm, extra={"queries": queries})

    @torch.no_grad()
    def _search(self, model, x, y, eps_n, target, gen, idx, best_x, pred, success, queries, best_m) -> None:
        lo, hi = self.bounds
        x0, yy = x[idx], y[idx]
        tt = None if target is None else target[idx]
        eps = _per_example(eps_n[idx], x0)
        n, c, h, w = x0.shape
        dev = x0.device

        def signs(*shape):
            return torch.randint(0, 2, shape, generator=gen, device=gen.device).to(dev).float() * 2 - 1

        if self.norm == "linf":  # vertical stripes of ±ε
            xa = (x0 + eps * signs(n, c, 1, w)).clamp(lo, hi)
        else:  # tiles of sign-flipped bumps, scaled to norm ε
            s0 = max(h // 5, 1)
            delta = torch.zeros_like(x0)
            for r0 in range(0, h - s0 + 1, s0):
                for c0 in range(0, w - s0 + 1, s0):
                    delta[:, :, r0:r0 + s0, c0:c0 + s0] = _bump(s0, dev) * signs(n, c, 1, 1)
            delta = delta / _per_example(self.geometry.norm(delta).clamp_min(1e-12), delta) * eps
            xa = (x0 + delta).clamp(lo, hi)
        logits = model(xa)
        m = margin(logits, yy, tt)
        queries[idx] += 1
        live = torch.arange(n, device=dev)

        def fold(sel):
            """Write the current state of positions ``sel`` back into the output buffers."""
            ok = reached(cur_pred[sel], yy[sel], None if tt is None else tt[sel])
            sel = sel[ok | (m[sel] < best_m[idx[sel]])]  # a restart keeps the lowest margin
            where = idx[sel]
            best_x[where], best_m[where] = xa[sel], m[sel]
            pred[where] = cur_pred[sel]
            success[where] = reached(cur_pred[sel], yy[sel], None if tt is None else tt[sel])

        cur_pred = logits.argmax(1)
        for i in range(1, self.steps):
            done = reached(cur_pred[live], yy[live], None if tt is None else tt[live])
            if bool(done.any()):
                live = live[~done]
            if len(live) == 0:
                break
            xl, x0l, el = xa[live], x0[live], eps[live]
            k = len(live)
            p = window_fraction(self.p_init, i, self.steps)
            if self.norm == "linf":
                s = min(max(int(round(math.sqrt(p * h * w))), 1), h - 1 if h > 1 else 1)
                win = _window(k, h, w, s, gen, dev)
                new = x0l + el * signs(k, c, 1, 1)
                unchanged = ((torch.where(win, (new.clamp(lo, hi) - xl).abs(), torch.zeros_like(xl))
                              .flatten(1).amax(1)) < 1e-7)
                new = torch.where(_per_example(unchanged, new), 2 * x0l - new, new)  # flip the proposal
                cand = torch.where(win, new, xl).clamp(lo, hi)
            else:
                s = max(int(round(math.sqrt(p * h * w))), 3)
                s = min(s + (s % 2 == 0), h, w)
                w1, w2 = _window(k, h, w, s, gen, dev), _window(k, h, w, s, gen, dev)
                delta = xl - x0l
                union = (w1 | w2).float()
                mass = torch.linalg.vector_norm((delta * union).flatten(2), dim=2)  # (k, c)
                unused = (el.flatten() ** 2 - self.geometry.norm(delta) ** 2).clamp_min(0)
                target_mass = torch.sqrt(mass ** 2 + unused[:, None] / c)[:, :, None, None]
                bump = torch.zeros(k, 1, h, w, device=dev)
                bump[w1] = _bump(s, dev).repeat(k, 1, 1).flatten()
                inner = delta * w1.float() + bump * signs(k, c, 1, 1) * target_mass
                inner_norm = torch.linalg.vector_norm(inner.flatten(2), dim=2)[:, :, None, None]
                inner = inner / inner_norm.clamp_min(1e-12) * target_mass
                delta = delta * (1 - union) + inner
                delta = self.geometry.project(delta, el)
                cand = (x0l + delta).clamp(lo, hi)
            lg = model(cand)
            mc = margin(lg, yy[live], None if tt is None else tt[live])
            queries[idx[live]] += 1
            better = mc < m[live]
            if bool(better.any()):
                b = live[better]
                xa[b], m[b], cur_pred[b] = cand[better], mc[better], lg[better].argmax(1)
        fold(torch.arange(n, device=dev))


def square(steps: int = 5000, restarts: int = 1) -> Square:
    return Square("linf", steps, restarts=restarts)


def square_l2(steps: int = 5000, restarts: int = 1) -> Square:
    return Square("l2", steps, restarts=restarts)
