import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SYN = ["--dataset", "synthetic", "--d", "6", "--k", "2", "--teacher-depth", "2", "--n-train", "400",
       "--depth", "2", "--width", "8", "--epochs", "2"]


def test_train_then_info_json(run_cli, tmp_path):
    out = tmp_path / "syn"
    res = run_cli("train", *SYN, "--mode", "layerwise", "--out", out, "--json")
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert [s["name"] for s in summary["stages"]] == ["block1", "block2"]
    assert 0 < summary["metrics"]["rel_test_mse"] < 10
    card = json.loads((out / "card.json").read_text())
    assert card["training"]["mode"] == "layerwise" and card["training"]["command"].startswith("featviz train")
    assert card["metrics"]["rel_test_mse"] == pytest.approx(summary["metrics"]["rel_test_mse"])
    info = run_cli("info", out, "--json")
    assert info.code == 0
    assert [l["name"] for l in json.loads(info.out)["layers"]] == ["block1", "block2"]
    text = run_cli("info", out)
    assert "block1" in text.out and "block2" in text.out and "block2" in text.out.split("block2", 1)[1]


def test_train_is_deterministic_under_seed(run_cli, tmp_path):
    for name in ("a", "b"):
        assert run_cli("train", *SYN, "--seed", "3", "--out", tmp_path / name).code == 0
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


@pytest.mark.parametrize("args,needle", [
    (["info", "missing-dir"], "does not exist"),
    (["train", "--dataset", "imagenet", "--out", "x"], "imagenet"),
    (["train", "--dataset", "mnist", "--out", "{tmp}/m"], "--data-root"),
    (["train", "--dataset", "mnist", "--data-root", "{tmp}", "--out", "{tmp}/m"], "train-images-idx3-ubyte"),
    (["train", "--epochs", "0", "--out", "x"], "--epochs"),
    (["train", "--bogus"], "--bogus"),
    (["train", *SYN, "--device", "cuda:7", "--out", "{tmp}/c"], "cuda"),
    (["train", *SYN, "--device", "tpu", "--out", "{tmp}/c"], "tpu"),
    (["train", *SYN, "--lr", "nan", "--out", "{tmp}/c"], "--lr"),
    (["train", *SYN, "--out", "{tmp}/full"], "not empty"),
    (["nosuchcommand"], "nosuchcommand"),
])
def test_user_mistakes_give_one_line_and_exit_2(run_cli, tmp_path, args, needle):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("precious")
    res = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert res.code == 2, (res.code, res.err)
    lines = [l for l in res.err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("featviz: error:"), res.err
    assert needle in lines[0]
    assert "Traceback" not in res.err
    assert (tmp_path / "full" / "keep.txt").read_text() == "precious"


def test_force_replaces_a_non_empty_out(run_cli, tmp_path):
    out = tmp_path / "ck"
    assert run_cli("train", *SYN, "--out", out).code == 0
    assert run_cli("train", *SYN, "--out", out).code == 2
    assert run_cli("train", *SYN, "--out", out, "--force", "--seed", "1").code == 0


def test_real_processes_module_and_shim():
    for cmd in ([sys.executable, "-m", "featviz", "--help"], [sys.executable, str(ROOT / "cli.py"), "--help"]):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert res.returncode == 0 and "train" in res.stdout and "info" in res.stdout
    res = subprocess.run([sys.executable, "-m", "featviz", "info", "/nonexistent/ckpt"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
