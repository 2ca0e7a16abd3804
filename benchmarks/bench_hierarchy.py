"""Time the hierarchy study's default preset (acceptance: <= 6 minutes on 2 CPU cores)
and print its acceptance figures.

    python benchmarks/bench_hierarchy.py [--preset default] [--seeds S] [--workers W] [--out DIR]

Reports wall-clock seconds and CPU seconds (this process and its worker processes): on a
machine shared with other work the wall clock is inflated by their load, the CPU time
much less so; CPU seconds / cores is what an idle machine would take at best. The
acceptance figures are printed per seed (matched total budget: every learner makes the
same optimizer steps).
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
    parser.add_argument("--preset", default="default")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--workers", type=int, default=1, help="processes fitting in parallel")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default: the preset's)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-hierarchy"))
    parser.add_argument("--budget", type=float, default=360.0, help="seconds allowed (default 6 minutes)")
    args = parser.parse_args()

    import torch

    from featviz.studies.hierarchy import preset, run_study, write_study

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), _cpu_seconds()
    results = run_study(preset(args.preset, seed=args.seed, seeds=args.seeds), device="cpu", progress=True,
                        workers=args.workers)
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    write_study(results, args.out)
    s, c = results["summary"], results["correction"]
    seeds = results["ratios_seeds"]["layerwise/joint"]
    figures = {
        "layerwise/joint rel. test MSE per seed (>= 2 in every seed)": seeds,
        "layer-1 gain of the joint stage, best of R² to / R² from / CKA, per seed (>= 0.10)":
            c["layer1_best_gain_seeds"],
        "optimizer steps per learner (equal)": [s[n]["total_steps"] for n in ("joint", "layerwise",
                                                                             "layerwise+joint", "shallow")],
    }
    print(f"preset {args.preset}: {len(results['config']['seeds'])} seeds, torch threads {torch.get_num_threads()}, "
          f"workers {args.workers}")
    for name, row in s.items():
        print(f"  {name:<16} rel. test MSE {row['rel_test_mse']:.4g} ± {row['rel_test_mse_std']:.2g}  "
              f"R² {' '.join(f'{v:.3f}' for v in row['feature_r2'])}")
    for name, value in figures.items():
        print(f"  {name}: {', '.join(f'{v:.3g}' for v in value)}")
    for line in results["lr_edge_warnings"]:
        print(f"  warning: {line}")
    print(f"wall {wall:.1f} s (budget {args.budget:.0f} s), CPU {cpu:.1f} s, "
          f"load average at start {load_before:.2f}, end {os.getloadavg()[0]:.2f} -> {args.out}")
    return 0 if wall <= args.budget else 1


if __name__ == "__main__":
    sys.exit(main())
