"""featviz train"""

from __future__ import annotations

from pathlib import Path

import click
import torch

from ..data import DATASETS
from ..nets import ACTIVATIONS
from ..train import MODES
from ..attacks.specs import REGISTRY, TRAINING_ATTACKS
from ._common import check_out, command_line, common_options, emit_json, stop_on_sigint


@click.command("train")
@click.option("--dataset", type=click.Choice(DATASETS), default="digits", show_default=True)
@click.option("--data-root", type=click.Path(path_type=Path), help="Folder with mnist/fashion-mnist/cifar10 files.")
@click.option("--download", is_flag=True, help="Let torchvision download the dataset into --data-root.")
@click.option("--mode", type=click.Choice(MODES), default="joint", show_default=True)
@click.option("--act", type=click.Choice(ACTIVATIONS), default="quadratic", show_default=True)
@click.option("--depth", type=click.IntRange(1, 32), help="Blocks (default 3).")
@click.option("--width", type=click.IntRange(1, 4096), help="Units per layer (MLP, default 48) or channels "
              "of block 1 (conv, default 16; later blocks get 2x).")
@click.option("--epochs", type=click.IntRange(1, 100000), help="Epochs of the whole run, summed over its stages and "
              "split as evenly as integers allow (the last stages take the remainder): joint gets all, layerwise "
              "E/depth per stage, layerwise+joint E/(depth+1) (default: 30 per stage on images, 90 on synthetic).")
@click.option("--epochs-per-stage", type=click.IntRange(1, 100000),
              help="Epochs of every stage instead (what --epochs meant in featviz 0.1).")
@click.option("--lr", type=float, help="Learning rate (images 3e-3, synthetic 1e-2).")
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), help="Minibatch size (images 64, synthetic 1024).")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--image-size", type=click.IntRange(4, 512), help="Resize images to this side (digits: 16).")
@click.option("--d", "--input-dim", "syn_d", type=click.IntRange(1, 4096), default=20, show_default=True,
              help="Synthetic: input dim (spell it --input-dim under torchrun, whose parser claims --d).")
@click.option("--k", "syn_k", type=click.IntRange(1, 4096), default=4, show_default=True,
              help="Synthetic: teacher units per layer.")
@click.option("--teacher-depth", type=click.IntRange(1, 16), default=3, show_default=True,
              help="Synthetic: teacher layers.")
@click.option("--alpha", type=float, default=0.3, show_default=True, help="Synthetic: information gap.")
@click.option("--n-train", type=click.IntRange(1, 100_000_000), default=20000, show_default=True,
              help="Synthetic: training samples.")
@click.option("--adv", type=click.Choice(TRAINING_ATTACKS), help="Adversarial training: train on FGSM or PGD "
              "(L∞, random start) examples of radius --eps.")
@click.option("--eps", "adv_eps", type=float, help="L∞ radius of the adversarial training examples (with --adv).")
@click.option("--adv-steps", type=click.IntRange(1, 1000),
              help=f"PGD steps per training batch (default {REGISTRY['pgd'].train_steps}).")
@click.option("--name", help="A name for the model card.")
@click.option("--amp", type=click.Choice(["bf16"]), help="Autocast forward passes to bfloat16 (GPU fast path).")
@click.option("--channels-last", is_flag=True, help="NHWC memory layout for conv nets (GPU fast path).")
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the model; falls back to eager if it cannot.")
@click.option("--freeze", multiple=True, metavar="LAYER",
              help="Block that learns in no stage (repeatable; its readout still learns), e.g. --freeze block1.")
@click.option("--resume", type=click.Path(path_type=Path),
              help="Continue a run stopped with Ctrl-C from its checkpoint folder (its settings are reused; "
                   "--out defaults to that folder).")
@click.option("--init-from", type=click.Path(path_type=Path), help="Start from this checkpoint's weights "
              "(same architecture) instead of a random initialization, e.g. adversarial fine-tuning of a clean "
              "model; the card records the parent.")
@click.option("--tensorboard", type=click.Path(path_type=str), metavar="DIR",
              help="Also write losses and accuracies per epoch and per stage as TensorBoard events into DIR "
                   "(pip install featviz[tensorboard]).")
@common_options(out_required=False)
def command(dataset, data_root, download, mode, act, depth, width, epochs, epochs_per_stage, lr, batch_size, optimizer, image_size,
            syn_d, syn_k, teacher_depth, alpha, n_train, adv, adv_eps, adv_steps, name, amp, channels_last, compile_,
            freeze, resume, init_from, tensorboard, seed, device, out, force, as_json):
    """Train a quadratic DenseNet jointly, layer by layer, or layerwise then jointly.

    Writes a checkpoint folder (model.safetensors + card.json) to --out. Ctrl-C stops after the
    current epoch and leaves a resumable checkpoint (continue with --resume); launched with
    `torchrun --nproc-per-node N -m featviz train ...` it trains data-parallel.
    """
    from ..checkpoint import read_card, summarize
    from ..distributed import all_reduce_sum, init_distributed, shutdown
    from ..recipes import TrainSpec, run_training, spec_from_card
    from ..train import TrainingInterrupted

    if resume is not None:
        if init_from is not None:
            raise click.UsageError("--init-from starts a new run; --resume continues one (its parent is in its card)")
        spec = spec_from_card(read_card(resume))
        out = out or resume
        if out != resume:
            check_out(out, force, inputs=(resume, data_root))
    else:
        if out is None:
            raise click.UsageError("Missing option '--out'.")
        if dataset == "synthetic":
            from ..limits import fits_in_memory

            fits_in_memory(16.0 * n_train * (syn_d + (width or 48)), f"--n-train {n_train:,} at --d {syn_d}")
        check_out(out, force, inputs=(init_from, data_root))
        synthetic = {"d": syn_d, "k": syn_k, "depth": teacher_depth, "alpha": alpha, "n_train": n_train}
        adv_spec = _adv_spec(adv, adv_eps, adv_steps)
        blocks = depth or (teacher_depth if dataset == "synthetic" else None)
        per_stage, stage_epochs = _stage_budget(mode, blocks, dataset, epochs, epochs_per_stage)
        spec = TrainSpec(dataset=dataset, mode=mode, act=act, depth=depth, width=width, epochs=per_stage,
                         stage_epochs=stage_epochs, lr=lr,
                         batch_size=batch_size, optimizer=optimizer, seed=seed, image_size=image_size,
                         data_root=str(data_root) if data_root else None, download=download,
                         synthetic=synthetic if dataset == "synthetic" else {}, name=name, adv=adv_spec,
                         amp=amp, channels_last=channels_last, compile=compile_, freeze=list(freeze),
                         init_from=str(init_from) if init_from else None)
    from ..tensorboard import log_epoch, open_writer

    writer = open_writer(tensorboard)
    dist = init_distributed(device)
    if not dist.is_main and writer is not None:
        writer.close()
        writer = None
    step = [0]

    def on_epoch(model, stage, record):
        step[0] += 1
        if step[0] == 1 and dist.is_main:  # the data loaded and the run started: say how the budget splits
            _print_plan(spec)
        if writer is not None:
            log_epoch(writer, step[0], stage.name, record)

    try:
        with stop_on_sigint() as stop_requested:
            # every rank must stop at the same epoch: a stop on any rank stops all
            should_stop = (lambda: bool(all_reduce_sum(torch.tensor([float(stop_requested())]), dist)[0] > 0))
            try:
                ckpt = run_training(spec, out, device=dist.device, command=command_line(), resume_from=resume,
                                    should_stop=should_stop, dist=dist,
                                    on_epoch=on_epoch)
            except TrainingInterrupted as stop:
                click.echo(f"featviz: interrupted after epoch {stop.state.epoch} of stage {stop.state.stage_index + 1}; "
                           f"resumable checkpoint in {out} (continue with: featviz train --resume {out})", err=True)
                raise SystemExit(130) from None
    finally:
        if writer is not None:
            writer.close()
        shutdown(dist)
    if not dist.is_main:
        return
    summary = summarize(ckpt.card) | {"checkpoint": str(out), "seconds": ckpt.card["training"]["seconds"]}
    if as_json:
        emit_json(summary)
    else:
        _print_summary(summary)


def _stage_budget(mode: str, depth: int | None, dataset: str, epochs: int | None,
                  per_stage: int | None) -> tuple[int | None, list[int] | None]:
    """``(epochs per stage, epochs of each stage)`` from ``--epochs`` (the whole run, split by
    :func:`featviz.train.split_budget`) or ``--epochs-per-stage``."""
    from ..recipes import DEFAULTS
    from ..train import split_budget, stage_count

    if epochs is not None and per_stage is not None:
        raise click.UsageError("--epochs (the whole run) and --epochs-per-stage exclude each other")
    if epochs is None:
        return per_stage, None
    blocks = depth or DEFAULTS["synthetic" if dataset == "synthetic" else "image"]["depth"]
    parts = split_budget(epochs, stage_count(mode, blocks))
    return parts[0], list(parts)


def _print_plan(spec) -> None:
    """The stage budgets the options give, said before the run starts."""
    from ..recipes import DEFAULTS
    from ..train import plan_stages

    d = DEFAULTS["synthetic" if spec.dataset == "synthetic" else "image"]
    depth = spec.depth or spec.synthetic.get("depth") or d["depth"]
    stages = plan_stages(spec.mode, depth, spec.epochs or d["epochs"],
                         stage_epochs=tuple(spec.stage_epochs) if spec.stage_epochs else None)
    click.echo(f"featviz: {spec.mode}: " + ", ".join(f"{s.name} {s.epochs}" for s in stages)
               + f" epochs ({sum(s.epochs for s in stages)} in all)", err=True)


def _adv_spec(adv: str | None, eps: float | None, steps: int | None) -> dict | None:
    """The card's ``training.adv`` from --adv/--eps/--adv-steps (validated by the attacks package)."""
    if adv is None:
        if eps is not None or steps is not None:
            raise click.UsageError("--eps and --adv-steps need --adv fgsm|pgd")
        return None
    if eps is None:
        raise click.UsageError(f"--adv {adv} needs --eps (e.g. --eps 0.1)")
    from ..attacks.training import check_adv

    spec = {"attack": adv, "eps": eps, "steps": steps or REGISTRY[adv].train_steps}
    check_adv(spec)
    return spec


def _print_summary(summary: dict) -> None:
    key = "test_accuracy" if "test_accuracy" in summary["metrics"] else "rel_test_mse"
    for stage in summary["stages"]:
        value = stage.get("test_accuracy", stage.get("test_rel_mse"))
        click.echo(f"  {stage['name']:<8} {stage['epochs']:>4} epochs  test {key.replace('test_', '')} {value:.4f}")
    click.echo(f"{summary['mode']} {summary['dataset']} model: test {key.replace('test_', '')} "
               f"{summary['metrics'][key]:.4f} in {summary['seconds']:.1f} s -> {summary['checkpoint']}")
