"""Where models and data come from: the thin layer above ``featviz.attacks``.

The attack library takes any ``nn.Module`` and tensors; this module turns command-line
options (featviz checkpoint folders, or ``--model module:factory`` with safetensors
weights and a dataset) into them, and refuses mismatches with one clear line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .errors import SpecError

# --------------------------------------------------------------------------- attack targets


def checkpoint_targets(checkpoints: Sequence[str | Path], *, data_root: str | Path | None = None,
                       device: torch.device | str = "cpu") -> list:
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
            cache[key] = load_dataset(info["name"], data_root=data_root, image_size=info.get("image_size"))
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
    from .normalize import Normalized
    from .attacks.session import AttackTarget
    from .data import load_dataset
    from .vis.models import load_factory, load_weights, parse_shape

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
