"""What every study shares: the matched-budget rule, the loop over independent jobs (seeds,
learners, settings) in this process or in worker processes with the same numbers, and
writing a result folder atomically.

Every study module has the same surface (docs/studies.md): ``FORMAT`` (the ``format`` tag
of its ``results.json``), ``Config`` (a dataclass of its settings), ``PRESETS`` (named
configurations), ``run(config, ...) -> Result`` (the ``results.json`` dict) and
``write(result, out)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import torch

from ..fileio import atomic_directory, atomic_write_json
from ..train import split_budget, stage_count

T = TypeVar("T")
Result = dict[str, Any]  # what run() returns and write() writes: the results.json dict


def _one_thread() -> None:
    torch.set_num_threads(1)  # a worker process of a study: its thread count is ours to set


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
    import concurrent.futures
    import multiprocessing

    results: list[Any] = [None] * len(jobs)
    # spawn, not fork: forking a process whose OpenMP threads already ran can deadlock.
    with concurrent.futures.ProcessPoolExecutor(min(workers, len(jobs)), initializer=_one_thread,
                                                mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        for future in concurrent.futures.as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if done is not None:
                done(i, results[i])
    return results


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


__all__ = ["Result", "map_jobs", "split_budget", "stage_count", "write_results"]
