"""Backward feature correction on the talk's step-2 target, measured exactly.

Target (k units, x ~ N(0, I_d), d ≥ 2k; the talk's case is k = 2)::

    G(x) = Σ_{i≤k} x_i² + α Σ_{i≤k} (x_i² + x_{k+i})²

Layer 1 of the teacher is (x_1², …, x_k²); layer 2 reads those units one by one.

What layer 1 alone should learn (the Hermite projection of G onto the functions a layer of
bias-free square units can express, xᵀAx + c): x_i⁴ projects to 6x_i² − 3, x_i²x_{k+i} to the
linear term x_{k+i} (which square units cannot express) and x_{k+i}² stays, so

    A* = (1 + 6α) I_k ⊕ α I_k ⊕ 0        (diagonal over x_1..x_k | x_{k+1}..x_{2k} | rest).

Its layer-1 error — the Gaussian-L2 distance of the read-out layer-1 function xᵀA₁x from the
span of the teacher's units, over the norm of the teacher's layer-1 function (both centred,
exact, from the weights; :mod:`featviz.hierarchy.alignment`) — is exactly α at the optimum.

The learner: two quadratic layers without biases or normalization, h₁ = (W₁x)², h₂ = (U₂x + V₂h₁)²,
output a₁·h₁ + a₂·h₂ + c. Training: Adam on a fresh batch of Gaussian samples every step (the
population gradient, so no sample noise enters); every stage runs until its validation loss
plateaus: the learning rate is cut by ``lr_factor`` when the relative validation MSE has not
improved by ``plateau_tol`` over ``patience`` evaluations, and the stage ends at the next such
stall after ``reductions`` cuts (or at ``max_steps``; optionally also once the relative validation
MSE is under ``floor``, off by default); each run stops on its own (its rate goes to zero), and the
steps each run made, and whether it reached the rule, are recorded. The frozen control's joint
stage goes on at its last rate until it has made as many steps as its unfrozen twin (equal steps).

The gradient is written out by hand and the runs of a seed share one product with its inputs (all
its α see the same x): a step costs about half what autograd over broadcast products did
(benchmarks/bench_correction.py).

Arms (all α × seeds of an arm are one batched tensor program; every arm of a seed starts from the
same initial weights, and the two correction arms see the same samples):

- ``layerwise``: stage 1 (layer 1 and its readout), then stage 2 (layer 2, its readout and the
  bias) with layer 1 and its readout frozen;
- ``layerwise+joint``: then a joint stage that trains everything (backward feature correction);
- ``layerwise+joint-frozen``: the same joint stage with layer 1's weights frozen (its readout
  trains): the control that says whether the gain comes from correcting layer 1;
- ``joint``: everything from the same initial weights, with the three stages' step budget.

Measures after every arm: ``layer1_error`` (the read-out error above; sound while layer 1 alone
explains the label — after a joint stage the split of any x-quadratic term between layer 1's and
layer 2's readouts is arbitrary, since layer 2 reads x too), ``layer1_span_error`` (root-mean-square
sine of the principal angles of the teacher's units x_i² outside the span of the learner's units —
does layer 1 hold what layer 2 needs? invariant to permutation, rescaling and mixing of units), and
``final_rel_mse`` (test MSE over Var(G), on held-out samples).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .. import __version__
from ..devices import generator
from ..errors import DivergenceError, SpecError
from ..hierarchy.alignment import QuadraticForms, projection_error, span_error
from ..limits import MAX_INPUT_DIM, MAX_SEEDS, MAX_WIDTH, bounded, distinct, fits_in_memory
from ..stats import bootstrap, interval_text, loglog_slope, ratio_of_means
from .common import write_results

FORMAT = "featviz-hierarchy-correction/1"
ARMS = ("layerwise", "layerwise+joint", "layerwise+joint-frozen", "joint")
Result = dict[str, Any]
SADDLE = math.sqrt(0.5)  # span error of the 45° configuration (x1 ± x2)² of a teacher-width layer


@dataclass(frozen=True)
class Config:
    """One run of the study. ``widths``: learner widths (the first is the main one, reported under
    ``arms``; a width equal to k is the teacher's and gets the saddle count). Steps are caps
    per stage; ``joint`` from scratch gets the sum of the three stages' caps. ``floor``: a relative
    validation MSE under it also counts as converged (0: off)."""

    d: int = 10
    k: int = 2
    alphas: tuple[float, ...] = (0.025, 0.05, 0.1, 0.2, 0.4)
    seeds: int = 5
    widths: tuple[int, ...] = (16, 2)
    batch: int = 1024
    lr: float = 0.01
    correction_lr: float = 0.003
    max_steps: tuple[int, int, int] = (6000, 16000, 16000)
    eval_every: int = 50
    patience: int = 8
    plateau_tol: float = 0.001
    lr_factor: float = 0.25
    reductions: int = 3
    floor: float = 0.0
    n_val: int = 4096
    n_test: int = 16384
    dtype: str = "float32"
    seed: int = 0

    def validate(self) -> None:
        if self.k < 1 or self.d < 2 * self.k:
            raise SpecError(f"the step-2 target needs d >= 2k, got d={self.d}, k={self.k}")
        bounded(self.d, "--d", MAX_INPUT_DIM, low=2)
        if len(self.alphas) < 2 or min(self.alphas) <= 0 or max(self.alphas) > 1:
            raise SpecError(f"--alphas needs at least two values in (0, 1], got {list(self.alphas)}")
        distinct(self.alphas, "--alphas")
        if self.seeds < 1 or not self.widths or min(self.widths) < 1:
            raise SpecError("--seeds and every --width must be >= 1")
        bounded(self.seeds, "--seeds", MAX_SEEDS)
        for width in distinct(self.widths, "--width"):
            bounded(width, "--width", MAX_WIDTH)
        # every α and seed is trained in one batched tensor: (α, seed, rows, width) activations
        rows = max(self.batch, self.n_val, self.n_test)
        fits_in_memory(4.0 * 4 * len(self.alphas) * self.seeds * rows * (max(self.widths) + self.d),
                       f"{len(self.alphas)} α x {self.seeds} seeds at width {max(self.widths):,}")
        if self.batch < 2 or min(self.max_steps) < 1 or self.eval_every < 1 or self.patience < 1:
            raise SpecError("batch, steps, eval_every and patience must be positive")
        if not (self.lr > 0 and self.correction_lr > 0 and 0 < self.lr_factor < 1 and self.reductions >= 0):
            raise SpecError("learning rates must be > 0 and lr_factor in (0, 1)")
        if not (self.floor >= 0 and math.isfinite(self.floor)):
            raise SpecError(f"floor must be a finite number >= 0, got {self.floor}")
        if self.dtype not in ("float32", "float64"):
            raise SpecError(f"dtype must be float32 or float64, got {self.dtype!r}")

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


PRESETS: Mapping[str, Config] = MappingProxyType({
    "default": Config(),
    # seconds: two α, two seeds, the main width only, short stages
    "quick": Config(alphas=(0.1, 0.4), seeds=2, widths=(16,), batch=512, max_steps=(300, 300, 300),
                    n_val=2048, n_test=4096),
})


def preset(name: str, **overrides: Any) -> Config:
    if name not in PRESETS:
        raise SpecError(f"unknown preset {name!r}", f"use one of {', '.join(PRESETS)}")
    config = replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
    config.validate()
    return config


# --- the target and its analytic projection --------------------------------------------------------


def target(x: torch.Tensor, alphas: torch.Tensor, k: int) -> torch.Tensor:
    """G(x) for every α: x (S, B, d), alphas (A,) -> (A, S, B)."""
    sq = x[..., :k] ** 2
    g1 = sq.sum(-1)
    g2 = ((sq + x[..., k:2 * k]) ** 2).sum(-1)
    return g1.unsqueeze(0) + alphas.view(-1, 1, 1) * g2.unsqueeze(0)


def stage1_prediction(alpha: float, k: int, d: int) -> dict[str, Any]:
    """The Hermite projection of G onto layer-1-expressible functions (xᵀAx + c): the diagonal of
    A* and its layer-1 error (= α exactly, whatever k and d)."""
    diag = [1 + 6 * alpha] * k + [alpha] * k + [0.0] * (d - 2 * k)
    a_star = torch.diag(torch.tensor(diag, dtype=torch.float64))
    error = _readout_error(a_star, k)
    return {"diag": diag, "layer1_error": error}


def _teacher_coords(k: int, d: int) -> torch.Tensor:
    eye = torch.eye(k, d, dtype=torch.float64)
    return QuadraticForms.pure(eye[:, :, None] * eye[:, None, :]).coordinates()


def _readout_error(a1: torch.Tensor, k: int) -> float:
    """Layer-1 read-out error of the form xᵀA₁x (see the module docstring)."""
    d = a1.shape[-1]
    teacher = _teacher_coords(k, d)
    return float(projection_error(QuadraticForms.pure(a1).coordinates(), teacher) / teacher.sum(0).norm())


def layer1_measures(w1: torch.Tensor, a1: torch.Tensor, k: int) -> dict[str, float]:
    """Exact layer-1 measures of one learner from its weights W₁ (m, d) and readout a₁ (m,)."""
    w1, a1 = w1.double(), a1.double()
    units = QuadraticForms.pure(w1[:, :, None] * w1[:, None, :])
    a_form = units.readout(a1).quad
    return {"layer1_error": _readout_error(a_form, k),
            "layer1_span_error": span_error(_teacher_coords(k, w1.shape[1]), units.coordinates())}


# --- the batched learner -----------------------------------------------------------------------------


def init_params(config: Config, width: int, seeds: list[int], n_alphas: int) -> dict[str, torch.Tensor]:
    """Initial weights (A, S, ...) of every run: drawn per seed (the same for every α of a seed, so α
    are compared on equal footing), Gaussian with variance 1/fan-in; readouts 1/width."""
    d, m = config.d, width
    per_seed = []
    for s in seeds:
        gen = generator(s * 7 + width)
        per_seed.append({
            "w1": torch.randn(m, d, generator=gen, dtype=torch.float64) / math.sqrt(d),
            "u2": torch.randn(m, d, generator=gen, dtype=torch.float64) / math.sqrt(d + m),
            "v2": torch.randn(m, m, generator=gen, dtype=torch.float64) / math.sqrt(d + m),
            "a1": torch.randn(m, generator=gen, dtype=torch.float64) / m,
            "a2": torch.randn(m, generator=gen, dtype=torch.float64) / m,
            "c": torch.zeros((), dtype=torch.float64),
        })
    dtype = getattr(torch, config.dtype)
    return {name: torch.stack([p[name] for p in per_seed]).unsqueeze(0).expand(n_alphas, *(
        [-1] * (per_seed[0][name].dim() + 1))).to(dtype).contiguous() for name in per_seed[0]}


def _run_major(p: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """(A, S, ...) -> (S, A, ...): the runs of a seed side by side, so that one matrix product per seed
    serves every α (they share the seed's inputs)."""
    return {name: v.transpose(0, 1) for name, v in p.items()}


def _outputs(q: dict[str, torch.Tensor], x: torch.Tensor, depth: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Outputs (S, A, B) of every run on x (S, B, d), parameters ``q`` seed-major (S, A, ...), and the
    activations the gradient needs (each (S·A, width, B): the batch is the last, contiguous axis).
    One product per seed computes W₁x (and U₂x) for every α at once."""
    n_s, n_a, m, d = q["w1"].shape
    runs, xt = n_s * n_a, x.transpose(1, 2)
    w = q["w1"] if depth == 1 else torch.cat([q["w1"], q["u2"]], 2)
    z = torch.bmm(w.reshape(n_s, -1, d), xt).view(runs, -1, x.shape[1])         # (R, m or 2m, B)
    z1 = z[:, :m]
    h1 = z1 * z1
    out = torch.bmm(q["a1"].reshape(runs, 1, m), h1)                            # (R, 1, B)
    cache = {"z1": z1, "h1": h1}
    if depth == 2:
        z2 = torch.baddbmm(z[:, m:], q["v2"].reshape(runs, m, m), h1)
        h2 = z2 * z2
        out = torch.baddbmm(out, q["a2"].reshape(runs, 1, m), h2)
        cache |= {"z2": z2, "h2": h2}
    return out.view(n_s, n_a, -1) + q["c"].unsqueeze(-1), cache


def forward(p: dict[str, torch.Tensor], x: torch.Tensor, depth: int) -> torch.Tensor:
    """Outputs (A, S, B) of every run on x (S, B, d) (runs of a seed share its inputs)."""
    return _outputs(_run_major(p), x, depth)[0].transpose(0, 1)


def _gradients(q: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, depth: int,
               grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """The gradient of the mean squared error of every run, written into ``grads`` (seed-major views,
    only the parameters that train); returns the loss (S, A). Written out by hand (the learner is
    two quadratic layers): no autograd bookkeeping, no products for frozen parameters."""
    n_s, n_a, m, d = q["w1"].shape
    runs, batch = n_s * n_a, x.shape[1]
    out, cache = _outputs(q, x, depth)
    diff = out - y
    loss = (diff * diff).mean(-1)
    r = (diff * (2.0 / batch)).view(runs, 1, batch)                               # dLoss/dout
    z1, h1 = cache["z1"], cache["h1"]
    if "a1" in grads:   # (row vector) x (matrix): several times faster than (matrix) x (column vector) here
        torch.bmm(r, h1.transpose(1, 2), out=grads["a1"].view(runs, 1, m))
    if "c" in grads:
        grads["c"].copy_(r.view(n_s, n_a, batch).sum(-1))
    if depth == 2:
        z2 = cache["z2"]
        if "a2" in grads:
            torch.bmm(r, cache["h2"].transpose(1, 2), out=grads["a2"].view(runs, 1, m))
        two_a2 = 2 * q["a2"].reshape(runs, m, 1)
        g2 = (z2 * r).mul_(two_a2)                                                  # dLoss/dz₂
        if "u2" in grads:
            torch.bmm(g2.view(n_s, n_a * m, batch), x, out=grads["u2"].view(n_s, n_a * m, d))
        if "v2" in grads:
            torch.bmm(g2, h1.transpose(1, 2), out=grads["v2"].view(runs, m, m))
        if "w1" in grads:
            # dLoss/dh₁ = r·(a₁ + V₂ᵀ(2a₂ ⊙ z₂)); dLoss/dz₁ = 2 z₁ ⊙ dLoss/dh₁
            vt = (q["v2"].reshape(runs, m, m) * two_a2).transpose(1, 2)
            g1 = torch.baddbmm(q["a1"].reshape(runs, m, 1), vt, z2).mul_(z1).mul_(r)
    elif "w1" in grads:
        g1 = (z1 * r).mul_(q["a1"].reshape(runs, m, 1))
    if "w1" in grads:
        torch.bmm(g1.view(n_s, n_a * m, batch), x, out=grads["w1"].view(n_s, n_a * m, d))
        grads["w1"].mul_(2)
    return loss


@dataclass
class Phase:
    """One training stage: which parameters train, at which rate, how deep the output reads, the
    cap on its steps and the stream its samples come from."""

    name: str
    trainable: tuple[str, ...]
    lr: float
    depth: int
    max_steps: int
    stream: int


STAGE1 = ("w1", "a1", "c")
STAGE2 = ("u2", "v2", "a2", "c")
ALL = ("w1", "u2", "v2", "a1", "a2", "c")


@dataclass
class PhaseRecord:
    steps: np.ndarray            # (A, S) steps each run made
    plateaued: np.ndarray        # (A, S) whether it stopped on the plateau criterion
    val_rel_mse: np.ndarray      # (A, S) final relative validation MSE
    floored: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (A, S) stopped under the floor
    curve: list[list[float]] = field(default_factory=list)  # per evaluation: seed-mean rel. val MSE per α


def _rel_mse(p, x, y, depth, chunk: int = 4096) -> torch.Tensor:
    """Relative MSE (A, S) on fixed samples x (S, N, d), y (A, S, N), in chunks."""
    q = _run_major(p)
    yt = y.transpose(0, 1)
    with torch.no_grad():
        err = sum(((_outputs(q, x[:, i:i + chunk], depth)[0] - yt[..., i:i + chunk]) ** 2).sum(-1)
                  for i in range(0, x.shape[1], chunk))
        return (err / x.shape[1] / yt.var(-1)).transpose(0, 1)


def train_phase(config: Config, params: dict[str, torch.Tensor], phase: Phase, alphas: torch.Tensor,
                seeds: list[int], val: tuple[torch.Tensor, torch.Tensor],
                device: torch.device | str = "cpu", min_steps: np.ndarray | None = None,
                ) -> tuple[dict[str, torch.Tensor], PhaseRecord]:
    """Train every run of ``params`` (A, S, ...) through ``phase`` as one batched program: Adam with a
    per-run rate, cut by ``lr_factor`` on every validation plateau; a run is converged after
    ``reductions`` cuts and one more plateau, or once its relative validation MSE is under
    ``config.floor``, and then stops — unless ``min_steps`` (A, S) asks it to go on (at its last
    rate) until it has made that many steps, e.g. to match the steps of the arm it is compared with.
    Returns the new parameters and the record."""
    n_a, n_s = params["w1"].shape[:2]
    dtype = params["w1"].dtype
    # every parameter, seed-major (S, A, ...), in one flat buffer: Adam updates them all at once; the
    # gradient of a frozen parameter stays zero, so its Adam step is exactly zero
    blocks = [params[n].detach().transpose(0, 1).to(device).reshape(-1) for n in ALL]
    sizes = [b.numel() for b in blocks]

    def views(buffer: torch.Tensor) -> dict[str, torch.Tensor]:
        return {n: t.view(n_s, n_a, *params[n].shape[2:]) for n, t in zip(ALL, buffer.split(sizes))}

    flat = torch.cat(blocks)
    grad = torch.zeros_like(flat)
    q, grads = views(flat), {n: g for n, g in views(grad).items() if n in phase.trainable}
    p_as = {n: v.transpose(0, 1) for n, v in q.items()}             # (A, S, ...) views for the evaluations
    m1, m2 = torch.zeros_like(flat), torch.zeros_like(flat)
    per_run = [size // (n_s * n_a) for size in sizes]

    def rate_vector(rate: torch.Tensor) -> torch.Tensor:            # (A, S) -> one rate per entry of flat
        rate = rate.t().reshape(n_s, n_a, 1).to(device=device, dtype=dtype)
        return torch.cat([rate.expand(n_s, n_a, k).reshape(-1) for k in per_run])

    gens = [generator(s * 1000 + 10 + phase.stream) for s in seeds]
    x_cpu = torch.empty(n_s, config.batch, config.d, dtype=dtype)
    alphas_d = alphas.to(device=device, dtype=dtype)
    lr = torch.full((n_a, n_s), phase.lr, dtype=torch.float64)
    cuts = torch.zeros((n_a, n_s), dtype=torch.long)
    bad = torch.zeros((n_a, n_s), dtype=torch.long)
    best = torch.full((n_a, n_s), math.inf, dtype=torch.float64)
    active = torch.ones((n_a, n_s), dtype=torch.bool)
    plateaued = torch.zeros((n_a, n_s), dtype=torch.bool)
    floored = torch.zeros((n_a, n_s), dtype=torch.bool)
    steps = torch.zeros((n_a, n_s), dtype=torch.long)
    least = torch.zeros((n_a, n_s), dtype=torch.long) if min_steps is None else torch.as_tensor(min_steps).long()
    record = PhaseRecord(np.zeros(0), np.zeros(0), np.zeros(0))
    rates = rate_vector(lr)
    b1, b2, eps = 0.9, 0.999, 1e-12
    for t in range(1, phase.max_steps + 1):
        for i, gen in enumerate(gens):   # drawn in the training dtype, per seed (a run's samples do not
            torch.randn(config.batch, config.d, generator=gen, dtype=dtype, out=x_cpu[i])  # depend on the others)
        x = x_cpu.to(device)
        y = target(x, alphas_d, config.k).transpose(0, 1)                          # (S, A, B)
        loss = _gradients(q, x, y, phase.depth, grads)
        m1.mul_(b1).add_(grad, alpha=1 - b1)
        m2.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        denom = (m2 / (1 - b2 ** t)).sqrt_().add_(eps)
        flat.addcdiv_(m1 * rates, denom, value=-1 / (1 - b1 ** t))
        steps += active.long()
        if not torch.isfinite(loss).all():
            raise DivergenceError(f"{phase.name}: the training loss is not finite at step {t}",
                                  "use a smaller learning rate")
        if t % config.eval_every == 0 or t == phase.max_steps:
            current = _rel_mse(p_as, *val, phase.depth).double().cpu()
            record.curve.append([round(float(v), 8) for v in current.mean(1)])
            improved = current < best * (1 - config.plateau_tol)
            best = torch.where(improved, current, best)
            bad = torch.where(improved, torch.zeros_like(bad), bad + 1)
            stall = active & ~(plateaued | floored) & (bad >= config.patience)
            finished = stall & (cuts >= config.reductions)
            plateaued |= finished
            floored |= active & ~plateaued & (current < config.floor)
            active &= ~((plateaued | floored) & (steps >= least))
            cut = stall & ~finished
            cuts += cut.long()
            bad = torch.where(cut, torch.zeros_like(bad), bad)
            lr = torch.where(cut, lr * config.lr_factor, lr)
            rates = rate_vector(lr * active)
            if not active.any():
                break
    record.steps, record.plateaued, record.floored = steps.numpy(), plateaued.numpy(), floored.numpy()
    record.val_rel_mse = _rel_mse(p_as, *val, phase.depth).double().cpu().numpy()
    return {n: v.transpose(0, 1).contiguous() for n, v in q.items()}, record


# --- the study -----------------------------------------------------------------------------------------


def _fixed_samples(config: Config, seeds: list[int], n: int, stream: int, alphas: torch.Tensor,
                   device) -> tuple[torch.Tensor, torch.Tensor]:
    dtype = getattr(torch, config.dtype)
    x = torch.stack([torch.randn(n, config.d, generator=generator(s * 1000 + stream), dtype=torch.float64)
                     for s in seeds]).to(device=device, dtype=dtype)
    return x, target(x, alphas.to(device=device, dtype=dtype), config.k)


def _measures(params: dict[str, torch.Tensor], k: int) -> dict[str, np.ndarray]:
    n_a, n_s = params["w1"].shape[:2]
    rows = [[layer1_measures(params["w1"][i, j].cpu(), params["a1"][i, j].cpu(), k) for j in range(n_s)]
            for i in range(n_a)]
    return {key: np.array([[r[key] for r in row] for row in rows]) for key in rows[0][0]}


def run_width(config: Config, width: int, *, device: torch.device | str = "cpu",
              log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Every arm at one learner width: per arm, (A, S) arrays of the measures, the steps and the
    final relative test MSE; plus stage 1's own measures and learned diagonal."""
    say = log or (lambda _: None)
    seeds = config.seed_list
    alphas = torch.tensor(config.alphas, dtype=torch.float64)
    val = _fixed_samples(config, seeds, config.n_val, 2, alphas, device)
    test = _fixed_samples(config, seeds, config.n_test, 3, alphas, device)
    s1, s2, s3 = config.max_steps
    init = init_params(config, width, seeds, len(alphas))
    phases = {
        "stage1": Phase("stage 1", STAGE1, config.lr, 1, s1, 0),
        "stage2": Phase("stage 2", STAGE2, config.lr, 2, s2, 1),
        "joint-stage": Phase("joint stage", ALL, config.correction_lr, 2, s3, 2),
        "frozen-stage": Phase("joint stage, layer 1 frozen", ("u2", "v2", "a1", "a2", "c"), config.correction_lr,
                              2, s3, 2),
        "scratch": Phase("joint from scratch", ALL, config.lr, 2, s1 + s2 + s3, 3),
    }
    done: dict[str, tuple[dict[str, torch.Tensor], PhaseRecord]] = {}
    for name, start in (("stage1", None), ("stage2", "stage1"), ("joint-stage", "stage2"),
                        ("frozen-stage", "stage2"), ("scratch", None)):
        clock = time.perf_counter()
        # the frozen control makes at least the steps its unfrozen twin made (equal-step comparison)
        least = done["joint-stage"][1].steps if name == "frozen-stage" else None
        done[name] = train_phase(config, init if start is None else done[start][0], phases[name], alphas, seeds,
                                 val, device, min_steps=least)
        say(f"width {width}: {phases[name].name}: {int(done[name][1].steps.max())} steps at most, "
            f"{time.perf_counter() - clock:.1f} s")
    arms = {"layerwise": ("stage1", "stage2"), "layerwise+joint": ("stage1", "stage2", "joint-stage"),
            "layerwise+joint-frozen": ("stage1", "stage2", "frozen-stage"), "joint": ("scratch",)}
    out: dict[str, Any] = {"arms": {}}
    for arm, chain in arms.items():
        params, last = done[chain[-1]]
        out["arms"][arm] = {
            **_measures(params, config.k),
            "final_rel_mse": _rel_mse(params, *test, 2).double().cpu().numpy(),
            "steps": sum(done[c][1].steps for c in chain),
            "plateaued": np.all([done[c][1].plateaued for c in chain], axis=0),
            "converged": np.all([done[c][1].plateaued | done[c][1].floored for c in chain], axis=0),
        }
    p1 = done["stage1"][0]
    a_forms = torch.einsum("asm,asmi,asmj->asij", p1["a1"].double().cpu(), p1["w1"].double().cpu(),
                           p1["w1"].double().cpu())
    out["stage1"] = {**_measures(p1, config.k), "rel_mse": _rel_mse(p1, *test, 1).double().cpu().numpy(),
                     "steps": done["stage1"][1].steps, "form": a_forms.numpy()}
    out["curves"] = {name: rec.curve for name, (_, rec) in done.items()}
    out["stages"] = {name: {"steps": rec.steps, "plateaued": rec.plateaued, "floored": rec.floored}
                     for name, (_, rec) in done.items()}
    return out


def _per_alpha(config: Config, values: np.ndarray, digits: int = 8) -> dict[str, list]:
    """(A, S) array -> {"<α>": [per seed]}."""
    return {f"{a:g}": [_round(v, digits) for v in values[i]] for i, a in enumerate(config.alphas)}


def _round(v: Any, digits: int) -> Any:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    v = float(v)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


def _slope(config: Config, per_run: np.ndarray, level: float = 0.9) -> dict[str, float]:
    """Log-log slope of the seed mean against α, with a bootstrap interval over seeds."""
    return bootstrap(per_run.T, lambda rows: loglog_slope(config.alphas, rows.mean(0)), level=level,
                     seed=config.seed)


def pooled_ratio(num: np.ndarray, den: np.ndarray, *, level: float = 0.95, seed: int = 0,
                 draws: int = 4000) -> dict[str, Any]:
    """The geometric mean over α of the ratio of seed means, mean(num) / mean(den), for paired
    (A, S) arrays, with a paired bootstrap interval (seeds resampled jointly for both arms and
    every α: the runs of a seed share their initial weights and samples)."""
    pairs = np.stack([num.T, den.T], 1)  # (S, 2, A)

    def stat(rows: np.ndarray) -> float:
        return float(np.exp(np.log(rows[:, 0].mean(0) / rows[:, 1].mean(0)).mean()))

    return bootstrap(pairs, stat, draws=draws, level=level, seed=seed)


def _saddle(config: Config, result: dict[str, Any]) -> dict[str, Any]:
    """How many runs of each arm end in the 45° configuration (x_i ± x_j)² (span error √½ ± 0.02)."""
    rates = {}
    for arm, r in result["arms"].items():
        hit = np.abs(r["layer1_span_error"] - SADDLE) < 0.02
        rates[arm] = {"count": int(hit.sum()), "runs": int(hit.size), "rate": float(hit.mean()),
                      "per_alpha": {f"{a:g}": int(hit[i].sum()) for i, a in enumerate(config.alphas)}}
    hit = np.abs(result["stage1"]["layer1_span_error"] - SADDLE) < 0.02
    rates["stage1"] = {"count": int(hit.sum()), "runs": int(hit.size), "rate": float(hit.mean())}
    return rates


def _arms_json(config: Config, result: dict[str, Any]) -> dict[str, Any]:
    return {arm: {key: _per_alpha(config, r[key]) for key in
                  ("layer1_error", "layer1_span_error", "final_rel_mse", "steps", "plateaued", "converged")}
            for arm, r in result["arms"].items()}


def run(config: Config, *, device: torch.device | str = "cpu", log: Callable[[str], None] | None = None) -> Result:
    """Run the study and return the ``results.json`` dict (see docs/formats.md)."""
    config.validate()
    start = time.perf_counter()
    by_width = {m: run_width(config, m, device=device, log=log) for m in config.widths}
    main = by_width[config.widths[0]]
    alphas, k, d = config.alphas, config.k, config.d
    prediction = {f"{a:g}": stage1_prediction(a, k, d) for a in alphas}
    s1 = main["stage1"]
    form = s1["form"]  # (A, S, d, d)
    diag = np.diagonal(form, axis1=-2, axis2=-1)
    off = np.abs(form - np.einsum("...i,ij->...ij", diag, np.eye(d))).max(axis=(-2, -1))
    learned = {f"{a:g}": {"teacher_diag": float(diag[i, :, :k].mean()), "partner_diag": float(diag[i, :, k:2 * k].mean()),
                          "other_diag_max": float(np.abs(diag[i, :, 2 * k:]).max()) if d > 2 * k else 0.0,
                          "offdiag_max": float(off[i].max())} for i, a in enumerate(alphas)}
    arms = main["arms"]
    lw, lj, fz = (arms[a]["final_rel_mse"] for a in ("layerwise", "layerwise+joint", "layerwise+joint-frozen"))
    big = [i for i, a in enumerate(alphas) if a >= 0.1]
    frozen_ratio = pooled_ratio(fz, lj, seed=config.seed)
    per_alpha_frozen = {f"{a:g}": ratio_of_means(fz[i], lj[i], seed=config.seed) for i, a in enumerate(alphas)}
    stage1_vs_pred = s1["layer1_error"].mean(1) / np.array([prediction[f"{a:g}"]["layer1_error"] for a in alphas])
    results: Result = {
        "format": FORMAT, "featviz": __version__,
        "config": config.to_dict() | {"seeds": config.seed_list, "main_width": config.widths[0]},
        "plateau_criterion": (f"every {config.eval_every} steps the relative validation MSE ({config.n_val} fixed "
                              f"samples per seed) is compared with its best; no improvement by "
                              f"{config.plateau_tol:.1%} in {config.patience} evaluations cuts the rate by "
                              f"{config.lr_factor:g}; the {config.reductions + 1}th such stall ends the stage"
                              + (f", as does a relative validation MSE under {config.floor:g}" if config.floor > 0
                                 else "")
                              + f" (caps: {config.max_steps} steps per stage, joint from scratch "
                              f"{sum(config.max_steps)}); the frozen control's joint stage goes on at its last "
                              f"rate until it has made as many steps as its unfrozen twin"),
        "alphas": list(alphas),
        "primary": {"name": "final relative test MSE, layerwise+joint with layer 1 frozen / unfrozen (geometric "
                            "mean over α of the ratio of seed means; paired bootstrap over seeds)",
                    **{key: frozen_ratio[key] for key in ("value", "low", "high", "level")}},
        "arms": _arms_json(config, main),
        "stage1": {"layer1_error": _per_alpha(config, s1["layer1_error"]),
                   "layer1_span_error": _per_alpha(config, s1["layer1_span_error"]),
                   "rel_mse": _per_alpha(config, s1["rel_mse"]), "steps": _per_alpha(config, s1["steps"]),
                   "learned_form": learned,
                   "error_over_prediction": {f"{a:g}": float(v) for a, v in zip(alphas, stage1_vs_pred)}},
        "prediction": {"layer1_error": {a: v["layer1_error"] for a, v in prediction.items()},
                       "stage1_diag": {a: v["diag"][:2 * k] for a, v in prediction.items()}},
        "slopes": {"stage1": _slope(config, s1["layer1_error"]),
                   "corrected": _slope(config, arms["layerwise+joint"]["layer1_span_error"]),
                   "corrected_readout": _slope(config, arms["layerwise+joint"]["layer1_error"]),
                   "joint_span": _slope(config, arms["joint"]["layer1_span_error"]),
                   "stage1_span": _slope(config, s1["layer1_span_error"])},
        "ratios": {
            "frozen_over_unfrozen": frozen_ratio,
            "frozen_over_unfrozen_per_alpha": per_alpha_frozen,
            "layerwise_over_layerwise_joint_per_seed": _per_alpha(config, lw / lj, 4),
            "layerwise_over_layerwise_joint_min_at_alpha_ge_0.1": float((lw / lj)[big].min()) if big else None,
            "joint_over_layerwise_joint_per_alpha": {f"{a:g}": ratio_of_means(arms["joint"]["final_rel_mse"][i],
                                                                             lj[i], seed=config.seed)
                                                     for i, a in enumerate(alphas)},
        },
        "stages": {name: {key: _per_alpha(config, v[key]) for key in ("steps", "plateaued", "floored")}
                   for name, v in main["stages"].items()},
        "curves": main["curves"],
    }
    others = {}
    for m in config.widths[1:]:
        entry = {"arms": _arms_json(config, by_width[m]),
                 "stage1": {"layer1_error": _per_alpha(config, by_width[m]["stage1"]["layer1_error"]),
                            "layer1_span_error": _per_alpha(config, by_width[m]["stage1"]["layer1_span_error"])}}
        if m == k:
            entry["saddle"] = _saddle(config, by_width[m])
        others[str(m)] = entry
    results["other_widths"] = others
    results["findings"] = findings(results)
    results["seconds"] = round(time.perf_counter() - start, 2)
    return results


def findings(results: Result) -> list[str]:
    """One line per headline number, with its interval."""
    sl, alphas = results["slopes"], results["alphas"]
    ratio = results["ratios"]["frozen_over_unfrozen"]
    over = results["stage1"]["error_over_prediction"]
    lines = [
        f"stage-1 layer-1 error vs α: log-log slope {interval_text(sl['stage1'], '.2f')} (90 % bootstrap over "
        f"seeds; the Hermite projection predicts exactly 1); measured / predicted at each α: "
        + ", ".join(f"{a}: {over[f'{a:g}']:.3f}" for a in alphas),
        f"layer 1 frozen / unfrozen in the joint stage, final relative test MSE: {ratio['value']:.3g}× "
        f"[{ratio['low']:.3g}, {ratio['high']:.3g}] (95 % paired bootstrap; geometric mean over α)",
        f"after the correction, layer-1 span error vs α: slope {interval_text(sl['corrected'], '.2f')} "
        "(the talk's law would be 2)",
    ]
    runs = len(alphas) * len(results["config"]["seeds"])
    ended = {name: (sum(sum(v) for v in st["plateaued"].values()), sum(sum(v) for v in st["floored"].values()))
             for name, st in results["stages"].items()}
    floor = results["config"].get("floor", 0) > 0
    lines.append("stages that reached the plateau rule" + (" (+ under the floor)" if floor else "")
                 + " (the rest ended at their step cap): "
                 + ", ".join(f"{name} {p}" + (f"+{f}" if floor else "") + f"/{runs}" for name, (p, f) in ended.items()))
    steps = {arm: float(np.mean([s for v in r["steps"].values() for s in v])) for arm, r in results["arms"].items()}
    lines.append("optimizer steps per run (mean over runs): " + ", ".join(f"{arm} {v:.0f}" for arm, v in steps.items()))
    m = results["ratios"]["layerwise_over_layerwise_joint_min_at_alpha_ge_0.1"]
    if m is not None:
        lines.append(f"layerwise / layerwise+joint final relative MSE, smallest over seeds at α ≥ 0.1: {m:.3g}×")
    for width, entry in results.get("other_widths", {}).items():
        if "saddle" in entry:
            sad = entry["saddle"]
            lines.append(f"teacher-width learners (width {width}) ending in the 45° saddle (x1 ± x2)²: " + ", ".join(
                f"{arm} {v['count']}/{v['runs']}" for arm, v in sad.items()))
    return lines


def stage1_table(results: Result) -> str:
    """What stage 1 learns beside the analytic projection, one line per α."""
    k = results["config"]["k"]
    lines = [f"{'α':>6} {'x_i² coef (pred)':>20} {'x_(k+i)² coef (pred)':>22} {'layer-1 error (pred)':>24}"]
    for a in results["alphas"]:
        key = f"{a:g}"
        learned, pred = results["stage1"]["learned_form"][key], results["prediction"]
        err = float(np.mean(results["stage1"]["layer1_error"][key]))
        lines.append(f"{a:>6g} {learned['teacher_diag']:>10.4f} ({pred['stage1_diag'][key][0]:.4f}) "
                     f"{learned['partner_diag']:>11.4f} ({pred['stage1_diag'][key][k]:.4f}) "
                     f"{err:>13.5f} ({pred['layer1_error'][key]:.5f})")
    return "\n".join(lines)


def write(result: Result, out: str | Path) -> list[str]:
    """``results.json`` and the figure ``correction.png``/``.svg``, atomically."""
    from ..hierarchy.plots import write_correction_plots

    return write_results(result, out, write_correction_plots)


__all__ = ["ARMS", "Config", "FORMAT", "PRESETS", "forward", "init_params", "layer1_measures", "preset", "run",
           "run_width", "stage1_prediction", "target", "train_phase", "write"]
