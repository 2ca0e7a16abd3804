"""featviz attack"""

from __future__ import annotations

from pathlib import Path

import click

from ..data.images import IMAGE_DATASETS
from ..attacks.specs import ATTACKS, DEFAULT_ATTACK, WEAK_ATTACKS, attack_help
from ..numbers import parse_numbers
from ..tensorboard import log_attack, open_writer
from ._common import check_out, common_options, emit_json, model_options, with_device


@click.command("attack")
@click.argument("checkpoints", nargs=-1, type=click.Path(path_type=Path))
@click.option("--attack", "attacks", multiple=True, type=click.Choice(ATTACKS), default=(DEFAULT_ATTACK,),
              show_default=True, help="Attack to run; repeat to compare several. " + attack_help() + ".")
@click.option("--eps", help="ε for every attack given (in each attack's norm): one value or a list, fractions "
              "allowed (0.1, 8/255, 0.05,0.1).")
@click.option("--eps-sweep", help="A:B:K, K values of ε from A to B, for every attack given (default: L∞ attacks "
              "0:0.3:8, L2 attacks 0:3:8).")
@click.option("--steps", type=int, help="Attack budget: steps (pgd 20, apgd and each APGD part of autoattack 100, cw 100 per search round, "
              "deepfool 50) or queries (square 5000).")
@click.option("--restarts", type=int, default=1, show_default=True, help="Random restarts (gradient attacks).")
@click.option("--step-size", type=float, help="Absolute step size (default 2.5·ε/steps).")
@click.option("--loss", type=click.Choice(["ce", "margin"]), default="ce", show_default=True,
              help="Objective of the gradient attacks.")
@click.option("--targeted", is_flag=True, help="Aim at a random other class per example (drawn from --seed).")
@click.option("--n-examples", type=int, help="Attack the first N test examples (default all).")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Examples per attack batch.")
@click.option("--bisect-steps", type=int, help="Bisections refining each example's minimal ε (default: 5 for "
              "gradient attacks; ensembles and square are bisected only when this is given, else their minimal ε "
              "is reported as not measured).")
@click.option("--attribution", type=click.Choice(["ig", "saliency"]), default="ig", show_default=True,
              help="Attribution shown for clean vs adversarial examples.")
@click.option("--n-show", type=click.IntRange(0, 64), default=6, show_default=True,
              help="Examples drawn per model and attack.")
@click.option("--check", is_flag=True, help="Also run the sanity checks of Carlini et al. and print pass/fail (with "
              "pgd/fgsm: also compare with APGD and flag PGD more than 2 points weaker).")
@click.option("--tensorboard", type=click.Path(path_type=str), metavar="DIR",
              help="Also write the robust-accuracy curves as TensorBoard events into DIR (pip install "
                   "featviz[tensorboard]).")
@click.option("--data-root", type=click.Path(path_type=Path), help="Folder with mnist/fashion-mnist/cifar10 files.")
@model_options("checkpoints")
@click.option("--dataset", type=click.Choice(IMAGE_DATASETS), help="Test images for --model (your own: --data).")
@common_options()
@with_device
def command(checkpoints, attacks, eps, eps_sweep, steps, restarts, step_size, loss, targeted, n_examples,
            batch_size, bisect_steps, attribution, n_show, check, tensorboard, data_root, model, dataset, seed, device,
            out, force, as_json):
    """Attack checkpoints (or any --model) and compare how they break.

    Writes DIR/results.json, DIR/results.csv, DIR/robustness.png (robust accuracy vs ε)
    and DIR/examples-MODEL-ATTACK.png (clean / adversarial / amplified perturbation and
    attributions).
    """
    import contextlib

    from ..attacks.session import AttackSession
    from ..distributed import init_distributed, shutdown
    from ..errors import SpecError
    from ..fileio import atomic_directory
    from ..sources import checkpoint_targets, factory_target

    from .. import limits as L

    for value, what, high, low in ((steps, "--steps", L.MAX_STEPS, 1), (restarts, "--restarts", 1000, 1),
                                   (n_examples, "--n-examples", L.MAX_EXAMPLES, 1),
                                   (batch_size, "--batch-size", 1_000_000, 1), (bisect_steps, "--bisect-steps", 64, 0)):
        L.bounded(value, what, high, low)
    L.distinct(attacks, "--attack")
    if bool(checkpoints) == bool(model.ref):
        raise SpecError("give CHECKPOINT folders or --model MODULE:FACTORY (one of the two)")
    if not model.ref and (model.input_shape or dataset):
        raise SpecError("--input-shape/--dataset go with --model; a checkpoint carries its own (--data replaces its "
                        "test images)")
    eps_values = parse_numbers(eps, "--eps", unique=True)
    check_out(out, force, inputs=(*checkpoints, model.weights, model.data, data_root))
    writer = open_writer(tensorboard)  # fails fast when the tensorboard extra is missing
    dist = init_distributed(device)  # under torchrun: each rank attacks a shard, rank 0 writes
    try:
        session = AttackSession.from_options(
            targets=[], attacks=list(attacks), eps=eps_values, eps_sweep=eps_sweep, steps=steps, restarts=restarts,
            step_size=step_size, loss=loss, targeted=targeted, n_examples=n_examples, batch_size=batch_size,
            bisect_steps=bisect_steps, attribution=attribution, n_show=n_show, check=check, seed=seed,
            device=dist.device)
        root = str(data_root) if data_root else None
        if model.ref:
            session.targets = [factory_target(model, dataset=dataset, data_root=root, device=dist.device)]
        else:
            session.targets = checkpoint_targets([str(c) for c in checkpoints], data_root=root, data=model.data,
                                                 device=dist.device)
        # rank 0 fills a temporary folder that replaces --out only when everything is written
        with atomic_directory(out) if dist.is_main else contextlib.nullcontext(None) as folder:
            results = session.run(folder, progress=True, dist=dist)
    finally:
        shutdown(dist)
    if results is None:
        return
    if writer is not None:
        log_attack(writer, results)
        writer.close()
    weak = [a for a in dict.fromkeys(attacks) if a in WEAK_ATTACKS]
    if weak:
        click.echo(f"featviz: note: {', '.join(weak)} gives an upper bound on robust accuracy; autoattack-fast "
                   "(the default) usually finds more adversarial examples" + ("" if check else
                   "; add --check to compare with APGD"), err=True)
    if as_json:
        emit_json(results)
    else:
        _print(results, out)


def _print(results: dict, out: Path) -> None:
    for model in results["models"]:
        click.echo(f"{model['name']}  clean accuracy {model['clean_accuracy']:.4f}")
        for a in model["attacks"]:
            curve = "  ".join(f"{p['eps']:.3g}:{p['robust_accuracy']:.3f}" for p in a["curve"])
            med = a["min_eps"]["median"]
            shown = "not measured" if a["min_eps"].get("measured") is False else ">max" if med is None else f"{med:.4g}"
            click.echo(f"  {a['attack']:<8} ({a['norm']}, {a['steps']} steps)  ε:acc {curve}  median min ε {shown}")
            for p in a["curve"]:
                if p.get("components"):
                    parts = ", ".join(f"{c['attack']} {c['broken']}" for c in p["components"])
                    click.echo(f"    ε={p['eps']:.3g}: robust accuracy {p['robust_accuracy']:.4f} by {a['attack']} "
                               f"(broken by {parts})")
        for c in model.get("checks") or []:
            click.echo(f"  check {'PASS' if c['passed'] else 'FAIL'}  {c['name']}: {c['detail']}")
        for f in model.get("flags") or []:
            click.echo(f"  FLAG {f['name']}: {f['message']}")
        if "checks" in model and not model.get("flags"):
            click.echo("  no masking flags")
    click.echo(f"{len(results['models'])} model(s) in {results['seconds']:.1f} s -> {out / 'results.json'}")
