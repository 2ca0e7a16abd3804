"""featviz compare"""

from __future__ import annotations

from pathlib import Path

import click

from ..data.images import IMAGE_DATASETS
from ..studies.names import COMPARE_MODES, DEFAULT_EPS
from ._common import check_out, common_options, emit_json, with_device


def _modes(text: str) -> tuple[str, ...]:
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    for m in modes:
        if m not in COMPARE_MODES:
            raise click.BadParameter(f"unknown mode {m!r}; use some of {', '.join(COMPARE_MODES)}",
                                     param_hint="--modes")
    if not modes or len(set(modes)) != len(modes):
        raise click.BadParameter(f"{text!r}: give each mode once (a mode is listed twice or none is given), "
                                 "e.g. joint,layerwise", param_hint="--modes")
    return modes


def _eps(text: str) -> tuple[float, ...]:
    from ..numbers import parse_numbers

    values = tuple(parse_numbers(text, "--eps", unique=True))
    bad = [v for v in values if not 0 <= v <= 1]
    if bad:
        raise click.BadParameter(f"every ε must lie in [0, 1] (images in [0, 1]), got {text!r}", param_hint="--eps")
    if len(set(values)) != len(values):
        raise click.BadParameter(f"{text!r} lists an ε twice; give each value once", param_hint="--eps")
    return values


@click.command("compare")
@click.option("--quick", is_flag=True, help="The demo-sized comparison (2 seeds, 6 epochs, 96 test images; labelled "
              "demo-sized wherever shown): seconds, not a measurement. Replaces the budget options.")
@click.option("--dataset", type=click.Choice(IMAGE_DATASETS), default="digits", show_default=True,
              help="Image dataset (digits is built in).")
@click.option("--modes", default="joint,layerwise,layerwise+joint", show_default=True,
              help=f"Comma-separated training modes: {', '.join(COMPARE_MODES)} (adv = PGD-adversarial joint).")
@click.option("--seeds", type=int, default=5, show_default=True, help="Models per mode (seeds --seed, --seed+1, ...).")
@click.option("--epochs", "epochs_total", type=int, default=30, show_default=True,
              help="Epochs per model summed over its stages (the same optimizer steps for every mode).")
@click.option("--epochs-total", "old_epochs_total", type=int, hidden=True, help="Old name of --epochs.")
@click.option("--eps", "eps", default=",".join(f"{e:g}" for e in DEFAULT_EPS), show_default=True,
              help="Comma-separated L∞ ε to attack at (fractions allowed: 0,4/255,8/255).")
@click.option("--attack", default=None,
              help="Attack name for featviz.attacks.make_attack (default: autoattack-fast).")
@click.option("--adv-eps", type=float, default=0.1, show_default=True, help="ε of the adv mode's PGD training.")
@click.option("--width", type=int, help="Block-1 channels (default: the recipe's 16).")
@click.option("--image-size", type=int, help="Image side in pixels (default: the dataset's, digits 16).")
@click.option("--n-examples", type=int, help="Attack the first N test images (default all).")
@click.option("--render-units", type=int, default=4, show_default=True,
              help="Units 0..N-1 of every block are rendered (0: no renders).")
@click.option("--render-steps", type=int, default=128, show_default=True, help="Render steps per image.")
@click.option("--bisect-steps", type=click.IntRange(0, 20), default=5, show_default=True,
              help="Bisections refining each example's minimal ε.")
@click.option("--reuse", type=click.Path(path_type=Path, file_okay=False),
              help="An earlier compare --out folder (or its models/): models trained with the same recipe are reused.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes running (mode, seed) jobs, one torch thread each; the numbers do not depend on it.")
@click.option("--save-models/--no-save-models", default=True, show_default=True,
              help="Keep the trained models under OUT/models.")
@click.option("--data-root", type=click.Path(path_type=Path), help="Folder with mnist/fashion-mnist/cifar10 files.")
@common_options()
@with_device
def command(quick, dataset, modes, seeds, epochs_total, old_epochs_total, eps, attack, adv_eps, width, image_size, n_examples, render_units, render_steps, bisect_steps,
            reuse, workers, save_models, data_root, seed, device, out, force, as_json):
    """Compare training modes over seeds at matched budgets.

    Trains (or reuses) --seeds models per mode with the same total optimizer steps,
    attacks each, renders a few units per block, and writes OUT/results.json (mean ± std,
    per-seed values, Welch and exact permutation tests), OUT/table.md, OUT/robustness.png
    and OUT/render_metrics.png.
    """
    from ..studies.compare import CompareSpec, format_table, run_compare, write_compare
    from ..errors import SpecError
    from ..fileio import atomic_directory

    from .. import limits as L

    if old_epochs_total is not None:  # the old spelling, still accepted
        epochs_total = old_epochs_total
    for value, what, high in ((seeds, "--seeds", L.MAX_SEEDS), (epochs_total, "--epochs-total", L.MAX_EPOCHS),
                              (width, "--width", L.MAX_WIDTH), (image_size, "--image-size", 1024),
                              (n_examples, "--n-examples", L.MAX_EXAMPLES), (render_units, "--render-units", L.MAX_WIDTH),
                              (render_steps, "--render-steps", L.MAX_STEPS), (workers, "--workers", L.MAX_WORKERS)):
        L.bounded(value, what, high, low=0 if what == "--render-units" else 1)
    spec = CompareSpec(dataset=dataset, modes=_modes(modes), seeds=seeds, seed=seed, epochs_total=epochs_total,
                       eps=_eps(eps), attack=attack, adv_eps=adv_eps, width=width, image_size=image_size,
                       n_examples=n_examples,
                       render_units=render_units, render_steps=render_steps, bisect_steps=bisect_steps,
                       data_root=str(data_root) if data_root else None)
    if quick:
        from dataclasses import replace

        from ..studies.compare import demo_spec

        spec = replace(demo_spec(seed), dataset=spec.dataset, attack=spec.attack, adv_eps=spec.adv_eps,
                       image_size=spec.image_size, data_root=spec.data_root)
    spec.validate()
    if attack is not None:
        from ..attacks import make_attack

        make_attack(attack)
    if reuse is not None and not reuse.is_dir():
        raise SpecError(f"--reuse {reuse} is not a folder", "pass the --out folder of an earlier compare run")
    if reuse is not None and (reuse / "models").is_dir():
        reuse = reuse / "models"
    if workers < 1:
        raise SpecError(f"--workers must be >= 1, got {workers}")
    check_out(out, force, inputs=(reuse, data_root))
    with atomic_directory(out) as tmp:
        results = run_compare(spec, out_models=tmp / "models" if save_models else None, reuse=reuse, device=device,
                              workers=workers, progress=True)
        write_compare(results, tmp)
    if as_json:
        emit_json(results)
    else:
        click.echo(format_table(results), nl=False)
        click.echo(f"{sum(len(r['seeds']) for r in results['modes'].values())} models in {results['seconds']:.1f} s "
                   f"-> {out / 'results.json'}")
