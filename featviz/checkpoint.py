"""Checkpoints: a folder with ``model.safetensors`` (weights only) and ``card.json``.

Loading never executes code from the files: weights are read with safetensors (a
JSON header plus raw tensor bytes; a pickle is rejected as a malformed header), the
model is rebuilt from the card's ``arch`` through a fixed registry of classes, and
every tensor's name, shape and dtype is checked against that model.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .errors import CheckpointError, FeatvizError
from .fileio import atomic_directory, to_json
from .nets import HierarchicalNet, build_model, layer_table

FORMAT = "featviz-checkpoint/1"
WEIGHTS = "model.safetensors"
CARD = "card.json"
REQUIRED_KEYS = ("format", "arch", "dataset", "training", "metrics", "layers", "versions")


@dataclass
class Checkpoint:
    model: HierarchicalNet
    card: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return self.card.get("name") or self.path.name


def make_card(model: HierarchicalNet, *, dataset: dict, training: dict, metrics: dict,
              name: str | None = None) -> dict[str, Any]:
    """A model card in the ``featviz-checkpoint/1`` format (see CONTRACT.md)."""
    card = {
        "format": FORMAT,
        "arch": dict(model.arch),
        "dataset": dataset,
        "training": training,
        "metrics": metrics,
        "layers": [info.to_dict() for info in layer_table(model)],
        "versions": {"featviz": __version__, "torch": torch.__version__.split("+")[0],
                     "python": platform.python_version()},
    }
    if name:
        card["name"] = name
    return card


def _state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(path: str | os.PathLike, model: HierarchicalNet, card: dict[str, Any],
                    extra_files: dict[str, bytes] | None = None) -> Path:
    """Write the checkpoint folder atomically (a crash leaves the previous one intact).

    Refuses non-finite weights: a diverged model is never written out.
    """
    from safetensors.torch import save

    tensors = _state_tensors(model)
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise FeatvizError(f"refusing to save a model with NaN/Inf in {bad[0]}", "training diverged; lower --lr")
    blob = save(tensors, metadata={"format": FORMAT})
    with atomic_directory(path) as tmp:
        (tmp / WEIGHTS).write_bytes(blob)
        (tmp / CARD).write_text(to_json(card) + "\n", encoding="utf-8")
        for fname, data in (extra_files or {}).items():
            (tmp / fname).write_bytes(data)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    return Path(path)


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``card.json`` of a checkpoint folder."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist", "pass a folder made by `featviz train`")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a file, not a folder",
                              f"a checkpoint is a folder with {WEIGHTS} and {CARD}")
    card_path = path / CARD
    if not card_path.is_file():
        raise CheckpointError(f"{path} has no {CARD}", "is this a folder made by `featviz train`?")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{card_path} is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(card, dict):
        raise CheckpointError(f"{card_path} must hold a JSON object")
    if card.get("format") != FORMAT:
        raise CheckpointError(f"{card_path} has format {card.get('format')!r}, expected {FORMAT!r}",
                              "retrain with this featviz version")
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise CheckpointError(f"{card_path} lacks {', '.join(missing)}")
    if not isinstance(card["arch"], dict):
        raise CheckpointError(f"{card_path}: 'arch' must be an object of constructor arguments")
    return card


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> Checkpoint:
    """Load and validate a checkpoint folder; the model is returned in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    card = read_card(path)
    try:
        model = build_model(card["arch"])
    except FeatvizError as exc:
        raise CheckpointError(f"{path / CARD}: {exc.one_line()}") from None
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{path} has no {WEIGHTS}", "the checkpoint is incomplete; retrain it")
    try:
        tensors = load(weights.read_bytes())
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise CheckpointError(f"{weights} is not a valid safetensors file ({msg})",
                              "featviz never loads pickles; retrain or restore the file") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise CheckpointError(f"{weights} does not match the card's arch ({what})")
    for key, ref in expected.items():
        got = tensors[key]
        if tuple(got.shape) != tuple(ref.shape):
            raise CheckpointError(f"{weights}: {key} has shape {tuple(got.shape)}, the card's arch needs "
                                  f"{tuple(ref.shape)}")
        if got.dtype != ref.dtype:
            raise CheckpointError(f"{weights}: {key} has dtype {got.dtype}, expected {ref.dtype}")
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(f"{weights}: {key} contains NaN/Inf", "the model diverged; retrain it")
    model.load_state_dict(tensors, strict=True)
    model.to(device).eval()
    return Checkpoint(model=model, card=card, path=path)


def summarize(card: dict[str, Any]) -> dict[str, Any]:
    """The fields ``featviz info`` shows."""
    metrics = card.get("metrics", {})
    out = {
        "name": card.get("name"),
        "arch": card["arch"].get("class"),
        "act": card["arch"].get("act"),
        "dataset": card.get("dataset", {}).get("name"),
        "mode": card.get("training", {}).get("mode"),
        "adv": card.get("training", {}).get("adv"),
        "layers": card.get("layers", []),
        "metrics": {k: v for k, v in metrics.items() if k != "stages"},
        "stages": [{k: v for k, v in s.items() if k in ("name", "epochs", "test_accuracy", "test_rel_mse")}
                   for s in metrics.get("stages", [])],
    }
    return {k: v for k, v in out.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
