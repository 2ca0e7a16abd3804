"""featviz demo"""

from __future__ import annotations

from pathlib import Path

import click

from ._common import check_out, common_options, emit_json, with_device


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), help="Gallery folder to write (OUT/index.html).")
@click.option("--force", is_flag=True, help="Replace a non-empty --out.")
@click.option("--quick", is_flag=True, help="Tiny budgets: every stage in seconds (for tests and smoke runs).")
@click.option("--models", "models_dir", type=click.Path(path_type=Path), default=Path("models"), show_default=True,
              help="Reuse checkpoints from this folder when their card shows the demo's recipe.")
@click.option("--save-models", is_flag=True, help="Write the checkpoints trained here into --models "
              "(with a synthetic-teacher model too).")
@click.option("--retrain", is_flag=True, help="Train every model even if --models has a matching one.")
@click.option("--models-only", is_flag=True, help="Stop after the models stage (with --save-models: `make models`).")
@common_options(out=False)
@with_device
def command(out, force, quick, models_dir, save_models, retrain, models_only, seed, device, as_json):
    """Run the whole pipeline on the built-in digits data and build the gallery.

    Trains (or reuses) joint, layerwise and adversarially trained models, runs a short
    hierarchy study, renders every unit with and without regularizers, sweeps attacks,
    and writes a static gallery to --out. Ends with a summary table and the path of
    index.html.
    """
    from ..demo import format_summary, run_demo
    from ..errors import FeatvizError

    if out is None and not models_only:
        raise FeatvizError("featviz demo needs --out DIR", "or --models-only --save-models to only train models")
    if out is not None:
        check_out(out, force)
    summary = run_demo(out, quick=quick, seed=seed, device=device, models_dir=models_dir, save_models=save_models,
                       retrain=retrain, models_only=models_only)
    if as_json:
        emit_json(summary)
    else:
        click.echo(format_summary(summary))
