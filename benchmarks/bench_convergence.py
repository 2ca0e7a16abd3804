"""Benchmark: the share of renders that pass the convergence check, per setting and budget.

Every unit of the given specs (default: blocks 2 and 3 and the class logits of
``models/digits-joint``, 74 renders) is rendered under each setting at each step count
with the convergence check on, as ``featviz maximize`` does; the script prints the share
converged per setting and writes every cell (with the per-spec shares, the median
activation and the CPU seconds) as JSON.

``--check fixed`` is the library's check (a continuation of at most ``CHECK_STEPS``
steps, :func:`featviz.vis.render.check_steps`); ``--check double`` reruns the earlier
rule, a continuation as long as the render, for comparison.

    python benchmarks/bench_convergence.py --steps 1024,2048,4096 --seeds 0,1 --out conv.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import time

import torch

from featviz.sources import load_target

M = importlib.import_module("featviz.vis.maximize")  # the module (the package exports the function)
SETTINGS = ("none", "standard", "sphere", "pca", "generator")
SPECS = ("block2:*", "block3:*", "logits:*")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="models/digits-joint")
    ap.add_argument("--regs", default=",".join(SETTINGS))
    ap.add_argument("--specs", default=",".join(SPECS))
    ap.add_argument("--steps", default="1024")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--check", choices=("fixed", "double"), default="fixed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON file for every cell (appended to when it exists)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.check == "double":
        M.check_steps = lambda steps: steps
    target = load_target(args.checkpoint)
    data = target.data
    cells = []
    if args.out:
        try:
            with open(args.out) as f:
                cells = json.load(f)["cells"]
        except FileNotFoundError:
            pass
    specs = args.specs.split(",")
    for steps in (int(s) for s in args.steps.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            for reg in args.regs.split(","):
                start = time.process_time()
                m = M.maximize(target.model, specs, [reg], shape=target.input_shape, steps=steps, lr=args.lr,
                               seed=seed, preprocess=target.preprocess, dataset=data.x_train, top_k=1)
                cpu = time.process_time() - start
                imgs = m.images
                conv = [i.converged for i in imgs]
                by_layer: dict[str, list[bool]] = {}
                for i in imgs:
                    by_layer.setdefault(i.neuron.layer, []).append(bool(i.converged))
                cell = {"reg": reg, "steps": steps, "seed": seed, "check": args.check, "lr": args.lr,
                        "n": len(conv), "converged": sum(map(bool, conv)) / len(conv),
                        "by_layer": {k: sum(v) / len(v) for k, v in by_layer.items()},
                        "median_activation": {k: statistics.median(i.activation for i in imgs if i.neuron.layer == k)
                                              for k in by_layer},
                        "cpu_s": cpu}
                cells.append(cell)
                print(f"{reg:10s} steps {steps:5d} seed {seed} check {args.check:6s} converged "
                      f"{cell['converged']:6.1%}  " + " ".join(f"{k} {v:.0%}" for k, v in cell["by_layer"].items())
                      + f"  cpu {cpu:6.1f} s", flush=True)
                if args.out:
                    tmp = args.out + ".tmp"
                    with open(tmp, "w") as f:
                        json.dump({"format": "featviz-render-convergence/1", "checkpoint": args.checkpoint,
                                   "specs": specs, "cells": cells}, f, indent=1)
                    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
