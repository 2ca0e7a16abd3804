"""featviz maximize"""

from __future__ import annotations

from pathlib import Path

import click

from ..data.images import IMAGE_DATASETS
from ..vis.regularizers import reg_help
from ..vis.render import DEFAULT_STEPS
from ._common import check_out, common_options, emit_json, model_options, with_device


@click.command("maximize")
@click.argument("checkpoint", required=False, type=click.Path(path_type=Path))
@click.option("--neuron", "neurons", multiple=True, required=True, metavar="SPEC",
              help="LAYER:UNIT, LAYER:UNIT@Y,X, LAYER:*, LAYER:A-B or logits:CLASS (repeatable).")
@click.option("--reg", "regs", multiple=True, metavar="NAME[:WEIGHT]",
              help="Regularizer (repeatable; combined, or compared with --compare-regs; join with + to combine "
                   f"inside one compared setting): {reg_help()}; docs/regularizers.md says what WEIGHT means.  "
                   "[default: none]")
@click.option("--param", type=click.Choice(["pixel", "fft"]), help="Image parameterization (default: pixel, or "
              "fft when a regularizer implies it).")
@click.option("--steps", type=click.IntRange(0, 100000), default=DEFAULT_STEPS, show_default=True,
              help="Gradient steps (the learning rate decays along a cosine over them).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.05, show_default=True,
              help="Adam peak learning rate.")
@click.option("--compare-regs", is_flag=True, help="Render each --reg setting separately (default: "
              "none, l2, tv, blur, jitter, fft, standard) and write grid.png plus a metrics table.")
@click.option("--top-k", type=click.IntRange(0, 100), default=6, show_default=True,
              help="Dataset examples per unit (0: none).")
@click.option("--dataset", type=click.Choice(IMAGE_DATASETS), help="Dataset for the examples (default: the "
              "checkpoint's; your own images: --data).")
@click.option("--data-root", type=click.Path(path_type=Path), help="Folder with mnist/fashion-mnist/cifar10 files.")
@model_options("a checkpoint")
@click.option("--upscale", type=click.IntRange(1, 64), help="Nearest-neighbour enlargement of saved PNGs "
              "(default: to about 128 px).")
@click.option("--max-batch", type=click.IntRange(1), default=256, show_default=True,
              help="Most units rendered in one batch.")
@click.option("--converge-check/--no-converge-check", default=True, show_default=True,
              help="Continue every render for as many steps again (at most 256, at a tenth of the rate) and flag "
                   "it not converged if its activation moves by more than 1 %.")
@click.option("--judge/--no-judge", default=True, show_default=True,
              help="Judge logits:CLASS renders with an independently trained ReLU CNN (trained on the dataset's "
                   "labelled training images once, then cached).")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Where the generator prior and the judge are "
              "cached (default $FEATVIZ_CACHE, else ~/.cache/featviz).")
@click.option("--tensorboard", type=click.Path(path_type=str), metavar="DIR",
              help="Also write the renders and their metrics as TensorBoard events into DIR "
                   "(pip install featviz[tensorboard]).")
@common_options()
@with_device
def command(checkpoint, neurons, regs, param, steps, lr, compare_regs, top_k, dataset, data_root, model,
            upscale, max_batch, converge_check, judge, cache_dir, tensorboard, seed, device, out, force, as_json):
    """Synthesize the images that maximize units of a model, measure them, and save
    them beside the dataset images that activate the units most.

    Writes OUT/*.png, OUT/grid.png and OUT/metrics.json.
    """
    from ..distributed import init_distributed, shutdown
    from ..fileio import atomic_directory
    from ..sources import load_target
    from ..vis.maximize import COMPARE_SETTINGS, maximize, save_maximization
    from ..vis.metrics import data_baseline

    from ..tensorboard import log_maximize, open_writer

    check_out(out, force, inputs=(checkpoint, model.weights, model.data, data_root))
    writer = open_writer(tensorboard)
    dist = init_distributed(device)  # under torchrun: ranks render chunks of --max-batch units, rank 0 writes
    try:
        target = load_target(checkpoint, model, dataset=dataset, data_root=data_root, want_data=True,
                             device=dist.device)
        if compare_regs:
            settings = list(regs) or list(COMPARE_SETTINGS)
        else:
            settings = ["+".join(regs) if regs else "none"]
        native, the_judge = None, None
        if target.data is not None:
            from ..data.images import native_images

            native = native_images(target.data)
            d = target.data
            labelled = d.task == "classification" and len(d.y_train) == len(d.x_train) > 0
            if judge and labelled and any(n.split(":")[0] == "logits" for n in neurons):
                from ..vis.judge import load_or_train_judge

                the_judge = load_or_train_judge(d.x_train, d.y_train, d.x_test, d.y_test, cache_dir=cache_dir)
        result = maximize(target.model, list(neurons), settings, shape=target.input_shape, steps=steps, lr=lr,
                          param=param, seed=seed, device=dist.device, preprocess=target.preprocess,
                          dataset=target.images, top_k=top_k, max_batch=max_batch, progress=dist.is_main,
                          dist=dist, check_convergence=converge_check, native=native, judge=the_judge,
                          cache_dir=cache_dir,
                          baseline=None if target.images is not None else data_baseline(
                              None, target.note or "no dataset: pass --data or --dataset to compare with real images"))
    finally:
        shutdown(dist)
    if result is None:  # not rank 0
        return
    result.config["model"] = target.name
    with atomic_directory(out) as tmp:
        metrics = save_maximization(result, tmp, upscale=upscale)
        if writer is not None:
            log_maximize(writer, metrics, tmp)
            writer.close()
    if as_json:
        emit_json(metrics | {"out": str(out)})
        return
    _print_table(metrics, out, target.note)


def _fmt(value, spec: str = ".3g") -> str:
    return "-" if value is None else format(value, spec)


def _print_table(metrics: dict, out: Path, note: str | None) -> None:
    if note:
        click.echo(note, err=True)
    images = metrics["images"]
    if len(images) <= 16:
        click.echo(f"{'neuron':<16} {'reg':<16} {'activation':>10} {'vs data':>8} {'hf_ratio':>8} {'noise':>6} "
                   f"{'tv':>6} {'shift':>6} {'conv':>4} {'judge':>5}")
        for img in images:
            click.echo(f"{img['neuron']:<16} {img['reg']:<16} {_fmt(img['activation']):>10} "
                       f"{_fmt(img['relative_activation']):>8} {_fmt(img['hf_ratio'], '.3f'):>8} "
                       f"{_fmt(img['noise_index'], '.2f'):>6} "
                       f"{_fmt(img['tv'], '.3f'):>6} {_fmt(img['shift_stability'], '.3f'):>6} "
                       f"{ {True: 'yes', False: 'no', None: '-'}[img['converged']]:>4} "
                       f"{'-' if not img['judge'] else img['judge']['predicted']:>5}")
    click.echo(f"medians over units: {'reg':<16} {'n':>4} {'activation':>10} {'vs none':>8} {'vs data':>8} "
               f"{'hf_ratio':>8} {'noise':>6} {'tv':>6} {'shift':>6}")
    for reg, s in metrics["summary"].items():
        click.echo(f"{'':<20}{reg:<16} {s['n']:>4} {_fmt(s['median_activation']):>10} "
                   f"{_fmt(s['activation_vs_none'], '.2f'):>8} {_fmt(s['median_relative_activation'], '.2f'):>8} "
                   f"{_fmt(s['median_hf_ratio'], '.3f'):>8} {_fmt(s['median_noise_index'], '.2f'):>6} "
                   f"{_fmt(s['median_tv'], '.3f'):>6} "
                   f"{_fmt(s['median_shift_stability'], '.3f'):>6}  flat {s['n_flat']}, "
                   f"not converged {s['n_not_converged']}"
                   + (f", judge recognized {s['recognized']:.0%} of {s['n_judged']}" if s['n_judged'] else ""))
    base = metrics["baseline"]
    if base["hf_ratio"] is None:
        click.echo(f"data baseline: none ({base['reason']})")
    else:
        click.echo(f"data baseline ({base['n']} images):{'':<20}{_fmt(base['hf_ratio'], '.3f'):>8} "
                   f"{_fmt(base['tv'], '.3f'):>6}   (flat: tv < {metrics['flat_tv_threshold']:.3g})")
    white = base.get("white_noise")
    if white:
        click.echo(f"white noise ({white['n']} images):{'':<21}{_fmt(white['hf_ratio'], '.3f'):>8} "
                   f"{_fmt(white['tv'], '.3f'):>6}   (noise index: 0 = data, 1 = white noise)")
    if base.get("native"):
        nat = base["native"]
        click.echo(f"data at native {nat['size'][0]}x{nat['size'][1]}:{'':<21}{_fmt(nat['hf_ratio'], '.3f'):>8} "
                   f"{_fmt(nat['tv'], '.3f'):>6}")
    click.echo(f"{len(images)} images, {len(metrics['dataset_examples'])} example sets -> {out}/ "
               f"(metrics.json, grid.png) in {metrics['seconds']:.1f} s")
