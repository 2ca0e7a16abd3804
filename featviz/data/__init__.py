"""Datasets as in-memory tensors with deterministic splits.

Every image dataset yields float images in [0, 1] of shape (N, C, H, W); the
per-channel mean/std of the training split is recorded (``Dataset.info``) and
stored in the model (``input_mean``/``input_std``), so every later tool maps
[0, 1] images to model input the same way.
"""

from __future__ import annotations

from .core import Dataset, split_indices
from .images import DATA_ENV, DATASET_FILES, IMAGE_DATASETS, data_roots, load_digits, load_torchvision, read_idx
from .synthetic import SYNTHETIC_PRESETS, load_synthetic

DATASETS = ("synthetic",) + IMAGE_DATASETS


def load_dataset(name: str, *, data_root=None, download: bool = False, image_size: int | None = None,
                 seed: int = 0, recorded_root=None, **synthetic) -> Dataset:
    """Load a dataset by name: ``synthetic``, ``digits``, ``mnist``, ``fashion-mnist`` or ``cifar10``.

    Files of the torchvision datasets are looked for in ``data_root``, else in the folder
    named by the ``FEATVIZ_DATA`` environment variable, then in ``recorded_root`` (a
    checkpoint card's ``dataset.data_root``)."""
    from ..errors import DataError

    if name == "synthetic":
        return load_synthetic(seed=seed, **synthetic)
    if name == "digits":
        return load_digits(image_size=image_size or 16)
    if name in IMAGE_DATASETS:
        return load_torchvision(name, data_root=data_root, download=download, image_size=image_size,
                                recorded_root=recorded_root)
    raise DataError(f"unknown dataset {name!r}", f"use one of {', '.join(DATASETS)}")


__all__ = ["DATASETS", "DATASET_FILES", "DATA_ENV", "data_roots", "read_idx", "Dataset", "SYNTHETIC_PRESETS", "load_dataset", "load_digits",
           "load_synthetic", "load_torchvision", "split_indices"]
