"""Benchmark: how much activation each regularization setting keeps against how close
its images come to the data's spectrum (the trade-off the `standard` recipe sits on).

For every setting: all units of one layer rendered as one batch (same seed, steps and
learning rate as ``none``), then the median over units of activation / activation
under ``none`` and the median hf_ratio, beside the data's median hf_ratio. ``native``
renders at the data's native resolution and upsamples the way the digits loader does
(bilinear), an experiment kept here rather than in the library.

    python benchmarks/bench_recipe_frontier.py [--checkpoint models/digits-joint] [--layer block2]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import time

import torch
import torch.nn.functional as F

from featviz.checkpoint import load_checkpoint
from featviz.data import load_dataset
from featviz.vis import param as P
from featviz.vis.metrics import data_baseline, flat_threshold, hf_ratio, total_variation

SETTINGS = ("standard", "fft+pad+jitter", "fft:2+pad+jitter", "fft:2", "standard+fft:2", "standard+fft:3",
            "tv:0.5", "tv:2", "tv:8", "blur:0.5", "blur:1", "fft+pad+jitter+tv:2", "l2+tv:1")


class Native(P.ImageParam):
    """An image parameterized at ``native``×``native`` and upsampled bilinearly to the model's size."""

    def __init__(self, inner: P.ImageParam, shape):
        super().__init__(shape, inner.batch)
        self.inner = inner

    def latent(self):
        return self.inner.latent()

    def forward(self):
        return F.interpolate(self.inner(), size=self.shape[1:], mode="bilinear", align_corners=False)

    def blur_(self, sigma):
        self.inner.blur_(sigma)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="models/digits-joint")
    ap.add_argument("--layer", default="block2")
    ap.add_argument("--steps", type=int, default=256)
    ap.add_argument("--native", type=int, default=8, help="native side for the native-resolution rows (0: skip)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    render_mod = importlib.import_module("featviz.vis.render")
    ckpt = load_checkpoint(args.checkpoint)
    data = load_dataset(ckpt.card["dataset"]["name"], image_size=ckpt.card["dataset"].get("image_size"))
    base = data_baseline(data.x_train)
    print(f"data: median hf_ratio {base['hf_ratio']:.3f}, target <= {2 * base['hf_ratio']:.3f} at >= 50 % activation")
    spec = f"{args.layer}:*"

    def run(reg: str, native: int = 0):
        original = render_mod.image_param
        if native:
            render_mod.image_param = lambda kind, shape, batch=1, **kw: Native(
                original(kind, (shape[0], native, native), batch, **kw), shape)
        try:
            return render_mod.render(ckpt.model, spec, regs=reg, steps=args.steps)
        finally:
            render_mod.image_param = original

    start = time.perf_counter()
    none = run("none")
    rows = [(s, 0) for s in SETTINGS] + ([(s, args.native) for s in ("none", "fft", "standard")] if args.native else [])
    print(f"{'setting':<30} {'act/none':>9} {'hf_ratio':>9} {'hf/data':>8} {'flat':>5}  (hf median over non-flat)")
    for reg, native in rows:
        r = run(reg, native)
        keep = statistics.median((r.scores / none.scores).tolist())
        flat = total_variation(r.images) < flat_threshold(base)
        scored = hf_ratio(r.images)[~flat].tolist()
        hf = statistics.median(scored) if scored else float("nan")
        label = reg + (f" @native{native}" if native else "")
        print(f"{label:<30} {keep:>9.3f} {hf:>9.3f} {hf / base['hf_ratio']:>8.1f} {int(flat.sum()):>5}", flush=True)
    print(f"({time.perf_counter() - start:.0f} s, 1 thread, machine shared/loaded)")


if __name__ == "__main__":
    main()
