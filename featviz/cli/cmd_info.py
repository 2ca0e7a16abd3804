"""featviz info"""

from __future__ import annotations

from pathlib import Path

import click

from ._common import common_options, emit_json


@click.command("info")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@common_options(out=False)
def command(checkpoint, seed, device, as_json):
    """Show a checkpoint's layers, units, training and metrics."""
    from ..checkpoint import load_checkpoint, summarize

    ckpt = load_checkpoint(checkpoint)  # validates weights against the card, not just the card
    summary = summarize(ckpt.card) | {"parameters": sum(p.numel() for p in ckpt.model.parameters())}
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{checkpoint}: {summary['arch']} ({summary['act']}), {summary['parameters']:,} parameters")
    click.echo(f"dataset {summary.get('dataset')}, mode {summary.get('mode')}"
               + (f", adversarial {summary['adv']}" if summary.get("adv") else ""))
    click.echo("layers:")
    for layer in summary["layers"]:
        click.echo(f"  {layer['name']:<10} {layer['units']:>5} units  {layer['kind']}")
    if summary["stages"]:
        click.echo("stages:")
        for stage in summary["stages"]:
            vals = ", ".join(f"{k} {v:.4f}" for k, v in stage.items() if k.startswith("test_"))
            click.echo(f"  {stage['name']:<8} {stage['epochs']:>4} epochs  {vals}")
    click.echo("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items()
                                       if isinstance(v, float)))
