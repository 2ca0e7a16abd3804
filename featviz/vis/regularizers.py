"""Regularizers switchable by name: ``NAME[:WEIGHT]``, combined with ``+``.

A regularizer is one of four kinds, and a :class:`Recipe` collects them:

- a **penalty** subtracted from the objective, per image: ``l1``, ``l2``, ``tv``,
  each charged in units of the image's own activation (``|activation| × weight ×
  penalty``), so one weight means the same for a weak and a strong unit;
- a **random transform** the image must survive: ``pad``, ``jitter``, ``scale``, ``rotate``;
- a choice of **parameterization** or an operation on it: ``fft``, ``decorrelate``, ``blur``;
- a **data prior** that decides where the ascent may go (see :mod:`~featviz.vis.priors`):
  ``sphere`` (a sphere around the data mean), ``pca`` (a Mahalanobis ball in the data's
  principal components), ``generator`` (the latent ball of a small VAE trained on the data).

``none`` is plain gradient ascent on pixels; ``standard`` is the Distill / lucid
recipe (pad + jitter + scale + rotate + jitter, FFT 1/f, decorrelated colour) with
pixel amounts scaled to the image size. Every name is one :class:`RegSpec` line in
:data:`SPECS` (kind, default WEIGHT, what WEIGHT means); ``parse_regs``, the command
line's help and the docs table are read from it, so a new named regularizer is one
class (or function) plus one line.

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

# The order transforms run in, whatever order they were named in: padding first
# (so shifts reveal grey, not repeated edges), the late jitter last.
_TRANSFORM_ORDER = ("pad", "jitter", "scale", "rotate", "jitter_late")

PenaltyFn = Callable[[torch.Tensor], torch.Tensor]


def penalty_l1(images: torch.Tensor) -> torch.Tensor:
    return (images - 0.5).abs().flatten(1).mean(dim=1)


def penalty_l2(images: torch.Tensor) -> torch.Tensor:
    return (images - 0.5).pow(2).flatten(1).mean(dim=1)


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


@dataclass
class _Builder:
    """What :func:`parse_regs` collects before it freezes a :class:`Recipe`."""

    param: str | None = None
    decay: float = 1.0
    decorrelate: bool = False
    transforms: dict[str, float] = field(default_factory=dict)
    penalties: dict[str, float] = field(default_factory=dict)
    blur: float = 0.0
    prior: tuple[str, float] | None = None


KINDS = ("penalty", "transform", "param", "prior", "preset")


@dataclass(frozen=True)
class RegSpec:
    """One named regularizer: everything ``--reg NAME[:WEIGHT]``, ``--help`` and the
    docs table know about it.

    ``kind``: ``penalty`` (``impl`` is a :class:`Penalty` subclass), ``transform``
    (``impl(amount) -> Transform``), ``param`` / ``prior`` / ``preset`` (``impl(builder,
    weight)`` sets up the parameterization; ``weight`` is None when not written).
    ``default``: the weight when none is written (None: sized to the image or unused).
    """

    name: str
    kind: str
    default: float | None
    help: str
    impl: Any = None

    def apply(self, b: _Builder, weight: float | None, sizes: dict[str, float]) -> None:
        if self.kind == "penalty":
            b.penalties[self.name] = self.default if weight is None else weight
        elif self.kind == "transform":
            b.transforms[self.name] = sizes[self.name] if weight is None and self.default is None else (
                self.default if weight is None else weight)
        else:
            self.impl(b, self.default if weight is None else weight, sizes)


class L1(Penalty):
    name = "l1"

    def penalty(self, images: torch.Tensor) -> torch.Tensor:
        return penalty_l1(images)


class L2(Penalty):
    name = "l2"

    def penalty(self, images: torch.Tensor) -> torch.Tensor:
        return penalty_l2(images)


class TV(Penalty):
    name = "tv"

    def penalty(self, images: torch.Tensor) -> torch.Tensor:
        return total_variation(images)


def _standard(b: _Builder, weight: float | None, sizes: dict[str, float]) -> None:
    b.param = b.param or "fft"
    b.decorrelate = True
    for key in _TRANSFORM_ORDER:
        b.transforms.setdefault(key, sizes[key])


def _fft(b: _Builder, weight: float | None, sizes: dict[str, float]) -> None:
    b.param = "fft"
    b.decay = weight


def _decorrelate(b: _Builder, weight: float | None, sizes: dict[str, float]) -> None:
    b.decorrelate = True


def _blur(b: _Builder, weight: float | None, sizes: dict[str, float]) -> None:
    b.blur = weight


def _prior(name: str) -> Callable[[_Builder, float | None, dict[str, float]], None]:
    def apply(b: _Builder, weight: float | None, sizes: dict[str, float]) -> None:
        if b.prior is not None and b.prior[0] != name:
            raise SpecError(f"--reg {name} cannot be combined with {b.prior[0]}: both choose what the ascent moves",
                            "use one of sphere, pca, generator")
        b.prior = (name, float(weight))

    return apply


def _none(b: _Builder, weight: float | None, sizes: dict[str, float]) -> None:
    pass


SPECS: tuple[RegSpec, ...] = (
    RegSpec("none", "preset", None, "no regularization: plain gradient ascent", _none),
    RegSpec("l1", "penalty", 0.5, "weight on the mean |image - 0.5| (sparsity around grey), times |activation|", L1),
    RegSpec("l2", "penalty", 1.0, "weight on the mean (image - 0.5)^2 (keeps pixels from saturating), "
            "times |activation|", L2),
    RegSpec("tv", "penalty", 1.0, "weight on the total variation (mean |neighbour difference|), times |activation|",
            TV),
    RegSpec("blur", "param", 0.35, "sigma in pixels of a Gaussian blur of the image every 4 steps", _blur),
    RegSpec("jitter", "transform", None, "largest random shift in pixels (default ~size/16, at least 1)",
            lambda w: T.jitter(int(round(w)))),
    RegSpec("scale", "transform", 0.1, "largest random zoom: factors in [1 - W, 1 + W]", T.scale),
    RegSpec("rotate", "transform", 10.0, "largest random rotation in degrees", T.rotate),
    RegSpec("pad", "transform", None, "pixels of grey border added before the random transforms",
            lambda w: T.pad(int(round(w)))),
    RegSpec("fft", "param", 1.0, "spectral parameterization; W is the decay power of its 1/f^W weights", _fft),
    RegSpec("decorrelate", "param", 1.0, "decorrelated colour (from the data's channel covariance); W ignored",
            _decorrelate),
    RegSpec("standard", "preset", None, "pad + jitter + scale + rotate + jitter + fft + decorrelate, sized to the "
            "image", _standard),
    RegSpec("sphere", "prior", 1.0, "ascent on the sphere |x - data mean| = W x the data's median distance to its "
            "mean, projected every step (needs data)", _prior("sphere")),
    RegSpec("pca", "prior", 20.0, "ascent on the coefficients of the data's top W principal components inside the "
            "Mahalanobis ball holding 99 % of the data, best of 4 restarts from real images (needs data)",
            _prior("pca")),
    RegSpec("generator", "prior", 16.0, "ascent in the latent space (W dimensions) of a small Gaussian VAE trained "
            "on the data, inside the chi-square 99 % ball; trained once and cached (needs data)",
            _prior("generator")),
)

REGULARIZERS: dict[str, RegSpec] = {s.name: s for s in SPECS}
PRIORS: tuple[str, ...] = tuple(s.name for s in SPECS if s.kind == "prior")
PENALTIES: dict[str, PenaltyFn] = {s.name: s.impl().penalty for s in SPECS if s.kind == "penalty"}
_BUILDERS: dict[str, Callable[[float], T.Transform]] = {s.name: s.impl for s in SPECS if s.kind == "transform"}
_BUILDERS["jitter_late"] = REGULARIZERS["jitter"].impl


def reg_help() -> str:
    """The names for ``--reg``'s help, from the registry."""
    return ", ".join(REGULARIZERS)


def docs_table() -> str:
    """The markdown table of every named regularizer (docs/regularizers.md holds it)."""
    rows = ["| name | kind | default WEIGHT | what WEIGHT means |", "|---|---|---|---|"]
    for s in SPECS:
        default = "sized to the image" if s.default is None and s.kind == "transform" else (
            "-" if s.default is None else f"{s.default:g}")
        text = s.help.replace("|", "\\|")  # a bar inside a cell would end it
        rows.append(f"| `{s.name}` | {s.kind} | {default} | {text} |")
    return "\n".join(rows) + "\n"


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
        prior_amount: for the data priors (``param`` ``sphere``, ``pca``, ``generator``):
            the WEIGHT written (radius factor, components, latent dimensions).
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
    prior_amount: float | None = None

    @property
    def prior(self) -> str | None:
        """The data prior this recipe renders in (``sphere``, ``pca``, ``generator``), or None."""
        return self.param if self.param in PRIORS else None

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
                "blur_every": self.blur_every if self.blur else None, "prior_amount": self.prior_amount}


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
        if name == "none" and len(parts) > 1:
            raise SpecError(f"--reg none cannot be combined with other regularizers ({'+'.join(parts)})")
        REGULARIZERS[name].apply(b, weight, sizes)
    if param is not None:
        if param not in ("pixel", "fft"):
            raise SpecError(f"--param {param}: unknown parameterization", "use pixel or fft")
        if param == "pixel" and any(_parse_one(p)[0] == "fft" for p in parts):
            raise SpecError(f"--param pixel contradicts --reg {'+'.join(parts)}", "drop fft or use --param fft")
        b.param = param
    if b.prior is not None:
        clash = [p for p in parts if REGULARIZERS[_parse_one(p)[0]].kind == "param"] + (["--param"] if param else [])
        if clash:
            raise SpecError(f"--reg {b.prior[0]} renders in its own parameterization; it cannot be combined with "
                            f"{', '.join(clash)}", "combine a prior only with penalties and transforms")
        b.param = b.prior[0]
    transforms = tuple((k, float(b.transforms[k])) for k in _TRANSFORM_ORDER
                       if k in b.transforms and b.transforms[k] > 0)
    return Recipe(label="+".join(parts), param=b.param or "pixel", decay=float(b.decay),
                  decorrelate=b.decorrelate, transforms=transforms,
                  penalties=tuple((k, float(w)) for k, w in b.penalties.items() if w > 0), blur=float(b.blur),
                  prior_amount=b.prior[1] if b.prior else None)


def build_recipe(regs: Recipe | str | Sequence[str], image_size: int, param: str | None = None, *,
                 transforms: Sequence[TransformLike] = (), regularizers: Sequence[Regularizer] = ()) -> Recipe:
    """The :class:`Recipe` for ``regs`` (names or a Recipe) plus ``transforms`` and
    ``regularizers``, each a name (joined to ``regs``) or an object (added as is)."""
    names = [t for t in transforms if isinstance(t, str)] + [r for r in regularizers if isinstance(r, str)]
    for text in (t for t in transforms if isinstance(t, str)):
        name = _parse_one(text)[0]
        if REGULARIZERS[name].kind != "transform":
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


__all__ = ["KINDS", "PENALTIES", "PRIORS", "REGULARIZERS", "SPECS", "Penalty", "RegSpec", "Recipe", "Regularizer",
           "TransformLike", "build_recipe", "docs_table", "label_of", "parse_regs", "penalty_l1", "penalty_l2",
           "reg_help"]
