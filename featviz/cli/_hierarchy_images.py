"""featviz hierarchy images (attached to the ``hierarchy`` group)"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import FeatvizError
from ._common import check_out, command_line, common_options, emit_json, with_device


@click.command("images")
@click.option("--quick", is_flag=True, help="A few seconds on a small subset (for tests and a first look).")
@click.option("--preset", "preset_name", type=click.Choice(["default", "demo", "quick"]), default="default",
              show_default=True, help="default: 3 seeds, full digits; demo: one short seed; quick: seconds.")
@click.option("--dataset", type=click.Choice(["digits", "mnist", "fashion-mnist", "cifar10"]), default="digits",
              show_default=True, help="Images the teacher labels (and the classification control uses).")
@click.option("--data-root", type=click.Path(path_type=Path), help="Folder with the mnist/fashion-mnist/cifar10 files.")
@click.option("--max-train", type=click.IntRange(1), help="Use at most this many training images of the split.")
@click.option("--seeds", type=int, help="Seeds (seed, seed+1, ...); default 3 (quick: 2).")
@click.option("--alpha", type=float, help="The teacher's information gap between blocks (default 0.45).")
@click.option("--epochs", "total_epochs", type=int,
              help="Epochs of each learner's whole run, the same for joint, layerwise and layerwise+joint "
                   "(a multiple of depth + 1 = 4: layerwise+joint gets a quarter per stage; default 24).")
@click.option("--epochs-per-stage", "stage_epochs", type=int,
              help="Epochs of each layerwise+joint stage instead (--epochs = 4 x this; what --epochs meant in "
                   "featviz 0.1).")
@click.option("--freeze", multiple=True, metavar="LAYER", help="Block(s) the control freezes in the joint stage "
              "(default block1).")
@click.option("--render-steps", type=click.IntRange(0), help="Visualization steps per unit picture (0: none).")
@click.option("--purification", "purify_dir", type=click.Path(path_type=Path),
              help="A `featviz purify` folder whose purification section goes into this study's results.json.")
@click.option("--threads", type=click.IntRange(1, 256), help="CPU threads for torch (1 is best on shared cores).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes that run the seeds in parallel (one torch thread each); results do not change.")
@common_options()
@with_device
def images(quick, preset_name, dataset, data_root, max_train, seeds, alpha, total_epochs, stage_epochs, freeze,
           render_steps,
           purify_dir, threads, workers, seed, device, out, force, as_json):
    """Backward feature correction on images: a conv teacher labels the images; joint,
    layerwise and layerwise+joint learners at equal total steps are aligned to it block by
    block; then the frozen-lower-layer control on classification and on the teacher task.
    Writes OUT/results.json, figures and unit pictures."""
    from ..fileio import read_json
    from ..studies.images import attach_purification, image_study_preset, run_image_study, write_image_study
    from ..limits import MAX_SEEDS, bounded

    bounded(seeds, "--seeds", MAX_SEEDS)
    if total_epochs is not None:
        if total_epochs < 1:
            raise FeatvizError(f"--epochs must be >= 1, got {total_epochs}")
        if stage_epochs is not None:
            raise FeatvizError("--epochs (the whole run) and --epochs-per-stage exclude each other")
        stages = len(image_study_preset("quick" if quick else preset_name).widths) + 1
        if total_epochs % stages:
            near = stages * max(1, round(total_epochs / stages))
            raise FeatvizError(f"--epochs {total_epochs} is not a multiple of {stages}, the stages of layerwise+joint",
                               f"use {near}")
        stage_epochs = total_epochs // stages
    config = image_study_preset("quick" if quick else preset_name, dataset=dataset,
                                data_root=str(data_root) if data_root else None, max_train=max_train,
                                seeds=tuple(range(seed, seed + seeds)) if seeds else None, alpha=alpha,
                                stage_epochs=stage_epochs, class_stage_epochs=stage_epochs,
                                freeze=tuple(freeze) or None, render_steps=render_steps)
    if seeds is None and seed:
        config.seeds = tuple(s + seed for s in config.seeds)
    check_out(out, force, inputs=(data_root, purify_dir))
    if purify_dir is not None:  # read before the work: a wrong folder fails fast
        read_json(Path(purify_dir) / "results.json", "results.json of featviz purify")
    if threads:
        import torch

        torch.set_num_threads(threads)
    results = run_image_study(config, device=device, progress=True, workers=workers,
                              log=lambda line: click.echo(line, err=True))
    results["command"] = command_line()
    if purify_dir is not None:
        attach_purification(results, purify_dir)
    write_image_study(results, out)
    teacher, control = results["teacher"], results["frozen_vs_unfrozen"]
    if as_json:
        emit_json({"out": str(out), "ratio": teacher["ratio"]["layerwise/joint"], "correction": teacher["correction"],
                   "frozen_vs_unfrozen": {task: {k: entry[k] for k in ("metric", "difference", "unfrozen", "frozen",
                                                                        "joint", "cka_before_after_unfrozen")}
                                          for task, entry in control.items()},
                   "seconds": results["seconds"]})
        return
    for line in headline_lines(results):
        click.echo(line)
    click.echo(f"wrote {out}/results.json and {len(results['files']) - 1} files in {results['seconds']:.1f} s")


def headline_lines(results: dict) -> list[str]:
    """The acceptance figures, one line each (mean ± std over seeds; the ratio of means with its CI)."""
    from ..report.results import interval_text

    def pm(entry: dict) -> str:
        return f"{entry['mean']:.3g} ± {entry['std']:.2g}"

    teacher, control = results["teacher"], results["frozen_vs_unfrozen"]
    lines = [f"layerwise/joint relative test MSE: {interval_text(teacher['ratio']['layerwise/joint'])}",
             f"block1 alignment gain of the joint stage: R² {pm(teacher['correction']['r2_to_teacher']['block1'])}, "
             f"CKA {pm(teacher['correction']['cka']['block1'])}"]
    for task, entry in control.items():
        lines.append(f"{task}: unfrozen - frozen {entry['metric']} {pm(entry['difference'])}; block1 CKA before/after "
                     f"the joint stage {entry['cka_before_after_unfrozen']['mean'][0]:.3f}")
    return lines
