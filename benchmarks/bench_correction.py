"""Time one optimizer step of the correction study's batched program, per stage.

    python benchmarks/bench_correction.py [--steps 300] [--batch 1024] [--width 16] [--seeds 5] [--repeats 3]
    python benchmarks/bench_correction.py --precision [--steps 10000]

All α × seeds (5 × 5 = 25 runs by default) train as one batched program, as in the study; each stage
runs a fixed number of steps (the plateau rule disabled: patience larger than the steps), on one
thread, and the best of ``--repeats`` timings is reported in milliseconds per step (evaluations
included, one every ``eval_every`` steps as in the study). CPU time of the process is printed beside
the wall clock: on a machine shared with other work the wall clock is inflated by their load.

``--precision`` asks instead whether float32 limits how far the stages converge: stage 1, stage 2 and
a joint stage of ``--steps`` steps (α = 0.1, 0.4, two seeds, the default preset's rule) run once in
float32 and once in float64 from the same start; it prints the final relative validation MSE of each
and how far a float32 evaluation of each trained model is from its float64 evaluation.
"""

from __future__ import annotations

import argparse
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", action="store_true", help="float32 against float64 (see above)")
    args = parser.parse_args()
    if args.precision:
        return precision(args.steps if args.steps != 300 else 10_000)

    import torch

    torch.set_num_threads(1)
    from featviz.studies import correction as study

    config = study.replace(study.PRESETS["default"], batch=args.batch, seeds=args.seeds, widths=(args.width,),
                           patience=10 ** 6)
    seeds, alphas = config.seed_list, torch.tensor(config.alphas, dtype=torch.float64)
    val = study._fixed_samples(config, seeds, config.n_val, 2, alphas, "cpu")
    init = study.init_params(config, args.width, seeds, len(alphas))
    phases = {"stage 1": (study.STAGE1, 1), "stage 2": (study.STAGE2, 2), "joint": (study.ALL, 2)}
    print(f"{len(alphas)} α × {len(seeds)} seeds, batch {args.batch}, width {args.width}, {args.steps} steps, 1 thread")
    for name, (trainable, depth) in phases.items():
        phase = study.Phase(name, trainable, config.lr, depth, args.steps, 0)
        best_wall, best_cpu = float("inf"), float("inf")
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            study.train_phase(config, init, phase, alphas, seeds, val)
            best_wall = min(best_wall, time.perf_counter() - wall)
            best_cpu = min(best_cpu, time.process_time() - cpu)
        print(f"{name:>8}: {1000 * best_wall / args.steps:.2f} ms/step wall, {1000 * best_cpu / args.steps:.2f} ms/step CPU")
    return 0


def precision(steps: int) -> int:
    import torch

    torch.set_num_threads(1)
    from featviz.studies import correction as study

    trained = {}
    for dtype in ("float64", "float32"):
        config = study.replace(study.PRESETS["default"], dtype=dtype, seeds=2, alphas=(0.1, 0.4), widths=(16,))
        seeds, alphas = config.seed_list, torch.tensor(config.alphas, dtype=torch.float64)
        val = study._fixed_samples(config, seeds, config.n_val, 2, alphas, "cpu")
        p = study.init_params(config, 16, seeds, len(alphas))
        for phase in (study.Phase("stage 1", study.STAGE1, config.lr, 1, 3000, 0),
                      study.Phase("stage 2", study.STAGE2, config.lr, 2, 3000, 1),
                      study.Phase("joint stage", study.ALL, config.correction_lr, 2, steps, 2)):
            p, record = study.train_phase(config, p, phase, alphas, seeds, val)
        trained[dtype] = p
        print(f"{dtype}-trained: relative validation MSE after the joint stage (α x seed):",
              record.val_rel_mse.round(10).tolist())
    x, y = val[0].double(), val[1].double()
    for dtype, p in trained.items():
        wide, narrow = {k: v.double() for k, v in p.items()}, {k: v.float() for k, v in p.items()}
        gap = (study._rel_mse(wide, x, y, 2) - study._rel_mse(narrow, x.float(), y.float(), 2).double()).abs()
        print(f"{dtype}-trained: |float32 - float64 evaluation of the relative MSE|, largest: {float(gap.max()):.2g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
