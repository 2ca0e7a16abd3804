"""What every study shares: writing a result folder atomically (``results.json`` plus figures) and
the pool of worker processes that runs its jobs."""

from __future__ import annotations

import concurrent.futures
import contextlib
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from ..fileio import atomic_directory, atomic_write_json


def write_results(results: dict[str, Any], out: str | Path,
                  figures: Callable[[dict[str, Any], Path], list[str]] | None = None) -> list[str]:
    """Write ``results.json`` (and whatever ``figures(results, folder)`` draws, which
    returns the file names it wrote) into folder ``out``, built under a temporary name and
    swapped in, so ``out`` is never half-written. Returns the file names;
    ``results["files"]`` lists them too."""
    with atomic_directory(out) as tmp:
        files = figures(results, tmp) if figures else []
        results["files"] = ["results.json"] + list(files)
        atomic_write_json(tmp / "results.json", results)
    return results["files"]


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
