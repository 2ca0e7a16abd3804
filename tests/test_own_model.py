"""Your model, your data: --model (module or file), --model-arg, --weights (.safetensors/.pt),
--random-init, --data (.npz or image folder), and the acceptance test that follows
the README (and docs/own-model.md) verbatim."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
NET = """
import sys
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, classes=10, width=4):
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        return self.fc(self.conv(x).relu().mean((2, 3)))

def make(classes=10, width=4):
    torch.manual_seed(0)
    return Net(classes, width)

def raises():
    raise RuntimeError("no GPU here")

def exits():
    sys.exit(3)

def not_a_model():
    return 42
"""


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A user's folder: mynet.py, its weights as torch.save wrote them, and an .npz of 8×8 images."""
    (tmp_path / "mynet.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import mynet
    importlib.reload(mynet)
    torch.save(mynet.make().state_dict(), tmp_path / "mynet.pt")
    gen = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", x=gen.integers(0, 256, (12, 8, 8, 1), dtype=np.uint8),
             y=gen.integers(0, 10, 12))
    return tmp_path


MODEL = ["--model", "mynet.py:make", "--weights", "mynet.pt"]


def _one_line(r) -> None:
    assert r.code == 2, (r.code, r.err)
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err


# ------------------------------------------------------------------ --model


def test_model_from_a_file_and_from_a_module_give_the_same_numbers(run_cli, user_dir):
    path_before, runs = list(sys.path), {}
    for ref in ("mynet.py:make", "./mynet.py:make", "mynet:make"):
        r = run_cli("attack", "--model", ref, "--weights", "mynet.pt", "--data", "data.npz", "--attack", "fgsm",
                    "--eps", "8/255", "--n-show", "0", "--json", "--out", user_dir / f"o{len(runs)}")
        assert r.code == 0, r.err
        runs[ref] = json.loads(r.out)["models"][0]
    values = {json.dumps(m["attacks"][0]["curve"]) for m in runs.values()}
    assert len(values) == 1
    assert runs["mynet:make"]["attacks"][0]["curve"][0]["eps"] == pytest.approx(8 / 255)
    assert sys.path == path_before  # the folder was importable during the import only


def test_model_args_reach_the_factory_and_must_fit_the_weights(run_cli, user_dir):
    import mynet

    torch.save(mynet.make(classes=10, width=6).state_dict(), user_dir / "w6.pt")
    base = ["attack", "--model", "mynet.py:make", "--data", "data.npz", "--attack", "fgsm", "--eps", "0.1",
            "--n-show", "0"]
    r = run_cli(*base, "--weights", "w6.pt", "--model-arg", "width=6", "--out", user_dir / "a")
    assert r.code == 0, r.err
    r = run_cli(*base, "--weights", "w6.pt", "--out", user_dir / "b")  # width 4 by default: does not fit
    _one_line(r)
    assert "does not fit" in r.err and "--model-arg" in r.err
    r = run_cli(*base, "--weights", "w6.pt", "--model-arg", "widht=6", "--out", user_dir / "b")
    _one_line(r)
    assert "widht=6" in r.err and "TypeError" in r.err


@pytest.mark.parametrize("factory,fragment", [
    ("raises", "raises() raised RuntimeError: no GPU here"),
    ("exits", "exits() called sys.exit(3)"),
    ("not_a_model", "returned int, not an nn.Module"),
    ("nothing_here", "has no callable 'nothing_here'"),
])
def test_a_factory_that_fails_is_named(run_cli, user_dir, factory, fragment):
    r = run_cli("maximize", "--model", f"mynet.py:{factory}", "--random-init", "--input-shape", "1,8,8",
                "--neuron", "conv:0", "--out", user_dir / "o")
    _one_line(r)
    assert fragment in r.err and not (user_dir / "o").exists()


@pytest.mark.parametrize("ref,fragment", [
    ("nofile.py:make", "no such file"),
    ("no_such_pkg_xyz.mod:make", "cannot import"),
    ("mynet.py", "not MODULE:FACTORY"),
])
def test_bad_model_references(run_cli, user_dir, ref, fragment):
    r = run_cli("attack", "--model", ref, "--random-init", "--data", "data.npz", "--out", user_dir / "o")
    _one_line(r)
    assert fragment in r.err


def test_a_broken_module_is_reported_not_raised(run_cli, user_dir):
    (user_dir / "broken.py").write_text("import sys\nsys.exit('bye')\n")
    r = run_cli("attack", "--model", "broken.py:make", "--random-init", "--data", "data.npz", "--out", user_dir / "o")
    _one_line(r)
    assert "sys.exit('bye')" in r.err


def test_no_stray_module_from_the_current_folder_runs(tmp_path):
    """`python -m featviz` from a folder holding ./matplotlib.py: featviz's own matplotlib is used."""
    (tmp_path / "mynet.py").write_text(NET)
    (tmp_path / "matplotlib.py").write_text("open('STRAY', 'w').write('ran')\nraise SystemExit('stray')\n")
    torch.save(torch.nn.Module().state_dict(), tmp_path / "unused.pt")
    r = subprocess.run([sys.executable, "-m", "featviz", "attack", "--model", "mynet.py:make", "--random-init",
                        "--input-shape", "1,8,8", "--dataset", "digits", "--attack", "fgsm", "--eps", "0.1",
                        "--n-examples", "4", "--n-show", "1", "--out", "o"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "STRAY").exists()
    assert (tmp_path / "o" / "robustness.png").is_file()  # drawn by the real matplotlib


# ------------------------------------------------------------------ --weights / --random-init


def test_weights_are_required_unless_random_init_is_said(run_cli, user_dir):
    r = run_cli("attack", "--model", "mynet.py:make", "--data", "data.npz", "--out", user_dir / "o")
    _one_line(r)
    assert "--weights" in r.err and "--random-init" in r.err
    r = run_cli("attack", *MODEL, "--random-init", "--data", "data.npz", "--out", user_dir / "o")
    _one_line(r)
    assert "exclude each other" in r.err


def test_weights_in_every_accepted_form_load_the_same_model(user_dir):
    from safetensors.torch import save_file

    import mynet
    from featviz.sources import load_weights

    state = {k: torch.randn_like(v) for k, v in mynet.make().state_dict().items()}
    save_file(state, user_dir / "w.safetensors")
    torch.save(state, user_dir / "w.pth")
    torch.save({"epoch": 3, "state_dict": state}, user_dir / "w.bin")
    torch.save({f"module.{k}": v for k, v in state.items()}, user_dir / "dp.pt")
    for name in ("w.safetensors", "w.pth", "w.bin", "dp.pt"):
        model = mynet.make()
        load_weights(model, user_dir / name)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items()), name


@pytest.mark.parametrize("make_file,fragment", [
    (lambda d: torch.save(__import__("mynet").make(), d / "whole.pt") or "whole.pt", "never unpickles code"),
    (lambda d: (d / "w.ckpt").write_bytes(b"x") and "w.ckpt", "torch.save(model.state_dict()"),
    (lambda d: (d / "w.pt").write_bytes(b"not a zip") and "w.pt", "not a readable PyTorch file"),
    (lambda d: (d / "w.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"{}garbage") and "w.safetensors",
     "safetensors"),
    (lambda d: (d / "big.pt").write_bytes(b"\x00" * (70 << 20)) and "big.pt", "another (larger) model"),
    (lambda d: "missing.pt", "does not exist"),
])
def test_weights_that_cannot_be_used_say_why(run_cli, user_dir, make_file, fragment):
    name = make_file(user_dir)
    r = run_cli("attack", "--model", "mynet.py:make", "--weights", name, "--data", "data.npz", "--out", user_dir / "o")
    _one_line(r)
    assert fragment in r.err


def test_model_args_are_python_literals():
    from featviz.errors import SpecError
    from featviz.sources import parse_model_args

    assert parse_model_args(["a=10", "b=0.5", "c=True", "d=(3, 32, 32)", "e=resnet", "f='x=y'", "g=None"]) == {
        "a": 10, "b": 0.5, "c": True, "d": (3, 32, 32), "e": "resnet", "f": "x=y", "g": None}
    for bad in (["novalue"], ["1x=2"], ["a=1", "a=2"]):
        with pytest.raises(SpecError):
            parse_model_args(bad)


# ------------------------------------------------------------------ --data


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("x,shape", [
    (np.zeros((5, 1, 8, 8), np.float32), (1, 8, 8)),            # N, C, H, W float
    (np.full((5, 8, 8, 3), 255, np.uint8), (3, 8, 8)),          # N, H, W, C uint8 -> /255
    (np.zeros((5, 8, 8), np.uint8), (1, 8, 8)),                 # N, H, W gray
])
def test_npz_layouts(tmp_path, x, shape):
    from featviz.data.user import load_user_data

    data = load_user_data(_npz(tmp_path / "d.npz", x=x, y=np.arange(5)))
    assert data.input_shape == shape and data.x_test.dtype == torch.float32
    assert float(data.x_test.max()) == (1.0 if x.dtype == np.uint8 and x.max() == 255 else 0.0)
    assert data.num_classes == 5 and data.y_test.tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("arrays,fragment", [
    ({"x": np.full((4, 1, 8, 8), 2.0, np.float32), "y": np.zeros(4, int)}, "not in [0, 1]"),
    ({"x": np.full((4, 1, 8, 8), np.nan, np.float32), "y": np.zeros(4, int)}, "NaN"),
    ({"x": np.zeros((4, 1, 8, 8), np.float32), "y": np.zeros(4, np.float32)}, "integer class labels"),
    ({"x": np.zeros((4, 1, 8, 8), np.float32), "y": np.zeros(3, int)}, "y must be (4,)"),
    ({"x": np.zeros((4, 1, 8, 8), np.float32), "y": -np.ones(4, int)}, "negative label"),
    ({"x": np.zeros((4, 8, 8, 8, 1), np.float32)}, "(N, C, H, W)"),
    ({"x": np.zeros((4, 3, 8, 3), np.float32)}, "--input-shape"),
    ({"y": np.zeros(4, int)}, "no array named x"),
])
def test_bad_npz_says_what_is_wrong(tmp_path, arrays, fragment):
    from featviz.data.user import load_user_data
    from featviz.errors import DataError

    with pytest.raises(DataError) as info:
        load_user_data(_npz(tmp_path / "d.npz", **arrays))
    assert fragment in info.value.one_line()


def test_a_huge_npz_header_is_refused_before_reading(tmp_path):
    """An .npy header claiming 10^12 values: refused from the header, nothing allocated."""
    from featviz.data.user import load_user_data
    from featviz.errors import DataError

    header = {"descr": "<f4", "fortran_order": False, "shape": (1_000_000, 1, 1000, 1000)}
    buf = __import__("io").BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as z:
        z.writestr("x.npy", np.lib.format.magic(1, 0) + buf.getvalue()[len(np.lib.format.magic(1, 0)):] + b"\0" * 64)
    with pytest.raises(DataError) as info:
        load_user_data(tmp_path / "huge.npz")
    assert "more than" in info.value.one_line()


def test_labels_beyond_the_models_outputs_are_refused(run_cli, user_dir):
    _npz(user_dir / "many.npz", x=np.zeros((4, 1, 8, 8), np.float32), y=np.array([0, 1, 2, 12]))
    r = run_cli("attack", *MODEL, "--model-arg", "classes=10", "--data", "many.npz", "--out", user_dir / "o")
    _one_line(r)
    assert "13 classes" in r.err or "label 12" in r.err


def test_image_folder_as_data(run_cli, user_dir):
    from PIL import Image

    from featviz.data.user import load_user_data

    for label in ("cat", "dog"):
        (user_dir / "imgs" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((10, 12), 40 * i, np.uint8)).save(user_dir / "imgs" / label / f"{i}.png")
    data = load_user_data(user_dir / "imgs")
    assert data.input_shape == (1, 10, 12) and data.info["classes"] == ["cat", "dog"]
    assert data.y_test.tolist() == [0, 0, 0, 1, 1, 1]
    data = load_user_data(user_dir / "imgs", (1, 8, 8))  # resized to the model's input
    assert data.input_shape == (1, 8, 8)
    r = run_cli("attack", *MODEL, "--data", "imgs", "--input-shape", "1,8,8", "--attack", "fgsm", "--eps", "0.1",
                "--n-show", "0", "--json", "--out", user_dir / "o")
    assert r.code == 0, r.err
    assert json.loads(r.out)["models"][0]["n_examples"] == 6


def test_data_with_a_featviz_checkpoint(run_cli, tmp_path):
    """--data replaces a checkpoint's test images; their shape must be the model's."""
    ck = ROOT / "models" / "digits-joint"
    x = np.zeros((6, 1, 16, 16), np.float32)
    _npz(tmp_path / "d.npz", x=x, y=np.arange(6))
    r = run_cli("attack", ck, "--data", tmp_path / "d.npz", "--attack", "fgsm", "--eps", "0.1", "--n-show", "0",
                "--json", "--out", tmp_path / "o")
    assert r.code == 0, r.err
    assert json.loads(r.out)["models"][0]["n_examples"] == 6
    _npz(tmp_path / "e.npz", x=np.zeros((6, 1, 8, 8), np.float32), y=np.arange(6))
    r = run_cli("attack", ck, "--data", tmp_path / "e.npz", "--out", tmp_path / "p")
    _one_line(r)
    assert "(6, 1, 8, 8)" in r.err and "(1, 16, 16)" in r.err


# ------------------------------------------------------------------ the snippet, verbatim


def _blocks(language: str, source: str = "README.md") -> list[str]:
    """The ``language`` code blocks of the "Use it on your model" section of ``source``."""
    text = (ROOT / source).read_text()
    section = text.split("## Use it on your model", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_the_readme_and_the_guide_give_the_same_snippet():
    for language in ("python", "sh"):
        assert _blocks(language, "README.md") == _blocks(language, "docs/own-model.md")


def test_the_own_model_snippet_works_verbatim(run_cli, tmp_path, monkeypatch):
    """The README's "Use it on your model" (the same as docs/own-model.md's): the model file, the
    two save lines and the three commands, as written, on a CNN the user trained and saved with
    torch.save."""
    monkeypatch.chdir(tmp_path)
    model_code, save_code = _blocks("python")
    (tmp_path / "mynet.py").write_text(model_code)
    namespace: dict = {}
    exec(compile(model_code, "mynet.py", "exec"), namespace)
    # the user's own training (not part of the snippet): a few epochs on 16×16 digits
    from featviz.data import load_digits

    digits = load_digits(image_size=16)
    torch.manual_seed(0)
    model = namespace["Net"]()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(8):
        for idx in torch.randperm(len(digits.x_train)).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(digits.x_train[idx]), digits.y_train[idx]).backward()
            opt.step()
    x_test, y_test = digits.x_test[:40].numpy(), digits.y_test[:40].numpy()
    exec(compile(save_code, "save.py", "exec"), {"model": model, "x_test": x_test, "y_test": y_test})
    assert (tmp_path / "mynet.pt").is_file() and (tmp_path / "test.npz").is_file()
    (commands,) = _blocks("sh")
    lines = [line for line in commands.splitlines() if line.strip()]
    assert [shlex.split(line)[1] for line in lines] == ["attack", "maximize", "gallery"]
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "featviz"
        r = run_cli(*argv[1:])
        assert r.code == 0, f"{line}\n{r.err}"
    attack = json.loads((tmp_path / "runs" / "attack" / "results.json").read_text())
    robust = attack["models"][0]["evaluations"][0]["robust_accuracy"]
    assert attack["models"][0]["attacks"][0]["attack"] == "autoattack-fast"
    index = (tmp_path / "runs" / "gallery" / "index.html").read_text()
    assert f"{100 * robust:.1f}%" in index and "mynet.py:Net" in index
    assert (tmp_path / "runs" / "gallery" / "model-mynet-py-net-conv2.html").is_file()
