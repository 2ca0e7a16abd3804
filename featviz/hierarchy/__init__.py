"""The library behind the hierarchy studies: deep quadratic teachers and toy targets, the
learners and how each is fitted, feature-alignment metrics, and the figures. The studies
themselves (runs, summaries, results.json) live in :mod:`featviz.studies`::

    from featviz.studies.hierarchy import preset, run_study, write_study
"""

from __future__ import annotations

from .learners import (LEARNERS, deep_learner, fit_exact_kernel, fit_kernel, shallow_learner, shallow_width,
                       stage_epochs, train_neural)
from .metrics import FeatureProbe, feature_r2, linear_cka, mean_cca
from .plots import write_plots
from .targets import PRESETS, TOY_TARGETS, StudyConfig, ToyTarget, make_dataset, make_target, preset

__all__ = [
    "FeatureProbe", "LEARNERS", "PRESETS", "StudyConfig", "TOY_TARGETS", "ToyTarget", "deep_learner",
    "feature_r2", "fit_exact_kernel", "fit_kernel", "linear_cka", "make_dataset", "make_target",
    "mean_cca", "preset", "shallow_learner", "shallow_width", "stage_epochs", "train_neural", "write_plots",
]
