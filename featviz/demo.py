"""The main job: the whole pipeline on the built-in data, ending in the gallery.

    from featviz.demo import run_demo
    summary = run_demo("gallery")          # ~minutes on a laptop CPU
    print(summary["index"])

Stages, each a call into the library:

1. **models**: digits models trained jointly, layer by layer and adversarially
   (reused from a ``models/`` folder when a checkpoint there was trained with exactly
   the same recipe), plus, for ``make models``, a synthetic-teacher model;
2. **hierarchy**: a short teacher/student study (joint vs layerwise vs shallow...);
3. **visualize**: every unit of every layer rendered without regularization and with
   the standard recipe, plus top dataset examples;
4. **attacks**: a PGD and FGSM robust-accuracy sweep of every digits model;
5. **gallery**: the static site, in ``out``.

Everything is written inside one temporary folder swapped into ``out`` at the end, so
an interrupted demo leaves the previous gallery intact; the raw result files of each
stage stay beside the pages under ``out/results/``.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .errors import CheckpointError, FeatvizError
from .fileio import atomic_directory, atomic_write_json, to_json
from .recipes import TrainSpec, run_training

STAGES = ("models", "hierarchy", "visualize", "attacks", "gallery")


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
    # 0.88 (none) vs 0.32 (standard) over all 80 units; 256 steps double the cost for little.
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


FULL = Budget()
QUICK = Budget(epochs=1, width=4, adv_epochs=1, adv_steps=2, synthetic_epochs=1, synthetic_data="quick",
               vis_steps=8, vis_top_k=2, vis_data=256, vis_layers=("block2",),
               hierarchy_overrides={"epochs": 1, "n_train": 200, "n_val": 100, "n_test": 100, "r2_samples": 50,
                                    "kernel_landmarks": 100, "n_sweep": (), "width_sweep": (1,),
                                    "sweep_learners": ("joint",)},
               attack_sweep=(0.0, 0.2, 3), attack_steps=3, attack_examples=48, attacks=("pgd",),
               attack_bisect=1, attack_show=3)


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


def _adv_key(adv: dict[str, Any] | None) -> tuple | None:
    """Adversarial training as far as reuse cares (cards may add derived fields)."""
    return None if not adv else (adv.get("attack"), float(adv.get("eps", 0)), adv.get("steps"))


def _recipe_of(card: dict[str, Any]) -> dict[str, Any]:
    """The parts of a card that say how a model was trained (what reuse must match)."""
    training = card.get("training", {})
    arch = card.get("arch", {})
    return {"dataset": card.get("dataset"), "mode": training.get("mode"),
            "adv": _adv_key(training.get("adv")), "epochs": training.get("epochs"), "seed": training.get("seed"),
            "lr": training.get("lr"), "batch_size": training.get("batch_size"), "act": arch.get("act"),
            "widths": arch.get("widths")}


def expected_recipe(spec: TrainSpec) -> dict[str, Any]:
    """What :func:`_recipe_of` reads from the card of a model trained from ``spec``."""
    from .data import load_dataset
    from .recipes import build_for

    d = spec.defaults()
    data = load_dataset(spec.dataset, seed=spec.seed, image_size=spec.image_size, **spec.synthetic)
    arch = build_for(data, spec).arch
    info = json.loads(to_json(data.info))  # as the card stores it
    return {"dataset": info, "mode": spec.mode, "adv": _adv_key(spec.adv), "epochs": spec.epochs or d["epochs"],
            "seed": spec.seed, "lr": spec.lr or d["lr"], "batch_size": spec.batch_size or d["batch_size"],
            "act": arch.get("act"), "widths": arch.get("widths")}


def reusable(folder: Path, spec: TrainSpec) -> Checkpoint | None:
    """The checkpoint in ``folder`` if it loads cleanly and was trained from ``spec``."""
    if not (folder / "card.json").is_file():
        return None
    try:
        ckpt = load_checkpoint(folder)
    except CheckpointError:
        return None
    return ckpt if _recipe_of(ckpt.card) == expected_recipe(spec) else None


def _available(module: str, name: str) -> bool:
    """Whether this installation provides ``module.name`` (a stage's library piece)."""
    try:
        return hasattr(importlib.import_module(module), name)
    except ModuleNotFoundError:
        return False


def _log(message: str) -> None:
    tqdm.write(f"demo: {message}", file=sys.stderr)


class Demo:
    """One run of the pipeline into the temporary folder ``root`` (see :func:`run_demo`)."""

    def __init__(self, root: Path, budget: Budget, *, seed: int, device: torch.device, models_dir: Path | None,
                 save_models: bool, retrain: bool, progress: bool):
        self.root, self.budget, self.seed, self.device = root, budget, seed, device
        self.models_dir, self.save_models, self.retrain, self.progress = models_dir, save_models, retrain, progress
        self.results = root / "results"
        self.stages: list[Stage] = []
        self.checkpoints: list[Checkpoint] = []
        self.visuals: list[list[Path]] = []
        self.hierarchy: Path | None = None
        self.attacks: Path | None = None

    def stage(self, name: str, body: Callable[[Stage], None], needs: tuple[str, str] | None = None) -> Stage:
        """Run one stage, timing it. ``needs`` = (module, attribute) of the library
        piece the stage calls: when this installation lacks it, the stage is skipped
        and the summary says why (never faked)."""
        stage = Stage(name)
        _log(f"stage {name} ...")
        start = time.perf_counter()
        if needs is not None and not _available(*needs):
            stage.status, stage.note = "skipped", f"{needs[0]}.{needs[1]} is not available in this version"
        else:
            body(stage)
        stage.seconds = time.perf_counter() - start
        _log(f"stage {name}: {stage.status} in {stage.seconds:.1f} s" + (f" ({stage.note})" if stage.note else ""))
        self.stages.append(stage)
        return stage

    # ------------------------------------------------------------------ stages
    def models(self, stage: Stage, synthetic: bool) -> None:
        reused = 0
        for spec in model_specs(self.budget, self.seed, synthetic):
            if spec.adv and not _available("featviz.attacks", "training_adversary"):
                stage.note += f"{spec.name} skipped: adversarial training is not available in this version; "
                continue
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
        from .hierarchy import preset, run_study, write_study

        config = preset(self.budget.hierarchy_preset, seed=self.seed, **self.budget.hierarchy_overrides)
        results = run_study(config, device=self.device, progress=self.progress, log=_log)
        self.hierarchy = self.results / "hierarchy"
        write_study(results, self.hierarchy)
        summary = results["summary"]
        stage.note = (f"preset {self.budget.hierarchy_preset}: rel. test MSE joint "
                      f"{summary['joint']['rel_test_mse']:.3g}, layerwise {summary['layerwise']['rel_test_mse']:.3g}")

    def visualize(self, stage: Stage) -> None:
        from .report.visuals import render_visuals

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

    def gallery(self, stage: Stage) -> dict[str, Any]:
        from .report import write_gallery

        notes = [f"{s.name} stage skipped: {s.note}" for s in self.stages if s.status == "skipped"]
        return write_gallery(self.root, self.checkpoints, visuals=self.visuals or None, attacks=self.attacks,
                             hierarchy=self.hierarchy, notes=notes, device=self.device, progress=self.progress,
                             title="featviz demo gallery" + (" (quick)" if self.budget is QUICK else ""))


def run_demo(out: str | Path, *, quick: bool = False, seed: int = 0, device: torch.device | str = "cpu",
             models_dir: str | Path | None = "models", save_models: bool = False, retrain: bool = False,
             models_only: bool = False, progress: bool = True) -> dict[str, Any]:
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

    Returns the summary: ``stages`` (name, status, seconds, note), ``models`` (accuracy,
    robust accuracy), ``hierarchy``, ``index`` and ``seconds``.
    """
    budget = QUICK if quick else FULL
    device = torch.device(device)
    models_dir = Path(models_dir) if models_dir is not None else None
    if save_models and models_dir is None:
        raise FeatvizError("saving the demo's models needs a models folder", "pass --models DIR")
    start = time.perf_counter()
    if models_only:
        with _scratch(out) as root:
            demo = Demo(root, budget, seed=seed, device=device, models_dir=models_dir, save_models=save_models,
                        retrain=retrain, progress=progress)
            demo.stage("models", lambda s: demo.models(s, synthetic=save_models))
        return _summary(demo, None, start, root, None)
    out = Path(out)
    with atomic_directory(out) as root:
        demo = Demo(root, budget, seed=seed, device=device, models_dir=models_dir, save_models=save_models,
                    retrain=retrain, progress=progress)
        demo.stage("models", lambda s: demo.models(s, synthetic=save_models))
        demo.stage("hierarchy", demo.run_hierarchy, needs=("featviz.hierarchy", "write_study"))
        demo.stage("visualize", demo.visualize, needs=("featviz.vis.maximize", "save_maximization"))
        demo.stage("attacks", demo.run_attacks, needs=("featviz.attacks.session", "AttackSession"))
        site: dict[str, Any] = {}
        demo.stage("gallery", lambda s: site.update(demo.gallery(s)))
        summary = _summary(demo, site, start, root, out)
        atomic_write_json(root / "results" / "summary.json", summary)
    return summary | {"index": str(out / "index.html"), "out": str(out)}


def _scratch(out):
    import contextlib
    import tempfile

    @contextlib.contextmanager
    def scratch():
        with tempfile.TemporaryDirectory(prefix="featviz-demo-") as tmp:
            yield Path(tmp)

    return scratch()


def _summary(demo: Demo, site: dict[str, Any] | None, start: float, root: Path, out: Path | None) -> dict[str, Any]:
    """What the run did; paths inside the temporary build folder are given as they
    will be once it is swapped into ``out``."""

    def public(path: Path) -> str:
        path = Path(path)
        if path.is_relative_to(root):
            return str(out / path.relative_to(root)) if out is not None else ""
        return str(path)

    robust = {m["checkpoint"]: m for m in (site or {}).get("models", [])}
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
            "reference_eps": (site or {}).get("reference_eps"), "seconds": round(time.perf_counter() - start, 1)}


def format_summary(summary: dict[str, Any]) -> str:
    """The closing table of ``featviz demo`` (plain text)."""
    lines = ["stage       status   seconds  note"]
    for s in summary["stages"]:
        lines.append(f"{s['name']:<11} {s['status']:<8} {s['seconds']:>7.1f}  {s['note']}")
    eps = summary.get("reference_eps")
    head = "robust" if eps is None else f"robust@{eps:g}"
    lines += ["", f"{'model':<22} {'mode':<10} {'adv':<12} {'test acc':>8} {head:>11}"]
    for m in summary["models"]:
        adv = f"{m['adv'].get('attack')} {m['adv'].get('eps'):g}" if m.get("adv") else "-"
        acc = m.get("test_accuracy")
        rob = m.get("robust_accuracy")
        lines.append(f"{m['name'][:22]:<22} {m['mode'] or '?':<10} {adv:<12} "
                     f"{'-' if acc is None else f'{100 * acc:.1f}%':>8} {'-' if rob is None else f'{100 * rob:.1f}%':>11}")
    lines.append(f"\ntotal {summary['seconds']:.1f} s")
    if summary.get("index"):
        lines.append(f"open {summary['index']}")
    return "\n".join(lines)
