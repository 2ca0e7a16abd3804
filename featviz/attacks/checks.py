"""Sanity checks from Carlini et al., "On Evaluating Adversarial Robustness" (2019).

Each check runs an independent (not warm-started) L∞ attack and compares numbers; a
failure points at a broken evaluation (masked gradients, a weak attack, a bug), not at
a robust model. ``tolerance`` (default 0.01, one accuracy point) absorbs the noise of
random starts on a finite test set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..errors import SpecError
from .core import Linf, fgsm, objective, pgd
from .model import attack_mode, predict


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str
    values: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


def _robust(model, x, y, attack, eps, gen) -> float:
    """Accuracy on the adversarial examples: an independent run at one ε."""
    return float((attack(model, x, y, eps, gen=gen).pred == y).float().mean())


def run_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, *, steps: int = 20,
               gen: torch.Generator, tolerance: float = 0.01, loss: str = "ce") -> list[CheckResult]:
    """Run the six checks at L∞ radius ``eps`` on ``x`` (N, C, H, W) in [0, 1], ``y`` (N,).

    1. robust accuracy is non-increasing in ε (ε/4, ε/2, ε, 2ε, independent runs);
    2. PGD is at least as strong as FGSM;
    3. an unbounded attack (ε = 1, the whole box) reaches ≤ 1% accuracy;
    4. 4× the steps and 3 restarts do not raise accuracy;
    5. the white-box attack beats random sign noise of the same L∞ norm;
    6. input gradients are finite and non-zero.

    ``loss``: the objective of the PGD runs (``"ce"`` or ``"margin"``). Cross-entropy
    saturates in float32 when a quadratic network's logits are huge (large ε, random
    starts far from the data): its gradient is then exactly zero and checks 1 and 3
    fail; that is a weakness of the evaluation the checks exist to reveal.
    """
    if not (0 < eps <= 1):
        raise SpecError(f"--check needs 0 < ε <= 1, got {eps:g}", "pass --eps or a sweep with a positive ε")
    tol = tolerance
    base = pgd(steps, loss=loss)
    results: list[CheckResult] = []

    grid = [eps / 4, eps / 2, eps, min(2 * eps, 1.0)]
    accs = [_robust(model, x, y, base, e, gen) for e in grid]
    worst = max(accs[i + 1] - accs[i] for i in range(len(accs) - 1))
    results.append(CheckResult("accuracy non-increasing in eps", worst <= tol,
                               "accuracies " + ", ".join(f"{a:.3f}@{e:.3g}" for a, e in zip(accs, grid)),
                               {"eps": grid, "accuracy": accs}))

    acc_pgd, acc_fgsm = accs[2], _robust(model, x, y, fgsm(), eps, gen)
    results.append(CheckResult("PGD <= FGSM", acc_pgd <= acc_fgsm + tol,
                               f"PGD {acc_pgd:.3f} vs FGSM {acc_fgsm:.3f}", {"pgd": acc_pgd, "fgsm": acc_fgsm}))

    acc_box = _robust(model, x, y, pgd(steps, loss=loss), 1.0, gen)
    hint = " (CE gradients vanish on saturated logits: try --loss margin)" if loss == "ce" else ""
    results.append(CheckResult("unbounded eps reaches ~0%", acc_box <= 0.01,
                               f"accuracy {acc_box:.3f} at eps=1" + (hint if acc_box > 0.01 else ""),
                               {"accuracy": acc_box}))

    acc_more = _robust(model, x, y, pgd(4 * steps, restarts=3, loss=loss), eps, gen)
    results.append(CheckResult("more steps/restarts do not help the model", acc_more <= acc_pgd + tol,
                               f"{4 * steps} steps x 3 restarts {acc_more:.3f} vs {steps} steps {acc_pgd:.3f}",
                               {"more": acc_more, "base": acc_pgd}))

    # Random vertices of the L∞ ball: the strongest random noise of that norm.
    noise = Linf().random_start(x.shape, torch.full((len(x),) + (1,) * (x.dim() - 1), eps, device=x.device), gen)
    acc_noise = _accuracy(model, (x + eps * noise.sign()).clamp(0, 1), y)
    results.append(CheckResult("white-box beats random noise", acc_pgd <= acc_noise + tol,
                               f"PGD {acc_pgd:.3f} vs noise {acc_noise:.3f}", {"pgd": acc_pgd, "noise": acc_noise}))

    with attack_mode(model):
        xg = x.clone().requires_grad_(True)
        grad, = torch.autograd.grad(objective(model(xg), y, None, "ce").sum(), xg)
    finite = bool(torch.isfinite(grad).all())
    zero = float((grad.flatten(1).abs().amax(1) == 0).float().mean())
    results.append(CheckResult("gradients finite and non-zero", finite and zero <= 0.01,
                               f"finite={finite}, all-zero for {zero:.1%} of examples",
                               {"finite": finite, "zero_fraction": zero}))
    return results


# PGD may report this much more robust accuracy than APGD before it is called too weak.
PGD_GAP = 0.02


def pgd_vs_apgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, pgd_attack, *,
                gen: torch.Generator, tolerance: float = PGD_GAP) -> CheckResult:
    """Whether ``pgd_attack`` is within ``tolerance`` (2 accuracy points) of APGD-CE + APGD-T
    (``autoattack-fast``) at L∞ radius ``eps`` on ``x`` (N, C, H, W): PGD's robust accuracy is
    only an upper bound, and one that is far above APGD's says the number should not be quoted."""
    from .factory import make_attack

    acc_pgd = _robust(model, x, y, pgd_attack, eps, gen)
    acc_apgd = _robust(model, x, y, make_attack("autoattack-fast"), eps, gen)
    gap = acc_pgd - acc_apgd
    detail = (f"PGD {acc_pgd:.3f} vs APGD (autoattack-fast) {acc_apgd:.3f} at eps={eps:.4g} on {len(x)} examples"
              + (f": PGD is {100 * gap:.1f} points weaker; quote the APGD number" if gap > tolerance else ""))
    return CheckResult("PGD within 2 points of APGD", gap <= tolerance, detail,
                       {"pgd": acc_pgd, "apgd": acc_apgd, "eps": eps, "n": int(len(x))})
