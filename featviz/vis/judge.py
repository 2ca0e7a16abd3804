"""An independent judge for class renders: does a render of ``logits:CLASS`` look like
CLASS to a model that did not make it?

The judge is a small ReLU CNN (conv 32 → pool → conv 64 → pool → linear), a different
architecture from featviz's quadratic DenseNets, trained by featviz on the same
training images with its own seed (:data:`JUDGE_SEED`). It is trained once per data
and cached beside the generator (see :func:`~featviz.vis.generator.cache_root`,
``CACHE/judges/KEY/``). Its test accuracy is reported with every verdict.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..devices import generator, seeded
from ..fileio import atomic_write_bytes, atomic_write_json
from .generator import cache_root, data_key

JUDGE_SEED = 1234
EPOCHS = 30
BATCH = 64
LR = 2e-3
VERSION = 1


class ReLUCNN(nn.Module):
    """conv3×3(32)-ReLU-maxpool2 → conv3×3(64)-ReLU-maxpool2 → linear; (N, C, H, W) in [0, 1] → (N, classes)."""

    def __init__(self, channels: int, classes: int, size: int):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(64 * (size // 4) ** 2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x - 0.5).flatten(1))


@dataclass
class Judge:
    """A trained judge: ``model`` and what is reported about it (``info``: name, test
    accuracy, seed, ...)."""

    model: nn.Module
    info: dict

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class of each (N, C, H, W) image: (N,) int64."""
        self.model.eval()
        return self.model(images.float().cpu()).argmax(1)

    def verdict(self, image: torch.Tensor, target: int) -> dict:
        """``{"model", "predicted", "target"}`` for one (C, H, W) render of class ``target``."""
        return {"model": self.info["name"], "predicted": int(self.predict(image[None])[0]), "target": int(target)}


def train_judge(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor | None = None,
                y_test: torch.Tensor | None = None, *, seed: int = JUDGE_SEED, epochs: int | None = None) -> Judge:
    """Train a :class:`ReLUCNN` on (N, C, H, W) images in [0, 1] with labels (N,) for
    ``epochs`` (default :data:`EPOCHS`)."""
    epochs = epochs or EPOCHS
    x, y = x_train.float().cpu(), y_train.long().cpu()
    classes = int(y.max()) + 1
    with seeded(seed):
        model = ReLUCNN(x.shape[1], classes, x.shape[-1])
    gen = generator(seed)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * math.ceil(len(x) / BATCH))
    start = time.perf_counter()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), BATCH):
            idx = perm[i:i + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    info = {"name": f"relu-cnn-seed{seed}", "architecture": "conv32-pool-conv64-pool-linear, ReLU", "seed": seed,
            "epochs": epochs, "train_images": len(x), "seconds": round(time.perf_counter() - start, 2)}
    with torch.no_grad():
        info["train_accuracy"] = float((model(x).argmax(1) == y).float().mean())
        if x_test is not None and y_test is not None and len(x_test):
            info["test_accuracy"] = float((model(x_test.float().cpu()).argmax(1) == y_test.long().cpu()).float().mean())
    return Judge(model, info)


def load_or_train_judge(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor | None = None,
                        y_test: torch.Tensor | None = None, *, seed: int = JUDGE_SEED,
                        cache_dir: str | Path | None = None, epochs: int | None = None) -> Judge:
    """The cached judge for this data, trained (and cached) if missing."""
    epochs = epochs or EPOCHS
    from safetensors.torch import load_file, save

    settings = {"seed": seed, "epochs": epochs, "version": VERSION}
    folder = cache_root(cache_dir) / "judges" / data_key([x_train.float(), y_train.long()], settings)
    weights, card = folder / "judge.safetensors", folder / "judge.json"
    key = f"{folder.parent.name}/{folder.name}"
    classes = int(y_train.max()) + 1
    if weights.exists() and card.exists():
        try:
            model = ReLUCNN(x_train.shape[1], classes, x_train.shape[-1])
            model.load_state_dict(load_file(str(weights)))
            return Judge(model.eval(), json.loads(card.read_text()) | {"cached": True, "cache_key": key})
        except (OSError, RuntimeError, ValueError, KeyError):
            pass  # a damaged entry is retrained and overwritten
    judge = train_judge(x_train, y_train, x_test, y_test, seed=seed, epochs=epochs)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(weights, save({k: v.contiguous() for k, v in judge.model.state_dict().items()}))
    atomic_write_json(card, judge.info)
    judge.info |= {"cached": False, "cache_key": key}
    return judge


__all__ = ["JUDGE_SEED", "Judge", "ReLUCNN", "load_or_train_judge", "train_judge"]
