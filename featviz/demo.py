"""The main job: the whole pipeline on the built-in data, ending in the gallery.

    from featviz.demo import run_demo
    summary = run_demo("gallery")          # ~minutes on a laptop CPU
    print(summary["index"])

The pipeline is the list :data:`PIPELINE` of stages, each a method of :class:`Demo`
that calls into the library and leaves its outputs on the ``Demo`` for later stages:

1. **models**: digits models trained jointly, layer by layer and adversarially
   (reused from a ``models/`` folder when a checkpoint there was trained with exactly
   the same recipe, see :mod:`featviz.reuse`), plus, for ``make models``, a
   synthetic-teacher model;
2. **hierarchy**: a short teacher/student study (joint vs layerwise vs shallow...,
   :mod:`featviz.studies.hierarchy`);
3. **visualize**: every unit of every layer rendered without regularization and with
   the standard recipe, plus top dataset examples;
4. **attacks**: a robust-accuracy sweep of every digits model (the budget's attacks);
5. **robust**: the robust accuracy the overview quotes, from a strong ensemble at the
   adversarial-training ε;
6. **compare**: training modes over seeds at matched budgets, demo-sized
   (:mod:`featviz.studies.compare`);
7. **image-study**: backward feature correction on images and feature purification,
   demo-sized (:mod:`featviz.studies.images`, :mod:`featviz.studies.purification`);
8. **studies**: links to the full studies shipped in ``studies/`` (read, not rerun);
9. **gallery**: units matched across models (``results/matches.json``), then the
   static site, in ``out`` (:mod:`featviz.gallery`, :mod:`featviz.report`).

Adding a stage is one method and one list entry: write ``def my_stage(self, stage:
Stage) -> None`` on :class:`Demo` (read what earlier stages left on ``self``, write
under ``self.results``, set ``stage.note``; ``stage.status = "skipped"`` with the
reason in ``stage.note`` when it cannot run, which the gallery's index then shows) and
insert ``("my-stage", Demo.my_stage)`` into :data:`PIPELINE` before ``gallery``.

Everything is written inside one temporary folder swapped into ``out`` at the end, so
an interrupted demo leaves the previous gallery intact; the raw result files of each
stage stay beside the pages under ``out/results/``.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tqdm.auto import tqdm

from .checkpoint import Checkpoint, save_checkpoint
from .errors import FeatvizError
from .fileio import atomic_directory, atomic_write_json
from .recipes import TrainSpec, run_training
from .reuse import reusable


@dataclass(frozen=True)
class Budget:
    """How much work each stage does. ``FULL`` fits the 10-minute target on 2 CPU cores;
    ``QUICK`` exercises every stage in seconds (tests, smoke runs)."""

    epochs: int = 30
    width: int | None = None          # conv block-1 channels (None: the recipe default)
    adv_epochs: int = 15
    adv_eps: float = 0.1
    adv_attack: str = "pgd"
    adv_steps: int = 5
    synthetic_epochs: int = 60
    synthetic_data: str = "default"             # a preset of featviz.data.SYNTHETIC_PRESETS
    hierarchy_preset: str = "quick"
    hierarchy_overrides: dict[str, Any] = field(default_factory=dict)
    # 128 steps already separate noise from image: on the digits joint model, median hf_ratio
    # 0.83 (none) vs 0.25 (standard) over all 80 units, though 78 of each still climb (flagged not
    # converged); maximize's default 2,048 steps (and a 256-step check) converge at least 80 % of
    # every setting's renders at about 9x the cost (docs/regularizers.md).
    vis_steps: int = 128
    vis_layers: tuple[str, ...] | None = None   # None: every layer
    vis_top_k: int = 5
    vis_data: int | None = None                 # training images searched for top examples (None: all)
    attack_sweep: tuple[float, float, int] = (0.0, 0.3, 7)  # steps of 0.05: holds adv_eps exactly
    attack_steps: int | None = None             # None: each attack's default (PGD 20, FGSM 1)
    attack_examples: int | None = None          # None: the whole test set
    attacks: tuple[str, ...] = ("pgd", "fgsm")
    attack_bisect: int = 5                      # bisections refining each example's minimal ε
    attack_show: int = 6                        # examples drawn per model and attack
    robust_attack: str = "autoattack-fast"      # the overview's robust accuracy (at adv_eps)
    robust_examples: int | None = 120           # test images it attacks (None: all; ~4 min on 2 cores)
    compare: dict[str, Any] = field(default_factory=dict)  # changes to featviz.studies.compare.demo_spec
    image_preset: str = "demo"                  # featviz.studies.images preset (one seed)
    purification: dict[str, Any] = field(default_factory=lambda: {"epochs": 4, "width": 8, "adv_steps": 2,
                                                                  "render_steps": 64, "robust_eval_steps": 5})


FULL = Budget()
QUICK = Budget(epochs=1, width=4, adv_epochs=1, adv_steps=2, synthetic_epochs=1, synthetic_data="quick",
               vis_steps=8, vis_top_k=2, vis_data=256, vis_layers=("block2",),
               hierarchy_overrides={"epochs": 4, "n_train": 200, "n_val": 100, "n_test": 100, "r2_samples": 50,
                                    "kernel_landmarks": 100, "n_sweep": (), "width_sweep": (1,),
                                    "sweep_learners": ("joint",)},
               attack_sweep=(0.0, 0.2, 3), attack_steps=3, attack_examples=48, attacks=("pgd",),
               attack_bisect=1, attack_show=3, robust_examples=16, image_preset="quick",
               compare={"width": 4, "n_examples": 24, "render_units": 1, "render_steps": 4, "eps": (0.0, 0.1),
                        "label": "quick: 2 seeds, 6 epochs, width 4, 24 test images"},
               purification={"epochs": 2, "width": 4, "adv_steps": 1, "render_steps": 4, "robust_eval_steps": 1})


@dataclass
class Stage:
    """What one stage did: ``status`` is ``done``, ``reused`` or ``skipped`` (with why)."""

    name: str
    status: str = "done"
    seconds: float = 0.0
    note: str = ""
    output: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "seconds": round(self.seconds, 2), "note": self.note}


def model_specs(budget: Budget, seed: int = 0, synthetic: bool = False) -> list[TrainSpec]:
    """The demo's models, as training recipes: digits joint, layerwise, adversarial
    (and the synthetic-teacher model when ``synthetic``)."""
    base = TrainSpec(dataset="digits", mode="joint", width=budget.width, epochs=budget.epochs, seed=seed)
    adv = {"attack": budget.adv_attack, "eps": budget.adv_eps, "steps": budget.adv_steps}
    specs = [replace(base, name="digits-joint"),
             replace(base, mode="layerwise", name="digits-layerwise"),
             replace(base, epochs=budget.adv_epochs, adv=adv, name="digits-adversarial")]
    if synthetic:
        from .data import SYNTHETIC_PRESETS

        specs.append(TrainSpec(dataset="synthetic", mode="joint", epochs=budget.synthetic_epochs, seed=seed,
                               synthetic=dict(SYNTHETIC_PRESETS[budget.synthetic_data]), name="synthetic-joint"))
    return specs


def _log(message: str) -> None:
    tqdm.write(f"demo: {message}", file=sys.stderr)


class Demo:
    """One run of the pipeline into the temporary folder ``root`` (see :func:`run_demo`);
    what each stage produces is kept here for the stages after it."""

    def __init__(self, root: Path, budget: Budget, *, seed: int, device: torch.device, models_dir: Path | None,
                 save_models: bool, retrain: bool, progress: bool, studies_dir: Path | None = None):
        self.root, self.budget, self.seed, self.device = root, budget, seed, device
        self.models_dir, self.save_models, self.retrain, self.progress = models_dir, save_models, retrain, progress
        self.results = root / "results"
        self.stages: list[Stage] = []
        self.checkpoints: list[Checkpoint] = []
        self.visuals: list[list[Path]] = []
        self.hierarchy: Path | None = None
        self.attacks: Path | None = None
        self.robust: Path | None = None
        self.site: dict[str, Any] = {}
        # (folder, label) of study result folders: the demo's own, then the shipped ones
        self.studies: list[tuple[Path, str]] = []
        self.studies_dir = studies_dir

    def stage(self, name: str, body: Callable[[Stage], None]) -> Stage:
        """Run one stage, timing it and logging its outcome on stderr."""
        stage = Stage(name)
        _log(f"stage {name} ...")
        start = time.perf_counter()
        body(stage)
        stage.seconds = time.perf_counter() - start
        _log(f"stage {name}: {stage.status} in {stage.seconds:.1f} s" + (f" ({stage.note})" if stage.note else ""))
        self.stages.append(stage)
        return stage

    def run(self, pipeline: list[tuple[str, Callable[["Demo", Stage], None]]]) -> None:
        for name, method in pipeline:
            self.stage(name, lambda s, method=method: method(self, s))

    # ------------------------------------------------------------------ stages
    def models(self, stage: Stage) -> None:
        """Train or reuse the models (the synthetic-teacher one too when saving them)."""
        reused = 0
        for spec in model_specs(self.budget, self.seed, synthetic=self.save_models):
            saved = self.models_dir / spec.name if self.models_dir else None
            ckpt = None if self.retrain or saved is None else reusable(saved, spec)
            if ckpt is not None:
                reused += 1
                _log(f"reusing {saved} (same recipe)")
            else:
                _log(f"training {spec.name}")
                # an adversarial spec (spec.adv) gets its adversary from the recipe itself
                ckpt = run_training(spec, self.results / "models" / spec.name, device=self.device,
                                    progress=self.progress,
                                    command="featviz demo" + (" --quick" if self.budget is QUICK else ""))
                if self.save_models and saved is not None:
                    save_checkpoint(saved, ckpt.model, ckpt.card)
                    ckpt = Checkpoint(ckpt.model, ckpt.card, saved)
            if spec.dataset == "digits":
                self.checkpoints.append(ckpt)
        stage.status = "reused" if reused and reused == len(self.checkpoints) else "done"
        if reused:
            stage.note += f"{reused} reused, {len(self.checkpoints) - reused} trained"

    def run_hierarchy(self, stage: Stage) -> None:
        from .studies.hierarchy import preset, run_study, write_study

        config = preset(self.budget.hierarchy_preset, seed=self.seed, **self.budget.hierarchy_overrides)
        results = run_study(config, device=self.device, progress=self.progress, log=_log)
        self.hierarchy = self.results / "hierarchy"
        write_study(results, self.hierarchy)
        summary = results["summary"]
        stage.note = (f"preset {self.budget.hierarchy_preset}: rel. test MSE joint "
                      f"{summary['joint']['rel_test_mse']:.3g}, layerwise {summary['layerwise']['rel_test_mse']:.3g}")

    def visualize(self, stage: Stage) -> None:
        from .gallery import render_visuals

        for ckpt in self.checkpoints:
            self.visuals.append([render_visuals(
                ckpt, self.results / "vis" / ckpt.path.name, layers=self.budget.vis_layers,
                steps=self.budget.vis_steps, top_k=self.budget.vis_top_k, data_limit=self.budget.vis_data,
                seed=self.seed, device=self.device, progress=self.progress)])

    def run_attacks(self, stage: Stage) -> None:
        from .attacks.session import AttackSession
        from .sources import checkpoint_targets

        lo, hi, k = self.budget.attack_sweep
        session = AttackSession.from_options(
            targets=checkpoint_targets([c.path for c in self.checkpoints], device=self.device),
            attacks=list(self.budget.attacks), eps=None,
            eps_sweep=f"{lo}:{hi}:{k}", steps=self.budget.attack_steps, restarts=1, step_size=None, loss="ce",
            n_examples=self.budget.attack_examples, bisect_steps=self.budget.attack_bisect,
            n_show=self.budget.attack_show, seed=self.seed, device=self.device)
        self.attacks = self.results / "attacks"
        results = session.run(self.attacks, progress=self.progress)
        stage.note = f"{', '.join(self.budget.attacks)} on {len(results['models'])} models, ε sweep {lo:g}..{hi:g}"

    def run_robust(self, stage: Stage) -> None:
        """The overview's robust accuracy: the strong ensemble (``Budget.robust_attack``) at the
        adversarial-training ε on the first ``Budget.robust_examples`` test images, labelled so."""
        from .attacks.session import AttackSession
        from .sources import checkpoint_targets

        b = self.budget
        session = AttackSession.from_options(
            targets=checkpoint_targets([c.path for c in self.checkpoints], device=self.device),
            attacks=[b.robust_attack], eps=b.adv_eps, eps_sweep=None, steps=None, restarts=1, step_size=None,
            loss="ce", n_examples=b.robust_examples, bisect_steps=0, n_show=0, seed=self.seed, device=self.device)
        self.robust = self.results / "robust"
        results = session.run(self.robust, progress=self.progress)
        figures = ", ".join(f"{m['name']} {100 * m['evaluations'][0]['robust_accuracy']:.1f}%" for m in results["models"])
        stage.note = f"{b.robust_attack} at ε={b.adv_eps:g} on {b.robust_examples or 'all'} test images: {figures}"

    def run_compare(self, stage: Stage) -> None:
        """Training modes over seeds at matched budgets (robustness, renders, tests), demo-sized."""
        from .studies.compare import demo_spec, run_demo_compare

        out = self.results / "compare"
        spec = replace(demo_spec(self.seed), **self.budget.compare)
        run_demo_compare(out, seed=self.seed, device=self.device, progress=self.progress, spec=spec)
        self.studies.append((out, f"demo-sized, {spec.seeds} seeds"))
        stage.note = "joint, layerwise, layerwise+joint at equal optimizer steps"

    def run_image_study(self, stage: Stage) -> None:
        """Backward feature correction on images (a conv teacher labels the digits) and feature
        purification (clean vs adversarially fine-tuned at equal budgets), demo-sized: one seed."""
        from .studies.images import attach_purification, image_study_preset, run_image_study, write_image_study
        from .studies.purification import PurificationConfig
        from .studies.purification import run as run_purification

        purify_dir, image_dir = self.results / "purification", self.results / "image-study"
        run_purification(PurificationConfig(**self.budget.purification), seeds=1, first_seed=self.seed,
                         out=purify_dir, device=str(self.device), progress=self.progress)
        config = image_study_preset(self.budget.image_preset, seeds=(self.seed,))
        results = run_image_study(config, device=self.device, progress=self.progress)
        # the image study's results.json carries the purification section too (docs/formats.md)
        attach_purification(results, purify_dir)
        write_image_study(results, image_dir)
        label = "demo-sized, 1 seed"
        self.studies += [(image_dir, label), (purify_dir, label)]
        ratio = results["teacher"].get("ratio", {}).get("layerwise/joint", {}).get("mean")
        stage.note = f"preset {self.budget.image_preset}: layerwise/joint relative MSE {ratio:.3g}" if ratio else ""

    def shipped_studies(self, stage: Stage) -> None:
        """Link the full studies shipped in ``studies_dir`` (their results are read, not rerun)."""
        from .report.studies import study_kind
        from .fileio import read_json

        if self.studies_dir is None or not self.studies_dir.is_dir():
            stage.note = "no studies folder given"
            return
        found = sorted({p.parent for p in self.studies_dir.glob("**/results.json")})
        for folder in found:
            if study_kind(read_json(folder / "results.json", "study results")) is not None:
                self.studies.append((folder, f"shipped study: {folder.relative_to(self.studies_dir)}"))
        stage.note = f"{len(found)} study folders in {self.studies_dir}"

    def gallery(self, stage: Stage) -> None:
        from .gallery import prepare_gallery
        from .report import write_gallery

        notes = [f"{s.name} stage skipped: {s.note}" for s in self.stages if s.status == "skipped"]
        # the units are already rendered (visualize); this matches them across models
        checkpoints, visuals, matches = prepare_gallery(self.root, self.checkpoints, visuals=self.visuals or None,
                                                        device=self.device, progress=self.progress)
        self.site = write_gallery(self.root, checkpoints, visuals=visuals, matches=matches, attacks=self.attacks,
                                  robust=self.robust, hierarchy=self.hierarchy, studies=self.studies, notes=notes,
                                  progress=self.progress,
                                  title="featviz demo gallery" + (" (quick)" if self.budget is QUICK else ""))


# The demo, stage by stage, in order: (name in the summary, Demo method). See the module docstring.
PIPELINE: list[tuple[str, Callable[[Demo, Stage], None]]] = [
    ("models", Demo.models),
    ("hierarchy", Demo.run_hierarchy),
    ("visualize", Demo.visualize),
    ("attacks", Demo.run_attacks),
    ("robust", Demo.run_robust),
    ("compare", Demo.run_compare),
    ("image-study", Demo.run_image_study),
    ("studies", Demo.shipped_studies),
    ("gallery", Demo.gallery),
]


@contextlib.contextmanager
def _scratch() -> Iterator[Path]:
    """A throw-away build folder (``--models-only`` writes nothing but the models)."""
    with tempfile.TemporaryDirectory(prefix="featviz-demo-") as tmp:
        yield Path(tmp)


def run_demo(out: str | Path | None, *, quick: bool = False, seed: int = 0, device: torch.device | str = "cpu",
             models_dir: str | Path | None = "models", save_models: bool = False, retrain: bool = False,
             models_only: bool = False, progress: bool = True, studies: str | Path | None = None) -> dict[str, Any]:
    """Run the pipeline and build the gallery in ``out`` (atomically).

    Args:
        out: the gallery folder (``out/index.html``; raw results in ``out/results``).
            Not needed with ``models_only``.
        quick: tiny budgets (seconds) instead of the full run (minutes).
        seed: seeds every stage.
        models_dir: where ready checkpoints are looked up (``models_dir/digits-joint``...);
            one is reused only if its card shows the same recipe. None: always train.
        save_models: write the checkpoints trained here into ``models_dir`` (the
            synthetic-teacher model included).
        retrain: ignore checkpoints in ``models_dir``.
        models_only: stop after the models stage (with ``save_models``: ``make models``).
        studies: a folder of shipped study results (``studies/``) that the gallery links too.

    Returns the summary: ``stages`` (name, status, seconds, note), ``models`` (accuracy,
    robust accuracy), ``reference_eps``, ``seconds`` and, with a gallery, ``index`` and ``out``.
    """
    budget = QUICK if quick else FULL
    device = torch.device(device)
    models_dir = Path(models_dir) if models_dir is not None else None
    if save_models and models_dir is None:
        raise FeatvizError("saving the demo's models needs a models folder", "pass --models DIR")
    start = time.perf_counter()
    target = None if models_only else Path(out)
    with (_scratch() if target is None else atomic_directory(target)) as root:
        demo = Demo(root, budget, seed=seed, device=device, models_dir=models_dir, save_models=save_models,
                    retrain=retrain, progress=progress, studies_dir=Path(studies) if studies else None)
        demo.run(PIPELINE[:1] if models_only else PIPELINE)
        summary = _summary(demo, start, root, target)
        if target is not None:
            atomic_write_json(root / "results" / "summary.json", summary)
    if target is None:
        return summary
    return summary | {"index": str(target / "index.html"), "out": str(target)}


def _summary(demo: Demo, start: float, root: Path, out: Path | None) -> dict[str, Any]:
    """What the run did; paths inside the temporary build folder are given as they
    will be once it is swapped into ``out``."""

    def public(path: Path) -> str:
        path = Path(path)
        if path.is_relative_to(root):
            return str(out / path.relative_to(root)) if out is not None else ""
        return str(path)

    robust = {m["checkpoint"]: m for m in demo.site.get("models", [])}
    models = []
    for ckpt in demo.checkpoints:
        card = ckpt.card
        entry = {"name": ckpt.name, "checkpoint": public(ckpt.path), "mode": card["training"].get("mode"),
                 "adv": card["training"].get("adv"), "test_accuracy": card["metrics"].get("test_accuracy")}
        site_entry = robust.get(str(ckpt.path))
        if site_entry:
            entry["robust_accuracy"] = site_entry.get("robust_accuracy")
        models.append(entry)
    return {"stages": [s.to_dict() for s in demo.stages], "models": models,
            "reference_eps": demo.site.get("reference_eps"), "seconds": round(time.perf_counter() - start, 1)}


__all__ = ["Budget", "Demo", "FULL", "PIPELINE", "QUICK", "Stage", "model_specs", "run_demo"]
