"""Robustness evaluation: ε sweeps, per-example minimal ε, several models at once.

The sweep is warm-started: ε grows, an example fooled at a smaller ε keeps its
adversarial example (valid in every larger ball) and is never attacked again, and the
others resume from their best iterate so far. The robust-accuracy curve is therefore
monotone by construction and costs roughly what the attack costs on the examples
that are still standing, not K independent runs.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import SpecError
from .core import Attack, check_eps, draw_targets
from .model import predict

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def parse_eps_sweep(spec: str) -> list[float]:
    """``"A:B:K"`` -> K evenly spaced ε from A to B inclusive (``"0:0.3:8"``, ``"0:8/255:5"``)."""
    parts = str(spec).split(":")
    if len(parts) != 3:
        raise SpecError(f"--eps-sweep {spec!r} is not A:B:K", "e.g. --eps-sweep 0:0.3:8 (8 values from 0 to 0.3)")
    from ..numbers import parse_number

    try:
        a, b, k = parse_number(parts[0]), parse_number(parts[1]), int(parts[2])
    except (ValueError, SpecError):
        raise SpecError(f"--eps-sweep {spec!r}: A and B must be numbers and K an integer",
                        "e.g. --eps-sweep 0:0.3:8") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < a:
        raise SpecError(f"--eps-sweep {spec!r} needs 0 <= A <= B", "e.g. --eps-sweep 0:0.3:8")
    if k < 1 or k > 1000 or (k == 1 and a != b):
        raise SpecError(f"--eps-sweep {spec!r}: K must be 2..1000 (or 1 when A == B)", "e.g. --eps-sweep 0:0.3:8")
    return [a] if k == 1 else [a + (b - a) * i / (k - 1) for i in range(k)]


@dataclass
class Examples:
    """The first few evaluated examples, for pictures: clean ``x`` and adversarial
    ``x_adv`` (n, C, H, W), labels, predictions, and the ε (norm) of ``x_adv``."""

    x: torch.Tensor
    x_adv: torch.Tensor
    label: torch.Tensor
    pred: torch.Tensor
    pred_adv: torch.Tensor
    eps: torch.Tensor


@dataclass
class AttackReport:
    """One attack on one model over a test set.

    ``fooled`` (N, K) bool: example i is misclassified by an adversarial example of
    norm ≤ ``eps[j]`` (clean mistakes count as fooled at every ε). ``min_eps`` (N,):
    the smallest ε found that fools the example (0 for clean mistakes, inf when none
    was found up to the largest ε). ``norm`` (N,): norm of the adversarial example kept.
    """

    attack: dict[str, Any]
    eps: list[float]
    fooled: torch.Tensor
    correct: torch.Tensor
    min_eps: torch.Tensor
    norm: torch.Tensor
    examples: Examples | None
    seed: int | None = None
    seconds: float = 0.0
    component: torch.Tensor | None = None  # (N, K) long: which ensemble part broke example i at eps[j]
    queries: torch.Tensor | None = None  # (N,) long: black-box queries spent on each example
    measured: bool = True  # min_eps was measured per example (bisected or minimal), not read off the sweep

    @property
    def clean_accuracy(self) -> float:
        return float(self.correct.float().mean())

    def robust_accuracy(self) -> list[float]:
        return [float((~self.fooled[:, j]).float().mean()) for j in range(len(self.eps))]

    def mean_norm(self) -> list[float | None]:
        """Mean perturbation norm of the examples that were correct and are fooled at each ε."""
        out = []
        for j, e in enumerate(self.eps):
            sel = self.fooled[:, j] & self.correct
            out.append(float(torch.minimum(self.norm[sel], torch.tensor(e)).mean()) if bool(sel.any()) else None)
        return out

    def min_eps_summary(self) -> dict[str, Any]:
        """Median over the clean-correct examples (inf -> null when most survive the
        largest ε), mean over those that were broken, and the broken fraction.

        ``measured`` is false when the attack was neither bisected nor a minimal-perturbation
        attack (ensembles and Square by default): each example's ε would only be the first
        swept value that broke it, so ``median`` and ``mean`` are null rather than a sweep value."""
        vals = self.min_eps[self.correct]
        finite = vals[torch.isfinite(vals)]
        median = float(vals.sort().values[(len(vals) - 1) // 2]) if len(vals) else math.nan
        broken = float(len(finite) / len(vals)) if len(vals) else 0.0
        if not self.measured:
            return {"median": None, "mean": None, "broken": broken, "n": int(len(vals)), "measured": False}
        return {"median": median if math.isfinite(median) else None,
                "mean": float(finite.mean()) if len(finite) else None,
                "broken": broken, "n": int(len(vals)), "measured": True}

    def components(self, j: int) -> list[dict[str, Any]] | None:
        """For an ensemble: how many examples each part broke at ``eps[j]`` (first to fool wins)."""
        if self.component is None:
            return None
        parts = self.attack.get("components", [])
        return [{"attack": c["attack"], "broken": int((self.component[:, j] == i).sum())}
                for i, c in enumerate(parts)]

    def to_dict(self) -> dict[str, Any]:
        curve = []
        for j, (e, a, m) in enumerate(zip(self.eps, self.robust_accuracy(), self.mean_norm())):
            point = {"eps": e, "robust_accuracy": a, "mean_norm": m}
            if self.component is not None:
                point["components"] = self.components(j)
            curve.append(point)
        out = {**self.attack, "curve": curve, "min_eps": self.min_eps_summary(), "seed": self.seed,
               "seconds": round(self.seconds, 3)}
        if self.queries is not None:
            out["queries"] = {"mean": float(self.queries.float().mean()), "max": int(self.queries.max())}
        return out


def _batches(x: torch.Tensor | Batches, y: torch.Tensor | None, batch_size: int) -> Batches:
    if isinstance(x, torch.Tensor):
        if y is None or len(x) != len(y):
            raise SpecError("x and y must be tensors with the same number of examples")
        return ((x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size))
    return x


def robustness_curve(model: nn.Module, x: torch.Tensor | Batches, y: torch.Tensor | None, attack: Attack,
                     eps: Sequence[float], *, gen: torch.Generator | None = None, targeted: bool = False,
                     batch_size: int = 256, bisect_steps: int = 5, n_show: int = 8, seed: int | None = None,
                     progress: bool = True, device: torch.device | str | None = None,
                     batch_offset: int = 0) -> AttackReport:
    """Robust accuracy of ``model`` under ``attack`` at every ε, streaming over the data.

    ``x`` (N, C, H, W) in the attack's bounds with labels ``y`` (N,), or an iterable of
    ``(x, y)`` batches (then ``y`` is None). ε is sorted ascending. Gradient attacks
    are warm-started across ε (see the module docstring) and each broken example's
    minimal ε is then refined by ``bisect_steps`` (default 5) bisections of its
    bracket; minimal-perturbation attacks (CW, DeepFool) run once and their norms give
    the curve. ``targeted``: random targets drawn from ``gen``. ``n_show`` examples of
    the first batch are kept for pictures. The model's modes and parameters are kept.

    Randomness: with an explicit ``gen`` all batches draw from it in turn; otherwise batch
    b draws from its own generator seeded by (``seed``, ``batch_offset`` + b), so a shard of
    the data that starts at batch ``batch_offset`` reproduces exactly what a run over all
    the data computes for those examples (how ``torchrun`` shards an evaluation).
    """
    eps = sorted(float(e) for e in eps)
    if not eps:
        raise SpecError("no ε to evaluate", "pass --eps E or --eps-sweep A:B:K")
    if bisect_steps < 0:
        raise SpecError(f"bisection steps must be >= 0, got {bisect_steps}")
    from ..devices import generator

    shared_gen = gen
    start = time.perf_counter()
    parts: dict[str, list[torch.Tensor]] = {"fooled": [], "correct": [], "min_eps": [], "norm": [], "component": [],
                                            "queries": []}
    examples = None
    bar = tqdm(desc=f"attack {attack.name}", unit="img", disable=not progress, leave=False)
    for b, (xb, yb) in enumerate(_batches(x, y, batch_size), start=batch_offset):
        if device is not None:
            xb, yb = xb.to(device), yb.to(device)
        check_eps(eps, attack.norm, xb[0].numel(), attack.bounds)
        gen = shared_gen if shared_gen is not None else generator((0 if seed is None else seed) * 1_000_003 + b)
        result = _evaluate_batch(model, xb, yb, attack, eps, gen, targeted, bisect_steps)
        for key in parts:
            if key in result:
                parts[key].append(result[key].cpu())
        if examples is None and n_show > 0:
            k = min(n_show, len(xb))
            examples = Examples(xb[:k].cpu(), result["witness"][:k].cpu(), yb[:k].cpu(), result["pred"][:k].cpu(),
                                result["pred_adv"][:k].cpu(), result["min_eps"][:k].cpu())
        bar.update(len(xb))
    bar.close()
    if not parts["fooled"]:
        raise SpecError("no examples to attack", "check --n-examples and the dataset")
    cat = {k: torch.cat(v) if v else None for k, v in parts.items()}
    return AttackReport(attack.describe(), eps, cat["fooled"], cat["correct"], cat["min_eps"], cat["norm"], examples,
                        seed=seed, seconds=time.perf_counter() - start, component=cat["component"],
                        queries=cat["queries"], measured=bool(attack.minimal or (attack.bisect and bisect_steps > 0)))


def _evaluate_batch(model, x, y, attack, eps, gen, targeted, bisect_steps) -> dict[str, torch.Tensor]:
    n = len(x)
    pred = predict(model, x)
    correct = pred == y
    target = None
    if targeted:
        target = draw_targets(y, _num_classes(model, x), gen)
    if attack.minimal:
        res = attack(model, x, y, target=target, gen=gen)
        min_eps = torch.where(res.success, res.norm, torch.full_like(res.norm, math.inf))
        min_eps = torch.where(correct, min_eps, torch.zeros_like(min_eps))
        fooled = torch.stack([min_eps <= e * (1 + 1e-6) + 1e-12 for e in eps], 1)
        return {"fooled": fooled, "correct": correct, "min_eps": min_eps, "norm": res.norm,
                "witness": res.x_adv, "pred": pred, "pred_adv": res.pred}
    # Gradient attack: warm-started sweep over ascending ε.
    witness = x.clone()  # best adversarial (or highest-loss) point found so far
    pred_adv, norm = pred.clone(), torch.zeros(n, device=x.device)
    done = ~correct if target is None else pred == target  # goal reached
    misclassified = ~correct
    lo = torch.zeros(n, device=x.device)  # largest ε known not to fool (with this attack)
    hi = torch.where(correct, torch.full((n,), math.inf, device=x.device), torch.zeros(n, device=x.device))
    fooled = torch.zeros(n, len(eps), dtype=torch.bool, device=x.device)
    # Ensembles say which part broke each example; black-box attacks count their queries.
    part = torch.where(correct, -1, -2).to(torch.long)
    components = torch.zeros(n, len(eps), dtype=torch.long, device=x.device)
    queries = torch.zeros(n, dtype=torch.long, device=x.device)
    for j, e in enumerate(eps):
        todo = torch.nonzero(~done).flatten()
        if e > 0 and len(todo):
            res = attack(model, x[todo], y[todo], e, target=None if target is None else target[todo], gen=gen,
                         init=witness[todo])
            witness[todo], pred_adv[todo], norm[todo] = res.x_adv, res.pred, res.norm
            done[todo[res.success]] = True
            misclassified[todo] |= res.pred != y[todo]
            hi[todo[res.success]] = e
            lo[todo[~res.success]] = e
            if "component" in res.extra:
                part[todo] = torch.where(res.success, res.extra["component"], part[todo])
            if "queries" in res.extra:
                queries[todo] += res.extra["queries"]
        fooled[:, j] = misclassified
        components[:, j] = part
    extra = {}
    if hasattr(attack, "components"):
        extra["component"] = components
    if attack.counts_queries:
        extra["queries"] = queries
    # Bisection of each broken example's bracket (lo, hi] with per-example ε in one batch.
    todo = torch.nonzero(correct & torch.isfinite(hi) & (hi > 0)).flatten()
    for _ in range(bisect_steps if len(todo) and attack.bisect else 0):
        mid = (lo[todo] + hi[todo]) / 2
        res = attack(model, x[todo], y[todo], mid, target=None if target is None else target[todo], gen=gen)
        won = todo[res.success]
        hi[won], witness[won], pred_adv[won], norm[won] = mid[res.success], res.x_adv[res.success], \
            res.pred[res.success], res.norm[res.success]
        lo[todo[~res.success]] = mid[~res.success]
    return {"fooled": fooled, "correct": correct, "min_eps": hi, "norm": norm, "witness": witness,
            "pred": pred, "pred_adv": pred_adv, **extra}


def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    from .model import attack_mode

    with attack_mode(model), torch.no_grad():
        return int(model(x[:1]).shape[1])


@dataclass
class ModelReport:
    """All attacks on one model: what ``results.json`` lists under ``models``."""

    name: str
    checkpoint: str
    clean_accuracy: float
    attacks: list[AttackReport] = field(default_factory=list)
    attributions: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    checks: list[dict[str, Any]] | None = None
    flags: list[dict[str, str]] = field(default_factory=list)

    def evaluations(self) -> list[dict[str, Any]]:
        """One RobustBench-style row per attack and ε (ε = 0 is the clean accuracy, left out)."""
        rows = []
        for a in self.attacks:
            for e, acc in zip(a.eps, a.robust_accuracy()):
                if e > 0:
                    rows.append({"attack": a.attack["attack"], "norm": a.attack["norm"], "eps": e,
                                 "clean_accuracy": a.clean_accuracy, "robust_accuracy": acc,
                                 "n_examples": int(len(a.correct))})
        return rows

    def to_dict(self) -> dict[str, Any]:
        out = {"checkpoint": self.checkpoint, "name": self.name, "clean_accuracy": self.clean_accuracy,
               "n_examples": int(len(self.attacks[0].correct)) if self.attacks else 0,
               "evaluations": self.evaluations(), "flags": self.flags,
               "attacks": [a.to_dict() | {"files": {k.split(":", 1)[1]: v for k, v in self.files.items()
                                                    if k.startswith(a.attack["attack"] + ":")}}
                           for a in self.attacks]}
        if self.checks is not None:
            out["checks"] = self.checks
        return out


def evaluate_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attacks: Sequence[Attack],
                   eps: dict[str, Sequence[float]] | Sequence[float], *, name: str = "model",
                   checkpoint: str = "", seed: int = 0, **kwargs) -> ModelReport:
    """Every attack on one model, each drawing from generators seeded by ``seed`` (so adding
    an attack does not change another's numbers). ``eps``: one list for all attacks, or a
    dict keyed by norm (``"linf"``, ``"l2"``). ``kwargs`` go to :func:`robustness_curve`."""
    report = ModelReport(name=name, checkpoint=checkpoint, clean_accuracy=math.nan)
    for attack in attacks:
        grid = eps[attack.norm] if isinstance(eps, dict) else eps
        rep = robustness_curve(model, x, y, attack, grid, seed=seed, **kwargs)
        report.attacks.append(rep)
        report.clean_accuracy = rep.clean_accuracy
    return report


def merge_reports(parts: Sequence[ModelReport | None]) -> ModelReport:
    """Join the reports of consecutive shards of one model's data (in order) into one:
    per-example tensors are concatenated, so every figure is the one a single run gives."""
    parts = [p for p in parts if p is not None]
    first = parts[0]
    merged = ModelReport(name=first.name, checkpoint=first.checkpoint, clean_accuracy=math.nan)
    for i, rep in enumerate(first.attacks):
        shards = [p.attacks[i] for p in parts]
        cat = {k: None if getattr(rep, k) is None else torch.cat([getattr(r, k) for r in shards])
               for k in ("fooled", "correct", "min_eps", "norm", "component", "queries")}
        merged.attacks.append(AttackReport(rep.attack, rep.eps, cat["fooled"], cat["correct"], cat["min_eps"],
                                           cat["norm"], rep.examples, seed=rep.seed,
                                           seconds=max(r.seconds for r in shards), component=cat["component"],
                                           queries=cat["queries"], measured=rep.measured))
        merged.clean_accuracy = merged.attacks[-1].clean_accuracy
    return merged


def results_dict(reports: Sequence[ModelReport], seconds: float, **extra: Any) -> dict[str, Any]:
    """The ``results.json`` object documented in docs/formats.md."""
    return {"models": [r.to_dict() for r in reports], "seconds": round(seconds, 3), **extra}


def results_csv(reports: Sequence[ModelReport]) -> str:
    """One row per (model, attack, ε): the curves in a spreadsheet-friendly form."""
    rows = ["model,checkpoint,attack,norm,steps,restarts,eps,robust_accuracy,mean_norm"]
    for r in reports:
        for a in r.attacks:
            d = a.attack
            for e, acc, m in zip(a.eps, a.robust_accuracy(), a.mean_norm()):
                rows.append(f"{_csv(r.name)},{_csv(r.checkpoint)},{d['attack']},{d['norm']},{d['steps']},"
                            f"{d['restarts']},{e:.6g},{acc:.6f},{'' if m is None else f'{m:.6g}'}")
    return "\n".join(rows) + "\n"


def _csv(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text
