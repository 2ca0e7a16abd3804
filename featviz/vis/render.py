"""The render loop: gradient ascent on an image parameterization.

``render`` only optimizes and returns tensors; measuring (metrics), ranking dataset
examples (examples) and writing files (maximize) are separate steps.

    from featviz import vis
    result = vis.render(model, "block2:*", shape=(1, 16, 16), regs="standard")
    result.images   # (32, 1, 16, 16) in [0, 1], image i maximizes unit i
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..devices import generator
from ..errors import DivergenceError, SpecError
from ..modes import frozen_eval
from .hooks import ActivationCapture, Preprocess
from .neurons import NeuronSet, resolve_neurons
from .objectives import Objective
from .param import ImageParam, color_decorrelation, image_param
from .regularizers import Recipe, Regularizer, TransformLike, build_recipe
from .transforms import fit


@dataclass
class RenderResult:
    """What a render produced.

    Attributes:
        images: (N, C, H, W) float32 on the CPU, in [0, 1].
        scores: (N,) the objective of each final image, untransformed.
        objective: its description; recipe: the regularization used.
        steps, lr, seed: the optimization settings.
        history: mean objective over the batch after each step (on the
            transformed images the step saw).
        neurons: the resolved :class:`NeuronSet` when the objective was a spec string.
        seconds: wall time of the optimization.
        continued_scores: with ``continue_steps``, the objective of the image after
            that many further steps (``images``/``scores`` stay those at ``steps``);
            NaN where continuing diverged.
    """

    images: torch.Tensor
    scores: torch.Tensor
    objective: str
    recipe: Recipe
    steps: int
    lr: float
    seed: int
    history: list[float] = field(default_factory=list)
    neurons: NeuronSet | None = None
    seconds: float = 0.0
    continued_scores: torch.Tensor | None = None


def model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def input_shape_of(model: nn.Module, shape: Sequence[int] | None) -> tuple[int, int, int]:
    """``shape`` if given, else the model's ``input_shape`` attribute (featviz nets
    have one); (C, H, W)."""
    shape = shape if shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise SpecError("the input shape of this model is unknown", "pass shape=(C, H, W) (--input-shape C,H,W)")
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise SpecError(f"input shape {shape} must be three positive numbers C,H,W")
    return shape


def _diverged(step: int, lr: float, what: str) -> DivergenceError:
    return DivergenceError(f"rendering diverged at step {step}: the {what} became NaN/Inf",
                           f"lower --lr (now {lr:g}) or add a penalty such as --reg l2")


def render(model: nn.Module, objective: Objective | str, *, shape: Sequence[int] | None = None,
           batch: int | None = None, regs: Recipe | str | Sequence[str] = "none", param: str | None = None,
           steps: int = 256, lr: float = 0.05, seed: int = 0, device: torch.device | str | None = None,
           preprocess: Preprocess | None = None, decorrelation: torch.Tensor | None = None,
           init_std: float = 0.01, progress: bool = False, transforms: Sequence[TransformLike] = (),
           regularizers: Sequence[Regularizer] = (), continue_steps: int = 0) -> RenderResult:
    """Maximize ``objective`` by gradient ascent on a batch of images.

    Args:
        model: any ``nn.Module`` taking (N, C, H, W) images (in [0, 1], or whatever
            ``preprocess`` maps from [0, 1]); run in eval mode, restored after.
        objective: an :class:`Objective` or a neuron spec string (``"block2:*"``);
            a spec renders its units as one batch, image i for unit i.
        shape: (C, H, W); default ``model.input_shape``.
        batch: number of images (default: the spec's unit count, else 1).
        regs: a :class:`Recipe` or regularizer names (``"standard"``,
            ``"tv:0.1+jitter:1"``, ``["tv", "jitter"]``); see ``REGULARIZERS``.
        param: ``"pixel"`` / ``"fft"`` to override the recipe's parameterization.
        steps, lr: Adam steps and learning rate (defaults 256, 0.05).
        seed: seeds the initial image and every random transform.
        device: default the model's device.
        preprocess: applied to the images before the model (e.g. normalization).
        decorrelation: (C, C) colour matrix for recipes that decorrelate (see
            :func:`~featviz.vis.param.color_decorrelation`); identity if None.
        init_std: scale of the random initial parameters.
        progress: show a tqdm bar on stderr.
        transforms: more random transforms, names (``"jitter:2"``) or functions
            ``(images (N, C, H, W), generator) -> images``, run after those of ``regs``.
        regularizers: more penalties, names (``"tv:0.1"``) or objects ``images -> (N,)``
            such as a :class:`~featviz.vis.regularizers.Penalty` subclass.
        continue_steps: after ``steps``, keep optimizing (same optimizer state, same
            random stream) this many steps more and report only the objective reached,
            as ``continued_scores``: the convergence check. Costs that many steps.

    Returns a :class:`RenderResult`. Raises :class:`DivergenceError` if the objective
    or the image becomes NaN/Inf (never returns a NaN image).
    """
    if steps < 0:
        raise SpecError(f"steps must be >= 0, got {steps}")
    if not lr > 0:
        raise SpecError(f"lr must be > 0, got {lr}")
    shape = input_shape_of(model, shape)
    device = torch.device(device) if device is not None else model_device(model)
    neurons = None
    if isinstance(objective, str):
        neurons = resolve_neurons(model, objective, shape, preprocess)
        objective = neurons.objective()
        batch = batch or len(neurons.units)
        if batch != len(neurons.units):
            raise SpecError(f"{neurons.spec} has {len(neurons.units)} units but batch={batch}")
    batch = batch or 1
    recipe = build_recipe(regs, max(shape[1:]), param, transforms=transforms, regularizers=regularizers)
    gen = generator(seed)
    decor = None
    if recipe.decorrelate and shape[0] > 1:
        decor = decorrelation if decorrelation is not None else torch.eye(shape[0])
    image: ImageParam = image_param(recipe.param, shape, batch, generator=gen, init_std=init_std,
                                    decay=recipe.decay, decorrelation=decor).to(device)
    params = list(image.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    transform = recipe.transform()
    history: list[float] = []
    start = time.perf_counter()
    with frozen_eval(model), ActivationCapture(model, objective.modules, preprocess) as cap:
        def snapshot(at: int) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                now = image().detach()
                if not torch.isfinite(now).all():
                    raise _diverged(at, lr, "image")
                return now, objective(cap.run(now)).detach().float()

        final = final_scores = continued = None
        bar = tqdm(range(steps + continue_steps), desc=f"render {objective}"[:60], file=sys.stderr,
                   disable=not progress, leave=False)
        for step in bar:
            if step == steps:
                final, final_scores = snapshot(step)
            images = image()
            seen = fit(transform(images, gen), shape[1:]) if transform is not None else images
            scores = objective(cap.run(seen))
            if scores.shape != (batch,):
                raise SpecError(f"objective {objective} gave shape {tuple(scores.shape)}, expected ({batch},)",
                                "an objective returns one score per image")
            # Penalties are charged in units of each image's own activation: a unit's
            # scale is arbitrary (z² compounds over layers), so an absolute weight would
            # be negligible for one unit and overwhelming for the next.
            loss = (scores.detach().abs() * recipe.penalty(images) - scores).sum()
            if not torch.isfinite(loss):
                if step >= steps:  # the continuation diverged: the render did not converge
                    continued = torch.full((batch,), float("nan"))
                    break
                raise _diverged(step, lr, "objective")
            grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads):
                p.grad = g
            optimizer.step()
            if recipe.blur and (step + 1) % recipe.blur_every == 0:
                image.blur_(recipe.blur)
            history.append(float(scores.detach().mean()))
        if final is None:
            final, final_scores = snapshot(steps)
        elif continued is None:
            with torch.no_grad():
                continued = objective(cap.run(image().detach())).detach().float()
    if not torch.isfinite(final_scores).all():
        raise _diverged(steps, lr, "objective")
    return RenderResult(images=final.float().cpu(), scores=final_scores.cpu(), objective=str(objective),
                        recipe=recipe, steps=steps, lr=lr, seed=seed, history=history, neurons=neurons,
                        seconds=time.perf_counter() - start,
                        continued_scores=None if continued is None else continued.cpu())


def data_decorrelation(images: torch.Tensor | None, channels: int) -> torch.Tensor | None:
    """The colour decorrelation for ``channels``-channel renders from sample images
    (N, C, H, W), or None for grayscale / no data."""
    if images is None or channels < 2 or images.dim() != 4 or images.shape[1] != channels:
        return None
    return color_decorrelation(images[:4096])


__all__ = ["RenderResult", "data_decorrelation", "input_shape_of", "model_device", "render"]
