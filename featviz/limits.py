"""Bounds on every size a user can pass, checked before anything is allocated.

A count that would take the machine (``--seeds 10**9``, ``--width 10**6``, ``--d 100000``)
is refused with exit 2 naming the option and its limit; where the limit depends on the
machine, the memory a setting needs is estimated and compared with this machine's RAM.
Lists (``--alphas``, ``--eps``, ``--modes``, ``--d``, ``--n``) must not repeat a value.
"""

from __future__ import annotations

import os
from typing import Sequence

from .errors import SpecError

MAX_SEEDS = 1000            # seeds per study setting
MAX_WIDTH = 65_536          # units or channels of one layer
MAX_DEPTH = 64              # layers / blocks
MAX_INPUT_DIM = 4096        # d of the synthetic hierarchy
MAX_SAMPLES = 100_000_000   # n of a synthetic training set
MAX_EPOCHS = 1_000_000
MAX_STEPS = 10_000_000      # optimizer or attack steps
MAX_WORKERS = 256
MAX_EXAMPLES = 100_000_000  # images attacked / shown
MAX_LIST = 1000             # values in a swept list
MEMORY_FRACTION = 0.5       # most of this machine's RAM one run may plan to hold


def bounded(value: int | None, what: str, high: int, low: int = 1) -> int | None:
    """``value`` if it is None or a whole number in [low, high]; else exit 2 naming the limit."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{what} must be a whole number, got {value!r}")
    if value < low:
        raise SpecError(f"{what} must be >= {low}, got {value}")
    if value > high:
        raise SpecError(f"{what} must be at most {high:,}, got {value:,}", "that is the most featviz accepts")
    return value


def distinct(values: Sequence, what: str) -> Sequence:
    """``values`` if no value appears twice (and there are at most :data:`MAX_LIST`); else exit 2."""
    seen: set = set()
    for v in values:
        if v in seen:
            raise SpecError(f"{what} lists {v!r} twice", "give each value once")
        seen.add(v)
    if len(values) > MAX_LIST:
        raise SpecError(f"{what} has {len(values)} values (at most {MAX_LIST})")
    return values


def machine_memory() -> int:
    """Bytes of physical memory (0 when the platform does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def fits_in_memory(nbytes: float, what: str) -> None:
    """Refuse a setting whose estimated memory ``nbytes`` exceeds :data:`MEMORY_FRACTION` of
    this machine's RAM (exit 2, with both numbers)."""
    total = machine_memory()
    if total and nbytes > MEMORY_FRACTION * total:
        raise SpecError(f"{what} needs about {nbytes / 2**30:,.1f} GiB, more than "
                        f"{MEMORY_FRACTION:.0%} of this machine's {total / 2**30:,.1f} GiB", "choose smaller sizes")


def check_study_sizes(config) -> None:
    """Bounds of a synthetic study's sizes (d, k, depth, width, n, seeds, epochs) and its data's
    memory, checked before any data is drawn."""
    for name, high in (("d", MAX_INPUT_DIM), ("k", MAX_INPUT_DIM), ("depth", MAX_DEPTH), ("width", MAX_WIDTH),
                       ("n_train", MAX_SAMPLES), ("n_val", MAX_SAMPLES), ("n_test", MAX_SAMPLES),
                       ("seeds", MAX_SEEDS), ("epochs", MAX_EPOCHS), ("sweep_seeds", MAX_SEEDS),
                       ("batch_size", MAX_SAMPLES)):
        value = getattr(config, name, None)
        if isinstance(value, int):
            bounded(value, f"--{name.replace('_', '-')}", high, low=2 if name == "n_train" else 1)
    for name in ("n_sweep", "width_sweep"):
        for value in getattr(config, name, ()) or ():
            bounded(value, f"{name.replace('_', ' ')} value", MAX_SAMPLES if name == "n_sweep" else MAX_WIDTH)
    rows = sum(getattr(config, n, 0) or 0 for n in ("n_train", "n_val", "n_test"))
    fits_in_memory(4.0 * rows * (getattr(config, "d", 1) + 4 * getattr(config, "width", 1)) * 4,
                   f"{rows:,} samples of dimension {getattr(config, 'd', '?')} (width {getattr(config, 'width', '?')})")


__all__ = ["MAX_DEPTH", "MAX_EPOCHS", "MAX_EXAMPLES", "MAX_INPUT_DIM", "MAX_LIST", "MAX_SAMPLES", "MAX_SEEDS",
           "MAX_STEPS", "MAX_WIDTH", "MAX_WORKERS", "bounded", "check_study_sizes", "distinct", "fits_in_memory",
           "machine_memory"]
