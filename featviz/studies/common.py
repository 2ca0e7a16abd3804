"""What every study shares: writing a result folder atomically (``results.json`` plus figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

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
