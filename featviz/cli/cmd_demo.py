"""featviz demo"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ._common import check_out, common_options, emit_json, with_device


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
        acc, rob = (m.get(k) for k in ("test_accuracy", "robust_accuracy"))
        acc_text, rob_text = ("-" if v is None else f"{100 * v:.1f}%" for v in (acc, rob))
        lines.append(f"{m['name'][:22]:<22} {m['mode'] or '?':<10} {adv:<12} {acc_text:>8} {rob_text:>11}")
    lines.append(f"\ntotal {summary['seconds']:.1f} s")
    if summary.get("index"):
        lines.append(f"open {summary['index']}")
    return "\n".join(lines)


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), help="Gallery folder to write (OUT/index.html).")
@click.option("--force", is_flag=True, help="Replace a non-empty --out.")
@click.option("--quick", is_flag=True, help="Tiny budgets: every stage in seconds (for tests and smoke runs).")
@click.option("--models", "models_dir", type=click.Path(path_type=Path), default=Path("models"), show_default=True,
              help="Reuse checkpoints from this folder when their card shows the demo's recipe.")
@click.option("--save-models", is_flag=True, help="Write the checkpoints trained here into --models "
              "(with a synthetic-teacher model too).")
@click.option("--retrain", is_flag=True, help="Train every model even if --models has a matching one.")
@click.option("--studies", "studies_dir", type=click.Path(path_type=Path),
              help="A folder of shipped study results (e.g. studies/) to link from the gallery beside the demo's own "
                   "demo-sized studies.")
@click.option("--models-only", is_flag=True, help="Stop after the models stage (with --save-models: `make models`).")
@common_options(out=False)
@with_device
def command(out, force, quick, models_dir, save_models, retrain, studies_dir, models_only, seed, device, as_json):
    """Run the whole pipeline on the built-in digits data and build the gallery.

    Trains (or reuses) joint, layerwise and adversarially trained models, runs a short
    hierarchy study, renders every unit with and without regularizers, sweeps attacks,
    runs demo-sized image and purification studies, and writes a static gallery to
    --out. Ends with a summary table and the path of index.html.
    """
    from ..demo import run_demo
    from ..errors import FeatvizError

    if out is None and not models_only:
        raise FeatvizError("featviz demo needs --out DIR", "or --models-only --save-models to only train models")
    if studies_dir is not None and not studies_dir.is_dir():
        raise FeatvizError(f"--studies {studies_dir}: no such folder", "pass the folder of shipped study results")
    if out is not None:
        check_out(out, force, inputs=(models_dir, studies_dir))
    summary = run_demo(out, quick=quick, seed=seed, device=device, models_dir=models_dir, save_models=save_models,
                       retrain=retrain, models_only=models_only, studies=studies_dir)
    if as_json:
        emit_json(summary)
    else:
        click.echo(format_summary(summary))
