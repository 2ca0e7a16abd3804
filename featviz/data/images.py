"""Image datasets: scikit-learn's digits (built in) and torchvision's MNIST,
Fashion-MNIST and CIFAR-10 read from a local folder."""

from __future__ import annotations

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

DIGITS_SPLIT_SEED = 0


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (N, C, H, W) images in [0, 1] to ``size``×``size`` (bilinear, antialiased when shrinking)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    shrink = size < x.shape[-1]
    out = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
    return out.clamp_(0.0, 1.0)


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


def _missing(name: str, root: Path) -> list[str]:
    sub, files = DATASET_FILES[name]
    return [f for f in files if not (root / sub / f).is_file()]


def _read_cifar_bin(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise DataError(f"{path} is not a CIFAR-10 binary batch (size {raw.size} is not a multiple of 3073)")
    rec = raw.reshape(-1, 3073)
    if rec[:, 0].max() > 9:
        raise DataError(f"{path} has labels outside 0..9: not a CIFAR-10 binary batch")
    x = torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy())
    return x, torch.from_numpy(rec[:, 0].astype(np.int64))


def load_torchvision(name: str, data_root=None, download: bool = False, image_size: int | None = None) -> Dataset:
    """MNIST / Fashion-MNIST (torchvision's idx readers) or CIFAR-10 (the binary
    version, read without unpickling; the python version via torchvision) from
    ``data_root``. Nothing is downloaded unless ``download`` is true."""
    import torchvision

    if data_root is None:
        raise DataError(f"--dataset {name} needs --data-root DIR (a folder holding {DATASET_FILES[name][0]}/)")
    root = Path(data_root).expanduser()
    if root.exists() and not root.is_dir():
        raise DataError(f"--data-root {root} is a file, not a folder")
    try:
        if name in ("mnist", "fashion-mnist"):
            cls = torchvision.datasets.MNIST if name == "mnist" else torchvision.datasets.FashionMNIST
            missing = _missing(name, root)
            if missing and not download:
                sub = DATASET_FILES[name][0]
                raise DataError(f"{name}: missing {', '.join(missing)} in {root / sub}",
                                "put the unpacked idx files there, or pass --download")
            train = cls(str(root), train=True, download=download)
            test = cls(str(root), train=False, download=download)
            x_tr, y_tr = train.data.unsqueeze(1), train.targets
            x_te, y_te = test.data.unsqueeze(1), test.targets
        else:
            if _missing("cifar10", root) and (root / _CIFAR_PY[0]).is_dir() or download:
                train = torchvision.datasets.CIFAR10(str(root), train=True, download=download)
                test = torchvision.datasets.CIFAR10(str(root), train=False, download=download)
                x_tr = torch.from_numpy(train.data).permute(0, 3, 1, 2).contiguous()
                x_te = torch.from_numpy(test.data).permute(0, 3, 1, 2).contiguous()
                y_tr, y_te = torch.tensor(train.targets), torch.tensor(test.targets)
            else:
                missing = _missing("cifar10", root)
                if missing:
                    raise DataError(f"cifar10: missing {', '.join(missing)} in {root / DATASET_FILES['cifar10'][0]}",
                                    "use the CIFAR-10 binary version there, or pass --download")
                sub = root / DATASET_FILES["cifar10"][0]
                parts = [_read_cifar_bin(sub / f"data_batch_{i}.bin") for i in range(1, 6)]
                x_tr, y_tr = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
                x_te, y_te = _read_cifar_bin(sub / "test_batch.bin")
    except DataError:
        raise
    except (RuntimeError, OSError, ValueError, IndexError) as exc:
        raise DataError(f"{name}: cannot read the files under {root}: {str(exc).splitlines()[0]}") from None
    x_tr = x_tr.float().div_(255.0)
    x_te = x_te.float().div_(255.0)
    if image_size:
        x_tr, x_te = resize(x_tr, image_size), resize(x_te, image_size)
    return _image_dataset(name, x_tr, y_tr.long(), x_te, y_te.long(), 10, {"source": str(root.name)})
