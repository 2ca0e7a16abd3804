"""The backward-feature-correction study: teacher/student experiments and feature alignment.

Three lines to run it::

    from featviz.hierarchy import preset, run_study, write_study
    results = run_study(preset("quick"))          # the results.json dict
    write_study(results, "runs/hierarchy")        # results.json + PNG/SVG figures
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..fileio import atomic_directory, atomic_write_json
from .learners import (LEARNERS, deep_learner, fit_exact_kernel, fit_kernel, shallow_learner, shallow_width,
                       stage_epochs, train_neural)
from .metrics import FeatureProbe, feature_r2, linear_cka, mean_cca
from .plots import write_plots
from .study import run_study
from .summary import findings
from .targets import PRESETS, TOY_TARGETS, StudyConfig, ToyTarget, make_dataset, make_target, preset


def write_study(results: dict[str, Any], out: str | Path, plots=write_plots) -> list[str]:
    """Write ``results.json`` and the figures into folder ``out`` (built under a
    temporary name and swapped in, so ``out`` is never half-written). Returns the
    file names; ``results["files"]`` lists them too."""
    with atomic_directory(out) as tmp:
        files = plots(results, tmp)
        results["files"] = ["results.json"] + files
        atomic_write_json(tmp / "results.json", results)
    return results["files"]


__all__ = [
    "FeatureProbe", "LEARNERS", "PRESETS", "StudyConfig", "TOY_TARGETS", "ToyTarget", "deep_learner",
    "feature_r2", "findings", "fit_exact_kernel", "fit_kernel", "linear_cka", "make_dataset", "make_target",
    "mean_cca", "preset", "run_study", "shallow_learner", "shallow_width", "stage_epochs", "train_neural",
    "write_plots", "write_study",
]
