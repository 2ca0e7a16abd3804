"""The learners compared by the study, and how each is fitted.

- ``joint``: the deep quadratic DenseNet, all layers trained together.
- ``layerwise``: the same network trained one layer at a time (earlier layers frozen).
- ``layerwise+joint``: the layerwise network, then every layer trained together
  (backward feature correction); it continues the ``layerwise`` run of the same seed
  and learning rate, which is exactly the ``layerwise+joint`` stage plan of
  :func:`featviz.train.plan_stages`, run as two calls so both learners share stage 1..L.
- ``shallow``: one wide quadratic layer with the deep network's parameter count.
- ``kernel``: polynomial-kernel ridge regression (Nyström features when n is large).

Every neural learner goes through the one training loop, :func:`featviz.train.train_model`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..devices import seeded
from ..errors import DivergenceError
from ..nets import QuadraticDenseMLP
from ..train import Stage, TrainConfig, train_model
from .metrics import FeatureProbe

LEARNERS = ("joint", "layerwise", "layerwise+joint", "shallow", "kernel")
NEURAL = ("joint", "layerwise", "shallow")  # fitted from scratch; layerwise+joint continues layerwise


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def deep_learner(d: int, width: int, depth: int, seed: int) -> QuadraticDenseMLP:
    """The deep learner: ``depth`` quadratic layers of ``width`` units, the teacher's
    ``skip2`` connections, Gaussian init drawn from ``seed``."""
    with seeded(seed):
        return QuadraticDenseMLP(d, [width] * depth, connect="skip2")


def shallow_width(d: int, width: int, depth: int) -> int:
    """Width of a one-layer learner with (about) the deep learner's parameter count:
    one layer has (d + 1)·W weights plus a readout of W + 1."""
    deep = parameter_count(QuadraticDenseMLP(d, [width] * depth, connect="skip2"))
    return max(1, round((deep - 1) / (d + 2)))


def shallow_learner(d: int, width: int, seed: int) -> QuadraticDenseMLP:
    with seeded(seed):
        return QuadraticDenseMLP(d, [width], connect="chain")


@dataclass
class Curve:
    """Per-epoch record of one training run: ``stage`` name, test and validation
    relative MSE, and the held-out feature R² of every layer (list per epoch)."""

    stage: list[str] = field(default_factory=list)
    test_rel_mse: list[float] = field(default_factory=list)
    val_rel_mse: list[float] = field(default_factory=list)
    feature_r2: list[list[float]] = field(default_factory=list)

    def extend(self, other: "Curve") -> "Curve":
        return Curve(self.stage + other.stage, self.test_rel_mse + other.test_rel_mse,
                     self.val_rel_mse + other.val_rel_mse, self.feature_r2 + other.feature_r2)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "test_rel_mse": self.test_rel_mse, "val_rel_mse": self.val_rel_mse,
                "feature_r2": self.feature_r2}


@dataclass
class Fit:
    """Outcome of fitting one learner: final test/val relative MSE, per-layer feature R²
    and CCA (empty for the kernel), the curve over training, and the fitted model."""

    rel_test_mse: float
    rel_val_mse: float
    feature_r2: list[float]
    cca: list[float]
    curve: Curve
    model: Any = None
    info: dict[str, Any] = field(default_factory=dict)


def train_neural(model: nn.Module, data: Dataset, probe: FeatureProbe, mode: str, *, epochs: int, lr: float,
                 batch_size: int, seed: int, device: torch.device | str = "cpu", progress: bool = False,
                 track: bool = True) -> Fit:
    """Train ``model`` in place with ``mode`` (joint | layerwise) for ``epochs`` per
    stage, Adam at ``lr`` with a cosine schedule, and record the curve. With ``track``
    the feature R² of every layer is measured after every epoch, else only at the end."""
    curve = Curve()

    def on_epoch(net: nn.Module, stage: Stage, record: dict) -> None:
        curve.stage.append(stage.name)
        curve.test_rel_mse.append(record["test_rel_mse"])
        curve.val_rel_mse.append(record.get("val_rel_mse", record["test_rel_mse"]))
        if track:
            curve.feature_r2.append([round(r, 5) for r in probe.r2(net)])

    config = TrainConfig(mode=mode, epochs=epochs, lr=lr, optimizer="adam", schedule="cosine",
                         batch_size=batch_size, seed=seed)
    # train_model moves the dataset it gets to the device: give it a shallow copy so the
    # caller's tensors stay where they are (the kernel and the probes read them on the CPU).
    train_model(model, replace(data), config, device=device, on_epoch=on_epoch, progress=progress)
    model.cpu()
    return Fit(curve.test_rel_mse[-1], curve.val_rel_mse[-1], probe.r2(model), probe.cca(model), curve, model)


# --- kernel ridge regression ---------------------------------------------------------------------


def fit_kernel(data: Dataset, *, degrees: tuple[int, ...], ridges: tuple[float, ...], landmarks: int,
               seed: int) -> Fit:
    """Polynomial-kernel ridge regression, k(x, x') = (x·x'/d + 1)^p.

    With n ≤ ``landmarks`` this is exact kernel ridge regression; above, scikit-learn's
    Nyström map on ``landmarks`` training points (seeded by ``seed``) approximates it.
    Degree p ∈ ``degrees`` and ridge λ ∈ ``ridges`` (relative to the mean eigenvalue of
    the feature Gram matrix) are chosen on the validation set, like the networks'
    learning rates. Returns a :class:`Fit` without features (a kernel has no layers).
    """
    from sklearn.kernel_approximation import Nystroem

    x_tr, y_tr = data.x_train.double().numpy(), data.y_train.double().numpy()
    x_va, y_va = data.x_val.double().numpy(), data.y_val.double().numpy()
    x_te, y_te = data.x_test.double().numpy(), data.y_test.double().numpy()
    d = x_tr.shape[1]
    best: tuple[float, dict, float] | None = None
    for degree in degrees:
        nys = Nystroem(kernel="poly", degree=degree, gamma=1.0 / d, coef0=1.0,
                       n_components=min(landmarks, len(x_tr)), random_state=seed).fit(x_tr)
        phi_tr = nys.transform(x_tr)
        mean_phi, mean_y = phi_tr.mean(0), y_tr.mean()
        phi_tr = phi_tr - mean_phi
        gram, rhs = phi_tr.T @ phi_tr, phi_tr.T @ (y_tr - mean_y)
        scale = np.trace(gram) / len(gram)
        phi_va, phi_te = nys.transform(x_va) - mean_phi, nys.transform(x_te) - mean_phi
        for ridge in ridges:
            w = np.linalg.solve(gram + ridge * scale * np.eye(len(gram)), rhs)
            val = float(np.mean((phi_va @ w + mean_y - y_va) ** 2) / max(y_va.var(ddof=1), 1e-12))
            if not np.isfinite(val):
                continue
            if best is None or val < best[0]:
                test = float(np.mean((phi_te @ w + mean_y - y_te) ** 2) / max(y_te.var(ddof=1), 1e-12))
                best = (val, {"degree": degree, "ridge": ridge, "landmarks": phi_tr.shape[1]}, test)
    if best is None:
        raise DivergenceError("kernel ridge regression gave no finite validation error",
                              "use larger kernel ridges or lower degrees")
    val, info, test = best
    return Fit(test, val, [], [], Curve(), info=info)
