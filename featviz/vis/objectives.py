"""Objectives: what a render maximizes, as per-image scores computed from layer outputs.

An :class:`Objective` maps the captured activations ``{module name: tensor}`` of a
batch of N images to N scores (one per image), names the modules it needs (so only
those get hooks) and carries a readable description. Objectives compose:
``channel("block2", 5) - 0.5 * diversity("block2")``.

Unit arguments accept one int (every image maximizes the same unit) or a sequence of
N ints (image i maximizes unit ``units[i]``): that is how a whole layer renders as one
batch, each image independent of the others.
"""

from __future__ import annotations

import numbers
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from .hooks import LOGITS

Acts = dict[str, torch.Tensor]
Units = int | Sequence[int] | torch.Tensor


class Objective:
    """A score per image: ``objective(acts) -> (N,)``. Higher is better.

    Args:
        fn: ``acts -> (N,)`` tensor.
        modules: module names (or ``"logits"``) that ``fn`` reads.
        description: e.g. ``"Channel [block2, 5]"``.
    """

    def __init__(self, fn: Callable[[Acts], torch.Tensor], modules: Iterable[str], description: str):
        self.fn = fn
        self.modules = tuple(dict.fromkeys(modules))
        self.description = description

    def __call__(self, acts: Acts) -> torch.Tensor:
        return self.fn(acts)

    def __repr__(self) -> str:
        return f"Objective({self.description})"

    def __str__(self) -> str:
        return self.description

    def __add__(self, other: "Objective | float") -> "Objective":
        if isinstance(other, numbers.Number):
            if other == 0:
                return self
            return Objective(lambda a: self(a) + other, self.modules, f"{self} + {other:g}")
        return Objective(lambda a: self(a) + other(a), self.modules + other.modules, f"{self} + {other}")

    __radd__ = __add__  # so that sum([...]) works

    def __neg__(self) -> "Objective":
        return -1.0 * self

    def __sub__(self, other: "Objective | float") -> "Objective":
        return self + (-other)

    def __rsub__(self, other: float) -> "Objective":
        return (-self) + other

    def __mul__(self, scalar: float) -> "Objective":
        if not isinstance(scalar, numbers.Number):
            raise TypeError("objectives multiply by numbers only")
        text = f"-{self}" if scalar == -1 else f"{scalar:g} × {self}"
        return Objective(lambda a: scalar * self(a), self.modules, text)

    __rmul__ = __mul__

    def __truediv__(self, scalar: float) -> "Objective":
        return self * (1.0 / scalar)


def _pick(values: torch.Tensor, units: Units) -> torch.Tensor:
    """Per-image unit of (N, U) ``values``: column ``units`` (int) or ``units[i]`` for row i."""
    if isinstance(units, numbers.Integral):
        return values[:, int(units)]
    index = torch.as_tensor(units, dtype=torch.long, device=values.device).reshape(-1)
    if len(index) != len(values):
        raise ValueError(f"{len(index)} units given for a batch of {len(values)} images; give one per image")
    return values.gather(1, index[:, None])[:, 0]


def _units_text(units: Units) -> str:
    if isinstance(units, numbers.Integral):
        return str(int(units))
    units = [int(u) for u in torch.as_tensor(units).reshape(-1).tolist()]
    contiguous = units == list(range(units[0], units[0] + len(units)))
    return f"{units[0]}-{units[-1]}" if contiguous and len(units) > 1 else ",".join(map(str, units))


def unit_activations(act: torch.Tensor, position: tuple[int, int] | None = None) -> torch.Tensor:
    """Reduce a layer output to one value per unit: (N, U).

    ``act`` is (N, U) for dense layers or (N, U, *spatial) for conv layers; a conv
    unit's value is its spatial mean, or its value at ``position`` = (y, x).
    """
    if act.dim() == 2:
        if position is not None:
            raise ValueError("a dense layer has no spatial positions")
        return act
    if position is None:
        return act.flatten(2).mean(dim=2)
    y, x = position
    return act[:, :, y, x]


def channel(layer: str, unit: Units) -> Objective:
    """Mean activation of channel ``unit`` of ``layer`` over all positions (a dense
    layer's unit value itself)."""
    return Objective(lambda a: _pick(unit_activations(a[layer]), unit), [layer],
                     f"Channel [{layer}, {_units_text(unit)}]")


def neuron(layer: str, unit: Units, y: int | None = None, x: int | None = None) -> Objective:
    """Activation of channel ``unit`` at one spatial position (default: the centre,
    ``(H // 2, W // 2)``). For a dense layer this is the unit itself."""

    def fn(acts: Acts) -> torch.Tensor:
        act = acts[layer]
        if act.dim() == 2:
            return _pick(act, unit)
        yy = act.shape[-2] // 2 if y is None else y
        xx = act.shape[-1] // 2 if x is None else x
        return _pick(unit_activations(act, (yy, xx)), unit)

    where = "centre" if y is None and x is None else f"{y},{x}"
    return Objective(fn, [layer], f"Neuron [{layer}, {_units_text(unit)} @ {where}]")


def logit(cls: Units) -> Objective:
    """The model output ``cls`` (pre-softmax class score)."""
    return Objective(lambda a: _pick(a[LOGITS].flatten(1), cls), [LOGITS], f"Logit [{_units_text(cls)}]")


def layer_energy(layer: str) -> Objective:
    """DeepDream: mean square of the whole layer output."""
    return Objective(lambda a: a[layer].flatten(1).pow(2).mean(dim=1), [layer], f"DeepDream [{layer}]")


def direction(layer: str, vector: Sequence[float] | torch.Tensor) -> Objective:
    """Cosine similarity between the layer's unit vector at each position and
    ``vector`` (U,), averaged over positions."""
    vec = torch.as_tensor(vector, dtype=torch.float32).reshape(-1)

    def fn(acts: Acts) -> torch.Tensor:
        act = acts[layer]
        flat = act.flatten(2) if act.dim() > 2 else act[:, :, None]  # (N, U, P)
        v = vec.to(act.device, act.dtype)[None, :, None]
        return F.cosine_similarity(flat, v, dim=1).mean(dim=1)

    return Objective(fn, [layer], f"Direction [{layer}]")


def diversity(layer: str) -> Objective:
    """Minus the mean cosine similarity of each image's Gram matrix (channel
    co-activation, position-free) to the other images' in the batch: rewards a batch
    of different images for the same objective. 0 for a batch of one."""

    def fn(acts: Acts) -> torch.Tensor:
        act = acts[layer]
        n = act.shape[0]
        if n < 2:
            return act.new_zeros(n)
        flat = act.flatten(2) if act.dim() > 2 else act[:, :, None]
        gram = torch.einsum("ncp,ndp->ncd", flat, flat).flatten(1)
        gram = F.normalize(gram, dim=1)
        sim = gram @ gram.T
        return -(sim.sum(dim=1) - sim.diagonal()) / (n - 1)

    return Objective(fn, [layer], f"Diversity [{layer}]")


__all__ = ["Objective", "channel", "direction", "diversity", "layer_energy", "logit", "neuron", "unit_activations"]
