"""featviz hierarchy"""

from __future__ import annotations

import click

from ._common import check_out, command_line, common_options, emit_json, with_device


@click.group("hierarchy")
def command() -> None:
    """Backward feature correction: joint vs layerwise vs shallow vs kernel learners
    on hierarchical teacher targets."""


@command.command("run")
@click.option("--preset", "preset_name", type=click.Choice(["default", "quick", "step1", "step2"]),
              default="default", show_default=True,
              help="default: 3-layer teacher, 3 seeds, both sweeps; quick: seconds; step1/step2: the toy targets.")
@click.option("--quick", "quick_flag", is_flag=True, help="Same as --preset quick.")
@click.option("--d", type=int, help="Input dimension.")
@click.option("--k", type=int, help="Teacher units per layer.")
@click.option("--depth", type=int, help="Teacher (and learner) layers.")
@click.option("--alpha", type=float, help="Information gap α between consecutive layers.")
@click.option("--width", type=int, help="Learner units per layer m.")
@click.option("--n-train", type=int, help="Training samples.")
@click.option("--seeds", type=int, help="Seeds to average (seed, seed+1, ...).")
@click.option("--epochs", type=int, help="Optimizer epochs per stage.")
@click.option("--sweep-seeds", type=int, help="Seeds for the n and width sweeps.")
@click.option("--no-sweeps", is_flag=True, help="Skip the n and width sweeps.")
@click.option("--threads", type=click.IntRange(1, 256),
              help="CPU threads for torch (default: torch's choice). The study's matrices are small: "
                   "1 is as fast and much faster when other programs share the cores.")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Processes that fit learners in parallel (one torch thread each); results do not change.")
@common_options()
@with_device
def run(preset_name, quick_flag, d, k, depth, alpha, width, n_train, seeds, epochs, sweep_seeds, no_sweeps,
        threads, workers, seed, device, out, force, as_json):
    """Run the study; writes OUT/results.json and figures (PNG + SVG) and prints a summary."""
    from ..hierarchy import preset, run_study, write_study

    check_out(out, force)
    if threads:
        import torch

        torch.set_num_threads(threads)  # the command owns its process, so this is its call to make
    sweeps = {"n_sweep": (), "width_sweep": ()} if no_sweeps else {}
    config = preset("quick" if quick_flag else preset_name, d=d, k=k, depth=depth, alpha=alpha, width=width,
                    n_train=n_train, seeds=seeds, epochs=epochs, sweep_seeds=sweep_seeds, seed=seed, **sweeps)
    results = run_study(config, device=device, progress=True, workers=workers, 
                        log=lambda line: click.echo(line, err=True))
    results["command"] = command_line()
    write_study(results, out)
    if as_json:
        emit_json({"out": str(out), "summary": results["summary"], "ratios": results["ratios"],
                   "correction": results["correction"], "findings": results["findings"],
                   "seconds": results["seconds"]})
        return
    click.echo(summary_table(results))
    click.echo(f"wrote {out}/results.json and {len(results['files']) - 1} figures in {results['seconds']:.1f} s")


def summary_table(results: dict) -> str:
    """The summary as aligned text: one row per learner, then the findings."""
    seeds = len(results["config"]["seeds"])
    lines = [f"{'learner':<16} {'rel. test MSE':>22} {'layer R² (mean of ' + str(seeds) + ' seeds)':<34} "
             f"{'epochs':>6} {'lr':>7}"]
    for name, row in results["summary"].items():
        r2 = " ".join(f"{v:.3f}" for v in row["feature_r2"]) or "-"
        lr = f"{row['lr']:g}" if "lr" in row else "-"
        lines.append(f"{name:<16} {row['rel_test_mse']:>12.4g} ± {row['rel_test_mse_std']:<7.2g} {r2:<34} "
                     f"{row['epochs']:>6} {lr:>7}")
    lines += ["", *("- " + f for f in results["findings"])]
    return "\n".join(lines)


from ._hierarchy_images import images as _images  # noqa: E402  (the image study lives in its own file)

command.add_command(_images)
