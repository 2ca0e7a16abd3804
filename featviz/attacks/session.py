"""``featviz attack`` as a library call: given models and their test data, run the
attacks, write ``results.json``, ``results.csv`` and the pictures."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import SpecError
from ..fileio import atomic_write_json, atomic_write_text
from ..text import slug
from .core import Attack, GradientAttack, check_eps
from ..distributed import SINGLE, DistContext, gather_to_main, shard_range
from .evaluate import ModelReport, evaluate_model, merge_reports, parse_eps_sweep, results_csv, results_dict
from .specs import DEFAULT_SWEEP, WEAK_ATTACKS, names_hint
from .factory import make_attack

RESULTS, CSV, CURVES = "results.json", "results.csv", "robustness.png"
LEADERBOARD_CSV, LEADERBOARD_JSON = "leaderboard.csv", "leaderboard.json"
DEFAULT_BISECT_STEPS = 5


def examples_file(model: str, attack: str) -> str:
    return f"examples-{slug(model)}-{attack}.png"


def eps_grids(attacks: list[Attack], eps: float | Sequence[float] | None,
              eps_sweep: str | None) -> dict[str, list[float]]:
    """ε per norm: ``--eps`` (one value or a list) or ``--eps-sweep`` for every attack, else
    each norm's default sweep."""
    if eps is not None and eps_sweep is not None:
        raise SpecError("--eps and --eps-sweep are exclusive", "give one ε or one sweep")
    if eps is not None:
        values = [float(e) for e in ([eps] if isinstance(eps, (int, float)) else eps)]
        for e in values:
            if not math.isfinite(e) or e < 0:
                raise SpecError(f"--eps must be finite numbers >= 0, got {e}", "e.g. --eps 0.1 or --eps 8/255")
        if not values or len(set(values)) != len(values):
            raise SpecError(f"--eps {','.join(f'{e:g}' for e in values)}: give each ε once")
        return {a.norm: sorted(values) for a in attacks}
    return {a.norm: parse_eps_sweep(eps_sweep or DEFAULT_SWEEP[a.norm]) for a in attacks}


LEADERBOARD_FIELDS = ("model", "source", "attack", "norm", "eps", "clean_accuracy", "robust_accuracy",
                      "n_examples", "steps", "restarts", "upper_bound_only", "featviz", "torch")


def leaderboard_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One RobustBench-style row per model, attack and ε > 0, ready to paste into a table:
    the attack, its budget, the numbers and the versions that produced them.
    ``upper_bound_only`` marks attacks (FGSM, PGD) whose number APGD usually lowers."""
    import torch as _torch

    from .. import __version__

    rows = []
    for model in results["models"]:
        attacks = {a["attack"]: a for a in model["attacks"]}
        for ev in model.get("evaluations", []):
            a = attacks.get(ev["attack"], {})
            rows.append({"model": model["name"], "source": model["checkpoint"], "attack": ev["attack"],
                         "norm": ev["norm"], "eps": ev["eps"], "clean_accuracy": ev["clean_accuracy"],
                         "robust_accuracy": ev["robust_accuracy"], "n_examples": ev["n_examples"],
                         "steps": a.get("steps"), "restarts": a.get("restarts"),
                         "upper_bound_only": ev["attack"] in WEAK_ATTACKS, "featviz": __version__,
                         "torch": _torch.__version__.split("+")[0]})
    return rows


def leaderboard_csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LEADERBOARD_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


@dataclass
class AttackTarget:
    """One model to attack with its test examples: ``x`` (N, C, H, W) in [0, 1], ``y`` (N,).

    ``source`` says where the model came from (a checkpoint folder, ``module:factory``);
    how it was loaded is the caller's business (see ``featviz.sources``).
    """

    name: str
    source: str
    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor


@dataclass
class AttackSession:
    targets: list[AttackTarget]
    attacks: list[Attack]
    eps: dict[str, list[float]]
    targeted: bool = False
    n_examples: int | None = None
    batch_size: int = 256
    bisect_steps: int = 5
    attribution: str = "ig"
    n_show: int = 6
    check: bool = False
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def from_options(cls, *, attacks: list[str], eps: float | Sequence[float] | None, eps_sweep: str | None,
                     steps: int | None, restarts: int, step_size: float | None, loss: str,
                     **kw: Any) -> "AttackSession":
        """Validate command-line values (every mistake is a :class:`SpecError`).

        ``bisect_steps`` None keeps each attack's default (5 bisections for gradient attacks,
        none for ensembles and Square, whose per-example minimal ε is then reported as not
        measured); a number given explicitly applies to every attack, ensembles included."""
        if not attacks:
            raise SpecError("no attack given", f"pass --attack autoattack-fast ({names_hint()})")
        built = [make_attack(a, steps=steps, restarts=restarts, step_size=step_size, loss=loss)
                 for a in dict.fromkeys(attacks)]
        if kw.get("bisect_steps") is None:
            kw["bisect_steps"] = DEFAULT_BISECT_STEPS
        elif kw["bisect_steps"] > 0:
            for attack in built:
                attack.bisect = True
        if kw.get("n_examples") is not None and kw["n_examples"] < 1:
            raise SpecError(f"--n-examples must be >= 1, got {kw['n_examples']}")
        if kw.get("batch_size", 1) < 1:
            raise SpecError(f"--batch-size must be >= 1, got {kw['batch_size']}")
        if kw.get("bisect_steps", 0) < 0:
            raise SpecError(f"--bisect-steps must be >= 0, got {kw['bisect_steps']}")
        return cls(attacks=built, eps=eps_grids(built, eps, eps_sweep), **kw)

    def _load(self) -> list[tuple[str, str, torch.nn.Module, torch.Tensor, torch.Tensor]]:
        """The targets with unique file-safe names, moved to the device, cut to ``n_examples``."""
        loaded, names = [], set()
        for t in self.targets:
            x, y = t.x, t.y
            if self.n_examples is not None:
                x, y = x[:self.n_examples], y[:self.n_examples]
            name = slug(t.name, names)
            names.add(name)
            loaded.append((name, t.source, t.model.to(self.device), x, y))
        return loaded

    def run(self, out: str | Path | None, progress: bool = True, dist: DistContext | None = None) -> dict[str, Any]:
        """Evaluate every checkpoint; write the files into ``out`` (if given); return results.json's object.

        Under ``torchrun`` (``dist`` with several ranks) each rank attacks a contiguous run of
        whole batches, rank 0 gathers and merges them, writes the files and returns the
        results (identical in content to one process); other ranks return ``None``.
        """
        dist = dist or SINGLE
        from ..devices import generator
        from .attribution import clean_vs_adversarial
        from .checks import pgd_vs_apgd, run_checks
        from .flags import masking_flags
        from .plots import plot_curves, plot_examples

        start = time.perf_counter()
        reports: list[ModelReport] = []
        loaded = self._load()
        for *_, x, _ in loaded:  # refuse an impossible ε before any work (and any progress bar) starts
            for attack in self.attacks:
                check_eps(self.eps[attack.norm], attack.norm, x[0].numel(), attack.bounds)
        for name, path, model, x, y in loaded:
            batches = shard_range(math.ceil(len(x) / self.batch_size), dist)
            part = slice(batches.start * self.batch_size, batches.stop * self.batch_size)
            report = None
            if len(batches):
                report = evaluate_model(model, x[part], y[part], self.attacks, self.eps, name=name,
                                        checkpoint=str(path), seed=self.seed, targeted=self.targeted,
                                        batch_size=self.batch_size, bisect_steps=self.bisect_steps,
                                        n_show=self.n_show, progress=progress and dist.is_main, device=self.device,
                                        batch_offset=batches.start)
            if dist.enabled:
                gathered = gather_to_main(report, dist)
                if not dist.is_main:
                    continue
                report = merge_reports(gathered)
            if self.check:
                eps = self._check_eps()
                sub = slice(0, min(len(x), 200))
                report.checks = [c.to_dict() for c in run_checks(model, x[sub].to(self.device),
                                                                 y[sub].to(self.device), eps,
                                                                 gen=generator(self.seed), loss=self._loss(),
                                                                 steps=self._steps())]
                for attack in self.attacks:
                    if attack.name in WEAK_ATTACKS and attack.norm == "linf":
                        report.checks.append(pgd_vs_apgd(model, x[sub].to(self.device), y[sub].to(self.device), eps,
                                                         attack, gen=generator(self.seed)).to_dict())
            sub = slice(0, min(len(x), 200))
            report.flags = masking_flags(model, x[sub].to(self.device), y[sub].to(self.device), report.attacks,
                                         report.checks)
            if out is not None:
                for rep in report.attacks:
                    if rep.examples is None:
                        continue
                    ex, dev = rep.examples, self.device
                    attrs = clean_vs_adversarial(model, ex.x.to(dev), ex.x_adv.to(dev), ex.pred.to(dev),
                                                 ex.pred_adv.to(dev), self.attribution)
                    fname = examples_file(name, rep.attack["attack"])
                    plot_examples(ex, Path(out) / fname, attributions=tuple(a.cpu() for a in attrs),
                                  title=f"{name} · {rep.attack['attack']} · attributions: {self.attribution}")
                    report.files[f"{rep.attack['attack']}:examples"] = fname
            reports.append(report)
        if not dist.is_main:
            return None
        seconds = time.perf_counter() - start
        results = results_dict(reports, seconds, seed=self.seed, targeted=self.targeted,
                               eps={k: v for k, v in self.eps.items()}, files={"csv": CSV, "curves": CURVES,
                                                                         "leaderboard_csv": LEADERBOARD_CSV,
                                                                         "leaderboard_json": LEADERBOARD_JSON})
        if out is not None:
            out = Path(out)
            plot_curves(reports, out / CURVES)
            atomic_write_text(out / CSV, results_csv(reports))
            atomic_write_json(out / RESULTS, results)
            rows = leaderboard_rows(results)
            atomic_write_text(out / LEADERBOARD_CSV, leaderboard_csv(rows))
            atomic_write_json(out / LEADERBOARD_JSON, {"format": "featviz-leaderboard/1", "rows": rows})
        return results

    def _loss(self) -> str:
        """The objective the user chose for the gradient attacks (the checks use it too)."""
        return next((a.loss for a in self.attacks if isinstance(a, GradientAttack)), "ce")

    def _steps(self) -> int:
        """PGD steps for the checks: those of the first multi-step gradient attack, else 20."""
        return next((a.steps for a in self.attacks if isinstance(a, GradientAttack) and a.steps > 1), 20)

    def _check_eps(self) -> float:
        """The L∞ radius for the sanity checks: the single --eps, else the sweep's middle value."""
        grid = [e for e in self.eps.get("linf", parse_eps_sweep(DEFAULT_SWEEP["linf"])) if e > 0]
        if not grid:
            raise SpecError("--check needs a positive L∞ ε", "pass --eps 0.1 or a sweep with positive values")
        return grid[(len(grid) - 1) // 2]
