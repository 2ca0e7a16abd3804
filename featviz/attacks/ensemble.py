"""AutoAttack-style ensembles: attacks run one after another on the examples still
standing, worst case per example (Croce & Hein 2020's standard evaluation).

``autoattack``: APGD-CE (100 steps), APGD-T (9 target classes × 100 steps), Square (5,000
queries). ``autoattack-fast``: the two gradient parts only. Each component sees only the
examples the previous ones did not break, and each stops working on an example once it is
fooled, so the expensive black-box part runs on what the gradient attacks left.
"""

from __future__ import annotations

import torch

from ..errors import SpecError
from .apgd import APGD
from .core import Attack, AttackResult, eps_tensor, reached
from .square import Square


class Ensemble(Attack):
    """Run ``components`` in sequence; an example counts as broken by the first that fools it.

    ``extra["component"]`` (N,) long: index of the component that broke each example
    (-1: none, -2: already wrong on the clean input); ``extra["queries"]`` (N,): Square's
    queries where one ran.
    """

    def __init__(self, name: str, components: list[Attack]):
        if not components:
            raise SpecError("an ensemble needs at least one attack")
        norms = {a.norm for a in components}
        if len(norms) != 1:
            raise SpecError(f"ensemble {name} mixes norms {sorted(norms)}")
        self.name, self.components = name, list(components)
        self.norm = components[0].norm
        self.steps = max(a.steps for a in components)
        self.bounds = components[0].bounds
        self.counts_queries = any(a.counts_queries for a in components)

    def describe(self) -> dict:
        return super().describe() | {"components": [a.describe() for a in self.components]}

    def _run(self, model, x, y, eps, target, gen, init) -> AttackResult:
        self._check_ball(x, eps, gen)
        n = len(x)
        eps_n = eps_tensor(eps, n, x)
        with torch.no_grad():
            pred = model(x).argmax(1)
        success = reached(pred, y, target)
        component = torch.where(success, -2, -1).to(torch.long)
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        x_adv = x.clone()
        for i, attack in enumerate(self.components):
            todo = torch.nonzero(~success).flatten()
            if len(todo) == 0:
                break
            res = attack(model, x[todo], y[todo], eps_n[todo], target=None if target is None else target[todo],
                         gen=gen)
            x_adv[todo], pred[todo] = res.x_adv, res.pred
            won = todo[res.success]
            success[won], component[won] = True, i
            if "queries" in res.extra:
                queries[todo] += res.extra["queries"]
        norm = self.components[0].geometry.norm(x_adv - x)
        return AttackResult(x_adv, success, pred, norm, extra={"component": component, "queries": queries})


def autoattack(norm: str = "linf", steps: int = 100) -> Ensemble:
    """APGD-CE, APGD-T (9 targets), Square 5,000 queries: AutoAttack's standard budget
    (``steps``: each APGD part's steps; Square keeps its queries)."""
    suffix = "" if norm == "linf" else "-l2"
    return Ensemble(f"autoattack{suffix}", [APGD(norm, steps, loss="ce"), APGD(norm, steps, targets=9),
                                            Square(norm, 5000)])


def autoattack_fast(norm: str = "linf", steps: int = 100) -> Ensemble:
    """The gradient parts of :func:`autoattack`: APGD-CE then APGD-T (9 targets), ``steps`` each."""
    suffix = "" if norm == "linf" else "-l2"
    return Ensemble(f"autoattack-fast{suffix}", [APGD(norm, steps, loss="ce"), APGD(norm, steps, targets=9)])


def autoattack_l2(steps: int = 100) -> Ensemble:
    return autoattack("l2", steps)
