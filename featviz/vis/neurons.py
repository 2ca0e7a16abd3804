"""Neuron specs: which units of which layer to visualize.

Grammar (see docs/formats.md, "Neuron addressing")::

    LAYER:UNIT        one channel / unit           block2:5
    LAYER:UNIT@Y,X    one channel at one position  block2:5@3,4
    LAYER:*           every unit of the layer      block2:*
    LAYER:A-B         units A..B (inclusive)       block2:0-7
    logits:CLASS      a class score                logits:3

LAYER is a featviz layer name (``block1``...) or any path from ``named_modules()``.
A spec resolves against a model into a :class:`NeuronSet`: one layer, its units, an
optional position, and the objective that renders them as one batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..errors import SpecError
from ..modes import frozen_eval
from ..text import slug
from .hooks import LOGITS, ActivationCapture, Preprocess
from .objectives import Objective, channel, logit, neuron, unit_activations

_SPEC = re.compile(r"^(?P<layer>[^:@\s]+):(?P<units>\*|\d+(?:-\d+)?)(?:@(?P<y>\d+),(?P<x>\d+))?$")
_SYNTAX = "use LAYER:UNIT, LAYER:UNIT@Y,X, LAYER:*, LAYER:A-B or logits:CLASS"


@dataclass(frozen=True)
class ParsedSpec:
    """The syntax of a spec, before it is checked against a model."""

    text: str
    layer: str
    units: tuple[int, int] | None  # inclusive range; None means "*"
    position: tuple[int, int] | None


@dataclass(frozen=True)
class Neuron:
    """One unit: ``layer``, ``unit`` index, optional (y, x) ``position``."""

    layer: str
    unit: int
    position: tuple[int, int] | None = None

    @property
    def label(self) -> str:
        """The spec of this single unit, e.g. ``"block2:5"`` or ``"block2:5@3,4"``."""
        pos = "" if self.position is None else f"@{self.position[0]},{self.position[1]}"
        return f"{self.layer}:{self.unit}{pos}"

    @property
    def slug(self) -> str:
        """A file-name-safe form of :attr:`label`, e.g. ``"block2-05"``."""
        layer = slug(self.layer, fallback="layer")
        pos = "" if self.position is None else f"-at{self.position[0]}-{self.position[1]}"
        return f"{layer}-{self.unit:02d}{pos}"


@dataclass(frozen=True)
class NeuronSet:
    """Units of one layer that render together as one batch (image i <-> ``units[i]``)."""

    spec: str
    layer: str
    units: tuple[int, ...]
    position: tuple[int, int] | None
    layer_shape: tuple[int, ...]  # the layer output without the batch dimension

    @property
    def neurons(self) -> list[Neuron]:
        return [Neuron(self.layer, u, self.position) for u in self.units]

    def objective(self) -> Objective:
        """The batched objective: image i maximizes unit ``units[i]`` (a channel mean,
        the value at ``position``, or a logit)."""
        if self.layer == LOGITS:
            return logit(self.units)
        if self.position is not None:
            return neuron(self.layer, self.units, *self.position)
        return channel(self.layer, self.units)

    def values(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        """Every unit of the set on every image: (B, len(units)), the same numbers
        :meth:`objective` scores (used to rank dataset examples)."""
        return unit_activations(acts[self.layer].flatten(1) if self.layer == LOGITS else acts[self.layer],
                                self.position)[:, list(self.units)]


def parse_neuron_spec(text: str) -> ParsedSpec:
    """Check the syntax of a spec; raise :class:`SpecError` naming the grammar."""
    match = _SPEC.match(text.strip())
    if not match:
        raise SpecError(f"cannot parse neuron spec {text!r}", _SYNTAX)
    units_text = match["units"]
    if units_text == "*":
        units = None
    else:
        lo, _, hi = units_text.partition("-")
        units = (int(lo), int(hi or lo))
        if units[1] < units[0]:
            raise SpecError(f"neuron spec {text!r}: empty range {units_text}", "write A-B with A <= B")
    position = (int(match["y"]), int(match["x"])) if match["y"] is not None else None
    if match["layer"] == LOGITS and position is not None:
        raise SpecError(f"neuron spec {text!r}: logits have no spatial position", "use logits:CLASS")
    return ParsedSpec(text.strip(), match["layer"], units, position)


def layer_shapes(model: nn.Module, input_shape: Sequence[int], preprocess: Preprocess | None = None,
                 device: torch.device | str | None = None) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of every module that outputs a tensor, plus
    ``"logits"``, found by one forward pass of a zero image of ``input_shape`` (C, H, W)."""
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    shapes: dict[str, tuple[int, ...]] = {}
    names = [n for n, _ in model.named_modules() if n]
    capture = ActivationCapture(model, names + [LOGITS], preprocess, stop_early=False)
    # eval: BatchNorm in train mode would refuse a batch of one
    with frozen_eval(model), torch.no_grad(), capture as cap:
        try:
            acts = cap.run(torch.zeros((1, *input_shape), device=device), strict=False)
        except SpecError:
            raise
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise SpecError(f"the model does not accept input of shape {tuple(input_shape)} "
                            f"({exc.__class__.__name__}: {first})", "give the right --input-shape C,H,W") from None
    for name in names:
        if acts.get(name) is not None:
            shapes[name] = tuple(acts[name].shape[1:])
    if acts.get(LOGITS) is not None:
        shapes[LOGITS] = tuple(acts[LOGITS].flatten(1).shape[1:])
    return shapes


def _describe(name: str, shape: tuple[int, ...]) -> str:
    units = shape[0] if shape else 1
    return f"{name} (units 0-{units - 1})"


def valid_layers_text(model: nn.Module, shapes: dict[str, tuple[int, ...]], limit: int = 12) -> str:
    """'valid layers: block1 (units 0-15), ...': featviz layers first, else module paths."""
    info = getattr(model, "layer_info", None)
    preferred = [li.name for li in info()] if callable(info) else []
    names = [n for n in preferred if n in shapes] or [n for n in shapes if n != LOGITS]
    if LOGITS in shapes:
        names.append(LOGITS)
    shown = ", ".join(_describe(n, shapes[n]) for n in names[:limit])
    more = f", ... ({len(names) - limit} more in named_modules())" if len(names) > limit else ""
    return f"valid layers: {shown}{more}"


def resolve_neurons(model: nn.Module, spec: str, input_shape: Sequence[int], preprocess: Preprocess | None = None,
                    shapes: dict[str, tuple[int, ...]] | None = None) -> NeuronSet:
    """Check ``spec`` against ``model`` and expand it into a :class:`NeuronSet`.

    Raises :class:`SpecError` with one line listing the valid layers and unit ranges
    for an unknown layer, a unit out of range, or a position outside the layer.
    ``shapes`` (from :func:`layer_shapes`) saves the probe forward pass when resolving
    many specs.
    """
    parsed = parse_neuron_spec(spec)
    shapes = shapes if shapes is not None else layer_shapes(model, input_shape, preprocess)
    if parsed.layer not in shapes:
        raise SpecError(f"--neuron {spec}: unknown layer {parsed.layer!r}", valid_layers_text(model, shapes))
    shape = shapes[parsed.layer]
    count = shape[0] if shape else 1
    lo, hi = parsed.units if parsed.units is not None else (0, count - 1)
    if hi >= count:
        raise SpecError(f"--neuron {spec}: unit {hi} is out of range for {parsed.layer} (units 0-{count - 1})",
                        valid_layers_text(model, shapes))
    if parsed.position is not None:
        if len(shape) != 3:
            raise SpecError(f"--neuron {spec}: {parsed.layer} has output shape {shape}, not (C, H, W), "
                            "so it has no positions", "drop the @Y,X part")
        y, x = parsed.position
        if y >= shape[1] or x >= shape[2]:
            raise SpecError(f"--neuron {spec}: position {y},{x} is outside {parsed.layer} "
                            f"(y 0-{shape[1] - 1}, x 0-{shape[2] - 1})")
    return NeuronSet(parsed.text, parsed.layer, tuple(range(lo, hi + 1)), parsed.position, shape)


__all__ = ["Neuron", "NeuronSet", "ParsedSpec", "layer_shapes", "parse_neuron_spec", "resolve_neurons",
           "valid_layers_text"]
