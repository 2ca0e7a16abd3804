"""One gradient-attack core; FGSM, PGD-L∞ and PGD-L2 are settings of it.

The core iterates ``x ← clip_bounds(x0 + project(x + step_size · direction(∇loss) - x0))``
from a (possibly random) start. A norm *geometry* supplies the three hooks that differ
between attacks: the random start inside the ε-ball, the step direction (sign of the
gradient for L∞, the normalized gradient for L2) and the projection onto the ball.
On top of that, for every attack alike: restarts that keep the per-example worst case,
best-iterate tracking, early stop of already-fooled examples (they leave the batch, so
later steps cost less), targeted or untargeted goals, and per-example ε.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SpecError
from .model import attack_mode

Bounds = tuple[float, float]
EpsLike = float | torch.Tensor


# --------------------------------------------------------------------------- geometries


def _per_example(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a (N,) tensor so that it broadcasts against (N, ...) ``like``."""
    return v.view(-1, *([1] * (like.dim() - 1)))


def _flat_norm(v: torch.Tensor, p: float) -> torch.Tensor:
    return torch.linalg.vector_norm(v.flatten(1), ord=p, dim=1)


class Geometry:
    """The hooks of one ℓp ball. ``eps`` arguments are (N, 1, ..., 1) tensors."""

    name: str
    ord: float

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (N,) norm of each perturbation."""
        return _flat_norm(delta, self.ord)

    def random_start(self, shape: torch.Size, eps: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def project(self, delta: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Linf(Geometry):
    name, ord = "linf", math.inf

    def random_start(self, shape, eps, gen):
        return (torch.rand(shape, generator=gen, device=gen.device).to(eps.device) * 2 - 1) * eps

    def direction(self, grad):
        return grad.sign()

    def project(self, delta, eps):
        return delta.clamp(-eps, eps)


class L2(Geometry):
    name, ord = "l2", 2.0

    def random_start(self, shape, eps, gen):
        # Uniform in the ball: a uniform direction, radius ~ ε·U^(1/d).
        g = torch.randn(shape, generator=gen, device=gen.device).to(eps.device)
        d = g[0].numel()
        u = torch.rand(shape[0], generator=gen, device=gen.device).to(eps.device)
        radius = _per_example(u ** (1.0 / d), g) * eps
        return g / _per_example(_flat_norm(g, 2).clamp_min(1e-12), g) * radius

    def direction(self, grad):
        return grad / _per_example(_flat_norm(grad, 2).clamp_min(1e-12), grad)

    def project(self, delta, eps):
        factor = torch.clamp(eps / _per_example(_flat_norm(delta, 2), delta).clamp_min(1e-12), max=1.0)
        return delta * factor


GEOMETRIES: dict[str, Geometry] = {"linf": Linf(), "l2": L2()}


# --------------------------------------------------------------------------- goals and losses


@dataclass
class AttackResult:
    """What an attack returns for N inputs.

    ``x_adv`` (N, ...) inside the bounds; ``success`` (N,) bool: the goal was reached
    (misclassified, or the target class when targeted); ``pred`` (N,) labels predicted
    on ``x_adv``; ``norm`` (N,) the perturbation's norm in the attack's norm.
    """

    x_adv: torch.Tensor
    success: torch.Tensor
    pred: torch.Tensor
    norm: torch.Tensor
    extra: dict = field(default_factory=dict)


def objective(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None, loss: str) -> torch.Tensor:
    """Per-example quantity (N,) the attack *ascends*.

    ``ce``: cross-entropy of the true label (untargeted) or minus that of the target.
    ``margin``: best other logit minus the label's logit (untargeted) or target logit
    minus best other logit (targeted); unlike CE it does not saturate on confident
    quadratic networks.
    """
    if loss == "ce":
        if target is None:
            return F.cross_entropy(logits, y, reduction="none")
        return -F.cross_entropy(logits, target, reduction="none")
    label = y if target is None else target
    own = logits.gather(1, label[:, None]).squeeze(1)
    other = logits.scatter(1, label[:, None], float("-inf")).amax(1)
    return other - own if target is None else own - other


def reached(pred: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """(N,) bool: misclassified (untargeted) or classified as ``target``."""
    return pred != y if target is None else pred == target


def draw_targets(y: torch.Tensor, num_classes: int, gen: torch.Generator) -> torch.Tensor:
    """A random target label ≠ y for each example (uniform over the other classes)."""
    if num_classes < 2:
        raise SpecError("a targeted attack needs at least 2 classes")
    shift = torch.randint(1, num_classes, y.shape, generator=gen, device=gen.device).to(y.device)
    return (y + shift) % num_classes


def eps_tensor(eps: EpsLike, n: int, like: torch.Tensor) -> torch.Tensor:
    """ε as an (N,) float tensor on ``like``'s device (a scalar is broadcast)."""
    t = torch.as_tensor(eps, dtype=like.dtype, device=like.device)
    return t.expand(n).clone() if t.dim() == 0 else t.reshape(n).clone()


def check_eps(eps: EpsLike, norm: str, numel: int, bounds: Bounds = (0.0, 1.0)) -> None:
    """Refuse ε that is negative, NaN/Inf, or larger than the input box allows."""
    values = torch.as_tensor(eps, dtype=torch.float64).flatten()
    if not bool(torch.isfinite(values).all()):
        raise SpecError(f"ε must be a finite number, got {_show(values)}", "use e.g. --eps 0.1")
    if bool((values < 0).any()):
        raise SpecError(f"ε must be >= 0, got {_show(values)}", "use e.g. --eps 0.1")
    width = bounds[1] - bounds[0]
    limit = width if norm == "linf" else width * math.sqrt(numel)
    if bool((values > limit * (1 + 1e-6)).any()):
        raise SpecError(f"ε = {float(values.max()):g} exceeds the largest possible {norm} perturbation "
                        f"({limit:g}) of inputs in [{bounds[0]:g}, {bounds[1]:g}]", "use a smaller --eps")


def _show(values: torch.Tensor) -> str:
    bad = values[~torch.isfinite(values) | (values < 0)]
    return f"{float(bad[0] if len(bad) else values[0]):g}"


# --------------------------------------------------------------------------- the attacks


class Attack:
    """Common interface: ``attack(model, x, y, eps, target=None, gen=None) -> AttackResult``.

    ``minimal`` attacks (CW, DeepFool) ignore ``eps`` and look for the smallest
    perturbation; the others stay inside the ε-ball. ``name``, ``norm``, ``steps`` and
    ``restarts`` describe the attack in result files.
    """

    name: str = "attack"
    norm: str = "linf"
    steps: int = 1
    restarts: int = 1
    minimal: bool = False
    bisect: bool = True  # refine each broken example's minimal ε by bisection in sweeps
    counts_queries: bool = False  # result.extra["queries"] holds the model evaluations per example
    bounds: Bounds = (0.0, 1.0)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: EpsLike | None = None, *,
                 target: torch.Tensor | None = None, gen: torch.Generator | None = None,
                 init: torch.Tensor | None = None) -> AttackResult:
        if x.shape[0] != y.shape[0]:
            raise SpecError(f"x has {x.shape[0]} examples but y has {y.shape[0]} labels")
        x, y = x.detach(), y.detach()
        if target is not None:
            target = target.detach()
        if len(x) == 0:
            empty = torch.zeros(0, dtype=torch.bool, device=x.device)
            return AttackResult(x.clone(), empty, y.clone(), torch.zeros(0, device=x.device))
        with attack_mode(model):
            return self._run(model, x, y, eps, target, gen, init)

    def _run(self, model, x, y, eps, target, gen, init) -> AttackResult:
        raise NotImplementedError

    def _check_ball(self, x: torch.Tensor, eps: EpsLike | None, gen: torch.Generator | None,
                    random: str | None = None) -> None:
        """The checks of every ε-ball attack: an ε that fits the bounds, and a generator when
        the attack draws random numbers (``random`` says why, for the error line)."""
        if eps is None:
            raise SpecError(f"{self.name} needs ε", "pass --eps or --eps-sweep")
        check_eps(eps, self.norm, x[0].numel(), self.bounds)
        if random is not None and gen is None:
            raise SpecError(f"{self.name} {random}: it needs a torch.Generator (gen=...)")

    def describe(self) -> dict:
        return {"attack": self.name, "norm": self.norm, "steps": self.steps, "restarts": self.restarts}


class GradientAttack(Attack):
    """Projected gradient ascent on ``objective`` inside an ℓp ball: the one core.

    Args:
        norm: ``"linf"`` or ``"l2"``.
        steps: gradient steps per restart (default 20; 1 with step_size ε is FGSM).
        step_size: absolute step; default ``rel_step · ε`` per example.
        rel_step: step as a fraction of ε when ``step_size`` is None (default 2.5/steps,
            Madry et al.'s rule: the walk can cross the ball and back).
        random_start: start uniformly inside the ball (else at ``x``).
        restarts: independent runs; per example the worst case is kept.
        early_stop: stop stepping an example once the goal is reached (it leaves the batch).
        keep_best: return each example's best iterate (goal reached first, then highest
            objective) instead of the last one. Off + early_stop off + no random start
            reproduces the textbook last-iterate PGD exactly.
        loss: ``"ce"`` or ``"margin"`` (see :func:`objective`).
        bounds: the input box, default [0, 1].
    """

    def __init__(self, name: str = "pgd", norm: str = "linf", steps: int = 20, *, step_size: float | None = None,
                 rel_step: float | None = None, random_start: bool = True, restarts: int = 1,
                 early_stop: bool = True, keep_best: bool = True, loss: str = "ce", bounds: Bounds = (0.0, 1.0)):
        if norm not in GEOMETRIES:
            raise SpecError(f"unknown norm {norm!r}", f"use one of {', '.join(GEOMETRIES)}")
        if not isinstance(steps, int) or steps < 1:
            raise SpecError(f"steps must be a positive integer, got {steps!r}", "use e.g. --steps 20")
        if not isinstance(restarts, int) or restarts < 1:
            raise SpecError(f"restarts must be a positive integer, got {restarts!r}", "use e.g. --restarts 1")
        for label, v in (("step size", step_size), ("relative step", rel_step)):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise SpecError(f"{label} must be a positive number, got {v!r}", "use e.g. --step-size 0.01")
        if loss not in ("ce", "margin"):
            raise SpecError(f"unknown attack loss {loss!r}", "use ce or margin")
        if not bounds[0] < bounds[1]:
            raise SpecError(f"bounds must satisfy low < high, got {bounds}")
        self.name, self.norm, self.steps, self.restarts = name, norm, steps, restarts
        self.geometry = GEOMETRIES[norm]
        self.step_size, self.rel_step = step_size, (rel_step if rel_step is not None else 2.5 / steps)
        self.random_start, self.early_stop, self.keep_best = random_start, early_stop, keep_best
        self.loss, self.bounds = loss, (float(bounds[0]), float(bounds[1]))

    def describe(self) -> dict:
        return super().describe() | {"random_start": self.random_start, "loss": self.loss,
                                     "step_size": self.step_size, "rel_step": self.rel_step}

    def _run(self, model, x, y, eps, target, gen, init) -> AttackResult:
        self._check_ball(x, eps, gen, "draws a random start" if self.random_start else None)
        n = len(x)
        eps_n = eps_tensor(eps, n, x)
        best_x = x.clone() if init is None else init.detach().clone()
        best_ok = torch.zeros(n, dtype=torch.bool, device=x.device)
        best_obj = torch.full((n,), -math.inf, device=x.device)
        best_pred = y.clone()
        for restart in range(self.restarts):
            todo = torch.arange(n, device=x.device) if not self.early_stop else torch.nonzero(~best_ok).flatten()
            if len(todo) == 0:
                break
            # Restart 0 resumes from ``init`` (a warm start); later ones draw fresh starts.
            start = None if (init is None or restart > 0) else init[todo]
            self._descend(model, x, y, eps_n, target, gen, todo, start,
                          best_x, best_ok, best_obj, best_pred, keep_best=self.keep_best or restart > 0)
        norm = self.geometry.norm(best_x - x)
        return AttackResult(best_x, best_ok, best_pred, norm)

    def _descend(self, model, x, y, eps_n, target, gen, idx, start, best_x, best_ok, best_obj, best_pred,
                 keep_best: bool) -> None:
        """One run over the examples ``idx``; improves the ``best_*`` buffers in place."""
        geo, (lo, hi) = self.geometry, self.bounds
        x0, yy = x[idx], y[idx]
        tt = None if target is None else target[idx]
        eps = _per_example(eps_n[idx], x0)
        alpha = eps * self.rel_step if self.step_size is None else torch.full_like(eps, self.step_size)
        if start is not None:  # a warm start is projected too: it may come from a larger ball
            xa = (x0 + geo.project(start - x0, eps)).clamp(lo, hi)
        elif self.random_start:
            xa = (x0 + geo.random_start(x0.shape, eps, gen)).clamp(lo, hi)
        else:
            xa = x0.clone()

        def record(sel: torch.Tensor, xs: torch.Tensor, logits: torch.Tensor, obj: torch.Tensor) -> torch.Tensor:
            """Fold iterate ``xs`` of examples ``idx[sel]`` into the best buffers; returns reached (n_sel,)."""
            pred = logits.argmax(1)
            ok = reached(pred, yy[sel] if sel is not None else yy, tt if tt is None or sel is None else tt[sel])
            where = idx if sel is None else idx[sel]
            better = (ok & ~best_ok[where]) | ((ok == best_ok[where]) & (obj > best_obj[where]))
            if not keep_best:  # last iterate wins, but a reached goal is never given up
                better = ok | ~best_ok[where]
            if bool(better.any()):
                w = where[better]
                best_x[w], best_ok[w] = xs[better], ok[better]
                best_obj[w], best_pred[w] = obj[better], pred[better]
            return ok

        live = None  # positions (into idx) still stepping; None = all of them
        if bool((eps == eps.flatten()[0]).all()) and bool((alpha == alpha.flatten()[0]).all()):
            # One ε for all: Python scalars keep the per-step arithmetic as cheap as
            # a hand-written loop's (tensor-valued clamp bounds cost extra broadcasting).
            eps, alpha = float(eps.flatten()[0]), float(alpha.flatten()[0])
        # Per-example tensors of the examples still stepping; sliced only when some leave.
        ys, ts, x0s, eps_s, alpha_s = yy, tt, x0, eps, alpha
        for _ in range(self.steps):
            xa.requires_grad_(True)
            logits = model(xa)
            obj = objective(logits, ys, ts, self.loss)
            grad, = torch.autograd.grad(obj.sum(), xa)
            xa = xa.detach()
            with torch.no_grad():
                if keep_best or self.early_stop:
                    ok = record(live, xa, logits.detach(), obj.detach())
                    if self.early_stop and bool(ok.any()):
                        keep = ~ok
                        live = torch.nonzero(keep).flatten() if live is None else live[keep]
                        if len(live) == 0:
                            return
                        xa, grad = xa[keep], grad[keep]
                        ys, x0s = yy[live], x0[live]
                        if isinstance(eps, torch.Tensor):
                            eps_s, alpha_s = eps[live], alpha[live]
                        ts = None if tt is None else tt[live]
                xa = xa + alpha_s * geo.direction(grad)
                xa = (x0s + geo.project(xa - x0s, eps_s)).clamp(lo, hi)
        with torch.no_grad():
            logits = model(xa)
            record(live, xa, logits, objective(logits, ys, ts, self.loss))


def fgsm(**kw) -> GradientAttack:
    """FGSM (Goodfellow et al.): one L∞ step of size ε from x."""
    kw = {"random_start": False, "rel_step": 1.0} | kw
    return GradientAttack("fgsm", "linf", 1, **kw)


def pgd(steps: int = 20, **kw) -> GradientAttack:
    """PGD-L∞ (Madry et al.): random start, ``steps`` sign-gradient steps of 2.5·ε/steps."""
    return GradientAttack("pgd", "linf", steps, **kw)


def pgd_l2(steps: int = 20, **kw) -> GradientAttack:
    """PGD-L2: random start in the L2 ball, normalized-gradient steps of 2.5·ε/steps."""
    return GradientAttack("pgd-l2", "l2", steps, **kw)

