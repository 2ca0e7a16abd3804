"""Model families: vector and convolutional quadratic DenseNets, and the teacher."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import FeatvizError
from .base import ACTIVATIONS, CONNECT_PATTERNS, HierarchicalNet, LayerInfo, Square
from .conv import QuadraticDenseConvNet
from .mlp import QuadraticDenseMLP
from .teacher import Teacher

MODEL_CLASSES: dict[str, type[HierarchicalNet]] = {
    "QuadraticDenseMLP": QuadraticDenseMLP,
    "QuadraticDenseConvNet": QuadraticDenseConvNet,
}


def build_model(arch: dict[str, Any]) -> HierarchicalNet:
    """Construct a model from its ``arch`` dict (``{"class": name, **constructor kwargs}``)."""
    kwargs = dict(arch)
    name = kwargs.pop("class", None)
    if name not in MODEL_CLASSES:
        raise FeatvizError(f"unknown model class {name!r}", f"known: {', '.join(MODEL_CLASSES)}")
    try:
        return MODEL_CLASSES[name](**kwargs)
    except (TypeError, ValueError) as exc:
        raise FeatvizError(f"cannot build {name} from its arch: {exc}") from None


def layer_table(model: nn.Module) -> list[LayerInfo]:
    """The addressable layers of a featviz model (``block1``...), else an empty list."""
    info = getattr(model, "layer_info", None)
    return list(info()) if callable(info) else []


__all__ = [
    "ACTIVATIONS", "CONNECT_PATTERNS", "HierarchicalNet", "LayerInfo", "MODEL_CLASSES", "QuadraticDenseConvNet",
    "QuadraticDenseMLP", "Square", "Teacher", "build_model", "layer_table",
]
