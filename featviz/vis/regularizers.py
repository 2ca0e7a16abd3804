"""Regularizers switchable by name: ``NAME[:WEIGHT]``, combined with ``+``.

A regularizer is one of three kinds, and a :class:`Recipe` collects them:

- a **penalty** subtracted from the objective, per image: ``l1``, ``l2``, ``tv``,
  each charged in units of the image's own activation (``|activation| × weight ×
  penalty``), so one weight means the same for a weak and a strong unit;
- a **random transform** the image must survive: ``pad``, ``jitter``, ``scale``, ``rotate``;
- a choice of **parameterization** or an operation on it: ``fft``, ``decorrelate``, ``blur``.

``none`` is plain gradient ascent on pixels; ``standard`` is the Distill / lucid
recipe (pad + jitter + scale + rotate + jitter, FFT 1/f, decorrelated colour) with
pixel amounts scaled to the image size. What WEIGHT means for each name is in
:data:`REGULARIZERS`.

Beyond the names, a user passes objects: any penalty ``images (N, C, H, W) -> (N,)``
(a :class:`Penalty` subclass carries its own weight and label) and any transform
``(images, generator) -> images`` (see :mod:`~featviz.vis.transforms`)::

    class Saturation(Penalty):
        def penalty(self, images):
            return images.std(dim=1).flatten(1).mean(1)

    render(model, "block2:*", regs="standard", regularizers=[Saturation(0.5)], transforms=[my_flip])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence, Union

import torch

from ..errors import SpecError
from . import transforms as T
from .metrics import total_variation

# name -> (kind, default weight, meaning of WEIGHT). A default of None for pixel
# amounts means "scaled to the image size" (see transforms.standard_sizes).
REGULARIZERS: dict[str, tuple[str, float | None, str]] = {
    "none": ("preset", None, "no regularization: plain gradient ascent"),
    "l1": ("penalty", 0.5, "weight on the mean |image - 0.5| (sparsity around grey), times |activation|"),
    "l2": ("penalty", 1.0, "weight on the mean (image - 0.5)^2 (keeps pixels from saturating), times |activation|"),
    "tv": ("penalty", 1.0, "weight on the total variation (mean |neighbour difference|), times |activation|"),
    "blur": ("param", 0.35, "sigma in pixels of a Gaussian blur of the image every 4 steps"),
    "jitter": ("transform", None, "largest random shift in pixels (default ~size/16, at least 1)"),
    "scale": ("transform", 0.1, "largest random zoom: factors in [1 - W, 1 + W]"),
    "rotate": ("transform", 10.0, "largest random rotation in degrees"),
    "pad": ("transform", None, "pixels of grey border added before the random transforms"),
    "fft": ("param", 1.0, "spectral parameterization; W is the decay power of its 1/f^W weights"),
    "decorrelate": ("param", 1.0, "decorrelated colour (from the data's channel covariance); W ignored"),
    "standard": ("preset", None, "pad + jitter + scale + rotate + jitter + fft + decorrelate, sized to the image"),
}

# The order transforms run in, whatever order they were named in: padding first
# (so shifts reveal grey, not repeated edges), the late jitter last.
_TRANSFORM_ORDER = ("pad", "jitter", "scale", "rotate", "jitter_late")
_BUILDERS: dict[str, Callable[[float], T.Transform]] = {
    "pad": lambda w: T.pad(int(round(w))), "jitter": lambda w: T.jitter(int(round(w))),
    "scale": T.scale, "rotate": T.rotate, "jitter_late": lambda w: T.jitter(int(round(w))),
}


PenaltyFn = Callable[[torch.Tensor], torch.Tensor]


def penalty_l1(images: torch.Tensor) -> torch.Tensor:
    return (images - 0.5).abs().flatten(1).mean(dim=1)


def penalty_l2(images: torch.Tensor) -> torch.Tensor:
    return (images - 0.5).pow(2).flatten(1).mean(dim=1)


PENALTIES: dict[str, PenaltyFn] = {
    "l1": penalty_l1, "l2": penalty_l2, "tv": total_variation,
}


class Penalty:
    """A regularizer a user can write: subclass, define :meth:`penalty` (images
    (N, C, H, W) -> (N,), one value per image), construct with a ``weight``.

    Like the named penalties it is charged in units of each image's own activation
    (``|activation| × weight × penalty``). ``name`` (default: the class name in lower
    case) labels it in metrics.json and file names.
    """

    name: str = ""

    def __init__(self, weight: float = 1.0):
        if not (weight >= 0 and math.isfinite(weight)):
            raise SpecError(f"{type(self).__name__}: weight must be a finite number >= 0, got {weight}")
        self.weight = float(weight)

    def penalty(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define penalty(images) -> (N,)")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return self.weight * self.penalty(images)

    @property
    def label(self) -> str:
        return f"{self.name or type(self).__name__.lower()}:{self.weight:g}"


Regularizer = Union[str, PenaltyFn]  # a name (``"tv:0.1"``) or a penalty object/function
TransformLike = Union[str, T.Transform]  # a name (``"jitter:2"``) or a transform function


def label_of(obj: Any) -> str:
    """How a user-supplied penalty or transform is named in labels: its ``label``, else
    its function or class name."""
    label = getattr(obj, "label", None)
    return str(label) if label else getattr(obj, "__name__", type(obj).__name__)


@dataclass(frozen=True)
class Recipe:
    """Everything a render needs to know about regularization.

    Attributes:
        label: the setting as written (``"standard"``, ``"tv:0.1+jitter:1"``), the
            ``reg`` field of metrics.json.
        param: ``"pixel"`` or ``"fft"``; decay: its 1/f power.
        decorrelate: use a colour decorrelation matrix (from data; identity if none).
        transforms: ((name, amount), ...) in run order.
        penalties: ((name, weight), ...), each a per-image (N,) penalty.
        blur: Gaussian sigma (pixels) applied every ``blur_every`` steps; 0 = off.
        custom_transforms: user transforms, run after the named ones.
        custom_penalties: user penalties (N,), added to the named ones (already weighted).
    """

    label: str = "none"
    param: str = "pixel"
    decay: float = 1.0
    decorrelate: bool = False
    transforms: tuple[tuple[str, float], ...] = ()
    penalties: tuple[tuple[str, float], ...] = ()
    blur: float = 0.0
    blur_every: int = 4
    custom_transforms: tuple[T.Transform, ...] = ()
    custom_penalties: tuple[PenaltyFn, ...] = ()

    def transform(self) -> T.Transform | None:
        """The composed random transform, or None when there is none."""
        steps = [_BUILDERS[name](amount) for name, amount in self.transforms] + list(self.custom_transforms)
        return T.compose(steps) if steps else None

    def penalty(self, images: torch.Tensor) -> torch.Tensor:
        """Weighted sum of the penalties on (N, C, H, W) images: (N,)."""
        total = images.new_zeros(images.shape[0])
        for name, weight in self.penalties:
            total = total + weight * PENALTIES[name](images)
        for fn in self.custom_penalties:
            value = fn(images)
            if value.shape != total.shape:
                raise SpecError(f"penalty {label_of(fn)} gave shape {tuple(value.shape)}, "
                                f"expected {tuple(total.shape)}", "a penalty returns one value per image")
            total = total + value
        return total

    def with_custom(self, transforms: Sequence[T.Transform] = (), penalties: Sequence[PenaltyFn] = ()) -> "Recipe":
        """This recipe plus user transforms and penalties; the label names them after ``+``."""
        extra = [label_of(t) for t in transforms] + [label_of(p) for p in penalties]
        label = "+".join(([] if self.label == "none" and extra else [self.label]) + extra)
        return replace(self, label=label, custom_transforms=self.custom_transforms + tuple(transforms),
                       custom_penalties=self.custom_penalties + tuple(penalties))

    def to_dict(self) -> dict[str, Any]:
        penalties: dict[str, float | None] = dict(self.penalties)
        penalties.update({label_of(p): getattr(p, "weight", None) for p in self.custom_penalties})
        custom = [[label_of(t), None] for t in self.custom_transforms]
        return {"reg": self.label, "param": self.param, "decay": self.decay if self.param == "fft" else None,
                "decorrelate": self.decorrelate, "transforms": [list(t) for t in self.transforms] + custom,
                "penalties": penalties, "blur": self.blur or None,
                "blur_every": self.blur_every if self.blur else None}


@dataclass
class _Builder:
    param: str | None = None
    decay: float = 1.0
    decorrelate: bool = False
    transforms: dict[str, float] = field(default_factory=dict)
    penalties: dict[str, float] = field(default_factory=dict)
    blur: float = 0.0


def _split(setting: str | Sequence[str]) -> list[str]:
    items = [setting] if isinstance(setting, str) else list(setting)
    parts = [p.strip() for item in items for p in str(item).split("+")]
    if not parts or any(not p for p in parts):
        raise SpecError(f"empty regularizer in {'+'.join(items)!r}", f"use NAME[:WEIGHT] with NAME in "
                        f"{', '.join(REGULARIZERS)}")
    return parts


def _parse_one(text: str) -> tuple[str, float | None]:
    name, sep, weight_text = text.partition(":")
    name = name.strip().lower()
    if name not in REGULARIZERS:
        raise SpecError(f"unknown regularizer {name!r} in --reg {text}", f"use one of {', '.join(REGULARIZERS)}")
    if not sep:
        return name, None
    try:
        weight = float(weight_text)
    except ValueError:
        raise SpecError(f"--reg {text}: weight {weight_text!r} is not a number", "write NAME:WEIGHT, e.g. tv:0.05")
    if not weight >= 0 or weight == float("inf"):
        raise SpecError(f"--reg {text}: weight must be a finite number >= 0")
    return name, weight


def parse_regs(setting: str | Sequence[str], image_size: int, param: str | None = None) -> Recipe:
    """Turn ``"standard"``, ``"tv:0.1+jitter:1"`` or ``["tv:0.1", "jitter"]`` into a
    :class:`Recipe` for images of side ``image_size``.

    ``param`` (``"pixel"`` / ``"fft"``) overrides the parameterization a preset
    implies; naming ``fft`` together with ``param="pixel"`` is a contradiction and
    raises :class:`SpecError`.
    """
    parts = _split(setting)
    sizes = T.standard_sizes(image_size)
    b = _Builder()
    for text in parts:
        name, weight = _parse_one(text)
        kind, default, _ = REGULARIZERS[name]
        if name == "none":
            if len(parts) > 1:
                raise SpecError(f"--reg none cannot be combined with other regularizers ({'+'.join(parts)})")
        elif name == "standard":
            b.param = b.param or "fft"
            b.decorrelate = True
            for key in _TRANSFORM_ORDER:
                b.transforms.setdefault(key, sizes[key])
        elif kind == "penalty":
            b.penalties[name] = default if weight is None else weight
        elif kind == "transform":
            b.transforms[name] = sizes[name] if weight is None and default is None else (
                default if weight is None else weight)
        elif name == "fft":
            b.param = "fft"
            b.decay = default if weight is None else weight
        elif name == "decorrelate":
            b.decorrelate = True
        elif name == "blur":
            b.blur = default if weight is None else weight
    if param is not None:
        if param not in ("pixel", "fft"):
            raise SpecError(f"--param {param}: unknown parameterization", "use pixel or fft")
        if param == "pixel" and any(_parse_one(p)[0] == "fft" for p in parts):
            raise SpecError(f"--param pixel contradicts --reg {'+'.join(parts)}", "drop fft or use --param fft")
        b.param = param
    transforms = tuple((k, float(b.transforms[k])) for k in _TRANSFORM_ORDER
                       if k in b.transforms and b.transforms[k] > 0)
    return Recipe(label="+".join(parts), param=b.param or "pixel", decay=float(b.decay),
                  decorrelate=b.decorrelate, transforms=transforms,
                  penalties=tuple((k, float(w)) for k, w in b.penalties.items() if w > 0), blur=float(b.blur))


def build_recipe(regs: Recipe | str | Sequence[str], image_size: int, param: str | None = None, *,
                 transforms: Sequence[TransformLike] = (), regularizers: Sequence[Regularizer] = ()) -> Recipe:
    """The :class:`Recipe` for ``regs`` (names or a Recipe) plus ``transforms`` and
    ``regularizers``, each a name (joined to ``regs``) or an object (added as is)."""
    names = [t for t in transforms if isinstance(t, str)] + [r for r in regularizers if isinstance(r, str)]
    for text in (t for t in transforms if isinstance(t, str)):
        name = _parse_one(text)[0]
        if REGULARIZERS[name][0] != "transform":
            raise SpecError(f"{text!r} is not a transform", "transforms: pad, jitter, scale, rotate, or a function")
    for obj in [t for t in transforms if not isinstance(t, str)] + [r for r in regularizers if not isinstance(r, str)]:
        if not callable(obj):
            raise SpecError(f"{obj!r} is neither a regularizer name nor callable")
    if isinstance(regs, Recipe):
        if names:
            raise SpecError("names go in regs when regs is a Recipe", "pass transforms/regularizers as objects")
        recipe = regs
    else:
        parts = _split(regs)
        if names:  # "none" is the default setting, not a refusal of the names given beside it
            parts = [p for p in parts if p.lower() != "none"] + names
        recipe = parse_regs(parts, image_size, param)
    return recipe.with_custom([t for t in transforms if not isinstance(t, str)],
                              [r for r in regularizers if not isinstance(r, str)])


__all__ = ["PENALTIES", "REGULARIZERS", "Penalty", "Recipe", "Regularizer", "TransformLike", "build_recipe",
           "label_of", "parse_regs", "penalty_l1", "penalty_l2"]
