"""Time the demo-sized image study (``featviz hierarchy images --preset demo``).

Runs :func:`featviz.studies.images.run_demo_image_study` once on one torch thread and
prints wall time, process CPU time (on a loaded machine the CPU time is the better guide
to what an idle one would take) and the headline figures.

    python benchmarks/bench_image_study.py [--out DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time


def main(argv: list[str] | None = None) -> dict:
    import torch

    from featviz.studies.images import run_demo_image_study

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="Output folder (default: a temporary one).")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu = time.perf_counter(), time.process_time()
        results = run_demo_image_study(args.out or f"{tmp}/image-study", progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    teacher = results["teacher"]
    report = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
              "ratio_layerwise_joint": teacher["ratio"]["layerwise/joint"]["mean"],
              "block1_r2_gain": teacher["correction"]["r2_to_teacher"]["block1"]["mean"],
              "digits_unfrozen_minus_frozen": results["frozen_vs_unfrozen"]["classification"]["difference"]["mean"]}
    print(json.dumps(report) if args.json else "\n".join(f"{k}: {v}" for k, v in report.items()))
    return report


if __name__ == "__main__":
    main()
