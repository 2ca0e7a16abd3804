"""The attack specs: every attack featviz knows, by name, with its defaults (``AttackSpec``).

This module imports nothing heavy (no torch), so the command line can offer the names,
their help and the adversarial-training defaults without loading the library. Each
entry points at a factory (``"module:function"``, relative to :mod:`featviz.attacks`)
resolved only when the attack is built. Adding an attack is one new file holding its
factory plus one line here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack.

    ``factory``: ``"module:function"`` inside featviz.attacks; called with the user's
    options (``steps``, ``restarts``, ...) merged over ``defaults``. ``norm``: the ball it
    works in. ``options``: which user options it accepts (others are refused).
    ``train_steps``: default steps when used by ``featviz train --adv`` (None: not offered
    for adversarial training). ``bisect``: refine each broken example's minimal ε.
    """

    name: str
    norm: str
    factory: str
    help: str
    defaults: dict[str, Any] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    train_steps: int | None = None
    bisect: bool = True


_GRADIENT = ("steps", "restarts", "step_size", "loss", "random_start")

SPECS: tuple[AttackSpec, ...] = (
    AttackSpec("fgsm", "linf", "core:fgsm", "one L∞ step of ε", {"steps": 1},
               ("steps", "restarts", "step_size", "loss", "random_start"), train_steps=1),
    AttackSpec("pgd", "linf", "core:pgd", "PGD-L∞, 20 steps of 2.5·ε/steps from a random start", {"steps": 20},
               _GRADIENT, train_steps=5),
    AttackSpec("pgd-l2", "l2", "core:pgd_l2", "PGD-L2, 20 steps of 2.5·ε/steps", {"steps": 20}, _GRADIENT),
    AttackSpec("cw", "l2", "cw:CarliniWagnerL2", "Carlini-Wagner L2, 5 search rounds x 100 Adam steps",
               {"steps": 100}, ("steps",)),
    AttackSpec("deepfool", "l2", "deepfool:DeepFool", "DeepFool L2, at most 50 steps", {"steps": 50}, ("steps",)),
    AttackSpec("apgd-ce", "linf", "apgd:apgd_ce", "APGD-CE L∞, 100 steps", {"steps": 100}, ("steps", "restarts")),
    AttackSpec("apgd-dlr", "linf", "apgd:apgd_dlr", "APGD-DLR L∞, 100 steps", {"steps": 100},
               ("steps", "restarts")),
    AttackSpec("apgd-t", "linf", "apgd:apgd_t", "APGD-T L∞: targeted DLR, 9 targets x 100 steps", {"steps": 100},
               ("steps", "restarts")),
    AttackSpec("apgd-ce-l2", "l2", "apgd:apgd_ce_l2", "APGD-CE L2, 100 steps", {"steps": 100},
               ("steps", "restarts")),
    AttackSpec("apgd-t-l2", "l2", "apgd:apgd_t_l2", "APGD-T L2, 9 targets x 100 steps", {"steps": 100},
               ("steps", "restarts")),
    AttackSpec("square", "linf", "square:square", "Square L∞, score-based, 5000 queries", {"steps": 5000},
               ("steps", "restarts"), bisect=False),
    AttackSpec("square-l2", "l2", "square:square_l2", "Square L2, score-based, 5000 queries", {"steps": 5000},
               ("steps", "restarts"), bisect=False),
    AttackSpec("autoattack", "linf", "ensemble:autoattack",
               "AutoAttack L∞: APGD-CE, APGD-T (9 targets), Square 5000 queries, worst case", options=("steps",),
               bisect=False),
    AttackSpec("autoattack-fast", "linf", "ensemble:autoattack_fast",
               "AutoAttack L∞ gradient parts only: APGD-CE, APGD-T (9 targets), 100 steps each", options=("steps",),
               bisect=False),
    AttackSpec("autoattack-l2", "l2", "ensemble:autoattack_l2",
               "AutoAttack L2: APGD-CE, APGD-T, Square 5000 queries", options=("steps",), bisect=False),
)

REGISTRY: dict[str, AttackSpec] = {s.name: s for s in SPECS}
ATTACKS: tuple[str, ...] = tuple(REGISTRY)
TRAINING_ATTACKS: tuple[str, ...] = tuple(s.name for s in SPECS if s.train_steps is not None)
# Default sweeps per norm: L∞ 0..0.3 covers digits from clean to broken; an L2 ball of
# radius r holds L∞ perturbations of size r/√d, so 0..3 spans the same range at 16×16.
DEFAULT_SWEEP = {"linf": "0:0.3:8", "l2": "0:3:8"}
# `featviz attack` with no --attack: the field's reference L∞ evaluation without its slow black-box part.
DEFAULT_ATTACK = "autoattack-fast"
# Attacks whose robust accuracy is an upper bound that APGD often lowers by several points.
WEAK_ATTACKS = ("fgsm", "pgd")


def attack_help() -> str:
    """One line per attack, for ``--help``."""
    return "; ".join(f"{s.name}: {s.help}" for s in SPECS)


def names_hint() -> str:
    return f"use one of {', '.join(ATTACKS)}"
