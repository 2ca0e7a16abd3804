"""Peak memory of `featviz attack` over 10,000 28×28 images (MNIST format, made up here).

The attack streams the test set through the model in batches, so its peak resident memory should not
grow with the number of examples. Prints the peak RSS of the attack process (from the kernel's
rusage of that child alone) for 1,000 and 10,000 examples, and their ratio.

    python benchmarks/bench_memory.py
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

LIMIT_GIB = 1.5


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, n_train: int, n_test: int) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    # blurry class-dependent blobs, so the model learns something and the attack has work to do
    labels_tr, labels_te = rng.integers(0, 10, n_train), rng.integers(0, 10, n_test)

    def images(labels):
        yy, xx = np.mgrid[0:28, 0:28]
        cx, cy = 6 + 2 * (labels % 5), 8 + 6 * (labels // 5)
        blob = np.exp(-((xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2) / 18.0)
        return np.clip(255 * blob + rng.normal(0, 20, blob.shape), 0, 255)

    write_idx(raw / "train-images-idx3-ubyte", images(labels_tr))
    write_idx(raw / "train-labels-idx1-ubyte", labels_tr)
    write_idx(raw / "t10k-images-idx3-ubyte", images(labels_te))
    write_idx(raw / "t10k-labels-idx1-ubyte", labels_te)


def peak_rss_gib(argv: list[str]) -> tuple[int, float]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, TQDM_DISABLE="1"))
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed: {proc.stderr.read().decode()[-800:]}")
    return proc.returncode, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def main() -> None:
    featviz = [sys.executable, "-m", "featviz"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_mnist(root / "data", n_train=2000, n_test=10000)
        subprocess.run(featviz + ["train", "--dataset", "mnist", "--data-root", str(root / "data"), "--width", "8",
                                  "--epochs", "1", "--out", str(root / "ck")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, TQDM_DISABLE="1"))
        peaks = {}
        for n in (1000, 10000):
            _, peaks[n] = peak_rss_gib(featviz + ["attack", str(root / "ck"), "--data-root", str(root / "data"),
                                                  "--attack", "pgd", "--eps", "0.1", "--steps", "5",
                                                  "--n-examples", str(n), "--n-show", "2",
                                                  "--out", str(root / f"att{n}")])
        clean = json.loads((root / "att10000" / "results.json").read_text())["models"][0]["clean_accuracy"]
    report = {"peak_rss_gib": {str(k): round(v, 3) for k, v in peaks.items()},
              "ratio_10000_over_1000": round(peaks[10000] / peaks[1000], 3), "limit_gib": LIMIT_GIB,
              "clean_accuracy": clean, "within_limit": peaks[10000] <= LIMIT_GIB}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
