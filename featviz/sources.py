"""Where models and data come from, resolved above the libraries.

:mod:`featviz.vis` and :mod:`featviz.attacks` take any ``nn.Module`` and tensors and never
read featviz's own files; this layer turns command-line options into those: a featviz
checkpoint folder (with its card's dataset) or ``MODULE:FACTORY`` with optional
safetensors weights. Normalization is explicit: featviz models normalize inside and
take [0, 1] images; for any other model the caller states ``mean``/``std`` and a
:class:`~featviz.normalize.Normalize` preprocess is applied (never guessed from the
model's class name).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .errors import CheckpointError, DataError, SpecError
from .normalize import Normalize


@dataclass
class Target:
    """A model ready to visualize: ``images`` are dataset images (N, C, H, W) for the
    examples (or None); ``note`` says why they are missing, when they are."""

    model: nn.Module
    input_shape: tuple[int, int, int]
    preprocess: nn.Module | None
    images: torch.Tensor | None
    name: str
    note: str | None = None


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"1,16,16"`` -> (1, 16, 16)."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise SpecError(f"--input-shape {text!r} is not C,H,W", "e.g. --input-shape 3,32,32")
    return shape  # type: ignore[return-value]


def load_factory(ref: str) -> nn.Module:
    """Import ``package.module:factory`` and call ``factory()``; the current folder is
    importable, as with ``python -m``."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise SpecError(f"--model {ref!r} is not MODULE:FACTORY", "e.g. --model mypkg.nets:make_model")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(f"--model {ref}: cannot import {module_name} ({exc})",
                        "run from the folder that holds the package, or install it") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise SpecError(f"--model {ref}: {module_name} has no callable {attr!r}")
    model = factory()
    if not isinstance(model, nn.Module):
        raise SpecError(f"--model {ref}: {attr}() returned {type(model).__name__}, not an nn.Module")
    return model


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a safetensors state dict into ``model`` (all keys must match)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    from .checkpoint import read_safetensors_header

    if not Path(path).is_file():
        raise CheckpointError(f"--weights {path} does not exist")
    # judged by the header alone before the body is read: names and shapes must be the model's
    table = read_safetensors_header(Path(path))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for name, entry in table.items():
        if name not in expected:
            raise CheckpointError(f"--weights {path} does not fit the model: unexpected tensor {name!r}")
        if tuple(entry["shape"]) != expected[name]:
            raise CheckpointError(f"--weights {path} does not fit the model: {name} has shape "
                                  f"{tuple(entry['shape'])}, the model's is {expected[name]}")
    try:
        tensors = load(Path(path).read_bytes())
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise CheckpointError(f"--weights {path} is not a valid safetensors file "
                              f"({str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__})") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"--weights {path} does not fit the model: {str(exc).splitlines()[1:2] or exc}") from None


def _dataset_images(name: str, data_root: Path | None, image_size: int | None, shape: tuple[int, int, int],
                    explicit: bool, recorded_root: str | None = None) -> tuple[torch.Tensor | None, str | None]:
    from .data import load_dataset

    try:
        data = load_dataset(name, data_root=data_root, image_size=image_size, recorded_root=recorded_root)
    except DataError as exc:
        if explicit:
            raise
        return None, f"dataset examples skipped: {exc.one_line()}"
    if not data.is_image or tuple(data.input_shape) != tuple(shape):
        msg = f"dataset {name} has inputs {tuple(data.input_shape)}, the model takes {tuple(shape)}"
        if explicit:
            raise DataError(msg, "pick a dataset that matches --input-shape")
        return None, f"dataset examples skipped: {msg}"
    return data.x_train, None


def load_target(checkpoint: Path | None, *, model_ref: str | None = None, weights: Path | None = None,
                input_shape: str | None = None, mean: Sequence[float] | None = None,
                std: Sequence[float] | None = None, dataset: str | None = None, data_root: Path | None = None,
                want_data: bool = True, device: torch.device | str = "cpu") -> Target:
    """Resolve the CLI's model options into a :class:`Target` on ``device``.

    Either ``checkpoint`` (a featviz checkpoint folder of an image model) or
    ``model_ref`` (``MODULE:FACTORY``, with optional ``weights``, ``input_shape``,
    ``mean``/``std``). Dataset images for the examples come from ``dataset`` or the
    checkpoint card; a dataset that cannot be found is skipped with a note unless it
    was asked for explicitly (``dataset`` or ``data_root`` given).
    """
    if (checkpoint is None) == (model_ref is None):
        raise SpecError("give either a CHECKPOINT folder or --model MODULE:FACTORY (exactly one)")
    explicit = dataset is not None or data_root is not None
    if checkpoint is not None:
        from .checkpoint import load_checkpoint

        if weights or mean or std:
            raise SpecError("--weights/--mean/--std go with --model; a checkpoint carries its own")
        ckpt = load_checkpoint(checkpoint, device)
        shape = getattr(ckpt.model, "input_shape", None)
        if shape is None:
            raise SpecError(f"{checkpoint} is a {ckpt.card['arch'].get('class')} with vector inputs",
                            "featviz maximize visualizes image models (C, H, W inputs)")
        if input_shape is not None and parse_shape(input_shape) != tuple(shape):
            raise SpecError(f"--input-shape {input_shape} does not match the checkpoint's {tuple(shape)}")
        model, preprocess, name = ckpt.model, None, ckpt.name
        card_data = ckpt.card.get("dataset", {})
        dataset = dataset or card_data.get("name")
        image_size, recorded_root = card_data.get("image_size"), card_data.get("data_root")
    else:
        model = load_factory(model_ref)
        if weights is not None:
            load_weights(model, weights)
        model.to(device).eval()
        raw = getattr(model, "input_shape", None)
        if input_shape is None and raw is None:
            raise SpecError(f"--model {model_ref}: its input shape is unknown", "pass --input-shape C,H,W")
        shape = parse_shape(input_shape) if input_shape is not None else tuple(int(v) for v in raw)
        if (mean is None) != (std is None):
            raise SpecError("--mean and --std go together")
        preprocess = None
        if mean is not None:
            if len(mean) != shape[0]:
                raise SpecError(f"--mean has {len(mean)} values for {shape[0]} channels")
            preprocess = Normalize(mean, std).to(device)
        name, image_size, recorded_root = model_ref, shape[-1], None
    images, note = None, None
    if want_data and dataset:
        images, note = _dataset_images(dataset, data_root, image_size, tuple(shape), explicit, recorded_root)
    return Target(model, tuple(shape), preprocess, images, str(name), note)


# --------------------------------------------------------------------------- attack targets


def checkpoint_targets(checkpoints: Sequence[str | Path], *, data_root: str | Path | None = None,
                       device: torch.device | str = "cpu") -> list:  # list[AttackTarget]
    """featviz checkpoints of image classifiers, each with its own dataset's test split."""
    from .attacks.session import AttackTarget
    from .checkpoint import load_checkpoint
    from .data import load_dataset

    cache: dict[tuple, Any] = {}
    targets = []
    for path in checkpoints:
        ckpt = load_checkpoint(path, device)
        info = ckpt.card.get("dataset", {})
        if info.get("task") != "classification":
            raise SpecError(f"{path} is a {info.get('task', 'non-classification')} model",
                            "attacks need an image classifier checkpoint")
        key = (info.get("name"), info.get("image_size"))
        if key not in cache:
            cache[key] = load_dataset(info["name"], data_root=data_root, image_size=info.get("image_size"),
                                      recorded_root=info.get("data_root"))
        data = cache[key]
        targets.append(AttackTarget(ckpt.name, str(path), ckpt.model, data.x_test, data.y_test))
    return targets


def factory_target(model_ref: str, *, dataset: str, weights: str | Path | None = None,
                   input_shape: str | None = None, mean: Sequence[float] | None = None,
                   std: Sequence[float] | None = None, data_root: str | Path | None = None,
                   device: torch.device | str = "cpu"):
    """Any ``nn.Module`` from ``module:factory`` (plus safetensors ``weights``) against the
    test split of ``dataset``. ``mean``/``std`` wrap it in :class:`~featviz.attacks.Normalized`
    so the attacks work on [0, 1] images. Input shape and class count must match the data."""
    from .attacks.session import AttackTarget
    from .data import load_dataset
    from .normalize import Normalized

    if not dataset:
        raise SpecError(f"--model {model_ref} needs --dataset (the test images to attack)", "e.g. --dataset digits")
    model = load_factory(model_ref)
    if weights is not None:
        load_weights(model, Path(weights))
    shape = parse_shape(input_shape) if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise SpecError(f"--model {model_ref}: its input shape is unknown", "pass --input-shape C,H,W")
    shape = tuple(int(v) for v in shape)
    data = load_dataset(dataset, data_root=data_root, image_size=shape[-1])
    if data.task != "classification" or not data.is_image:
        raise SpecError(f"--dataset {dataset} is not an image classification dataset")
    if tuple(data.input_shape) != shape:
        raise SpecError(f"--dataset {dataset} has inputs {tuple(data.input_shape)}, --model takes {shape}",
                        "pick a dataset that matches --input-shape")
    if (mean is None) != (std is None):
        raise SpecError("--mean and --std go together")
    if mean is not None:
        if len(mean) != shape[0] or len(std) != shape[0] or min(std) <= 0:
            raise SpecError(f"--mean/--std need {shape[0]} values (one per channel) and std > 0")
        model = Normalized(model, mean, std)
    model = model.to(device).eval()
    probe = data.x_test[:2].to(device)
    try:
        with torch.no_grad():
            out = model(probe)
    except Exception as exc:  # a foreign model that cannot take these inputs
        raise SpecError(f"--model {model_ref} fails on {dataset} inputs of shape {tuple(probe.shape)}: "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != data.num_classes:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SpecError(f"--model {model_ref} outputs {got} for a batch of 2, but {dataset} has "
                        f"{data.num_classes} classes", "the model must return (N, classes) logits")
    return AttackTarget(model_ref, model_ref, model, data.x_test, data.y_test)


__all__ = ["Target", "checkpoint_targets", "factory_target", "load_factory", "load_target", "load_weights",
           "parse_shape"]
