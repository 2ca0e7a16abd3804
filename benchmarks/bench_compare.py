"""Time the full training-mode comparison on digits, reusing nothing (acceptance:
<= 10 minutes on 2 CPU cores), and print its table.

    python benchmarks/bench_compare.py [--modes joint,layerwise,layerwise+joint,adv] [--seeds 5]
                                       [--workers 2] [--attack NAME] [--out DIR]

Reports wall-clock seconds and CPU seconds (this process and its worker processes): on a
machine shared with other work the wall clock is inflated by their load, the CPU time
much less so. ``--out`` receives results.json, table.md and the plots (no models).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the --workers processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="joint,layerwise,layerwise+joint,adv")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs-total", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2, help="processes running (mode, seed) jobs")
    parser.add_argument("--attack", default=None, help="default: autoattack-fast if available, else PGD fallback")
    parser.add_argument("--bisect-steps", type=int, default=5, help="bisections refining each minimal ε")
    parser.add_argument("--eps", default=None, help="comma-separated ε (default: the library's grid)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-compare"))
    parser.add_argument("--budget", type=float, default=600.0, help="seconds allowed (default 10 minutes)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch

    from featviz.studies.compare import CompareSpec, format_table, run_compare, write_compare

    torch.set_num_threads(1)
    spec = CompareSpec(modes=tuple(args.modes.split(",")), seeds=args.seeds, seed=args.seed,
                       epochs_total=args.epochs_total, attack=args.attack, bisect_steps=args.bisect_steps,
                       **({"eps": tuple(float(e) for e in args.eps.split(","))} if args.eps else {}))
    wall, cpu = time.perf_counter(), _cpu_seconds()
    results = run_compare(spec, workers=args.workers, progress=True)
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    results["benchmark"] = {"wall_seconds": round(wall, 1), "cpu_seconds": round(cpu, 1), "workers": args.workers,
                            "cpu_count": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
                            "reused": len(results["reused"])}
    write_compare(results, args.out)
    print(format_table(results))
    verdict = "within" if wall <= args.budget else "OVER"
    print(f"compare: {wall:.1f} s wall, {cpu:.1f} s CPU, {args.workers} workers, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: {verdict} the {args.budget:.0f} s budget -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
