"""A user's own images: an ``.npz`` file or a folder with one sub-folder per class.

``--data FILE.npz`` holds ``x`` (images) and, for attacks, ``y`` (integer labels):

- ``x``: (N, C, H, W) or (N, H, W, C) or (N, H, W) (one channel); ``uint8`` (divided by
  255) or float already in [0, 1]. The layout is read from where the 1, 3 or 4 channels
  are, or from ``--input-shape`` when both ends could be channels.
- ``y``: (N,) non-negative integers (class indices).

``--data FOLDER`` is read with torchvision's ``ImageFolder`` (``FOLDER/<class>/<image>``,
classes in sorted order); every image is converted to the first image's mode (grayscale
or RGB) and resized to the first image's size (or to ``--input-shape``).

Both give a :class:`~featviz.data.Dataset` whose train and test splits are the same images
(featviz only evaluates and visualizes here; it never trains on them). Sizes are checked
against :data:`MAX_ELEMENTS` from the file's header, before any array is read.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import DataError
from .core import Dataset, channel_stats

MAX_ELEMENTS = 1 << 28   # 256 M values: 1 GiB as float32, far beyond any dataset featviz evaluates
MAX_FILES = 200_000      # images in a folder
CHANNELS = (1, 3, 4)


def load_user_data(path: str | Path, input_shape: Sequence[int] | None = None) -> Dataset:
    """``--data PATH``: an ``.npz`` file or an image folder -> a :class:`Dataset` in [0, 1].

    ``input_shape`` (C, H, W), when known, decides an ambiguous layout and is checked
    (npz) or used as the target size (folder). Every mistake is a :class:`DataError`
    naming what is wrong."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"--data {path} does not exist", "give an .npz file or a folder of class sub-folders")
    if path.is_dir():
        x, y, classes = _read_folder(path, input_shape)
    elif path.suffix.lower() == ".npz":
        x, y = _read_npz(path, input_shape)
        classes = None
    else:
        raise DataError(f"--data {path} is neither an .npz file nor a folder",
                        "save arrays with numpy.savez(FILE.npz, x=images, y=labels) or give an image folder")
    num_classes = len(classes) if classes else (int(y.max()) + 1 if y is not None and len(y) else 0)
    labels = y if y is not None else torch.full((len(x),), -1, dtype=torch.long)
    mean, std = channel_stats(x)
    info = {"name": path.name, "task": "classification", "source": "user", "path": str(path),
            "image_size": int(x.shape[-1]), "channels": int(x.shape[1]), "num_classes": num_classes,
            "n_train": len(x), "n_test": len(x), "labelled": y is not None,
            "normalization": {"mean": mean, "std": std}}
    if classes:
        info["classes"] = classes
    return Dataset(path.name, "classification", x, labels, x[:0], labels[:0], x, labels,
                   num_classes=num_classes, info=info)


def check_labels(data: Dataset, outputs: int, what: str) -> None:
    """Labels must exist and index the model's ``outputs`` logits."""
    if not data.info.get("labelled", True):
        raise DataError(f"--data {data.info.get('path', data.name)} has no y (labels)",
                        "attacks need labels: save numpy.savez(FILE.npz, x=images, y=labels)")
    top = int(data.y_test.max()) if len(data.y_test) else -1
    if top >= outputs:
        raise DataError(f"--data {data.name} has label {top}, but {what} has {outputs} outputs (classes 0..{outputs - 1})",
                        "labels must be class indices of the model's logits")


def _npy_header(archive: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of ``key`` in an npz, from its header alone (nothing is allocated)."""
    with archive.open(f"{key}.npy") as fh:
        version = np.lib.format.read_magic(fh)
        reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in reader:
            raise DataError(f"--data: array {key} has an unsupported .npy version {version}")
        shape, _, dtype = reader[version](fh)
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _read_npz(path: Path, input_shape: Sequence[int] | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"--data {path} is not a readable .npz file ({exc})") from None
    with archive:
        names = {n[:-4] for n in archive.namelist() if n.endswith(".npy")}
        if "x" not in names:
            raise DataError(f"--data {path} has no array named x (it has {', '.join(sorted(names)) or 'none'})",
                            "save numpy.savez(FILE.npz, x=images, y=labels)")
        try:
            headers = {k: _npy_header(archive, k) for k in ("x", "y") if k in names}
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise DataError(f"--data {path}: a damaged array header ({exc})") from None
    shape, dtype = headers["x"]
    if dtype.hasobject or dtype.kind not in "uif b":
        raise DataError(f"--data {path}: x has dtype {dtype}", "x must be uint8 (0..255) or float in [0, 1]")
    if len(shape) not in (3, 4) or min(shape, default=0) < 1:
        raise DataError(f"--data {path}: x has shape {shape}", "x must be (N, C, H, W), (N, H, W, C) or (N, H, W)")
    if math.prod(shape) > MAX_ELEMENTS:  # Python integers: a product of huge sizes cannot wrap around
        raise DataError(f"--data {path}: x holds {math.prod(shape):,} values, more than the {MAX_ELEMENTS:,} "
                        "featviz loads", "evaluate a subset (e.g. the first 10,000 images)")
    if "y" in headers:
        yshape, ydtype = headers["y"]
        if ydtype.kind not in "iu":
            raise DataError(f"--data {path}: y has dtype {ydtype}", "y must hold integer class labels")
        if yshape != (shape[0],):
            raise DataError(f"--data {path}: y has shape {yshape} for {shape[0]} images", f"y must be ({shape[0]},)")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            x_np = arrays["x"]
            y_np = arrays["y"] if "y" in headers else None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"--data {path} cannot be read ({exc})") from None
    x = _images(x_np, path, input_shape)
    y = None
    if y_np is not None:
        y = torch.from_numpy(y_np.astype(np.int64))
        if len(y) and int(y.min()) < 0:
            raise DataError(f"--data {path}: y has negative label {int(y.min())}", "labels are class indices 0..K-1")
    return x, y


def _layout(shape: tuple[int, ...], input_shape: Sequence[int] | None, path: Path) -> str:
    """"nchw" or "nhwc" for a 4-D array."""
    first, last = shape[1] in CHANNELS, shape[3] in CHANNELS
    if input_shape is not None:
        c, h, w = (int(v) for v in input_shape)
        if shape[1:] == (c, h, w):
            return "nchw"
        if shape[1:] == (h, w, c):
            return "nhwc"
        raise DataError(f"--data {path}: x has shape {shape}, not images of the model's input {(c, h, w)}",
                        "fix --input-shape or the array")
    if first and not last:
        return "nchw"
    if last and not first:
        return "nhwc"
    if first and last:
        raise DataError(f"--data {path}: x has shape {shape}; both the second and the last axis could be channels",
                        "pass --input-shape C,H,W to say which")
    raise DataError(f"--data {path}: x has shape {shape}; neither the second nor the last axis is 1, 3 or 4 channels",
                    "x must be (N, C, H, W) or (N, H, W, C)")


def _images(x: np.ndarray, path: Path, input_shape: Sequence[int] | None) -> torch.Tensor:
    """A checked float32 (N, C, H, W) tensor in [0, 1]."""
    if x.ndim == 3:
        x = x[:, None]
    elif _layout(x.shape, input_shape, path) == "nhwc":
        x = x.transpose(0, 3, 1, 2)
    if x.dtype == np.uint8:
        out = torch.from_numpy(np.ascontiguousarray(x)).float().div_(255.0)
    else:
        out = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if not torch.isfinite(out).all():
            raise DataError(f"--data {path}: x holds NaN or infinite values")
        lo, hi = float(out.min()), float(out.max())
        if lo < 0 or hi > 1:
            hint = "uint8 images go in as uint8 (featviz divides by 255)" if hi <= 255 and lo >= 0 else \
                "featviz takes images in [0, 1] and normalizes with --mean/--std"
            raise DataError(f"--data {path}: x has values in [{lo:.4g}, {hi:.4g}], not in [0, 1]", hint)
    if input_shape is not None and tuple(out.shape[1:]) != tuple(int(v) for v in input_shape):
        raise DataError(f"--data {path}: images are {tuple(out.shape[1:])}, --input-shape says "
                        f"{tuple(int(v) for v in input_shape)}")
    return out


def _read_folder(path: Path, input_shape: Sequence[int] | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from PIL import Image, UnidentifiedImageError

    from torchvision.datasets import ImageFolder

    try:
        folder = ImageFolder(str(path))
    except (FileNotFoundError, OSError) as exc:
        raise DataError(f"--data {path}: {str(exc).splitlines()[0]}",
                        "lay it out as FOLDER/<class>/<image>.png, every class folder holding images") from None
    classes, files = list(folder.classes), [(Path(f), int(label)) for f, label in folder.samples]
    if len(files) > MAX_FILES:
        raise DataError(f"--data {path} holds {len(files):,} images, more than the {MAX_FILES:,} featviz loads",
                        "evaluate a subset")
    try:
        with Image.open(files[0][0]) as first:
            mode = "L" if first.mode in ("1", "L", "I", "I;16", "F") else "RGB"
            size = first.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"--data: {files[0][0]} is not a readable image ({exc})") from None
    if input_shape is not None:
        c, h, w = (int(v) for v in input_shape)
        if c not in (1, 3):
            raise DataError(f"--input-shape {c},{h},{w}: image folders give 1 (grayscale) or 3 (RGB) channels")
        mode, size = ("L" if c == 1 else "RGB"), (w, h)
    channels = 1 if mode == "L" else 3
    if len(files) * channels * size[0] * size[1] > MAX_ELEMENTS:
        raise DataError(f"--data {path}: {len(files):,} images of {size[0]}x{size[1]} exceed the {MAX_ELEMENTS:,} "
                        "values featviz loads", "pass a smaller --input-shape or fewer images")
    x = torch.empty(len(files), channels, size[1], size[0])
    for i, (f, _) in enumerate(files):
        try:
            with Image.open(f) as img:
                img = img.convert(mode)
                if img.size != size:
                    img = img.resize(size, Image.BILINEAR)
                arr = np.asarray(img, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DataError(f"--data: {f} is not a readable image ({exc})") from None
        x[i] = torch.from_numpy(arr.reshape(size[1], size[0], channels).transpose(2, 0, 1).copy()).float() / 255.0
    y = torch.tensor([label for _, label in files], dtype=torch.long)
    return x, y, classes


__all__ = ["MAX_ELEMENTS", "check_labels", "load_user_data"]
