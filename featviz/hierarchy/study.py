"""Running the study: plan the independent fits, run them (in worker processes if asked),
hand the fits to :mod:`featviz.hierarchy.summary`. :func:`run_study` returns the
``results.json`` dict.

Fairness, as a procedure rather than a promise:

- every neural learner uses Adam with a cosine schedule per stage and the same batch
  size; with ``budget="total"`` (the default) every learner makes the same number of
  optimizer steps in all, split over its stages (``budget="per-stage"``: the same
  number per stage, so layerwise learners make L or L+1 times more);
- every learner's learning rate is chosen from the same grid on the validation set,
  separately for every seed; a choice on the grid's edge is reported;
- the kernel's degree and ridge are chosen on the same validation set;
- the test set and the alignment probe are never used for a choice.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from ..data import Dataset
from ..errors import DivergenceError
from .learners import (LEARNERS, NEURAL, Fit, deep_learner, fit_exact_kernel, fit_kernel, shallow_learner,
                       shallow_width, stage_epochs, train_neural)
from .metrics import FeatureProbe
from .summary import assemble
from .targets import StudyConfig, alignment_probe, make_dataset


def subsample(data: Dataset, n: int) -> Dataset:
    """The first ``n`` training samples of ``data`` (same validation and test sets)."""
    return Dataset(data.name, data.task, data.x_train[:n], data.y_train[:n], data.x_val, data.y_val,
                   data.x_test, data.y_test, info=dict(data.info, n_train=n), teacher=data.teacher)


@dataclass(frozen=True)
class Task:
    """One independent fit of the study: learner ``kind`` (one of ``LEARNERS``) on
    ``seed`` at learning rate ``lr``; ``n`` trains on a prefix of the training set,
    ``width`` overrides the learner width; ``track`` records alignment every epoch."""

    kind: str
    seed: int
    lr: float = 0.0
    n: int | None = None
    width: int | None = None
    track: bool = True

    def describe(self) -> str:
        parts = [self.kind, f"seed {self.seed}"] + ([f"lr {self.lr:g}"] if self.lr else [])
        return " ".join(parts + ([f"n {self.n}"] if self.n else []) + ([f"m {self.width}"] if self.width else []))


def fit_learner(config: StudyConfig, task: Task, data: Dataset, probe: FeatureProbe,
                tracker: FeatureProbe | None, device: torch.device | str = "cpu") -> Fit:
    """Fit one learner of the study on ``data`` (may raise :class:`DivergenceError`)."""
    if task.kind == "kernel":
        return fit_kernel(data, degrees=config.kernel_degrees, ridges=config.kernel_ridges,
                          landmarks=config.kernel_landmarks, seed=task.seed)
    if task.kind == "exact-kernel":  # the polynomial kernel of the target's full degree, solved exactly
        return fit_exact_kernel(data, degree=2 ** config.depth, ridges=config.kernel_ridges)
    width = task.width or config.width
    if task.kind == "shallow":
        model = shallow_learner(config.d, shallow_width(config.d, width, config.depth, config.connect), task.seed)
        mode = "joint"
    else:
        model = deep_learner(config.d, width, config.depth, task.seed, config.connect)
        mode = task.kind
    epochs = stage_epochs(mode, model.depth, config.epochs, config.budget)
    return train_neural(model, data, probe, mode, epochs=epochs, lr=task.lr, batch_size=config.batch_size,
                        seed=task.seed, tracker=tracker if task.track else None,
                        joint_lr_scale=config.correction_lr_scale, joint_warmup=config.correction_warmup,
                        device=device)


def run_task(config: StudyConfig, task: Task, device: torch.device | str = "cpu") -> Fit | None:
    """Fit one task without keeping its weights; ``None`` if training diverged (a
    diverging learning rate loses the search). The seed's data are rebuilt here (a
    fraction of a second), so a task needs nothing but its arguments."""
    full = make_dataset(config, task.seed)
    data = subsample(full, task.n) if task.n else full
    probe = alignment_probe(config, full.teacher, task.seed)
    tracker = FeatureProbe.from_target(full.teacher, full.x_test[: config.r2_samples])
    try:
        fit = fit_learner(config, task, data, probe, tracker, device)
    except DivergenceError:
        return None
    fit.model = None  # weights are not part of the results; keep what travels small
    if not (math.isfinite(fit.rel_test_mse) and math.isfinite(fit.rel_val_mse)):
        return None
    return fit


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)  # a worker process of this study: its thread count is ours to set


def run_jobs(jobs: list[tuple[StudyConfig, Task]], *, workers: int = 1, device: torch.device | str = "cpu",
             bar: tqdm | None = None) -> list[Fit | None]:
    """:func:`run_task` for every (config, task) pair, in order, in this process
    (``workers=1``) or in that many worker processes with one torch thread each. Every
    fit seeds its own generators, so results do not depend on the order of completion."""
    def advance(task: Task) -> None:
        if bar is not None:
            bar.set_description(task.describe())
            bar.update(1)

    if workers <= 1 or len(jobs) <= 1:
        out = []
        for config, task in jobs:
            out.append(run_task(config, task, device))
            advance(task)
        return out
    import concurrent.futures
    import multiprocessing

    results: list[Fit | None] = [None] * len(jobs)
    # spawn, not fork: forking a process whose OpenMP threads already ran can deadlock.
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_init_worker, initargs=(1,)) as pool:
        futures = {pool.submit(run_task, config, task, str(device)): i for i, (config, task) in enumerate(jobs)}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            advance(jobs[futures[future]][1])
    return results


def run_tasks(config: StudyConfig, tasks: list[Task], *, workers: int = 1, device: torch.device | str = "cpu",
              bar: tqdm | None = None) -> dict[Task, Fit | None]:
    """:func:`run_jobs` for tasks that share ``config``, keyed by task."""
    return dict(zip(tasks, run_jobs([(config, t) for t in tasks], workers=workers, device=device, bar=bar)))


def choose_lr(fits: dict[float, Fit | None], what: str) -> float:
    """The learning rate whose fit has the lowest final validation error."""
    finite = {lr: fit for lr, fit in fits.items() if fit is not None}
    if not finite:
        raise DivergenceError(f"{what} diverged at every learning rate of the grid", "use smaller learning rates")
    return min(finite, key=lambda lr: finite[lr].rel_val_mse)


def _sweep_sizes(config: StudyConfig) -> list[int]:
    return sorted({n for n in config.n_sweep if n < config.n_train} | {config.n_train}) if config.n_sweep else []


def _sweep_widths(config: StudyConfig) -> list[int]:
    return sorted({max(1, round(mult * config.teacher_units)) for mult in config.width_sweep})


def sweep_seeds(config: StudyConfig) -> list[int]:
    return config.seed_list[: max(1, min(config.sweep_seeds, config.seeds))]


def run_study(config: StudyConfig, *, device: torch.device | str = "cpu", progress: bool = True,
              workers: int = 1, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the hierarchy study described by ``config`` and return the results dict
    (see :func:`featviz.hierarchy.summary.assemble` and docs/formats.md).

    Round 1: every neural learner at every rate of ``lr_grid`` on every seed, and the
    kernel on every seed; each learner's rate is chosen on validation per seed. Round 2:
    the n and width sweeps at the chosen rates. ``workers`` > 1 runs the fits of a round
    in that many processes. Deterministic on CPU for a given config: every fit draws
    from generators seeded by its seed, so the networks' numbers do not depend on
    ``workers`` (the kernel's may move in the 9th digit, as BLAS threading changes the
    order of its sums).
    """
    config.validate()
    start = time.perf_counter()
    say = log or (lambda _: None)
    seeds = config.seed_list
    bar = tqdm(total=0, desc="hierarchy", unit="fit", disable=not progress, leave=False)

    def execute(tasks: list[Task]) -> dict[Task, Fit | None]:
        bar.total += len(tasks)
        bar.refresh()
        return run_tasks(config, tasks, workers=workers, device=device, bar=bar)

    try:
        grid = [Task(kind, seed, lr) for seed in seeds for lr in config.lr_grid for kind in NEURAL]
        done = execute(grid + [Task("kernel", seed) for seed in seeds])
        lr_search = {name: {seed: {lr: done[Task(name, seed, lr)] for lr in config.lr_grid} for seed in seeds}
                     for name in NEURAL}
        chosen = {name: {seed: choose_lr(lr_search[name][seed], f"{name} (seed {seed})") for seed in seeds}
                  for name in NEURAL}
        say("learning rates chosen on validation: " + "; ".join(
            f"{name} " + ",".join(f"{chosen[name][s]:g}" for s in seeds) for name in NEURAL))
        sweeps = _sweep_tasks(config, chosen)
        done.update(execute([t for t in sweeps if t not in done]))
    finally:
        bar.close()

    def main_fit(name: str, seed: int, **kw: Any) -> Fit:
        task = Task("kernel", seed, **kw) if name == "kernel" else Task(name, seed, chosen[name][seed], **kw)
        fit = done[task]
        if fit is None:
            raise DivergenceError(f"{task.describe()} diverged", "use a smaller learning-rate grid")
        return fit

    fits = {name: [main_fit(name, seed) for seed in seeds] for name in LEARNERS}
    n_sweep = {name: {n: [main_fit(name, s, n=None if n == config.n_train else n, track=n == config.n_train)
                          for s in sweep_seeds(config)] for n in _sweep_sizes(config)}
               for name in config.sweep_learners} if _sweep_sizes(config) else {}
    width_sweep = {m: [main_fit("joint", s) if m == config.width else main_fit("joint", s, width=m, track=False)
                       for s in sweep_seeds(config)] for m in _sweep_widths(config)}
    return assemble(config, fits, chosen, lr_search, n_sweep, width_sweep, time.perf_counter() - start)


def _sweep_tasks(config: StudyConfig, chosen: dict[str, dict[int, float]]) -> list[Task]:
    """The fits that need the chosen rates: the n-sweep and the width sweep."""
    plan: list[Task] = []
    for seed in sweep_seeds(config):
        for n in _sweep_sizes(config)[:-1]:
            plan += [Task("kernel", seed, n=n, track=False) if name == "kernel" else
                     Task(name, seed, chosen[name][seed], n=n, track=False) for name in config.sweep_learners]
        plan += [Task("joint", seed, chosen["joint"][seed], width=m, track=False) for m in _sweep_widths(config)
                 if m != config.width]
    return list(dict.fromkeys(plan))

