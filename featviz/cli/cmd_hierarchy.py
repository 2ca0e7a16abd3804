"""featviz hierarchy: run, alpha-sweep, scaling, correction (each subcommand parses, calls the library, prints)."""

from __future__ import annotations

import math

import click

from ._common import check_out, command_line, common_options, emit_json, parse_floats, with_device


@click.group("hierarchy")
def command() -> None:
    """Backward feature correction: joint vs layerwise vs shallow vs kernel learners
    on hierarchical teacher targets; the α sweep; sample-complexity scaling."""


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    values = parse_floats(text, what)
    if values is not None and any(v != int(v) for v in values):
        raise click.BadParameter(f"{what} must be whole numbers, got {text!r}")
    return None if values is None else tuple(int(v) for v in values)


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)  # the command owns its process, so this is its call to make


def _workers_options(fn):
    fn = click.option("--threads", type=click.IntRange(1, 256),
                      help="CPU threads for torch (default: torch's choice). The study's matrices are small: "
                           "1 is as fast and much faster when other programs share the cores.")(fn)
    return click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
                        help="Processes that fit learners in parallel (one torch thread each); results do not "
                             "change.")(fn)


# what --quick runs are, written into their results.json so that every page showing them says so
QUICK_LABELS = {"alpha-sweep": "demo-sized: α 0.05,0.2, 2 seeds, 6 epochs, 1000 samples",
                "scaling": "demo-sized: d 4,5, n 100,200, 2 seeds, 20 steps"}


def _write(results: dict, out, write, as_json: bool, keys: tuple[str, ...]) -> None:
    """Write a sweep's folder with its study module's ``write`` and print its findings."""
    results["command"] = command_line()
    write(results, out)
    if as_json:
        emit_json({"out": str(out), **{k: results[k] for k in keys}, "findings": results["findings"],
                   "seconds": results["seconds"]})
        return
    click.echo("\n".join("- " + f for f in results["findings"]))
    click.echo(f"wrote {out}/results.json and {len(results['files']) - 1} figures in {results['seconds']:.1f} s")


@command.command("run")
@click.option("--preset", "preset_name", type=click.Choice(["default", "quick", "step1", "step2"]),
              default="default", show_default=True,
              help="default: 3-layer teacher, 3 seeds, width sweep; quick: seconds; step1/step2: the toy targets.")
@click.option("--quick", "quick_flag", is_flag=True, help="Same as --preset quick.")
@click.option("--d", type=int, help="Input dimension.")
@click.option("--k", type=int, help="Teacher units per layer.")
@click.option("--depth", type=int, help="Teacher (and learner) layers.")
@click.option("--alpha", type=float, help="Information gap α between consecutive layers.")
@click.option("--width", type=int, help="Learner units per layer m.")
@click.option("--connect", type=click.Choice(["dense", "skip2", "chain"]),
              help="Learner connections (default dense: it must find the teacher's graph; skip2: the teacher's).")
@click.option("--teacher-connect", type=click.Choice(["skip2", "dense", "chain"]), help="Teacher connections.")
@click.option("--n-train", type=int, help="Training samples.")
@click.option("--seeds", type=int, help="Seeds to average (seed, seed+1, ...).")
@click.option("--budget", type=click.Choice(["total", "per-stage"]),
              help="total (default): every learner makes --epochs epochs of steps in all, split over its stages; "
                   "per-stage: --epochs for every stage.")
@click.option("--epochs", type=int, help="Optimizer epochs (in all, or per stage with --budget per-stage).")
@click.option("--lr-grid", help="Learning rates to choose from on validation, e.g. 0.01,0.02,0.04,0.08.")
@click.option("--sweep-seeds", type=int, help="Seeds for the n and width sweeps.")
@click.option("--no-sweeps", is_flag=True, help="Skip the n and width sweeps.")
@_workers_options
@common_options()
@with_device
def run(preset_name, quick_flag, d, k, depth, alpha, width, connect, teacher_connect, n_train, seeds, budget, epochs,
        lr_grid, sweep_seeds, no_sweeps, threads, workers, seed, device, out, force, as_json):
    """Run the study; writes OUT/results.json and figures (PNG + SVG) and prints a summary."""
    from ..studies.hierarchy import preset, run_study, write_study

    from ..limits import check_study_sizes, distinct

    sweeps = {"n_sweep": (), "width_sweep": ()} if no_sweeps else {}
    lrs = parse_floats(lr_grid, "--lr-grid")
    config = preset("quick" if quick_flag else preset_name, d=d, k=k, depth=depth, alpha=alpha, width=width,
                    connect=connect, teacher_connect=teacher_connect, n_train=n_train, seeds=seeds, budget=budget,
                    epochs=epochs, lr_grid=lrs and tuple(distinct(lrs, "--lr-grid")), sweep_seeds=sweep_seeds,
                    seed=seed, **sweeps)
    check_study_sizes(config)
    check_out(out, force)
    _set_threads(threads)
    results = run_study(config, device=device, progress=True, workers=workers,
                        log=lambda line: click.echo(line, err=True))
    results["command"] = command_line()
    write_study(results, out)
    for line in results["lr_edge_warnings"]:
        click.echo(f"warning: {line}", err=True)
    if as_json:
        emit_json({"out": str(out), "primary": results["primary"], "summary": results["summary"],
                   "ratios": results["ratios"],
                   "correction": results["correction"], "lr_edge_warnings": results["lr_edge_warnings"],
                   "findings": results["findings"], "seconds": results["seconds"]})
        return
    click.echo(summary_table(results))
    click.echo(f"wrote {out}/results.json and {len(results['files']) - 1} figures in {results['seconds']:.1f} s")


@command.command("alpha-sweep")
@click.option("--target", type=click.Choice(["step2", "teacher"]), default="step2", show_default=True,
              help="step2: the talk's toy target; teacher: a 2-layer quadratic teacher.")
@click.option("--alphas", default="0.025,0.05,0.1,0.2", show_default=True, help="Information gaps α to sweep.")
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds per α.")
@click.option("--width", type=int, help="Learner units per layer (default 4).")
@click.option("--epochs", type=int, help="Optimizer epochs in all, over the three stages (default 60).")
@click.option("--n-train", type=int, help="Training samples (default 10000).")
@click.option("--quick", is_flag=True, help="Seconds, not a measurement: α 0.05,0.2, 2 seeds, 6 epochs, 1000 samples "
              "(replaces those options).")
@_workers_options
@common_options()
@with_device
def alpha_sweep(target, alphas, seeds, width, epochs, n_train, quick, threads, workers, seed, device, out, force,
                as_json):
    """Layer-1 error e₁ = √(1 − R²) vs α after layerwise stage 1 and after the joint stage, with
    fitted log-log slopes; writes OUT/results.json and figures."""
    from ..studies import alpha_sweep

    from ..limits import check_study_sizes, distinct

    if quick:
        alphas, seeds, epochs, n_train = "0.05,0.2", 2, 6, 1000
    config = alpha_sweep.sweep_config(target, seeds=seeds, width=width, epochs=epochs, n_train=n_train, seed=seed)
    check_study_sizes(config)
    alphas = tuple(distinct(parse_floats(alphas, "--alphas"), "--alphas"))
    check_out(out, force)
    _set_threads(threads)
    results = alpha_sweep.run(config, alphas, workers=workers, device=device,
                              log=lambda line: click.echo(line, err=True))
    if quick:
        results["label"] = QUICK_LABELS["alpha-sweep"]
    _write(results, out, alpha_sweep.write, as_json, ("alphas", "slopes", "slopes_from_teacher", "primary"))


@command.command("scaling")
@click.option("--d", "dims", default="4,6,8,12,16,23", show_default=True,
              help="Input dimensions. The default ends at the first d whose exact kernel has more monomial features "
                   "(C(d+4, 4) = 17,550) than the largest n: that fit needs ~7 GiB and ~3 CPU-minutes per seed "
                   "(per worker with --workers).")
@click.option("--n", "sizes", default="250,1000,4000,16000", show_default=True, help="Training-set sizes.")
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds per (d, n).")
@click.option("--steps", type=int, help="Optimizer steps of the deep learner at every n (default 1000).")
@click.option("--target-error", type=float, default=0.01, show_default=True,
              help="Relative test MSE that defines n*(d).")
@click.option("--quick", is_flag=True, help="Seconds, not a measurement: d 4,5, n 100,200, 2 seeds, 20 steps "
              "(replaces those options).")
@_workers_options
@common_options()
@with_device
def scaling(dims, sizes, seeds, steps, target_error, quick, threads, workers, seed, device, out, force, as_json):
    """Error vs n and d for the deep learner and an exact polynomial kernel of the target's
    degree; fitted exponents with bootstrap intervals; writes OUT/results.json and figures."""
    from ..errors import SpecError
    from ..studies import scaling as study

    from dataclasses import replace

    from ..limits import MAX_INPUT_DIM, MAX_SAMPLES, bounded, check_study_sizes, distinct

    if not (target_error > 0 and math.isfinite(target_error)):
        raise SpecError(f"--target-error must be a finite number > 0, got {target_error}")
    if quick:
        dims, sizes, seeds, steps = "4,5", "100,200", 2, 20
    dims, sizes = distinct(_ints(dims, "--d"), "--d"), distinct(_ints(sizes, "--n"), "--n")
    for d in dims:
        bounded(d, "--d", MAX_INPUT_DIM)
    for n in sizes:
        bounded(n, "--n", MAX_SAMPLES)
    config = study.scaling_config(seeds=seeds, epochs=steps, seed=seed, extra={"target_error": target_error})
    check_study_sizes(replace(config, d=max(dims), n_train=max(sizes)))
    check_out(out, force)
    _set_threads(threads)
    results = study.run(config, dims, sizes, workers=workers, device=device,
                        log=lambda line: click.echo(line, err=True))
    if quick:
        results["label"] = QUICK_LABELS["scaling"]
    _write(results, out, study.write, as_json, ("exponents", "kernel_floor", "primary"))


@command.command("correction")
@click.option("--quick", is_flag=True, help="Seconds: two α, two seeds, the main width, short stages.")
@click.option("--alphas", help="Information gaps α (default 0.025,0.05,0.1,0.2,0.4).")
@click.option("--seeds", type=click.IntRange(1, 1000), help="Seeds per α (default 5).")
@click.option("--width", "widths", help="Learner widths, the first the main one (default 16,2; 2 is the teacher's).")
@click.option("--d", type=click.IntRange(2, 1000), help="Input dimension (default 10).")
@click.option("--k", type=click.IntRange(1, 500), help="Teacher units per layer (default 2; needs d >= 2k).")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
              help="CPU threads for torch. The batched matrices are small: one thread is several times faster "
                   "than torch's default on a 2-core machine (measured with an earlier, slower version: stage 1 "
                   "took 110 s with 2 threads, about 30 s with 1).")
@common_options()
@with_device
def correction(quick, alphas, seeds, widths, d, k, threads, seed, device, out, force, as_json):
    """The talk's step-2 experiment, done exactly: stage-1 contamination vs its analytic Hermite
    prediction, then the correction, a frozen-layer-1 control and joint training from scratch
    (population gradients, stages run to a validation plateau); writes OUT/results.json and a figure."""
    from ..studies import correction as study

    check_out(out, force)
    _set_threads(threads)
    config = study.preset("quick" if quick else "default", alphas=parse_floats(alphas, "--alphas"), seeds=seeds,
                          widths=_ints(widths, "--width"), d=d, k=k, seed=seed)
    results = study.run(config, device=device, log=lambda line: click.echo(line, err=True))
    results["command"] = command_line()
    study.write(results, out)
    if as_json:
        emit_json({"out": str(out), **{key: results[key] for key in ("format", "primary", "alphas", "prediction",
                                                                       "slopes", "ratios")},
                   "findings": results["findings"], "seconds": results["seconds"]})
        return
    click.echo(study.stage1_table(results))
    click.echo("\n".join("- " + f for f in results["findings"]))
    click.echo(f"wrote {out}/results.json and {len(results['files']) - 1} figures in {results['seconds']:.1f} s")


def summary_table(results: dict) -> str:
    """The summary as aligned text: one row per learner, then the findings."""
    seeds = len(results["config"]["seeds"])
    lines = [f"{'learner':<16} {'rel. test MSE':>22} {'layer R² to teacher (mean of ' + str(seeds) + ' seeds)':<40} "
             f"{'steps':>6} {'lr (per seed)':>14}"]
    for name, row in results["summary"].items():
        r2 = " ".join(f"{v:.3f}" for v in row["feature_r2"]) or "-"
        lr = ",".join(f"{v:g}" for v in row["lr"]) if "lr" in row else "-"
        lines.append(f"{name:<16} {row['rel_test_mse']:>12.4g} ± {row['rel_test_mse_std']:<7.2g} {r2:<40} "
                     f"{row['total_steps']:>6} {lr:>14}")
    lines += ["", *("- " + f for f in results["findings"])]
    return "\n".join(lines)


from ._hierarchy_images import images as _images  # noqa: E402  (the image study lives in its own file)

command.add_command(_images)
