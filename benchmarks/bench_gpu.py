"""GPU fast paths, each measured as a ratio against float32/eager in the same process.

Reports (one JSON object on stdout, a table on stderr):
  1. training throughput (images/s) of the quadratic conv DenseNet at CIFAR-10 size (3×32×32),
     fp32 eager vs bf16 autocast, + channels_last, + torch.compile;
  2. PGD-L∞ throughput (images·steps/s), featviz vs torchattacks (same model, batch, steps, no random
     start), and featviz under bf16 autocast;
  3. batched rendering throughput (units·steps/s) of all units of block2, fp32 vs bf16 autocast.

Inputs are random tensors of CIFAR-10's shape (nothing is downloaded). Usage:
  python benchmarks/bench_gpu.py --device cuda          # the real check (benchmarks/gpu_check.sh)
  python benchmarks/bench_gpu.py --device cpu --quick   # smoke run of the same code paths
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from featviz.data import Dataset
from featviz.devices import resolve_device, seeded
from featviz.nets import QuadraticDenseConvNet
from featviz.train import TrainConfig, train_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device, repeats: int = 1) -> float:
    """Median wall time of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _model(device: torch.device) -> QuadraticDenseConvNet:
    with seeded(0):
        return QuadraticDenseConvNet(3, 10, widths=(32, 64, 64), image_size=32).to(device)


def bench_training(device: torch.device, n: int, epochs: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen)
    data = Dataset("random-cifar-shape", "classification", x, y, x[:0], y[:0], x[:256], y[:256], num_classes=10)
    variants = {"fp32": {}, "bf16": {"amp": "bf16"}, "bf16+channels_last": {"amp": "bf16", "channels_last": True},
                "bf16+channels_last+compile": {"amp": "bf16", "channels_last": True, "compile": True}}
    out = {}
    for name, kw in variants.items():
        model = _model(device)
        cfg = TrainConfig(epochs=epochs, batch_size=256, **kw)
        seconds = _timed(lambda: train_model(model, data, cfg, device=device, progress=False), device)
        out[name] = n * epochs / seconds
    return {"images_per_s": out, "ratio_vs_fp32": {k: v / out["fp32"] for k, v in out.items()}}


def bench_pgd(device: torch.device, n: int, steps: int) -> dict:
    import torchattacks

    from featviz.attacks import pgd

    model = _model(device).eval()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(n, 3, 32, 32, generator=gen).to(device), torch.randint(0, 10, (n,), generator=gen).to(device)
    eps = 8 / 255
    ours = pgd(steps=steps, random_start=False, early_stop=False, keep_best=False, step_size=eps / 4)
    theirs = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=steps, random_start=False)

    def run_bf16():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            ours(model, x, y, eps)

    t_ours = _timed(lambda: ours(model, x, y, eps), device, 3)
    t_ta = _timed(lambda: theirs(x, y), device, 3)
    t_bf16 = _timed(run_bf16, device, 3)
    same = float((ours(model, x, y, eps).x_adv - theirs(x, y)).abs().max())
    rate = lambda t: n * steps / t  # noqa: E731
    return {"image_steps_per_s": {"featviz": rate(t_ours), "torchattacks": rate(t_ta), "featviz_bf16": rate(t_bf16)},
            "time_ratio_featviz_over_torchattacks": t_ours / t_ta, "bf16_speedup": t_ours / t_bf16,
            "max_abs_diff_vs_torchattacks": same}


def bench_render(device: torch.device, steps: int) -> dict:
    from featviz.vis import render

    model = _model(device).eval()

    def fp32():
        render(model, "block2:*", shape=(3, 32, 32), regs="standard", steps=steps, device=device)

    def bf16():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            fp32()

    t32, t16 = _timed(fp32, device), _timed(bf16, device)
    units = model.block2.units
    return {"unit_steps_per_s": {"fp32": units * steps / t32, "bf16": units * steps / t16}, "bf16_speedup": t32 / t16}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, to check the code paths on a CPU")
    args = ap.parse_args()
    device = resolve_device(args.device)
    big = not args.quick
    report = {"device": str(device), "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__}
    report["training"] = bench_training(device, 16384 if big else 512, 2 if big else 1)
    report["pgd"] = bench_pgd(device, 2048 if big else 64, 20 if big else 3)
    report["render"] = bench_render(device, 128 if big else 4)
    print(json.dumps(report, indent=2))
    tr, pg, rd = report["training"], report["pgd"], report["render"]
    print("training images/s: " + ", ".join(f"{k} {v:,.0f} ({tr['ratio_vs_fp32'][k]:.2f}x)"
                                           for k, v in tr["images_per_s"].items()), file=sys.stderr)
    print(f"PGD image-steps/s: featviz {pg['image_steps_per_s']['featviz']:,.0f}, torchattacks "
          f"{pg['image_steps_per_s']['torchattacks']:,.0f} (time ratio {pg['time_ratio_featviz_over_torchattacks']:.2f}), "
          f"bf16 {pg['bf16_speedup']:.2f}x", file=sys.stderr)
    print(f"render unit-steps/s: fp32 {rd['unit_steps_per_s']['fp32']:,.0f}, bf16 {rd['bf16_speedup']:.2f}x",
          file=sys.stderr)


if __name__ == "__main__":
    main()
