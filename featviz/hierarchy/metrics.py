"""Feature alignment between a learner's layers and the teacher's layers.

Three closed-form measures (float64), each per layer:

- ``r2_to_teacher``: held-out R² of the best linear map learner layer -> teacher layer
  (is the teacher's layer recoverable from the learner's?). It rewards width: a wide
  layer that holds the teacher layer *plus* anything else still scores 1.
- ``r2_from_teacher``: held-out R² of the best linear map teacher layer -> learner layer
  (how much of the learner layer is the teacher layer?). Higher-level signal that leaks
  into a learner layer lowers it; ``from_teacher_matrix`` scores every teacher layer
  against every learner layer to show where the rest comes from.
- ``cka``: linear centered kernel alignment, symmetric, invariant to rotations and
  isotropic scaling, in [0, 1].

Robustness: the teacher's layers are heavy-tailed (a squared Gaussian squared again),
so R² scored on a few thousand points swings by tenths; final alignments are scored on
a large probe set (20,000 points fit the maps, 20,000 others score them by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..modes import frozen_eval
from .alignment import layer1_alignment, supports_exact


def _centered(a: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
    a = a.reshape(len(a), -1).double()
    return a - (a.mean(0) if mean is None else mean)


def feature_r2(learned_fit: torch.Tensor, teacher_fit: torch.Tensor, learned_score: torch.Tensor | None = None,
               teacher_score: torch.Tensor | None = None, ridge: float = 1e-6) -> float:
    """R² of the best linear map (with bias) from learner features to teacher features
    (or from any source (N, m) to any target (N, k): swap the roles for the other direction).

    The map is fitted on (``learned_fit`` (N, m), ``teacher_fit`` (N, k)) and scored on
    the ``*_score`` pair when given (held-out R², so a wide layer gains nothing from
    fitting noise), else on the fit pair. R² = 1 - Σ residual² / Σ (t - mean t)², summed
    over the k teacher units (they are standardized, so this is their average R²).
    ``ridge`` (relative to the mean feature variance) only guards rank-deficient layers.
    """
    if learned_score is None or teacher_score is None:
        learned_score, teacher_score = learned_fit, teacher_fit
    mean_a, mean_t = learned_fit.double().mean(0), teacher_fit.double().mean(0)
    a, t = _centered(learned_fit, mean_a), _centered(teacher_fit, mean_t)
    gram = a.T @ a
    scale = float(torch.diagonal(gram).mean().clamp_min(1e-12))
    coef = torch.linalg.solve(gram + ridge * scale * torch.eye(len(gram), dtype=gram.dtype), a.T @ t)
    pred = _centered(learned_score, mean_a) @ coef
    target = teacher_score.double() - mean_t
    total = ((target - target.mean(0)) ** 2).sum()
    return float(1.0 - ((target - pred) ** 2).sum() / total.clamp_min(1e-12))


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> float:
    """Linear CKA between (N, m) and (N, k) features: ‖AᵀB‖²_F / (‖AᵀA‖_F ‖BᵀB‖_F) on
    centered columns. 1 = same representation up to rotation and scale; 0 = orthogonal.
    Inputs of more than two dimensions are flattened per example (row)."""
    if len(a) != len(b):
        raise ValueError("both feature matrices must cover the same examples")
    a, b = _centered(a), _centered(b)
    a, b = a / a.norm().clamp_min(1e-300), b / b.norm().clamp_min(1e-300)  # scale-free, no overflow
    cross = (a.T @ b).norm() ** 2
    denom = (a.T @ a).norm() * (b.T @ b).norm()
    return float(cross / denom.clamp_min(1e-300))


def mean_cca(learned: torch.Tensor, teacher: torch.Tensor, ridge: float = 1e-6) -> float:
    """Mean canonical correlation between learner features (N, m) and teacher features
    (N, k): the average of the min(m, k) canonical correlations (1.0 = the teacher's
    layer is a linear function of the learner's, in every direction)."""
    def whiten(x: torch.Tensor) -> torch.Tensor:
        x = _centered(x)
        cov = x.T @ x / len(x)
        cov = cov + ridge * float(torch.diagonal(cov).mean().clamp_min(1e-12)) * torch.eye(len(cov), dtype=cov.dtype)
        vals, vecs = torch.linalg.eigh(cov)
        return x @ vecs @ torch.diag(vals.clamp_min(1e-12).rsqrt()) @ vecs.T / len(x) ** 0.5

    corr = torch.linalg.svdvals(whiten(learned).T @ whiten(teacher))
    return float(corr[: min(learned.shape[1], teacher.shape[1])].clamp(0, 1).mean())


@dataclass
class FeatureProbe:
    """A fixed probe set and the teacher's layers on it, to score a learner's layers.

    The first half of ``x`` (N, d) fits the linear maps, the second half scores them.
    ``teacher_features``: list of (N, k) teacher layers.
    """

    x: torch.Tensor
    teacher_features: list[torch.Tensor]
    target: nn.Module | None = None

    @classmethod
    def from_target(cls, target: nn.Module, x: torch.Tensor) -> "FeatureProbe":
        return cls(x, [f.detach() for f in target.features(x)], target)

    @torch.no_grad()
    def learner_features(self, model: nn.Module) -> list[torch.Tensor]:
        """The learner's block outputs in eval mode; every module's mode is restored after."""
        with frozen_eval(model):
            return model.features(self.x.to(next(model.parameters()).device))

    def r2(self, model: nn.Module) -> list[float]:
        """Held-out feature R² of learner layer ℓ to teacher layer ℓ, for ℓ = 1..min depth."""
        half = len(self.x) // 2
        feats = self.learner_features(model)
        return [feature_r2(f[:half].cpu(), t[:half], f[half:].cpu(), t[half:])
                for f, t in zip(feats, self.teacher_features)]

    def alignment(self, model: nn.Module, cka: bool = True) -> dict[str, list[float]]:
        """``{r2_to_teacher, r2_from_teacher, cka}``: one value per layer (see the module
        docstring); ``cka=False`` leaves CKA out (cheaper, for per-epoch tracking). With CKA,
        and where they apply (a dense quadratic learner and a teacher of known layer-1 forms),
        the exact invariant layer-1 errors of :func:`featviz.hierarchy.alignment.layer1_alignment`
        too (``span_error``, ``subspace_error``, ``readout_error``: one value, layer 1)."""
        half = len(self.x) // 2
        feats = [f.cpu() for f in self.learner_features(model)]
        pairs = list(zip(feats, self.teacher_features))
        out = {
            "r2_to_teacher": [feature_r2(f[:half], t[:half], f[half:], t[half:]) for f, t in pairs],
            "r2_from_teacher": [feature_r2(t[:half], f[:half], t[half:], f[half:]) for f, t in pairs],
            **({"cka": [linear_cka(f, t) for f, t in pairs]} if cka else {}),
        }
        if cka and self.target is not None and supports_exact(model, self.target):
            out.update({k: [v] for k, v in layer1_alignment(model, self.target).items()})
        return out

    def from_teacher_matrix(self, model: nn.Module) -> list[list[float]]:
        """R²[ℓ][j] of the best linear map teacher layer j+1 -> learner layer ℓ+1 (held out):
        a learner layer 1 that also carries teacher layer 2 shows R²[0][1] > 0."""
        half = len(self.x) // 2
        feats = [f.cpu() for f in self.learner_features(model)]
        return [[feature_r2(t[:half], f[:half], t[half:], f[half:]) for t in self.teacher_features] for f in feats]

    def cca(self, model: nn.Module) -> list[float]:
        """Mean CCA correlation of learner layer ℓ with teacher layer ℓ, on the whole probe set."""
        return [mean_cca(f.cpu(), t) for f, t in zip(self.learner_features(model), self.teacher_features)]
