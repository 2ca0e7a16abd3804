"""Synthetic regression data labelled by a :class:`~featviz.nets.Teacher`."""

from __future__ import annotations

from ..devices import generator
from ..errors import DataError
from ..nets import Teacher
from .core import Dataset

# The default preset: d=20 inputs, k=4 units per layer, 3 layers, information gap 0.3.
SYNTHETIC_PRESETS = {
    "default": {"d": 20, "k": 4, "depth": 3, "alpha": 0.3, "n_train": 20000, "n_val": 2000, "n_test": 5000},
    "quick": {"d": 10, "k": 2, "depth": 2, "alpha": 0.3, "n_train": 3000, "n_val": 500, "n_test": 1000},
}


def load_synthetic(d: int = 20, k: int = 4, depth: int = 3, alpha: float = 0.3, n_train: int = 20000,
                   n_val: int = 2000, n_test: int = 5000, seed: int = 0, connect: str = "skip2") -> Dataset:
    """Teacher-labelled data; the teacher is fixed by ``seed`` and each split is drawn
    from its own seeded generator, so a larger ``n_train`` extends, not reshuffles, the
    training set and the test set never changes with ``n_train``."""
    if min(d, k, depth) < 1 or min(n_train, n_test) < 1 or n_val < 0:
        raise DataError("synthetic data needs d, k, depth, n_train, n_test >= 1 and n_val >= 0")
    if not 0 < alpha <= 1:
        raise DataError(f"alpha must be in (0, 1], got {alpha}")
    teacher = Teacher(d=d, k=k, depth=depth, alpha=alpha, connect=connect, seed=seed)
    x_tr, y_tr = teacher.sample(n_train, generator(seed * 1000 + 1))
    x_va, y_va = teacher.sample(n_val, generator(seed * 1000 + 2))
    x_te, y_te = teacher.sample(n_test, generator(seed * 1000 + 3))
    info = {"name": "synthetic", "task": "regression", "d": d, "k": k, "depth": depth, "alpha": alpha,
            "connect": connect, "n_train": n_train, "n_val": n_val, "n_test": n_test, "seed": seed}
    return Dataset("synthetic", "regression", x_tr, y_tr, x_va, y_va, x_te, y_te, info=info, teacher=teacher)
