"""featviz gallery"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import FeatvizError
from ..vis.render import DEFAULT_STEPS
from ._common import check_out, common_options, emit_json, model_options, with_device


def _assign_visuals(checkpoints: tuple[Path, ...], specs: tuple[str, ...]) -> list[list[Path]]:
    """``--vis CHECKPOINT=DIR`` (or plain ``DIR`` when there is one checkpoint) -> folders per checkpoint."""
    folders: list[list[Path]] = [[] for _ in checkpoints]
    resolved = [c.resolve() for c in checkpoints]
    for spec in specs:
        ckpt, sep, folder = spec.rpartition("=")
        if not sep:
            if len(checkpoints) != 1:
                raise FeatvizError(f"--vis {spec}: say which checkpoint it belongs to",
                                   "write --vis CHECKPOINT=DIR when the gallery has several checkpoints")
            folders[0].append(Path(folder))
            continue
        try:
            index = resolved.index(Path(ckpt).resolve())
        except ValueError:
            raise FeatvizError(f"--vis {spec}: {ckpt} is not one of the checkpoints given",
                               "use the same path as in the CHECKPOINT arguments") from None
        folders[index].append(Path(folder))
    return folders


@click.command("gallery")
@click.argument("checkpoints", nargs=-1, type=click.Path(path_type=Path))
@click.option("--vis", "vis_specs", multiple=True, metavar="CHECKPOINT=DIR",
              help="A `featviz maximize` output folder for one checkpoint (repeatable).")
@click.option("--attacks", type=click.Path(path_type=Path), help="A `featviz attack` output folder.")
@click.option("--robust", type=click.Path(path_type=Path),
              help="A `featviz attack` folder at the reference ε (e.g. --attack autoattack) whose robust accuracy "
                   "the overview quotes; default: the curves of --attacks.")
@click.option("--hierarchy", type=click.Path(path_type=Path), help="A `featviz hierarchy run` output folder.")
@click.option("--study", "studies", multiple=True, type=click.Path(path_type=Path),
              help="A study result folder (featviz compare, purify, hierarchy run|images|alpha-sweep|scaling); "
                   "one page each (repeatable).")
@click.option("--data-root", type=click.Path(path_type=Path),
              help="Dataset folder for mnist/fashion-mnist/cifar10 (used to match units across models).")
@click.option("--reference-eps", type=click.FloatRange(0, None),
              help="ε at which the overview reports robust accuracy (default: the adversarial-training ε).")
@click.option("--render-steps", type=click.IntRange(0, 100000), default=DEFAULT_STEPS, show_default=True,
              help="Render the units of checkpoints given no --vis (regularizers none, standard and pca) with this "
                   "many steps; 0 skips.")
@click.option("--title", default="featviz gallery", show_default=True, help="Title shown on every page.")
@model_options("checkpoints (shown first, beside any CHECKPOINT given)")
@common_options()
@with_device
def command(checkpoints, vis_specs, attacks, robust, hierarchy, studies, data_root, reference_eps, render_steps, title,
            model, seed, device, out, force, as_json):
    """Build a static, offline HTML gallery of CHECKPOINTs (or your --model) and result folders.

    The first checkpoint (your --model, when given) is the reference that comparison pages
    match the others against; its --vis is written --vis DIR (one model) or --vis
    MODULE:FACTORY=DIR. Units of checkpoints without --vis are rendered here (see
    --render-steps). Open OUT/index.html in a browser; it needs no server and no network.
    """
    from ..gallery import build_gallery
    from ..sources import user_checkpoint

    if not checkpoints and not model.ref:
        raise FeatvizError("the gallery needs CHECKPOINT folders or --model MODULE:FACTORY",
                           "e.g. featviz gallery models/digits-joint --out gallery")
    if model.data is not None and not model.ref:
        raise FeatvizError("--data goes with --model in the gallery; a checkpoint is shown with its own dataset")
    check_out(out, force, inputs=(*checkpoints, model.weights, model.data, attacks, robust, hierarchy, *studies,
                                  data_root, *(spec.rpartition("=")[2] for spec in vis_specs)))
    models = list(checkpoints)
    if model.ref:
        models.insert(0, user_checkpoint(model, device))
    summary = build_gallery(models, out, visuals=_assign_visuals(tuple(Path(str(getattr(m, "path", m)))
                                                                       for m in models), vis_specs),
                            attacks=attacks, robust=robust, hierarchy=hierarchy, studies=[(s, s.name) for s in studies],
                            data_root=data_root, reference_eps=reference_eps,
                            title=title, render_steps=render_steps, seed=seed, device=device)
    if as_json:
        emit_json(summary)
        return
    click.echo(f"{len(summary['pages'])} pages, {summary['bytes']['total'] / 1e6:.2f} MB -> {summary['index']}")
