"""What every study shares: the matched-budget rule and matched training, the loop over
independent jobs (seeds, learners, settings) in this process or in worker processes with
the same numbers, the spread over seeds, the one ratio, the primary endpoint, and writing a
result folder atomically.

Every study module has the same surface (docs/studies.md): ``FORMAT`` (the ``format`` tag
of its ``results.json``), ``Config`` (a dataclass of its settings), ``PRESETS`` (named
configurations), ``run(config, ...) -> Result`` (the ``results.json`` dict) and
``write(result, out)``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

import torch
from torch import nn

from ..fileio import atomic_directory, atomic_write_json
from ..stats import finite, mean_std, ratio_of_means
from ..data import Dataset
from ..train import Adversary, TrainConfig, TrainResult, split_budget, stage_count, train_model

T = TypeVar("T")
Result = dict[str, Any]  # what run() returns and write() writes: the results.json dict


def _one_thread() -> None:
    torch.set_num_threads(1)  # a worker process of a study: its thread count is ours to set


class _QuietPool(concurrent.futures.ProcessPoolExecutor):
    """A process pool whose workers ignore Ctrl-C: the parent alone handles it and stops them.

    Workers are started (fork + exec) inside ``submit``; SIGINT is ignored around it, so each
    worker starts with SIGINT ignored (an ignored signal stays ignored across exec, and Python
    keeps it so) and prints no traceback of its own when the terminal's Ctrl-C reaches it."""

    def submit(self, fn, /, *args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return super().submit(fn, *args, **kwargs)
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return super().submit(fn, *args, **kwargs)
        finally:
            signal.signal(signal.SIGINT, previous)


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def process_pool(workers: int, initializer: Callable[..., None] | None = None,
                 initargs: tuple = ()) -> Iterator[concurrent.futures.ProcessPoolExecutor]:
    """``workers`` spawned processes (spawn, not fork: forking a process whose OpenMP threads
    already ran can deadlock) that run a study's jobs.

    Ctrl-C or SIGTERM in the parent cancels what has not started and terminates the workers
    quietly (no worker tracebacks); the exception then goes on, so the output folder's
    temporary area is removed as on any other failure."""
    import multiprocessing

    pool = _QuietPool(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                      initargs=(initializer, initargs))
    try:
        yield pool
    except BaseException:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            with contextlib.suppress(Exception):
                process.terminate()
        for process in processes:
            with contextlib.suppress(Exception):
                process.join(timeout=10)
        raise
    pool.shutdown(wait=True)


def map_jobs(fn: Callable[..., T], jobs: Sequence[tuple], *, workers: int = 1,
             local: Callable[..., T] | None = None, done: Callable[[int, T], None] | None = None) -> list[T]:
    """``fn(*job)`` for every job, results in the order of ``jobs``.

    ``workers`` <= 1 (or a single job): in this process, calling ``local(*job)`` when given
    (e.g. ``fn`` with data already loaded bound in). Otherwise in ``min(workers, len(jobs))``
    spawned worker processes with one torch thread each; ``fn`` and the jobs must pickle.
    Every job seeds its own generators, so results do not depend on where or in which
    order the jobs ran. ``done(index, result)`` is called as each job finishes (in
    completion order), e.g. to advance a progress bar.
    """
    call = local or fn
    if workers <= 1 or len(jobs) <= 1:
        out = []
        for i, job in enumerate(jobs):
            out.append(call(*job))
            if done is not None:
                done(i, out[-1])
        return out
    results: list[Any] = [None] * len(jobs)
    with process_pool(min(workers, len(jobs)), initializer=_one_thread) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if done is not None:
                done(i, results[i])
    return results


def spread(per_seed: Sequence[float | None]) -> dict[str, Any]:
    """The spread over seeds every study reports for a measured quantity: ``{mean, std,
    min, max, per_seed}`` with the sample standard deviation (n − 1; 0 for one seed) from
    :func:`featviz.stats.mean_std`. Missing or non-finite values stay in ``per_seed`` and are
    left out of the rest (all None when nothing is left)."""
    kept = finite(per_seed)
    mean, std = mean_std(kept)
    return {"mean": mean, "std": std, "min": min(kept) if kept else None, "max": max(kept) if kept else None,
            "per_seed": [None if v is None else float(v) for v in per_seed]}


def ratio(a: Sequence[float | None], b: Sequence[float | None], **options: Any) -> dict[str, Any]:
    """The one definition of a ratio between two arms measured on the same seeds:
    ``mean(a) / mean(b)`` with a paired bootstrap CI (:func:`featviz.stats.ratio_of_means`,
    ``options`` passed on), plus the per-seed ratios ``per_seed`` for display (None where a
    side is missing or b is 0)."""
    out = ratio_of_means(a, b, paired=True, **options)
    out["per_seed"] = [x / y if x is not None and y else None for x, y in zip(a, b)]
    return out


def primary_endpoint(name: str, estimate: Mapping[str, Any]) -> dict[str, Any]:
    """The ``primary`` entry of a study's ``results.json``: the one endpoint the study
    declares before it runs, ``{name, value, low, high, level}``, from an estimate of
    :mod:`featviz.stats` (``value``/``low``/``high``/``level``; missing parts are None)."""
    return {"name": name, **{k: estimate.get(k) for k in ("value", "low", "high", "level")}}


def train_stages(model: nn.Module, data: Dataset, mode: str, epochs: int | Sequence[int], *, seed: int,
                 device: torch.device | str = "cpu", lr: float | None = None, batch_size: int | None = None,
                 freeze: Sequence[str] = (), adversary: Adversary | None = None,
                 weight_decay: float = 0.0) -> TrainResult:
    """The studies' matched training: ``model`` trained in ``mode`` (``joint``, ``layerwise``,
    ``layerwise+joint``) by featviz's one training loop for ``epochs`` per stage (one number
    for every stage, or one per stage, e.g. from :func:`split_budget`), quietly. ``lr`` and
    ``batch_size`` default to :class:`featviz.train.TrainConfig`'s; ``freeze`` names blocks
    that learn in no stage; ``adversary`` makes it adversarial training; ``weight_decay`` is the
    optimizer's L2 coefficient (0 by default)."""
    per_stage = (epochs,) * stage_count(mode, model.depth) if isinstance(epochs, int) else tuple(epochs)
    options = {k: v for k, v in (("lr", lr), ("batch_size", batch_size)) if v is not None}
    config = TrainConfig(mode=mode, epochs=per_stage[0], stage_epochs=per_stage, seed=seed, freeze=tuple(freeze),
                         weight_decay=weight_decay, **options)
    return train_model(model, data, config, device=device, adversary=adversary, progress=False)


def write_results(results: Result, out: str | Path,
                  figures: Callable[[Result, Path], list[str]] | None = None) -> list[str]:
    """Write ``results.json`` (and whatever ``figures(results, folder)`` draws, which
    returns the file names it wrote) into folder ``out``, built under a temporary name and
    swapped in, so ``out`` is never half-written (and carries featviz's output marker).
    Returns the file names; ``results["files"]`` lists them too."""
    with atomic_directory(out) as tmp:
        files = figures(results, tmp) if figures else []
        results["files"] = ["results.json"] + list(files)
        atomic_write_json(tmp / "results.json", results)
    return results["files"]


__all__ = ["Result", "map_jobs", "primary_endpoint", "ratio", "split_budget", "spread", "stage_count",
           "train_stages", "write_results"]
