"""Targets of the hierarchy study and the presets that pair a target with a budget.

A *target* is an ``nn.Module`` with ``d`` (input dimension), ``depth``,
``features(x)`` -> list of (N, k_ℓ) teacher layers and ``forward(x)`` -> y (N,).
Two kinds exist: the synthetic :class:`~featviz.nets.Teacher` (``kind="teacher"``)
and the two toy targets of the backward-feature-correction talk (``step1``, ``step2``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

import torch
from torch import nn

from ..data import Dataset, load_synthetic
from ..devices import generator
from ..errors import SpecError
from ..nets import Teacher
from .metrics import FeatureProbe

TOY_TARGETS = ("step1", "step2")
BUDGETS = ("total", "per-stage")
CONNECTS = ("dense", "skip2", "chain")


class ToyTarget(nn.Module):
    """The talk's two-layer toy targets on x ~ N(0, I_d), with α the information gap.

    - ``step1``: G(x) = x1² + x2² + α(x1⁴ + x2⁴); layer 1 = (x1², x2²), layer 2 = (x1⁴, x2⁴).
      Squares of two generic combinations a·x1² + b·x2² do not span x1⁴ + x2⁴, so a first
      layer of exactly k=2 units can learn a basis that layer 2 cannot use; width fixes it.
    - ``step2``: G(x) = x1² + x2² + α((x1² + x3)² + (x2² + x4)²); layer 1 = (x1², x2²),
      layer 2 = ((x1² + x3)², (x2² + x4)²). Trained alone, layer 1 absorbs part of the
      layer-2 signal and learns (x1 + αx3)²-like features.

    ``forward`` returns y / std(y) (std estimated once on a seeded calibration sample), so
    Var(y) ≈ 1 like the teacher's. Shapes: x (N, d) -> y (N,); features: 2 × (N, 2).
    """

    def __init__(self, name: str, d: int = 10, alpha: float = 0.1, n_calibration: int = 100_000):
        super().__init__()
        if name not in TOY_TARGETS:
            raise SpecError(f"unknown toy target {name!r}", f"use one of {', '.join(TOY_TARGETS)}")
        if d < 4:
            raise SpecError(f"toy target {name} needs d >= 4 inputs, got {d}")
        self.name, self.d, self.alpha, self.depth = name, int(d), float(alpha), 2
        self.register_buffer("normalizer", torch.ones(()))
        x = torch.randn(n_calibration, self.d, generator=generator(7919))
        self.normalizer.copy_(self._raw(x).std().clamp_min(1e-8))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        sq = x[:, :2] ** 2
        if self.name == "step1":
            return [sq, sq ** 2]
        return [sq, (sq + x[:, 2:4]) ** 2]

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        g1, g2 = self.features(x)
        return g1.sum(1) + self.alpha * g2.sum(1)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._raw(x) / self.normalizer

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, self.d, generator=gen)
        return x, self(x)


@dataclass(frozen=True)
class StudyConfig:
    """Everything one study run needs; presets are instances of it.

    Target: ``target`` is ``"teacher"`` (d, k, depth, alpha, ``teacher_connect``) or a toy
    target name. Data: ``n_train``/``n_val``/``n_test`` samples; ``r2_samples`` test points
    on which alignment is tracked every epoch; ``align_samples`` fresh points fit the
    final linear maps and as many others score them.
    Learners: deep width ``width`` with the teacher's depth and ``connect`` connections
    (``dense``: the learner has to find the teacher's graph). ``budget="total"``: every
    learner makes ``epochs`` epochs of optimizer steps in all, split over its stages;
    ``"per-stage"``: ``epochs`` per stage. Adam with a cosine schedule per stage, batch
    ``batch_size``, learning rate chosen from ``lr_grid`` on the validation set for every
    learner and seed; the joint stage after layerwise runs at ``correction_lr_scale`` × the
    rate, warmed up over ``correction_warmup`` of its steps.
    Sweeps: ``n_sweep`` (training sizes, same batch size and epochs) and ``width_sweep``
    (as multiples of k) on ``sweep_seeds`` seeds, at each seed's chosen learning rate.
    """

    target: str = "teacher"
    d: int = 20
    k: int = 4
    depth: int = 3
    alpha: float = 0.3
    width: int = 48
    connect: str = "dense"
    teacher_connect: str = "skip2"
    n_train: int = 20000
    n_val: int = 2000
    n_test: int = 4000
    r2_samples: int = 4000
    align_samples: int = 20000
    seeds: int = 3
    budget: str = "total"
    epochs: int = 48
    batch_size: int = 256
    lr_grid: tuple[float, ...] = (1e-2, 2e-2, 4e-2, 8e-2)
    correction_lr_scale: float = 0.25
    correction_warmup: float = 0.1
    kernel_degrees: tuple[int, ...] = (2, 4)
    kernel_ridges: tuple[float, ...] = (1e-3, 1e-1)
    kernel_landmarks: int = 1000
    n_sweep: tuple[int, ...] = ()
    width_sweep: tuple[int, ...] = (1, 4, 16)
    sweep_seeds: int = 1
    sweep_learners: tuple[str, ...] = ("joint", "layerwise", "shallow", "kernel")
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.target != "teacher" and self.target not in TOY_TARGETS:
            raise SpecError(f"unknown target {self.target!r}", f"use teacher or one of {', '.join(TOY_TARGETS)}")
        checks = {"--d": self.d, "--k": self.k, "--depth": self.depth, "--width": self.width,
                  "--n-train": self.n_train, "--seeds": self.seeds, "epochs": self.epochs,
                  "batch size": self.batch_size, "n_test": self.n_test, "n_val": self.n_val}
        for name, value in checks.items():
            if value < 1:
                raise SpecError(f"{name} must be >= 1, got {value}")
        if self.r2_samples < 8 or self.align_samples < 4:
            raise SpecError(f"r2_samples must be >= 8 and align_samples >= 4, got {self.r2_samples}, "
                            f"{self.align_samples}")
        if self.budget not in BUDGETS:
            raise SpecError(f"unknown --budget {self.budget!r}", f"use one of {', '.join(BUDGETS)}")
        for name, value in (("--connect", self.connect), ("--teacher-connect", self.teacher_connect)):
            if value not in CONNECTS:
                raise SpecError(f"unknown {name} {value!r}", f"use one of {', '.join(CONNECTS)}")
        if not (self.correction_lr_scale > 0 and 0 <= self.correction_warmup < 1):
            raise SpecError("correction_lr_scale must be > 0 and correction_warmup in [0, 1)")
        if not 0 < self.alpha <= 1:
            raise SpecError(f"--alpha must be in (0, 1], got {self.alpha}", "α < 1 makes higher layers weaker")
        if not self.lr_grid or min(self.lr_grid) <= 0:
            raise SpecError("the learning-rate grid must hold positive values")
        if any(n < 2 for n in self.n_sweep) or any(w <= 0 for w in self.width_sweep):
            raise SpecError("n_sweep sizes must be >= 2 and width_sweep multiples > 0")
        if self.target in TOY_TARGETS and self.depth != 2:
            raise SpecError(f"the {self.target} target has 2 layers, got --depth {self.depth}", "drop --depth")

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self.seeds)]

    @property
    def teacher_units(self) -> int:
        return 2 if self.target in TOY_TARGETS else self.k

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        out.update(self.extra)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


# read-only: the presets are constants (no module-level state that a run could change)
PRESETS: Mapping[str, StudyConfig] = MappingProxyType({
    # The acceptance setting: a 3-layer teacher with gap α=0.3, a dense learner 12× wider than it,
    # every learner 48 epochs of steps in all (3,792 steps of batch 256), four learning rates per
    # learner and seed.
    "default": StudyConfig(),
    # Seconds, for tests and smoke runs: the default teacher, a narrower learner, one seed, a tenth of
    # the steps (400), one learning rate (flagged as untuned), a small kernel and a two-point width sweep.
    "quick": StudyConfig(width=24, n_val=2000, n_test=2000, r2_samples=2000, align_samples=4000, seeds=1,
                         epochs=20, batch_size=1024, lr_grid=(3e-2,), kernel_degrees=(2,), kernel_ridges=(1e-2,),
                         kernel_landmarks=300, width_sweep=(1, 4), sweep_learners=("joint", "shallow")),
    # The talk's toy targets (α = 0.1), two-layer learners.
    "step1": StudyConfig(target="step1", d=10, k=2, depth=2, alpha=0.1, width=16, n_train=10000, n_test=4000,
                         seeds=3, epochs=60, width_sweep=(1, 4, 16)),
    "step2": StudyConfig(target="step2", d=10, k=2, depth=2, alpha=0.1, width=16, n_train=10000, n_test=4000,
                         seeds=3, epochs=60, width_sweep=(1, 4, 16)),
})


def preset(name: str, **overrides: Any) -> StudyConfig:
    """A preset with some fields replaced (``None`` values are ignored)."""
    if name not in PRESETS:
        raise SpecError(f"unknown preset {name!r}", f"use one of {', '.join(PRESETS)}")
    config = replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
    config.validate()
    return config


def make_target(config: StudyConfig, seed: int) -> nn.Module:
    """The target of one seed: a teacher drawn from ``seed``, or the (fixed) toy target."""
    if config.target == "teacher":
        return Teacher(config.d, config.k, config.depth, config.alpha, connect=config.teacher_connect, seed=seed)
    return ToyTarget(config.target, d=config.d, alpha=config.alpha)


def alignment_probe(config: StudyConfig, target: nn.Module, seed: int, samples: int | None = None) -> FeatureProbe:
    """Fresh inputs (never trained on, never used for a choice) on which the final
    alignments are scored: ``samples`` fit the linear maps, as many others score them."""
    samples = config.align_samples if samples is None else samples
    x = torch.randn(2 * samples, config.d, generator=generator(seed * 1000 + 4))
    return FeatureProbe.from_target(target, x)


def make_dataset(config: StudyConfig, seed: int, n_train: int | None = None) -> Dataset:
    """Train/val/test data of one seed. Each split comes from its own seeded generator,
    so a smaller ``n_train`` gives a prefix of the full training set and the validation
    and test sets never change with it."""
    n_train = config.n_train if n_train is None else n_train
    if config.target == "teacher":
        return load_synthetic(config.d, config.k, config.depth, config.alpha, n_train, config.n_val,
                              config.n_test, seed=seed, connect=config.teacher_connect)
    target = make_target(config, seed)
    splits = [target.sample(n, generator(seed * 1000 + i)) for i, n in
              enumerate((n_train, config.n_val, config.n_test), start=1)]
    info = {"name": config.target, "task": "regression", "d": config.d, "alpha": config.alpha,
            "n_train": n_train, "n_val": config.n_val, "n_test": config.n_test, "seed": seed}
    return Dataset(config.target, "regression", *splits[0], *splits[1], *splits[2], info=info, teacher=target)
