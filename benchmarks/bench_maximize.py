"""Benchmark: render every unit of a 32-unit layer as one batch vs one unit at a time.

All runs share one process, one model and the same settings (steps, lr, regularizers),
so the printed ratios do not depend on how busy the machine is as much as absolute
times do. If ``torch-lucent`` is importable, its ``render_vis`` (one unit per call,
the only way it renders channels) is timed on the same model with the same number of
steps and comparable transforms; otherwise that comparison is skipped with a message.

    python benchmarks/bench_maximize.py [--checkpoint DIR] [--steps 64] [--regs standard]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from featviz.devices import seeded
from featviz.nets import QuadraticDenseConvNet
from featviz.vis import render
from featviz.vis.transforms import standard_sizes


def load_model(checkpoint: str | None) -> torch.nn.Module:
    if checkpoint:
        from featviz.checkpoint import load_checkpoint

        return load_checkpoint(checkpoint).model
    with seeded(0):  # the digits architecture: block2 has 32 channels at 8×8
        return QuadraticDenseConvNet(1, 10, widths=(16, 32, 32), image_size=16).eval()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_featviz(model, layer: str, units: int, steps: int, regs: str) -> tuple[float, float]:
    render(model, f"{layer}:0", regs=regs, steps=2)  # warm-up (lazy imports, allocator)
    batched = timed(lambda: render(model, f"{layer}:*", regs=regs, steps=steps))
    single = timed(lambda: [render(model, f"{layer}:{u}", regs=regs, steps=steps) for u in range(units)])
    return batched, single


def _stub_ipython_display() -> None:
    """lucent imports IPython.display at import time, only to show images in notebooks
    (never called with show_image=False); without IPython installed, an empty module
    stands in for it."""
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("IPython") is None and "IPython" not in sys.modules:
        ipython, display = types.ModuleType("IPython"), types.ModuleType("IPython.display")
        ipython.display = display
        sys.modules.update({"IPython": ipython, "IPython.display": display})


def bench_lucent(model, layer: str, units: int, steps: int, size: int, regs: str) -> float | None:
    try:
        _stub_ipython_display()
        from lucent.optvis import param, render as lrender, transform
    except Exception as exc:  # noqa: BLE001 - any import failure means: skip
        print(f"lucent: skipped ({exc.__class__.__name__}: {exc}); pip install --no-deps torch-lucent "
              "kornia==0.4.1 to compare")
        return None
    if regs == "standard":
        s = standard_sizes(size)
        transforms = [transform.pad(int(s["pad"]), mode="constant", constant_value=0.5),
                      # lucent's jitter(d) crops at offsets 0..d-1: d = 2j+1 is a shift of ±j.
                      transform.jitter(2 * int(s["jitter"]) + 1),
                      transform.random_scale([1 + (i - 5) / 50 for i in range(11)]),
                      transform.random_rotate(list(range(-10, 11))), transform.jitter(2 * int(s["jitter_late"]) + 1)]
        fft = True
    else:
        transforms, fft = [], False
    total = 0.0
    for u in range(units):
        # render_vis hooks every module and never removes the hooks: a fresh copy per
        # call keeps them from piling up (copying is not timed).
        fresh = copy.deepcopy(model)
        total += timed(lambda: lrender.render_vis(
            fresh, f"{layer}:{u}", lambda: param.image(size, channels=model.input_shape[0], fft=fft,
                                                       decorrelate=False),
            transforms=list(transforms), thresholds=(steps,), preprocess=False, fixed_image_size=size,
            show_image=False, progress=False))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a featviz checkpoint (default: the digits architecture, untrained)")
    parser.add_argument("--layer", default="block2")
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--regs", default="standard", help="featviz regularizers (none or standard)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    units = dict(model.named_modules())[args.layer].units
    size = model.input_shape[-1]
    print(f"{args.layer}: {units} units, {args.steps} steps, regs {args.regs}, torch threads "
          f"{torch.get_num_threads()}")
    batched, single = bench_featviz(model, args.layer, units, args.steps, args.regs)
    print(f"featviz batched   {batched:7.2f} s  ({batched / units * 1000:6.1f} ms per unit)")
    print(f"featviz per unit  {single:7.2f} s  ({single / units * 1000:6.1f} ms per unit)")
    print(f"batched speed-up over one unit at a time: {single / batched:.1f}x")
    lucent = bench_lucent(model, args.layer, units, args.steps, size, args.regs)
    if lucent is not None:
        print(f"lucent per unit   {lucent:7.2f} s  ({lucent / units * 1000:6.1f} ms per unit)")
        print(f"featviz per unit vs lucent: {lucent / single:.2f}x; featviz batched vs lucent: "
              f"{lucent / batched:.1f}x")


if __name__ == "__main__":
    main()
