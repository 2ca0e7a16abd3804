"""torch.distributed support: a real `torchrun --nproc-per-node 2` (gloo on CPU) against one process."""

import copy
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from featviz.distributed import DistContext, restore_batchnorm, shard_range, use_global_batchnorm
from featviz.nets import QuadraticDenseConvNet

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))
TINY = ["--dataset", "synthetic", "--input-dim", "6", "--k", "2", "--teacher-depth", "2", "--n-train", "1000",
        "--depth", "2", "--width", "8", "--batch-size", "64", "--mode", "layerwise+joint", "--epochs-per-stage", "2"]


@given(st.integers(0, 500), st.integers(1, 8))
def test_shards_partition_the_range(n, world):
    parts = [shard_range(n, DistContext(rank=r, world_size=world)) for r in range(world)]
    assert [i for p in parts for i in p] == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_global_batchnorm_matches_batchnorm_in_one_process():
    model = QuadraticDenseConvNet(1, 10, widths=(4, 6), image_size=8).train()
    glob = use_global_batchnorm(copy.deepcopy(model)).train()
    x = torch.rand(16, 1, 8, 8)
    assert torch.allclose(model(x), glob(x), atol=1e-5)
    restored = restore_batchnorm(glob).eval()
    assert type(restored.block1.norm) is torch.nn.BatchNorm2d
    assert torch.allclose(model.eval()(x), restored(x), atol=1e-5)  # running statistics updated alike


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found next to the interpreter")
def test_torchrun_two_ranks_match_single_process(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    ddp = subprocess.run([TORCHRUN, "--nproc-per-node", "2", "--standalone", "-m", "featviz", "train", *TINY,
                          "--out", str(tmp_path / "ddp"), "--json"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert ddp.stdout.count('"checkpoint"') == 1  # rank 0 alone reports (and writes)
    single = subprocess.run([sys.executable, "-m", "featviz", "train", *TINY, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "ddp" / "model.safetensors"), load_file(tmp_path / "one" / "model.safetensors")
    assert a.keys() == b.keys()
    assert max(float((a[k].double() - b[k].double()).abs().max()) for k in a) < 1e-4
    ca, cb = (json.loads((tmp_path / d / "card.json").read_text()) for d in ("ddp", "one"))
    assert ca["metrics"]["rel_test_mse"] == pytest.approx(cb["metrics"]["rel_test_mse"], rel=1e-4)
    assert [s["name"] for s in ca["metrics"]["stages"]] == ["block1", "block2", "joint"]


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _run(*argv):
    env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    res = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


def _sharded_and_single(tmp_path, args, epochs):
    """Train a tiny digits checkpoint, then run ``featviz ARGS`` under torchrun (2 ranks) into
    tmp/ddp and in one process into tmp/one."""
    ck = tmp_path / "ck"
    _run(sys.executable, "-m", "featviz", "train", "--dataset", "digits", "--image-size", "8", "--width", "4",
         "--depth", "2", "--epochs", epochs, "--out", ck)
    args = [args[0], ck, *args[1:]]
    _run(TORCHRUN, "--nproc-per-node", "2", "--standalone", "-m", "featviz", *args, "--out", tmp_path / "ddp")
    _run(sys.executable, "-m", "featviz", *args, "--out", tmp_path / "one")
    return tmp_path / "ddp", tmp_path / "one"


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found next to the interpreter")
def test_torchrun_sharded_attack_matches_single_process(tmp_path):
    ddp, one = _sharded_and_single(tmp_path, ["attack", "--attack", "pgd", "--eps-sweep", "0:0.2:3", "--steps", "3",
                                              "--n-examples", "100", "--batch-size", "32", "--n-show", "2"], 2)
    a, b = (json.loads((d / "results.json").read_text()) for d in (ddp, one))
    assert sum(1 for _ in a["models"][0]["attacks"][0]["curve"]) == 3
    assert _strip(a)["models"] == _strip(b)["models"]  # every curve point, norm and minimal-eps figure
    assert (ddp / "results.csv").read_text() == (one / "results.csv").read_text()


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun not found next to the interpreter")
def test_torchrun_sharded_maximize_matches_single_process(tmp_path):
    # block2 has 8 units: chunks of 3 units -> 3 batches per setting, 6 in all, dealt to 2 ranks
    ddp, one = _sharded_and_single(tmp_path, ["maximize", "--neuron", "block2:*", "--reg", "none", "--reg",
                                              "standard", "--compare-regs", "--steps", "6", "--top-k", "2",
                                              "--max-batch", "3"], 1)
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (ddp, one))
    assert len(a["images"]) == 16
    assert _strip(a) == _strip(b)
    pngs = sorted(p.name for p in one.glob("*.png"))
    assert pngs and pngs == sorted(p.name for p in ddp.glob("*.png"))
    for name in pngs:
        assert (ddp / name).read_bytes() == (one / name).read_bytes(), name
