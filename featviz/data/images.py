"""Image datasets: scikit-learn's digits (built in) and torchvision's MNIST,
Fashion-MNIST and CIFAR-10 read from a local folder."""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .core import Dataset, channel_stats, split_indices

IMAGE_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")

_MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte"]
# Where torchvision looks for each dataset under --data-root.
DATASET_FILES = {
    "mnist": ("MNIST/raw", _MNIST_FILES),
    "fashion-mnist": ("FashionMNIST/raw", _MNIST_FILES),
    "cifar10": ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]),
}
_CIFAR_PY = ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"])
# The default --data-root when none is given (a card's recorded root is tried after it).
DATA_ENV = "FEATVIZ_DATA"
_IDX_MAX_BYTES = 1 << 31  # an IDX header claiming more than 2 GB of pixels is not MNIST

DIGITS_SPLIT_SEED = 0


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (N, C, H, W) images in [0, 1] to ``size``×``size`` (bilinear, antialiased when shrinking)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    shrink = size < x.shape[-1]
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return out.clamp_(0.0, 1.0)


# The resolution each dataset's images are stored at (before any --image-size resizing).
NATIVE_SIZE = {"digits": 8, "mnist": 28, "fashion-mnist": 28, "cifar10": 32}


def native_images(data: Dataset) -> torch.Tensor | None:
    """``data``'s training images at the dataset's native resolution (the same images,
    unresized), or None for a dataset of unknown native size."""
    size = NATIVE_SIZE.get(data.name)
    if size is None or not data.is_image:
        return None
    if data.x_train.shape[-1] == size:
        return data.x_train
    if data.name == "digits":
        return load_digits(image_size=size).x_train
    return load_torchvision(data.name, data_root=data.info.get("data_root"), image_size=None).x_train


def _image_dataset(name: str, x_train, y_train, x_test, y_test, num_classes: int, extra: dict) -> Dataset:
    mean, std = channel_stats(x_train)
    empty_x = x_train[:0]
    info = {"name": name, "task": "classification", "image_size": int(x_train.shape[-1]),
            "channels": int(x_train.shape[1]), "num_classes": num_classes, "n_train": int(len(x_train)),
            "n_test": int(len(x_test)), "normalization": {"mean": mean, "std": std}, **extra}
    return Dataset(name, "classification", x_train, y_train, empty_x, y_train[:0], x_test, y_test,
                   num_classes=num_classes, info=info)


def load_digits(image_size: int = 16) -> Dataset:
    """scikit-learn's 1,797 handwritten 8×8 digits (shipped inside scikit-learn, no
    download), as (N, 1, S, S) images in [0, 1], split 80/20 stratified (1,437 / 360)
    with a fixed seed.

    Default size 16×16: the data holds only 8×8 of information, so 16 is the smallest
    size that leaves a three-block net three distinct resolutions (16, 8, 4) and room
    for a 3×3 kernel's context; 32×32 would cost 4× the compute for no new content.
    """
    from sklearn.datasets import load_digits as sk_digits

    if not 4 <= image_size <= 256:
        raise DataError(f"--image-size {image_size} is out of range for digits", "use 8..256 (default 16)")
    raw = sk_digits()
    x = torch.from_numpy(raw.images.astype(np.float32) / 16.0).unsqueeze(1)
    y = torch.from_numpy(raw.target.astype(np.int64))
    train, test = split_indices(y, (0.8, 0.2), seed=DIGITS_SPLIT_SEED)
    x = resize(x, image_size)
    return _image_dataset("digits", x[train], y[train], x[test], y[test], 10,
                          {"source": "sklearn.datasets.load_digits", "split_seed": DIGITS_SPLIT_SEED})


def _find(root: Path, sub: str, fname: str) -> Path | None:
    """``root/sub/fname`` or its gzip'd ``.gz`` (torchvision's raw layout; both as downloaded)."""
    for candidate in (root / sub / fname, root / sub / f"{fname}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing(name: str, root: Path) -> list[str]:
    sub, files = DATASET_FILES[name]
    return [f for f in files if _find(root, sub, f) is None]


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file of unsigned bytes (MNIST's format), plain or gzip'd, as a uint8 tensor.

    Layout: two zero bytes, type code 0x08 (uint8), the number of dimensions, one
    big-endian int32 per dimension, then the values.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] != 0x08 or not 1 <= head[3] <= 4:
                raise DataError(f"{path} is not an IDX file of bytes (bad magic {head.hex() or 'empty'})",
                                "use the MNIST/Fashion-MNIST files as published")
            dims_raw = fh.read(4 * head[3])
            if len(dims_raw) < 4 * head[3]:
                raise DataError(f"{path} is truncated inside its IDX header")
            dims = [int(d) for d in np.frombuffer(dims_raw, dtype=">i4")]
            count = math.prod(dims)  # Python integers: huge dimensions cannot wrap around to a small count
            if min(dims) < 0 or count > _IDX_MAX_BYTES:
                raise DataError(f"{path}: IDX dimensions {dims} are not plausible")
            if opener is open and count > path.stat().st_size - 4 - 4 * head[3]:  # judged before reading the body
                raise DataError(f"{path} is truncated: its header claims {count} bytes, the file holds "
                                f"{path.stat().st_size - 4 - 4 * head[3]}", "download the file again")
            data = fh.read(count)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} cannot be read ({exc})", "download the file again") from None
    if len(data) != count:
        raise DataError(f"{path} is truncated: {len(data)} of {count} bytes", "download the file again")
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8).copy()).reshape(dims)


def _read_mnist(name: str, root: Path) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test) from the four IDX files (plain or .gz) under ``root``."""
    sub, files = DATASET_FILES[name]
    x_tr, y_tr, x_te, y_te = (read_idx(_find(root, sub, f)) for f in files)
    for x, y, what in ((x_tr, y_tr, "train"), (x_te, y_te, "t10k")):
        if x.dim() != 3 or y.dim() != 1 or len(x) != len(y):
            raise DataError(f"{name}: the {what} images {tuple(x.shape)} and labels {tuple(y.shape)} under "
                            f"{root / sub} do not pair up", "use the MNIST/Fashion-MNIST files as published")
        if not len(y):
            raise DataError(f"{name}: the {what} files under {root / sub} hold no examples",
                            "use the MNIST/Fashion-MNIST files as published")
        if int(y.max()) > 9:
            raise DataError(f"{name}: {what} labels under {root / sub} lie outside 0..9")
    return x_tr.unsqueeze(1), y_tr.long(), x_te.unsqueeze(1), y_te.long()


def data_roots(data_root=None, recorded_root=None) -> list[Path]:
    """Where to look for a dataset, in order: ``data_root`` (``--data-root``) if given, else
    the ``FEATVIZ_DATA`` environment variable, then ``recorded_root`` (the folder a
    checkpoint's card says its data came from)."""
    if data_root is not None:
        return [Path(data_root).expanduser()]
    roots = [Path(r).expanduser() for r in (os.environ.get(DATA_ENV), recorded_root) if r]
    return list(dict.fromkeys(roots))


def _has_files(name: str, root: Path) -> bool:
    if name == "cifar10":
        return not _missing("cifar10", root) or (root / _CIFAR_PY[0]).is_dir()
    return not _missing(name, root)


def _read_cifar_bin(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise DataError(f"{path} is not a CIFAR-10 binary batch (size {raw.size} is not a multiple of 3073)")
    rec = raw.reshape(-1, 3073)
    if rec[:, 0].max() > 9:
        raise DataError(f"{path} has labels outside 0..9: not a CIFAR-10 binary batch")
    x = torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy())
    return x, torch.from_numpy(rec[:, 0].astype(np.int64))


def load_torchvision(name: str, data_root=None, download: bool = False, image_size: int | None = None,
                     recorded_root=None) -> Dataset:
    """MNIST / Fashion-MNIST (IDX files, plain or ``.gz``, in torchvision's ``raw`` layout) or
    CIFAR-10 (the binary version, read without unpickling; the python version via
    torchvision) from the first folder of :func:`data_roots` that holds the files.
    Nothing is downloaded unless ``download`` is true (then into ``data_root``)."""
    sub, files = DATASET_FILES[name]
    roots = data_roots(data_root, recorded_root)
    if not roots:
        raise DataError(f"--dataset {name} needs --data-root DIR (a folder holding {sub}/ with "
                        f"{', '.join(files)}, plain or .gz)", f"or set {DATA_ENV}=DIR")
    for root in roots:
        if root.exists() and not root.is_dir():
            raise DataError(f"--data-root {root} is a file, not a folder")
    root = next((r for r in roots if _has_files(name, r)), None)
    if root is None and download:
        root = roots[0]
    if root is None:
        where = " and ".join(str(r / sub) for r in roots)
        missing = _missing(name, roots[0])
        raise DataError(f"{name}: missing {', '.join(missing)} (plain or .gz) in {where}",
                        f"put the files there (as torchvision downloads them), set --data-root or {DATA_ENV}, "
                        "or pass --download")
    try:
        if name in ("mnist", "fashion-mnist"):
            if download and _missing(name, root):
                import torchvision

                cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.FashionMNIST
                cls(str(root), train=True, download=True)
                cls(str(root), train=False, download=True)
            x_tr, y_tr, x_te, y_te = _read_mnist(name, root)
        elif _missing("cifar10", root) and (root / _CIFAR_PY[0]).is_dir() or download:
            import torchvision

            try:  # torchvision unpickles the batches only after checking their published MD5 sums
                train = torchvision.datasets.CIFAR10(str(root), train=True, download=download)
                test = torchvision.datasets.CIFAR10(str(root), train=False, download=download)
            except RuntimeError as exc:
                if "corrupted" not in str(exc):
                    raise
                raise DataError(f"cifar10: the python batches in {root / _CIFAR_PY[0]} are not the published files "
                                f"({', '.join(_CIFAR_PY[1])} with their official checksums)",
                                "featviz unpickles only those; use the binary version or --download") from None
            x_tr = torch.from_numpy(train.data).permute(0, 3, 1, 2).contiguous()
            x_te = torch.from_numpy(test.data).permute(0, 3, 1, 2).contiguous()
            y_tr, y_te = torch.tensor(train.targets), torch.tensor(test.targets)
        else:
            folder = root / sub
            parts = [_read_cifar_bin(folder / f"data_batch_{i}.bin") for i in range(1, 6)]
            x_tr, y_tr = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
            x_te, y_te = _read_cifar_bin(folder / "test_batch.bin")
    except DataError:
        raise
    except (RuntimeError, OSError, ValueError, IndexError, KeyError, EOFError) as exc:
        raise DataError(f"{name}: cannot read the files under {root}: {str(exc).splitlines()[0]}") from None
    x_tr = x_tr.float().div_(255.0)
    x_te = x_te.float().div_(255.0)
    if image_size:
        x_tr, x_te = resize(x_tr, image_size), resize(x_te, image_size)
    return _image_dataset(name, x_tr, y_tr.long(), x_te, y_te.long(), 10,
                          {"source": str(root.name), "data_root": str(root.resolve())})
