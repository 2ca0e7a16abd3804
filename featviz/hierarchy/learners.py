"""The learners compared by the study, and how each is fitted.

- ``joint``: the deep quadratic DenseNet, all layers trained together.
- ``layerwise``: the same network trained one layer at a time (earlier layers frozen).
- ``layerwise+joint``: the layerwise stages, then every layer trained together
  (backward feature correction); the joint stage continues at a lower, warmed-up rate.
- ``shallow``: one wide quadratic layer with the deep network's parameter count.
- ``kernel``: polynomial-kernel ridge regression (Nyström features when n is large),
  or, where the monomials fit in memory, the exact kernel through its explicit feature map.

Every neural learner goes through the one training loop, :func:`featviz.train.train_model`.
A budget is a list of epochs per stage (see :func:`stage_epochs`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..devices import seeded
from ..errors import DivergenceError
from ..nets import QuadraticDenseMLP
from ..train import Stage, StageMap, TrainConfig, split_budget, stage_count, train_model
from .metrics import FeatureProbe

LEARNERS = ("joint", "layerwise", "layerwise+joint", "shallow", "kernel")
NEURAL = ("joint", "layerwise", "layerwise+joint", "shallow")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def deep_learner(d: int, width: int, depth: int, seed: int, connect: str = "dense") -> QuadraticDenseMLP:
    """The deep learner: ``depth`` quadratic layers of ``width`` units, Gaussian init drawn
    from ``seed``; ``connect="dense"`` (every layer reads x and all earlier layers, so it
    has to find the teacher's graph) or the teacher's own pattern (e.g. ``"skip2"``)."""
    with seeded(seed):
        return QuadraticDenseMLP(d, [width] * depth, connect=connect)


def shallow_width(d: int, width: int, depth: int, connect: str = "dense") -> int:
    """Width of a one-layer learner with (about) the deep learner's parameter count:
    one layer has (d + 1)·W weights plus a readout of W + 1."""
    deep = parameter_count(QuadraticDenseMLP(d, [width] * depth, connect=connect))
    return max(1, round((deep - 1) / (d + 2)))


def stage_epochs(mode: str, depth: int, epochs: int, budget: str = "total") -> tuple[int, ...]:
    """Epochs of each stage of ``mode``. ``budget="total"``: the stages share ``epochs``
    (:func:`featviz.train.split_budget`: as evenly as integers allow, later stages take
    the remainder, the total never exceeded), so every learner makes the same number of
    optimizer steps; ``"per-stage"``: every stage gets ``epochs``."""
    stages = stage_count(mode, depth)
    if budget == "per-stage":
        return (epochs,) * stages
    return split_budget(epochs, stages)


def shallow_learner(d: int, width: int, seed: int) -> QuadraticDenseMLP:
    with seeded(seed):
        return QuadraticDenseMLP(d, [width], connect="chain")


@dataclass
class Curve:
    """Per-epoch record of one training run: ``stage`` name, test and validation
    relative MSE, and per layer (one list per epoch) the held-out R² learner -> teacher
    (``feature_r2``) and teacher -> learner (``r2_from_teacher``) on the tracking probe."""

    stage: list[str] = field(default_factory=list)
    test_rel_mse: list[float] = field(default_factory=list)
    val_rel_mse: list[float] = field(default_factory=list)
    feature_r2: list[list[float]] = field(default_factory=list)
    r2_from_teacher: list[list[float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "test_rel_mse": self.test_rel_mse, "val_rel_mse": self.val_rel_mse,
                "feature_r2": self.feature_r2, "r2_from_teacher": self.r2_from_teacher}


@dataclass
class Fit:
    """Outcome of fitting one learner: final test/val relative MSE, per-layer alignment
    (``{r2_to_teacher, r2_from_teacher, cka}`` on the large probe, empty for the kernel),
    the same at the end of every stage (``stage_alignment``, stage name -> dict), mean CCA,
    optimizer steps made, the curve over training, and the fitted model."""

    rel_test_mse: float
    rel_val_mse: float
    alignment: dict[str, list[float]]
    cca: list[float]
    curve: Curve
    total_steps: int = 0
    stage_alignment: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    model: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_r2(self) -> list[float]:
        return self.alignment.get("r2_to_teacher", [])


def train_neural(model: nn.Module, data: Dataset, probe: FeatureProbe, mode: str, *, epochs: tuple[int, ...],
                 lr: float, batch_size: int, seed: int, tracker: FeatureProbe | None = None,
                 joint_lr_scale: float = 1.0, joint_warmup: float = 0.0, joint_freeze: tuple[str, ...] = (),
                 device: torch.device | str = "cpu", progress: bool = False) -> Fit:
    """Train ``model`` in place with ``mode`` (joint | layerwise | layerwise+joint),
    ``epochs[i]`` epochs in stage i, Adam at ``lr`` with a cosine schedule per stage (the
    joint stage after layerwise stages at ``lr * joint_lr_scale``, warmed up over
    ``joint_warmup`` of its steps; ``joint_freeze`` names blocks frozen in that joint stage: the
    frozen-lower-layer control). Records the curve (alignment per epoch on ``tracker``
    when given) and the full alignment on ``probe`` at the end of every stage."""
    curve, snapshots = Curve(), StageMap()  # the old stage names (layer1, ...) still read

    def on_epoch(net: nn.Module, stage: Stage, record: dict) -> None:
        curve.stage.append(stage.name)
        curve.test_rel_mse.append(record["test_rel_mse"])
        curve.val_rel_mse.append(record.get("val_rel_mse", record["test_rel_mse"]))
        if tracker is not None:
            both = tracker.alignment(net, cka=False)
            curve.feature_r2.append([round(r, 5) for r in both["r2_to_teacher"]])
            curve.r2_from_teacher.append([round(r, 5) for r in both["r2_from_teacher"]])
        if record["epoch"] == stage.epochs:
            snapshots[stage.name] = probe.alignment(net)

    config = TrainConfig(mode=mode, epochs=epochs[0], stage_epochs=tuple(epochs), lr=lr, optimizer="adam",
                         schedule="cosine", batch_size=batch_size, seed=seed, joint_lr_scale=joint_lr_scale,
                         joint_warmup=joint_warmup, joint_freeze=tuple(joint_freeze))
    # train_model moves the dataset it gets to the device: give it a shallow copy so the
    # caller's tensors stay where they are (the kernel and the probes read them on the CPU).
    train_model(model, replace(data), config, device=device, on_epoch=on_epoch, progress=progress)
    model.cpu()
    steps = sum(epochs) * math.ceil(len(data.x_train) / batch_size)
    final = snapshots[curve.stage[-1]]
    return Fit(curve.test_rel_mse[-1], curve.val_rel_mse[-1], final, probe.cca(model), curve, steps, snapshots,
               model)


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
    return Fit(test, val, {}, [], Curve(), info=info)


def monomial_features(x: np.ndarray, degree: int) -> np.ndarray:
    """The explicit feature map of k(x, x') = (x·x'/d + 1)^p: every monomial x^a with
    |a| ≤ p, scaled by √(p! / (a! (p - |a|)!) · d^-|a|), so φ(x)·φ(x') = k(x, x') exactly.
    Shape (N, d) -> (N, C(d + p, p)), column-major (filled one monomial at a time, in place)."""
    from itertools import combinations_with_replacement

    n, d = x.shape
    out = np.empty((n, math.comb(d + degree, degree)), dtype=np.float64, order="F")
    out[:, 0] = 1.0
    j = 1
    for order in range(1, degree + 1):
        for idx in combinations_with_replacement(range(d), order):
            counts = np.bincount(idx, minlength=d)
            coef = math.factorial(degree) / (np.prod([math.factorial(c) for c in counts])
                                             * math.factorial(degree - order)) / d ** order
            np.prod(x[:, idx], axis=1, out=out[:, j])
            out[:, j] *= math.sqrt(coef)
            j += 1
    return out


def _ridge_solve(gram: np.ndarray, shift: float, rhs: np.ndarray) -> np.ndarray:
    """(gram + shift·I)⁻¹ rhs for a symmetric positive semi-definite ``gram`` and shift > 0:
    a Cholesky factorization (half the work of LU), LU if rounding makes it indefinite."""
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    a = np.array(gram, order="F")  # column-major, so the factorization overwrites it instead of copying
    a.flat[:: len(a) + 1] += shift
    try:
        return cho_solve(cho_factor(a, lower=True, overwrite_a=True, check_finite=False), rhs, check_finite=False)
    except LinAlgError:
        a = gram.copy()
        a.flat[:: len(a) + 1] += shift
        return np.linalg.solve(a, rhs)


def fit_exact_kernel(data: Dataset, *, degree: int, ridges: tuple[float, ...]) -> Fit:
    """Exact polynomial-kernel ridge regression of degree ``degree`` through its explicit
    monomial features (exact, not approximated: the kernel can express every polynomial of
    that degree). The ridge λ (relative to the mean eigenvalue of the feature covariance,
    so the ridge's bias does not change with n) is chosen on the validation set.

    With n training points and F = C(d + p, p) features the same ridge solution is solved in
    the smaller of the two spaces: primal (F × F covariance) when n ≥ F, dual (n × n Gram
    matrix, w = Φᵀa) when n < F — so the cost is min(n, F)³, and the largest matrix
    min(n, F)² floats."""
    feats = [monomial_features(x.double().numpy(), degree) for x in (data.x_train, data.x_val, data.x_test)]
    ys = [y.double().numpy() for y in (data.y_train, data.y_val, data.y_test)]
    mean_phi, mean_y = feats[0].mean(0), ys[0].mean()
    for f in feats:
        f -= mean_phi
    phi, y_c = feats[0], ys[0] - mean_y
    n, count = phi.shape
    dual = n < count
    gram = phi @ phi.T if dual else phi.T @ phi / n  # n × n kernel matrix, or F × F covariance
    rhs = y_c if dual else phi.T @ y_c / n
    scale = float(np.trace(gram)) / (n * count) if dual else float(np.trace(gram)) / count
    best: tuple[float, float, float] | None = None
    for ridge in ridges:
        # primal (ΦᵀΦ/n + λsI) w = Φᵀy/n  ⇔  dual (ΦΦᵀ + nλsI) a = y, w = Φᵀa
        sol = _ridge_solve(gram, ridge * scale * (n if dual else 1.0), rhs)
        w = phi.T @ sol if dual else sol
        errs = [float(np.mean((p @ w + mean_y - y) ** 2) / max(y.var(ddof=1), 1e-12))
                for p, y in zip(feats[1:], ys[1:])]
        if np.isfinite(errs[0]) and (best is None or errs[0] < best[0]):
            best = (errs[0], ridge, errs[1])
    if best is None:
        raise DivergenceError("exact kernel ridge regression gave no finite validation error", "use larger ridges")
    return Fit(best[2], best[0], {}, [], Curve(), info={"degree": degree, "ridge": best[1], "features": count})
