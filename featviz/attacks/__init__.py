"""Adversarial attacks and robustness evaluation.

Three lines on any classifier taking inputs in [0, 1] (wrap others in :class:`Normalized`)::

    from featviz.attacks import pgd, robustness_curve
    report = robustness_curve(model, x_test, y_test, pgd(steps=20), eps=[0, 0.05, 0.1])
    print(report.robust_accuracy(), report.min_eps_summary())
"""

from .attribution import attribute, clean_vs_adversarial
from .checks import CheckResult, run_checks
from .core import (GEOMETRIES, Attack, AttackResult, GradientAttack, check_eps, draw_targets, fgsm, objective, pgd,
                   pgd_l2)
from .cw import CarliniWagnerL2
from .deepfool import DeepFool
from .evaluate import (AttackReport, Examples, ModelReport, evaluate_model, parse_eps_sweep, results_csv,
                       results_dict, robustness_curve)
from .model import AtDepth, Normalized, attack_mode, predict
from .registry import ATTACKS, DEFAULT_SWEEP, make_attack
from .training import check_adv, training_adversary

__all__ = [
    "ATTACKS", "AtDepth", "Attack", "AttackReport", "AttackResult", "CarliniWagnerL2", "CheckResult", "DEFAULT_SWEEP",
    "DeepFool", "Examples", "GEOMETRIES", "GradientAttack", "ModelReport", "Normalized", "attack_mode", "attribute",
    "check_adv", "check_eps", "clean_vs_adversarial", "draw_targets", "evaluate_model", "fgsm", "make_attack", "objective",
    "parse_eps_sweep", "pgd", "pgd_l2", "predict", "results_csv", "results_dict", "robustness_curve", "run_checks",
    "training_adversary",
]
