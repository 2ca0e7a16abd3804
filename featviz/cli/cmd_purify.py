"""featviz purify"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ._common import check_out, common_options, emit_json, with_device


@click.command("purify")
@click.option("--seeds", type=click.IntRange(1, 100), default=3, show_default=True, help="Seeds (first: --seed).")
@click.option("--quick", is_flag=True, help="Demo size (width 8, 4 epochs, 64 render steps, PGD-5 robustness): about a "
              "minute, not a measurement.")
@click.option("--epochs", type=click.IntRange(2, 10000), help="Training budget E of every model (default 20).")
@click.option("--eps", type=click.FloatRange(0, 1, min_open=True), help="L∞ radius of the PGD training examples "
              "(default 0.1).")
@click.option("--render-steps", type=click.IntRange(1, 100000), help="Ascent steps per render (default 512; the "
              "convergence check runs as many again, at most 256).")
@click.option("--combine", "parts", multiple=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Instead of running: merge the OUT folders of runs over disjoint seeds (e.g. one process per seed) "
                   "into one (repeatable; renders.png comes from the first).")
@common_options()
@with_device
def command(seeds, quick, epochs, eps, render_steps, parts, seed, device, out, force, as_json):
    """Feature purification with equal budgets: train clean and adversarially fine-tuned
    models from one clean parent, beside a Gaussian-noise control (matched L2 size) and a
    weight-decay control, decompose their weights (w_clean = β·w_adv + v, and clean vs a
    second clean run), measure filter energy in input directions the data does not use,
    and compare unregularized renders' hf_ratio; purification is claimed per block only
    where the adversarial arm beats both controls with paired CIs excluding 0.

    Writes OUT/results.json, OUT/hf_ratio.png, OUT/residual.png and OUT/renders.png.
    """
    from ..stats import interval_text, mean_std_text
    from ..studies import purification as P

    def pm(stat: dict) -> str:
        return mean_std_text(stat, ".3f", ".3f")

    check_out(out, force, inputs=parts)
    if parts:
        results = _combine(P, parts, out)
    else:
        cfg = P.PRESETS["quick" if quick else "full"]
        cfg = replace(cfg, **{k: v for k, v in (("epochs", epochs), ("eps", eps), ("render_steps", render_steps))
                              if v is not None})
        results = P.run(cfg, seeds=seeds, first_seed=seed, out=out, device=str(device), progress=not as_json)
    if as_json:
        emit_json(results["purification"] | {"out": str(out)})
        return
    p = results["purification"]
    click.echo(f"budget: {p['budget']}")
    click.echo(f"{'median hf_ratio':<18}" + "".join(f"{b:>16}" for b in p["adv_over_clean"]))
    for name in P.MODELS:
        click.echo(f"{name:<18}" + "".join(f"{pm(p['hf_ratio'][name][b]):>16}" for b in p["adv_over_clean"]))
    click.echo(f"{'adv / clean':<18}" + "".join(f"{interval_text(p['adv_over_clean'][b]):>16}"
                                              for b in p["adv_over_clean"]))
    click.echo(f"primary: {results['primary']['name']}: {interval_text(results['primary'])}")
    click.echo(f"{'data':<18}{_fmt(p['hf_ratio']['data']):>16}")
    click.echo("median |v| / |β·w_adv|: " + ", ".join(f"{b} {pm(v)}" for b, v in p["residual_ratio"].items()))
    click.echo("clean vs clean (baseline): " + ", ".join(f"{b} {pm(v)}"
                                                         for b, v in p["residual_ratio_clean_clean"].items()))
    click.echo("unused filter energy (init / clean / adversarial / noise): " + ", ".join(
        f"{b} " + " / ".join(_fmt(p["unused_energy"][m][b]["mean"]) for m in ("init", "clean", "adversarial", "noise"))
        for b in p["unused_energy"]["init"]))
    for b, claim in p["claims"].items():
        d = p["controls"][b]
        noise, decay = (interval_text(d[k], "+.3f") for k in ("adversarial_minus_noise",
                                                              "adversarial_minus_weight_decay"))
        click.echo(f"{b}: adversarial - noise {noise}, adversarial - weight decay {decay} -> purification claimed: "
                   f"{'yes' if claim['purification'] else 'no'}")
    click.echo(f"{p['seeds']} seed(s) -> {out}/ in {results['seconds']:.1f} s")


def _combine(P, parts, out: Path) -> dict:
    from ..fileio import atomic_directory, atomic_write_bytes, atomic_write_json, read_json

    from ..errors import FeatvizError

    loaded = [read_json(Path(p) / "results.json", "results.json written by `featviz purify`") for p in parts]
    try:
        results = P.combine(loaded)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # a part is not what purify writes
        raise FeatvizError(f"--combine {' '.join(map(str, parts))}: a results.json is not one `featviz purify` wrote "
                           f"({exc.__class__.__name__}: {exc})", "combine the --out folders of purify runs") from None
    with atomic_directory(out) as tmp:
        atomic_write_json(tmp / "results.json", results)
        atomic_write_bytes(tmp / "hf_ratio.png", P.hf_plot(results))
        atomic_write_bytes(tmp / "residual.png", P.residual_plot(results))
        renders = Path(parts[0]) / "renders.png"
        if renders.is_file():
            atomic_write_bytes(tmp / "renders.png", renders.read_bytes())
    return results


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"

