"""featviz prior-renders"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from ._common import check_out, command_line, common_options, emit_json, with_device


@click.command("prior-renders")
@click.option("--checkpoint", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default=Path("models/digits-joint"), show_default=True, help="The checkpoint whose units are rendered.")
@click.option("--quick", is_flag=True, help="4 units per block, 2 settings, 24 steps: seconds, not a measurement.")
@click.option("--steps", type=click.IntRange(1, 100000), help="Ascent steps per render (default: "
              "maximize's default; the convergence check runs as many again, at most 256).")
@click.option("--units", help="Units of each block: * (default) or A-B.")
@click.option("--blocks", help="Comma-separated layers whose units are rendered (default block2,block3).")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Where the generator and the judge are cached.")
@common_options()
@with_device
def command(checkpoint, quick, steps, units, blocks, cache_dir, seed, device, out, force, as_json):
    """Render every unit of blocks 2 and 3 with none, standard and the data priors
    (sphere, pca, generator), and every class logit with none, standard, pca and
    generator; score activation relative to the best training image, the noise index and
    (for classes) an independent judge's verdict.

    Writes OUT/results.json, OUT/rows.png and OUT/tradeoff.png.
    """
    from ..studies import prior_renders as P

    check_out(out, force)
    cfg = P.PRESETS["quick" if quick else "full"]
    cfg = replace(cfg, checkpoint=str(checkpoint), seed=seed,
                  **{k: v for k, v in (("steps", steps), ("units", units),
                                       ("blocks", tuple(blocks.split(",")) if blocks else None)) if v is not None})
    res = P.run(cfg, device=device, cache_dir=cache_dir, progress=not as_json) | {"command": command_line()}
    P.write(res, out)
    if as_json:
        emit_json({k: v for k, v in res.items() if not k.startswith("_")} | {"out": str(out)})
        return
    click.echo(f"{'block':<8}{'setting':<12}{'rel. activation':>18}{'noise index':>14}{'converged':>11}")
    for block, regs in res["units"].items():
        for reg, s in regs.items():
            click.echo(f"{block:<8}{reg:<12}{_fmt(s['relative_activation']['value']):>18}"
                       f"{_fmt(s['noise_index']['value']):>14}{s['converged']:>11.0%}")
    for reg, s in res["classes"].items():
        click.echo(f"classes {reg:<12} judge recognized {s['recognized']}/{s['n']}")
    p = res["primary"]
    click.echo(f"primary: {p['name']}: {_fmt(p['value'])} [{_fmt(p['low'])}, {_fmt(p['high'])}] -> {out}/ "
               f"in {res['seconds']:.0f} s")


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3g}"
