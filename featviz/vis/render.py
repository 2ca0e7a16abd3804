"""The render loop: gradient ascent on an image parameterization.

``render`` only optimizes and returns tensors; measuring (metrics), ranking dataset
examples (examples) and writing files (maximize) are separate steps.

    from featviz import vis
    result = vis.render(model, "block2:*", shape=(1, 16, 16), regs="standard")
    result.images   # (32, 1, 16, 16) in [0, 1], image i maximizes unit i
"""

from __future__ import annotations

import math
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
from .priors import PRIOR_RESTARTS, DataPrior, fit_prior
from .regularizers import Recipe, Regularizer, TransformLike, build_recipe
from .transforms import fit


# Default ascent steps of ``render``, ``maximize`` and the commands that render.
DEFAULT_STEPS = 2048


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
           steps: int = DEFAULT_STEPS, lr: float = 0.05, seed: int = 0, device: torch.device | str | None = None,
           preprocess: Preprocess | None = None, decorrelation: torch.Tensor | None = None,
           init_std: float = 0.01, progress: bool = False, transforms: Sequence[TransformLike] = (),
           regularizers: Sequence[Regularizer] = (), continue_steps: int = 0, data: torch.Tensor | None = None,
           prior: "DataPrior | None" = None, restarts: int | None = None,
           cache_dir: str | None = None) -> RenderResult:
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
        steps, lr: Adam steps and peak learning rate (defaults :data:`DEFAULT_STEPS`,
            0.05); the rate follows a cosine decay from ``lr`` to 0 over ``steps``.
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
            The continuation runs a second cosine cycle peaking at
            :data:`CONTINUE_LR_FRACTION` × ``lr`` (at the full rate it would leave the
            maximum for another one: a restart, not a convergence test). Without random
            transforms ``continued_scores`` is the highest objective the continuation
            reached, so "not converged" means "more steps found a higher activation";
            with them (a stochastic objective) it is the untransformed objective at the
            end of the cycle, where the rate has decayed to 0 and the image settled.
        data: dataset images (N, C, H, W) in [0, 1] at the model's input size, for the
            data priors (``regs="sphere"``, ``"pca"``, ``"generator"``); or pass
            ``prior``, a :class:`~featviz.vis.priors.DataPrior` fitted once by
            :func:`~featviz.vis.priors.fit_prior`.
        restarts: renders from different starts, the best kept per image (default 1;
            :data:`~featviz.vis.priors.PRIOR_RESTARTS` under a data prior, which
            starts each from real images).
        cache_dir: where the ``generator`` prior's trained VAE is cached (default
            :func:`~featviz.vis.generator.cache_root`).

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
    if recipe.prior is not None and prior is None:
        prior = fit_prior(recipe.prior, recipe.prior_amount, data, seed=seed, cache_dir=cache_dir)
    if recipe.prior is not None and prior.kind != recipe.prior:
        raise SpecError(f"prior {prior.kind!r} given for --reg {recipe.label}")
    restarts = restarts or (PRIOR_RESTARTS if recipe.prior else 1)
    gen = generator(seed)
    decor = None
    if recipe.decorrelate and shape[0] > 1:
        decor = decorrelation if decorrelation is not None else torch.eye(shape[0])
    transform = recipe.transform()
    history: list[float] = []
    start = time.perf_counter()
    best = None
    with frozen_eval(model), ActivationCapture(model, objective.modules, preprocess) as cap:
        for restart in range(restarts):
            def start_image(g: torch.Generator) -> ImageParam:
                if recipe.prior is not None:
                    return prior.image_param(batch, g, restart).to(device)
                return image_param(recipe.param, shape, batch, generator=g, init_std=init_std,
                                   decay=recipe.decay, decorrelation=decor).to(device)

            got = _ascend(start_image(gen), objective=objective, cap=cap, recipe=recipe, transform=transform,
                          shape=shape, batch=batch, steps=steps, continue_steps=continue_steps, lr=lr, gen=gen,
                          progress=progress and restart == 0)
            history = history or got[3]
            best = got if best is None else _keep_better(got, best)
    final, final_scores, continued, _ = best
    if not torch.isfinite(final_scores).all():
        raise _diverged(steps, lr, "objective")
    return RenderResult(images=final.float().cpu(), scores=final_scores.cpu(), objective=str(objective),
                        recipe=recipe, steps=steps, lr=lr, seed=seed, history=history, neurons=neurons,
                        seconds=time.perf_counter() - start,
                        continued_scores=None if continued is None else continued.cpu())


# Peak learning rate of the convergence check's continuation cycle, as a fraction of ``lr``.
CONTINUE_LR_FRACTION = 0.1
# Most steps the convergence check continues a render for (see :func:`check_steps`).
CHECK_STEPS = 256


def check_steps(steps: int) -> int:
    """Length of the convergence check's continuation after a ``steps``-step render:
    as many steps again, at most :data:`CHECK_STEPS`. A fixed length keeps the test
    equally strict at every budget; one that grew with the budget would ask a longer
    render a harder question (reach farther, find a higher nearby maximum) and could
    not be used to choose a budget."""
    return min(int(steps), CHECK_STEPS)


def learning_rate(step: int, steps: int, continue_steps: int, lr: float) -> float:
    """The rate of optimizer step ``step`` (0-based): a cosine decay from ``lr`` to 0 over
    ``steps``, then the convergence check's continuation, a second cosine cycle over
    ``continue_steps`` peaking at :data:`CONTINUE_LR_FRACTION` × ``lr`` (a local test of
    "do more steps still climb?", not a restart from a new maximum)."""
    peak, t, span = (lr, step, steps) if step < steps else (lr * CONTINUE_LR_FRACTION, step - steps, continue_steps)
    return peak * 0.5 * (1 + math.cos(math.pi * t / max(1, span)))


def _keep_better(new: tuple, old: tuple) -> tuple:
    """Per image, the restart (images, scores, continued scores, history) with the higher score."""
    better = new[1] > old[1]

    def pick(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
        return None if a is None or b is None else torch.where(better.view(-1, *([1] * (a.dim() - 1))), a, b)

    return pick(new[0], old[0]), pick(new[1], old[1]), pick(new[2], old[2]), old[3]


def _ascend(image: ImageParam, *, objective: Objective, cap: ActivationCapture, recipe: Recipe, transform, shape,
            batch: int, steps: int, continue_steps: int, lr: float, gen: torch.Generator,
            progress: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, list[float]]:
    """One optimization of ``image``: (images at ``steps``, their scores, the scores after
    ``continue_steps`` more or None, the per-step mean objective)."""
    params = [p for p in image.parameters() if p.requires_grad]
    # a parameterization may bring its own optimizer (the sphere's tangent steps); Adam otherwise
    optimizer = image.optimizer(lr) if hasattr(image, "optimizer") else torch.optim.Adam(params, lr=lr)
    project = getattr(image, "project_", None)
    history: list[float] = []

    def snapshot(at: int) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            now = image().detach()
            if not torch.isfinite(now).all():
                raise _diverged(at, lr, "image")
            return now, objective(cap.run(now)).detach().float()

    final = final_scores = continued = None
    climbed = None  # deterministic objectives: the highest objective the continuation reached
    bar = tqdm(range(steps + continue_steps), desc=f"render {objective}"[:60], file=sys.stderr,
               disable=not progress, leave=False)
    for step in bar:
        if step == steps:
            final, final_scores = snapshot(step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, continue_steps, lr)
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
        if step >= steps and transform is None:
            climbed = scores.detach().float() if climbed is None else torch.fmax(climbed, scores.detach().float())
        grads = torch.autograd.grad(loss, params)
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()
        if project is not None:
            project()
        if recipe.blur and (step + 1) % recipe.blur_every == 0:
            image.blur_(recipe.blur)
        history.append(float(scores.detach().mean()))
    if final is None:
        final, final_scores = snapshot(steps)
    elif continued is None:
        with torch.no_grad():
            continued = objective(cap.run(image().detach())).detach().float()
        if climbed is not None:
            continued = torch.fmax(continued, climbed)
    return final, final_scores, continued, history


def data_decorrelation(images: torch.Tensor | None, channels: int) -> torch.Tensor | None:
    """The colour decorrelation for ``channels``-channel renders from sample images
    (N, C, H, W), or None for grayscale / no data."""
    if images is None or channels < 2 or images.dim() != 4 or images.shape[1] != channels:
        return None
    return color_decorrelation(images[:4096])


__all__ = ["CHECK_STEPS", "CONTINUE_LR_FRACTION", "DEFAULT_STEPS", "RenderResult", "data_decorrelation", "input_shape_of",
           "check_steps", "learning_rate", "model_device", "render"]
