"""Adversarial attacks and robustness evaluation.

Three lines on any classifier taking inputs in [0, 1] (wrap others in :class:`Normalized`)::

    from featviz.attacks import make_attack, robustness_curve
    report = robustness_curve(model, x_test, y_test, make_attack("autoattack"), eps=[0.05, 0.1])
    print(report.robust_accuracy(), report.min_eps_summary())

Names are resolved lazily, so ``featviz.attacks.specs`` (the registry of attack names and
defaults) is importable without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "attribution": ("attribute", "clean_vs_adversarial"),
    "checks": ("CheckResult", "run_checks"),
    "core": ("GEOMETRIES", "Attack", "AttackResult", "GradientAttack", "check_eps", "draw_targets", "fgsm",
             "objective", "pgd", "pgd_l2"),
    "apgd": ("APGD", "apgd_ce", "apgd_t", "dlr"),
    "square": ("Square", "square"),
    "ensemble": ("Ensemble", "autoattack", "autoattack_fast"),
    "flags": ("masking_flags",),
    "cw": ("CarliniWagnerL2",),
    "deepfool": ("DeepFool",),
    "evaluate": ("AttackReport", "Examples", "ModelReport", "evaluate_model", "parse_eps_sweep", "results_csv",
                 "results_dict", "robustness_curve"),
    "model": ("AtDepth", "Normalized", "attack_mode", "predict"),
    "specs": ("ATTACKS", "DEFAULT_SWEEP"),
    "factory": ("make_attack",),
    "training": ("check_adv", "training_adversary"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
