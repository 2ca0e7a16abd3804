"""Benchmark: wall time of the feature-purification study at demo size (``quick``,
one seed) and, with ``--full``, of one seed of the full preset.

    python benchmarks/bench_purification.py [--threads 2] [--full]
"""

from __future__ import annotations

import argparse
import time

import torch

from featviz.studies import purification


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="also time one seed of the full preset")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in ["quick"] + (["full"] if args.full else []):
        start = time.perf_counter()
        r = purification.run(seeds=1, quick=name == "quick", progress=False)
        p = r["purification"]
        ratios = ", ".join(f"{b} {v['mean']:.2f}" for b, v in p["adv_over_clean"].items())
        print(f"{name}: {time.perf_counter() - start:.1f} s wall, {args.threads} threads (machine shared/loaded); "
              f"adv/clean hf_ratio {ratios}; data hf {p['hf_ratio']['data']:.3f}")


if __name__ == "__main__":
    main()
