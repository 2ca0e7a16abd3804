"""featviz `autoattack` / `autoattack-fast` vs torchattacks' AutoAttack, in one process,
same model and images (all digits test images unless --n).

For each checkpoint and ε: robust accuracy and seconds of
  - featviz autoattack: APGD-CE (100 steps) → APGD-T (9 targets × 100) → Square (5,000 queries),
    each on the examples still standing (robustness_curve, no bisection);
  - featviz autoattack-fast (the two APGD parts; its accuracy is also read off the full run's
    components, which draw the same random numbers);
  - torchattacks.AutoAttack(norm="Linf", version="standard", n_classes=10, seed=0) (APGD-CE,
    APGD-T, FAB-T, Square 5,000 queries; note torchattacks 3.5 builds its APGD, APGD-T and FAB
    with their default 10 steps, not AutoAttack's 100);
  - with --equal-budget: torchattacks' MultiAttack of the same parts at featviz's budgets,
    APGD-CE 100 steps, APGD-T 100 steps (9 targets), Square 5,000 queries.
Prints the ratios time(featviz autoattack) / time(torchattacks), at equal budgets when
measured, and time(torchattacks AutoAttack) / time(featviz autoattack-fast), and the accuracies.

    python benchmarks/bench_autoattack.py --checkpoint models/digits-joint --eps 0.05 0.1 [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


class Clock:
    """Wall and CPU seconds of this process since creation (on a shared machine the CPU
    seconds are the fairer figure: other jobs' load changes wall time between runs)."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self, row: dict, key: str) -> None:
        row[key] = time.perf_counter() - self.wall
        row[key.replace("_s", "_cpu_s")] = time.process_time() - self.cpu


def main(argv: list[str] | None = None) -> list[dict]:
    from featviz.attacks import make_attack, robustness_curve
    from featviz.checkpoint import load_checkpoint
    from featviz.data import load_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", nargs="+", required=True, help="digits checkpoint folders")
    ap.add_argument("--eps", type=float, nargs="+", default=[0.05, 0.1])
    ap.add_argument("--n", type=int, help="first N test images (default all)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-fast", action="store_true", help="do not time autoattack-fast separately")
    ap.add_argument("--equal-budget", action="store_true",
                    help="also time torchattacks' APGD-CE/APGD-T (100 steps) + Square (5,000) MultiAttack")
    ap.add_argument("--json", help="write the rows to this file")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    import torchattacks

    data = load_dataset("digits")
    x, y = data.x_test[:a.n], data.y_test[:a.n]
    rows = []
    for path in a.checkpoint:
        model = load_checkpoint(path).model.eval()
        for eps in a.eps:
            row = {"checkpoint": path, "eps": eps, "n": len(y)}
            clock = Clock()
            rep = robustness_curve(model, x, y, make_attack("autoattack"), [eps], seed=0, progress=False,
                                   batch_size=len(y))
            clock.stop(row, "featviz_autoattack_s")
            row["featviz_autoattack"] = rep.robust_accuracy()[0]
            comp = rep.components(0)
            row["components"] = comp
            row["featviz_autoattack_fast_from_components"] = row["featviz_autoattack"] + comp[-1]["broken"] / len(y)
            if not a.no_fast:
                clock = Clock()
                fast = robustness_curve(model, x, y, make_attack("autoattack-fast"), [eps], seed=0, progress=False,
                                        batch_size=len(y))
                clock.stop(row, "featviz_autoattack_fast_s")
                row["featviz_autoattack_fast"] = fast.robust_accuracy()[0]
            clock = Clock()
            xa = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)(x, y)
            clock.stop(row, "torchattacks_s")
            with torch.no_grad():
                row["torchattacks"] = float((model(xa).argmax(1) == y).float().mean())
            row["ratio_autoattack"] = row["featviz_autoattack_s"] / row["torchattacks_s"]
            row["ratio_autoattack_cpu"] = row["featviz_autoattack_cpu_s"] / row["torchattacks_cpu_s"]
            if a.equal_budget:
                parts = [torchattacks.APGD(model, norm="Linf", eps=eps, steps=100, loss="ce", n_restarts=1, seed=0),
                         torchattacks.APGDT(model, norm="Linf", eps=eps, steps=100, n_restarts=1, n_classes=10,
                                            seed=0),
                         torchattacks.Square(model, norm="Linf", eps=eps, n_queries=5000, n_restarts=1, seed=0)]
                clock = Clock()
                xa = torchattacks.MultiAttack(parts)(x, y)
                clock.stop(row, "torchattacks_equal_s")
                with torch.no_grad():
                    row["torchattacks_equal"] = float((model(xa).argmax(1) == y).float().mean())
                row["ratio_equal_budget"] = row["featviz_autoattack_s"] / row["torchattacks_equal_s"]
                row["ratio_equal_budget_cpu"] = row["featviz_autoattack_cpu_s"] / row["torchattacks_equal_cpu_s"]
                print(f"  torchattacks APGD-CE/APGD-T 100 steps + Square 5000: {row['torchattacks_equal']:.4f} "
                      f"({row['torchattacks_equal_s']:.1f} s); featviz autoattack / that = "
                      f"{row['ratio_equal_budget']:.2f} (CPU {row['ratio_equal_budget_cpu']:.2f})", flush=True)
            if "featviz_autoattack_fast_s" in row:
                row["speedup_fast"] = row["torchattacks_s"] / row["featviz_autoattack_fast_s"]
                row["speedup_fast_cpu"] = row["torchattacks_cpu_s"] / row["featviz_autoattack_fast_cpu_s"]
            rows.append(row)
            fast_txt = (f"  fast {row['featviz_autoattack_fast']:.4f} ({row['featviz_autoattack_fast_s']:.1f} s, "
                        f"torchattacks/fast {row['speedup_fast']:.2f}x, CPU {row['speedup_fast_cpu']:.2f}x)" if "speedup_fast" in row else
                        f"  fast {row['featviz_autoattack_fast_from_components']:.4f} (from components)")
            print(f"{path} eps={eps:g}: featviz autoattack {row['featviz_autoattack']:.4f} "
                  f"({row['featviz_autoattack_s']:.1f} s)  torchattacks AutoAttack {row['torchattacks']:.4f} "
                  f"({row['torchattacks_s']:.1f} s)  ratio featviz/torchattacks {row['ratio_autoattack']:.2f} "
                  f"(CPU seconds {row['featviz_autoattack_cpu_s']:.1f} / {row['torchattacks_cpu_s']:.1f} = "
                  f"{row['ratio_autoattack_cpu']:.2f})"
                  f"{fast_txt}  components {comp}", flush=True)
            if a.json:
                with open(a.json, "w") as f:
                    json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
