"""The α sweep: how close does layer 1 get to the teacher's layer 1, as a function of the
information gap α, before and after backward feature correction?

The claim measured (from the backward-feature-correction talk): trained alone (layerwise
stage 1), the first layer also fits what it can of the higher layers' signal, so its
error is of order α; after the joint stage the higher layers explain that signal and
the first layer's error falls to order α². For every α and seed the layerwise+joint
learner is trained and layer ℓ's error e_ℓ = √(1 − R²_ℓ) is read at the end of stage 1
and after the joint stage (R² on the large held-out probe, both directions), and e₂ over
the joint epochs; the log-log slope of the seed-mean error against α is fitted, with a
bootstrap interval over seeds. Expected by the claim: slope ≈ 1 after stage 1, ≈ 2 after
the joint stage. Whatever comes out is reported.

The headline ``slopes`` use the exact, invariant layer-1 errors of
:mod:`featviz.hierarchy.alignment` where they apply (a dense quadratic learner; the step-2 and
synthetic teachers): after stage 1 the read-out error, after the joint stage the span error.
The √(1 − R²) errors stay beside them (``slopes_r2``, ``slopes_from_teacher``); R² learner -> teacher
is the sampled counterpart of the span error (both ask whether the teacher's units lie in the span of
the learner's), so neither is invariant to rotations of the learner's pre-activations; the read-out
error is. For the step-2 target done exactly (population gradients, stages
to a plateau, frozen controls) see :mod:`featviz.studies.correction`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import __version__
from ..errors import DivergenceError, SpecError
from ..hierarchy.alignment import EXACT
from ..hierarchy.targets import StudyConfig
from ..stats import bootstrap, interval_text, mean_std, slope_of_mean
from .common import primary_endpoint, write_results
from .hierarchy import Task, choose_lr, run_jobs

FORMAT = "featviz-hierarchy-alpha/1"
ALPHAS = (0.025, 0.05, 0.1, 0.2)
DIRECTIONS = ("r2_to_teacher", "r2_from_teacher")


def sweep_config(target: str, **overrides: Any) -> StudyConfig:
    """The learner and budget of the sweep: two-layer targets (``step2``: the talk's toy;
    ``teacher``: a 2-layer quadratic teacher, d=10, k=2), a narrow dense learner (width 2k,
    so alignment cannot be bought with width), 60 epochs of steps split over the three
    stages of layerwise+joint, one learning rate (0.02) for every α and seed (the sweep compares
    α with α, at one training recipe)."""
    if target not in ("step2", "teacher"):
        raise SpecError(f"unknown alpha-sweep target {target!r}", "use step2 or teacher")
    base = StudyConfig(target=target, d=10, k=2, depth=2, width=4, n_train=10000, n_val=2000, n_test=2000,
                       r2_samples=2000, align_samples=20000, seeds=3, epochs=60, batch_size=256,
                       lr_grid=(2e-2,))
    config = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    config.validate()
    return config


def _errors(alignment: dict[str, list[float]], direction: str) -> list[float]:
    """e_ℓ = √(1 − R²_ℓ), R² clipped to [0, 1]."""
    return [float(np.sqrt(1.0 - min(max(r, 0.0), 1.0))) for r in alignment[direction]]


def run_alpha_sweep(config: StudyConfig, alphas: tuple[float, ...] = ALPHAS, *, workers: int = 1,
                    device: torch.device | str = "cpu", progress: bool = True,
                    log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the sweep for ``config`` (its ``alpha`` is replaced by each of ``alphas``) and
    return the ``results.json`` dict (``alphas``, ``errors``, ``slopes``, ``curves``...)."""
    if len(alphas) < 2 or min(alphas) <= 0 or max(alphas) > 1:
        raise SpecError(f"--alphas needs at least two values in (0, 1], got {list(alphas)}")
    alphas = tuple(sorted(set(alphas)))
    start = time.perf_counter()
    seeds = config.seed_list
    configs = {a: replace(config, alpha=a) for a in alphas}
    for c in configs.values():
        c.validate()
    jobs = [(configs[a], Task("layerwise+joint", s, lr)) for a in alphas for s in seeds for lr in config.lr_grid]
    bar = tqdm(total=len(jobs), desc="alpha sweep", unit="fit", disable=not progress, leave=False)
    try:
        fits = dict(zip([(c.alpha, t.seed, t.lr) for c, t in jobs],
                        run_jobs(jobs, workers=workers, device=device, bar=bar)))
    finally:
        bar.close()
    chosen = {(a, s): choose_lr({lr: fits[(a, s, lr)] for lr in config.lr_grid}, f"alpha {a:g} seed {s}")
              for a in alphas for s in seeds}
    best = {(a, s): fits[(a, s, chosen[(a, s)])] for a in alphas for s in seeds}
    if any(f is None for f in best.values()):
        raise DivergenceError("a chosen fit of the alpha sweep diverged", "use smaller learning rates")
    if log:
        log("learning rates chosen on validation: " + ", ".join(f"α={a:g}/seed {s}: {lr:g}"
                                                                for (a, s), lr in chosen.items()))
    return summarize_alpha(config, alphas, best, chosen, time.perf_counter() - start)


def summarize_alpha(config: StudyConfig, alphas: tuple[float, ...], best: dict, chosen: dict,
                    seconds: float) -> dict[str, Any]:
    """The results dict of :func:`run_alpha_sweep` from its chosen fits (``best[(α, seed)]``)."""
    seeds, depth = config.seed_list, config.depth
    errors: dict[str, dict[str, Any]] = {}
    slopes_by: dict[str, dict[str, dict[str, float]]] = {}
    for direction in DIRECTIONS:
        # per_seed[moment][seed][α index][layer]
        per_seed = {moment: np.array([[_errors(best[(a, s)].stage_alignment[stage], direction) for a in alphas]
                                      for s in seeds])
                    for moment, stage in (("stage1", "block1"), ("joint", "joint"))}
        errors[direction] = {moment: {f"e{l + 1}": [mean_std(list(v[:, i, l])) for i in range(len(alphas))]
                                      for l in range(depth)} | {
                                          f"e{l + 1}_seeds": v[:, :, l].tolist() for l in range(depth)}
                             for moment, v in per_seed.items()}
        slopes_by[direction] = {moment: bootstrap(v[:, :, 0], slope_of_mean(alphas))
                                for moment, v in per_seed.items()}
    # the exact, invariant layer-1 errors (featviz.hierarchy.alignment), read from the weights
    exact = {}
    for key in EXACT:
        if all(key in best[(a, s)].stage_alignment["layer1"] for a in alphas for s in seeds):
            per_seed = {moment: np.array([[best[(a, s)].stage_alignment[stage][key][0] for a in alphas]
                                          for s in seeds])
                        for moment, stage in (("stage1", "layer1"), ("joint", "joint"))}
            errors[key] = {moment: {"e1": [mean_std(list(v[:, i])) for i in range(len(alphas))],
                                    "e1_seeds": v.tolist()} for moment, v in per_seed.items()}
            exact[key] = {moment: bootstrap(v, slope_of_mean(alphas)) for moment, v in per_seed.items()}
    # e₂ over the joint epochs (tracking probe), seed-mean per α
    joint_e2 = {}
    for a in alphas:
        rows = []
        for s in seeds:
            curve = best[(a, s)].curve
            idx = [i for i, st in enumerate(curve.stage) if st == "joint"]
            rows.append([float(np.sqrt(1 - min(max(curve.feature_r2[i][1], 0.0), 1.0))) for i in idx])
        joint_e2[f"{a:g}"] = np.mean(rows, 0).tolist()
    results = {
        "format": FORMAT, "featviz": __version__,
        "config": config.to_dict() | {"seeds": seeds, "learner": "layerwise+joint",
                                      "error": "e = sqrt(1 - R²) of the layer, R² held out on the alignment probe"},
        "alphas": list(alphas),
        "lr": {f"{a:g}": [chosen[(a, s)] for s in seeds] for a in alphas},
        "errors": errors,
        # the headline slopes use the invariant measures where the learner and target allow them:
        # stage 1 the read-out error (sound while layer 1 alone explains the label), after the
        # joint stage the span error (the read-out split between layers is arbitrary there)
        "slopes": ({"stage1": exact["readout_error"]["stage1"], "joint": exact["span_error"]["joint"]}
                   if {"readout_error", "span_error"} <= set(exact) else slopes_by["r2_to_teacher"]),
        "slopes_measure": ("stage1: readout_error, joint: span_error" if {"readout_error", "span_error"} <= set(exact)
                           else "sqrt(1 - R²), learner -> teacher"),
        "slopes_exact": exact,
        "slopes_r2": slopes_by["r2_to_teacher"],
        "slopes_from_teacher": slopes_by["r2_from_teacher"],
        "joint_e2_curves": joint_e2,
        "rel_test_mse": {f"{a:g}": [best[(a, s)].rel_test_mse for s in seeds] for a in alphas},
    }
    sl, sr, sf = results["slopes"], results["slopes_r2"], results["slopes_from_teacher"]
    results["primary"] = primary_endpoint("log-log slope of the layer-1 error against α after layerwise stage 1 "
                                          f"({results['slopes_measure']})", sl["stage1"])
    ci = {name: interval_text(entry, ".2f") for name, entry in (
        ("stage1", sl["stage1"]), ("joint", sl["joint"]), ("r2_stage1", sr["stage1"]), ("r2_joint", sr["joint"]),
        ("from_stage1", sf["stage1"]), ("from_joint", sf["joint"]))}
    results["findings"] = [
        f"{config.target}: layer-1 error vs α, log-log slope after layerwise stage 1 {ci['stage1']}, "
        f"after the joint stage {ci['joint']} ({results['slopes_measure']}; the claim predicts about 1 and 2)",
        f"{config.target}: with √(1 − R²) on samples (R² learner -> teacher is the sampled counterpart of the span "
        f"error): R² learner -> teacher stage 1 {ci['r2_stage1']}, joint {ci['r2_joint']}; teacher -> learner "
        f"stage 1 {ci['from_stage1']}, joint {ci['from_joint']}",
    ]
    results["seconds"] = round(seconds, 2)
    return results


# the surface every study module has (docs/studies.md)
Config = StudyConfig
PRESETS: Mapping[str, StudyConfig] = MappingProxyType({"step2": sweep_config("step2"), "teacher": sweep_config("teacher")})
run = run_alpha_sweep


def write(results: dict[str, Any], out: str | Path) -> list[str]:
    """Write ``results.json`` and the figures into folder ``out`` atomically; returns the file names."""
    from ..hierarchy.plots import write_alpha_plots

    return write_results(results, out, write_alpha_plots)
