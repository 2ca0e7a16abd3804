"""Shared fixtures: tiny data and models that build in milliseconds, and a CLI runner."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

# Tiny models run fastest on one thread, and the suite's subprocesses (torchrun, CLI runs) would
# otherwise oversubscribe the cores: set before torch is imported so children inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# The generator prior and the judge are cached under $FEATVIZ_CACHE: never the user's own cache.
os.environ.setdefault("FEATVIZ_CACHE", __import__("tempfile").mkdtemp(prefix="featviz-test-cache-"))

import matplotlib  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

matplotlib.use("Agg")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys):
    """Run ``featviz ARGS...`` in-process; returns exit code, stdout and stderr."""
    from featviz.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_synthetic():
    from featviz.data import load_synthetic

    return load_synthetic(d=6, k=2, depth=2, alpha=0.3, n_train=512, n_val=128, n_test=256, seed=0)


@pytest.fixture(scope="session")
def tiny_digits():
    """Digits at 8×8, 300 train / 120 test images."""
    from featviz.data import load_digits

    data = load_digits(image_size=8)
    data.x_train, data.y_train = data.x_train[:300], data.y_train[:300]
    data.x_test, data.y_test = data.x_test[:120], data.y_test[:120]
    return data


@pytest.fixture
def tiny_convnet():
    from featviz.devices import seeded
    from featviz.nets import QuadraticDenseConvNet

    with seeded(0):
        return QuadraticDenseConvNet(1, 10, widths=(4, 6), image_size=8)


def pytest_report_header(config):
    return f"torch {torch.__version__}, threads {torch.get_num_threads()}, python {sys.version.split()[0]}"
