"""Feature alignment between a learner's layers and the teacher's layers.

Both metrics are closed-form (least squares / SVD in float64), cheap enough to run
after every epoch on a fixed probe set.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..modes import frozen_eval


def _centered(a: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
    a = a.reshape(len(a), -1).double()
    return a - (a.mean(0) if mean is None else mean)


def feature_r2(learned_fit: torch.Tensor, teacher_fit: torch.Tensor, learned_score: torch.Tensor | None = None,
               teacher_score: torch.Tensor | None = None, ridge: float = 1e-6) -> float:
    """R² of the best linear map (with bias) from learner features to teacher features.

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

    @classmethod
    def from_target(cls, target: nn.Module, x: torch.Tensor) -> "FeatureProbe":
        return cls(x, [f.detach() for f in target.features(x)])

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

    def cca(self, model: nn.Module) -> list[float]:
        """Mean CCA correlation of learner layer ℓ with teacher layer ℓ, on the whole probe set."""
        return [mean_cca(f.cpu(), t) for f, t in zip(self.learner_features(model), self.teacher_features)]
