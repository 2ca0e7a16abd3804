"""featviz attacks vs torchattacks, in one process, same model, inputs, steps and start.

(a) PGD-L∞ (ε=0.1, step 0.01, 20 steps, no random start) on the whole digits test set:
    time ratio featviz / torchattacks (median of --repeats alternating runs) and the
    largest difference between the adversarial images. featviz returns predictions on
    its adversarial images; torchattacks users need one more forward pass for them, so
    the ratio is printed with and without that pass.
(b) An 8-ε robust-accuracy sweep (ε = 0..0.3, 20 steps of ε/8, random start):
    torchattacks once per ε vs featviz's warm-started sweep (no bisection); time ratio
    and robust accuracy at every ε.

    python benchmarks/bench_attack.py --checkpoint models/digits-joint [--repeats 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch


def _time(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> dict:
    from featviz.checkpoint import load_checkpoint
    from featviz.data import load_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="A digits checkpoint folder (featviz train --dataset digits).")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sweep-repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["pgd", "sweep"], help="Run only part (a) or (b).")
    ap.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = ap.parse_args(argv)

    ckpt = load_checkpoint(args.checkpoint)
    model = ckpt.model.eval()
    info = ckpt.card["dataset"]
    data = load_dataset(info["name"], image_size=info.get("image_size"))
    x, y = data.x_test, data.y_test
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    result = {"threads": torch.get_num_threads()}
    eps, step, steps = 0.1, 0.01, 20
    if args.only != "sweep":
        result["pgd"] = _bench_pgd(model, x, y, eps, step, steps, args.repeats, log)
    if args.only != "pgd":
        result["sweep"] = _bench_sweep(model, x, y, steps, args.sweep_repeats, args.seed, log)
    if args.json:
        print(json.dumps(result, indent=2))
    return result


def _bench_pgd(model, x, y, eps: float, step: float, steps: int, repeats: int, log) -> dict:
    """(a) one PGD run, identical settings."""
    import torchattacks

    from featviz.attacks import GradientAttack

    ours = GradientAttack("pgd", "linf", steps, step_size=step, random_start=False, keep_best=False,
                          early_stop=False)
    theirs = torchattacks.PGD(model, eps=eps, alpha=step, steps=steps, random_start=False)
    t_ours, t_theirs, t_theirs_pred = [], [], []
    for r in range(repeats):
        for who in ((0, 1) if r % 2 == 0 else (1, 0)):  # alternate the order: shared CPUs drift
            if who == 0:
                dt, res = _time(lambda: ours(model, x, y, eps))
                t_ours.append(dt)
                x_ours = res.x_adv
            else:
                dt, x_theirs = _time(lambda: theirs(x, y))
                dt2, _ = _time(lambda: model(x_theirs).argmax(1))
                t_theirs.append(dt)
                t_theirs_pred.append(dt + dt2)
    diff = float((x_ours - x_theirs).abs().max())
    a = {"featviz_s": statistics.median(t_ours), "torchattacks_s": statistics.median(t_theirs),
         "torchattacks_with_predictions_s": statistics.median(t_theirs_pred),
         "ratio": statistics.median(o / t for o, t in zip(t_ours, t_theirs_pred)),
         "ratio_attack_only": statistics.median(o / t for o, t in zip(t_ours, t_theirs)),
         "max_abs_diff": diff, "images": len(x), "steps": steps}
    log(f"(a) PGD-Linf eps={eps} step={step} {steps} steps, {len(x)} images: featviz {a['featviz_s']:.3f} s, "
        f"torchattacks {a['torchattacks_s']:.3f} s (+predictions {a['torchattacks_with_predictions_s']:.3f} s)")
    log(f"    ratio featviz/torchattacks {a['ratio']:.3f} (vs attack only: {a['ratio_attack_only']:.3f}); "
        f"max |difference| {diff:.2e}")
    return a


def _bench_sweep(model, x, y, steps: int, repeats: int, seed: int, log) -> dict:
    """(b) the 8-ε sweep: torchattacks once per ε vs featviz's warm-started sweep."""
    import torchattacks

    from featviz.attacks import pgd, robustness_curve
    from featviz.devices import generator

    grid = [0.3 * i / 7 for i in range(8)]
    sweep_ours, sweep_theirs, acc_ours, acc_theirs = [], [], None, None
    for r in range(repeats):
        def run_theirs():
            torch.manual_seed(seed + r)  # torchattacks draws its random start from the global RNG
            accs = []
            for e in grid:
                adv = torchattacks.PGD(model, eps=e, alpha=e / 8, steps=steps, random_start=True)(x, y)
                with torch.no_grad():
                    accs.append(float((model(adv).argmax(1) == y).float().mean()))
            return accs

        def run_ours():
            rep = robustness_curve(model, x, y, pgd(steps), grid, gen=generator(seed + r), bisect_steps=0,
                                   n_show=0, progress=False)
            return rep.robust_accuracy()

        for who in ((0, 1) if r % 2 == 0 else (1, 0)):
            if who == 0:
                dt, acc_ours = _time(run_ours)
                sweep_ours.append(dt)
            else:
                dt, acc_theirs = _time(run_theirs)
                sweep_theirs.append(dt)
    b = {"featviz_s": statistics.median(sweep_ours), "torchattacks_s": statistics.median(sweep_theirs),
         "speedup": statistics.median(t / o for o, t in zip(sweep_ours, sweep_theirs)), "eps": grid,
         "featviz_robust_accuracy": acc_ours, "torchattacks_robust_accuracy": acc_theirs,
         "max_excess_points": max(100 * (o - t) for o, t in zip(acc_ours, acc_theirs))}
    log(f"(b) 8-eps sweep, {steps} steps of eps/8, random start: featviz {b['featviz_s']:.2f} s, "
        f"torchattacks {b['torchattacks_s']:.2f} s, speed-up {b['speedup']:.2f}x")
    for e, o, t in zip(grid, acc_ours, acc_theirs):
        log(f"    eps {e:.3f}: robust accuracy featviz {o:.4f}  torchattacks {t:.4f}")
    log(f"    featviz minus torchattacks, worst: {b['max_excess_points']:+.2f} points")
    return b


if __name__ == "__main__":
    main()
