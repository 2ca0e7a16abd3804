"""The hostile catalogue, second part: what a careless or hostile user can pass to take data,
leak files, or exhaust the machine. Every case ends in exit 2 with one line on stderr naming
the problem, no traceback, and nothing written, moved or deleted anywhere in the scratch folder.

Classes: the write protocol (--out vs the command's inputs, links, locks, names), --force
look-alikes, result files naming files outside their folder, results that break their
schema (impossible numbers, depth, integer size, types), sizes beyond the bounds, non-finite
models and options, duplicate list values, and environment faults."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

STUDIES = Path(__file__).resolve().parents[1] / "studies"
T = "{root}"
QUICK = ["--seeds", "1"]


def _tree(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` (links not followed) with its size and modification time."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def _edit(folder: Path, fn) -> None:
    data = json.loads((folder / "results.json").read_text())
    fn(data)
    (folder / "results.json").write_text(json.dumps(data))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A checkpoint, result folders of every reader (good and hostile copies), a model module."""
    from PIL import Image

    from featviz.cli import main

    root = tmp_path_factory.mktemp("hostile")

    def run(*args):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            assert exc.code in (0, None), args

    run("train", "--dataset", "digits", "--image-size", "8", "--width", "2", "--depth", "1", "--epochs", "1",
        "--out", root / "ck")
    run("attack", root / "ck", "--attack", "fgsm", "--eps", "0.1", "--n-examples", "8", "--n-show", "1",
        "--out", root / "att")
    run("maximize", root / "ck", "--neuron", "block1:0", "--steps", "1", "--top-k", "1", "--no-converge-check",
        "--out", root / "vis")
    Image.new("RGB", (4, 4), (255, 0, 0)).save(root / "secret.png")
    (root / "private").mkdir()
    (root / "private" / "diary.txt").write_text("dear diary")

    def copy(src: Path, name: str) -> Path:
        dest = root / name
        shutil.copytree(src, dest, symlinks=True)
        return dest

    # --- result files naming files outside their folder
    _edit(copy(STUDIES / "compare-digits", "cmp-dotdot"), lambda d: d["files"].update(robustness="../secret.png"))
    _edit(copy(STUDIES / "compare-digits", "cmp-abs"), lambda d: d["files"].update(robustness=str(root / "secret.png")))
    _edit(copy(STUDIES / "compare-digits", "cmp-deep"),
          lambda d: d["files"].update(render_metrics="a/b/../../../secret.png"))
    (copy(STUDIES / "compare-digits", "cmp-link") / "robustness.png").unlink()
    (root / "cmp-link" / "robustness.png").symlink_to(root / "secret.png")
    img = copy(STUDIES / "image-study", "img-link")
    (img / "teacher_alignment.png").unlink()
    (img / "teacher_alignment.png").symlink_to(root / "secret.png")
    _edit(copy(STUDIES / "image-study", "img-unit"), lambda d: d["units"][0]["files"].update(joint="../../secret.png"))
    (copy(STUDIES / "purification", "pur-link") / "extra.png").symlink_to(root / "secret.png")
    (copy(STUDIES / "hierarchy-default", "hier-link") / "zz.png").symlink_to(root / "secret.png")
    (copy(root / "att", "att-link") / "zz.png").symlink_to(root / "secret.png")
    (copy(root / "att", "att-dirlink") / "sub").symlink_to(root / "private")
    vis = copy(root / "vis", "vis-dotdot")
    metrics = json.loads((vis / "metrics.json").read_text())
    metrics["images"][0]["file"] = "../secret.png"
    (vis / "metrics.json").write_text(json.dumps(metrics))
    vis = copy(root / "vis", "vis-abs")
    metrics["images"][0]["file"] = str(root / "secret.png")
    (vis / "metrics.json").write_text(json.dumps(metrics))
    vis = copy(root / "vis", "vis-example")
    metrics = json.loads((vis / "metrics.json").read_text())
    metrics["dataset_examples"][0]["files"][0] = "../private/diary.txt"
    (vis / "metrics.json").write_text(json.dumps(metrics))

    # --- results that break their schema
    def attack_copy(name, fn):
        folder = copy(root / "att", name)
        _edit(folder, fn)

    attack_copy("att-acc2", lambda d: d["models"][0].update(clean_accuracy=2.0))
    attack_copy("att-accneg", lambda d: d["models"][0]["attacks"][0]["curve"][0].update(robust_accuracy=-1))
    attack_copy("att-accbool", lambda d: d["models"][0].update(clean_accuracy=True))
    attack_copy("att-epsneg", lambda d: d["models"][0]["attacks"][0]["curve"][0].update(eps=-0.5))
    attack_copy("att-curvestr", lambda d: d["models"][0]["attacks"][0].update(curve="all of them"))
    attack_copy("att-modelsdict", lambda d: d.update(models={"a": 1}))
    attack_copy("att-pointlist", lambda d: d["models"][0]["attacks"][0].update(curve=[[0.1, 0.5]]))
    attack_copy("att-accstr", lambda d: d["models"][0]["attacks"][0]["curve"][0].update(robust_accuracy=[0.5, 7]))
    for name, text in [("att-nan", '{"models": [{"clean_accuracy": NaN, "attacks": []}]}'),
                       ("att-inf", '{"models": [{"clean_accuracy": 0.5, "attacks": [{"curve": [{"eps": Infinity}]}]}]}'),
                       ("att-deep", '{"models": ' + "[" * 5000 + "]" * 5000 + "}"),
                       ("att-hugeint", '{"models": [], "seconds": 1' + "0" * 5000 + "}"),
                       ("att-latin1", None)]:
        folder = root / name
        folder.mkdir()
        if text is None:
            (folder / "results.json").write_bytes(b'{"models": "\xe9t\xe9"}')
        else:
            (folder / "results.json").write_text(text)
    _edit(copy(STUDIES / "compare-digits", "cmp-acc"),
          lambda d: d["modes"]["joint"].update(clean_accuracy={"mean": 1.7, "std": 0.1}))
    _edit(copy(STUDIES / "hierarchy-default", "hier-std"),
          lambda d: d["summary"]["joint"].update(rel_test_mse_std=-3.0, std=-1))
    _edit(copy(STUDIES / "hierarchy-default", "hier-summary"), lambda d: d.update(summary=[1, 2]))

    # --- --force look-alikes and the user's own folders
    (root / "lookalike").mkdir()
    (root / "lookalike" / "index.html").write_text("<html>Made by featviz</html>")
    (root / "fakecard").mkdir()
    (root / "fakecard" / "card.json").write_text(json.dumps({"format": "featviz-checkpoint/1", "arch": {}}))
    (root / "fakecard" / "model.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b"notjson!")
    notes = copy(root / "ck", "ck-notes")
    (notes / ".featviz-output").unlink()
    (notes / "notes.txt").write_text("mine")
    (root / "fakemarker").mkdir()
    (root / "fakemarker" / ".featviz-output").write_text("not json")
    (root / "fakemarker" / "thesis.tex").write_text("x")
    (root / "linkout").symlink_to(root / "private")
    (root / "mine").mkdir()
    (root / "mine" / "keep.txt").write_text("keep")
    area = root / ".busy.featviz-tmp"  # a folder of the user's where featviz would put its lock
    area.mkdir()
    (area / "stuff.txt").write_text("mine")

    # --- a model module: NaN logits, a model that returns no logits
    (root / "hostile_models.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class NaNNet(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.lin = nn.Linear(64, 10)\n"
        "    def forward(self, x):\n        return self.lin(x.flatten(1)) * float('nan')\n"
        "class InfNet(NaNNet):\n"
        "    def forward(self, x):\n        return self.lin(x.flatten(1)) * float('inf') + float('inf')\n"
        "class Scalar(NaNNet):\n"
        "    def forward(self, x):\n        return self.lin(x.flatten(1)).sum()\n"
        "def nan():\n    return NaNNet()\n"
        "def inf():\n    return InfNet()\n"
        "def scalar():\n    return Scalar()\n"
        "class NoGrad(NaNNet):\n"
        "    def forward(self, x):\n        with torch.no_grad():\n            return self.lin(x.flatten(1))\n"
        "def nograd():\n    return NoGrad()\n")
    (root / "badpurify").mkdir()
    (root / "badpurify" / "results.json").write_text(json.dumps({"seeds": [1], "per_seed": [{"a": 1}]}))
    # --- weights whose header claims a tensor far larger than the file (judged before the body is read)
    header = json.dumps({"lin.weight": {"dtype": "F32", "shape": [100000, 64], "data_offsets": [0, 25600000]},
                         "lin.bias": {"dtype": "F32", "shape": [10], "data_offsets": [25600000, 25600040]}}).encode()
    (root / "huge.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 64)
    header = json.dumps({"lin.weight": {"dtype": "F32", "shape": [100, 64], "data_offsets": [0, 25600]},
                         "lin.bias": {"dtype": "F32", "shape": [10], "data_offsets": [25600, 25640]}}).encode()
    (root / "wrongshape.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 25640)
    _own_inputs(root)
    return root


def _npy_claim(descr: str, shape: tuple) -> bytes:
    """A .npy header claiming ``shape`` of ``descr``, followed by a few bytes only."""
    text = repr({"descr": descr, "fortran_order": False, "shape": shape})
    text += " " * (64 - (len(text) + 11) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode() + b"\0" * 64


def _own_inputs(root: Path) -> None:
    """A model file (path/file.py:FACTORY form), its weights, and --data files good and hostile."""
    import zipfile

    import numpy as np
    import torch
    from torch import nn

    (root / "own_net.py").write_text(
        "import sys\nfrom torch import nn\n"
        "def tiny(width=4):\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.Linear(width, 10))\n"
        "def boom():\n    raise RuntimeError('boom')\n"
        "def leave():\n    sys.exit(3)\n"
        "def notmodel():\n    return 42\n")
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.Linear(5, 10)).state_dict(), root / "other.pt")
    (root / "garbage.pt").write_bytes(b"PK\x03\x04 not a zip at all")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 1, 8, 8), dtype=np.uint8)
    np.savez(root / "nan.npz", x=np.full((4, 1, 8, 8), np.nan, np.float32), y=np.zeros(4, np.int64))
    np.savez(root / "labels-big.npz", x=x, y=np.arange(8) + 20)
    np.savez(root / "labels-float.npz", x=x, y=np.zeros(8, np.float32))
    np.savez(root / "x-range.npz", x=x.astype(np.float32), y=np.zeros(8, np.int64))
    np.savez(root / "x-2d.npz", x=np.zeros((8, 64), np.float32), y=np.zeros(8, np.int64))
    np.savez(root / "x-complex.npz", x=x.astype(np.complex64), y=np.zeros(8, np.int64))
    np.savez(root / "no-x.npz", images=x, y=np.zeros(8, np.int64))
    np.savez(root / "y-length.npz", x=x, y=np.zeros(5, np.int64))
    (root / "notzip.npz").write_text("no zip here")
    for name, shape in (("huge", (10**6, 1, 1000, 1000)), ("wrap", (2**32, 2**32, 1, 1))):
        with zipfile.ZipFile(root / f"{name}.npz", "w") as archive:
            archive.writestr("x.npy", _npy_claim("|u1", shape))


M = ["--model", "hostile_models:nan", "--input-shape", "1,8,8", "--dataset", "digits"]
CASES = [
    # --- the write protocol: --out against the command's own inputs, links, locks and names
    ("wp-gallery-out-is-input", ["gallery", T + "/ck", "--render-steps", "0", "--out", T + "/ck", "--force"], "input"),
    ("wp-gallery-out-above-input", ["gallery", T + "/ck", "--render-steps", "0", "--out", T, "--force"], "input"),
    ("wp-attack-out-is-input", ["attack", T + "/ck", "--eps", "0.1", "--out", T + "/ck", "--force"], "input"),
    ("wp-max-out-is-input", ["maximize", T + "/ck", "--neuron", "block1:0", "--out", T + "/ck", "--force"], "input"),
    ("wp-gallery-out-is-study", ["gallery", T + "/ck", "--study", T + "/mine", "--render-steps", "0",
                                 "--out", T + "/mine", "--force"], "input"),
    ("wp-gallery-out-is-vis", ["gallery", T + "/ck", "--vis", T + "/vis", "--render-steps", "0", "--out",
                               T + "/vis", "--force"], "input"),
    ("wp-train-out-is-init", ["train", "--dataset", "digits", "--image-size", "8", "--width", "2", "--depth", "1",
                              "--init-from", T + "/ck", "--out", T + "/ck", "--force"], "input"),
    ("wp-out-is-symlink", ["maximize", T + "/ck", "--neuron", "block1:0", "--out", T + "/linkout", "--force"],
     "symbolic link"),
    ("wp-area-not-ours", ["maximize", T + "/ck", "--neuron", "block1:0", "--out", T + "/busy"], "not featviz's lock"),
    ("wp-name-too-long", ["maximize", T + "/ck", "--neuron", "block1:0", "--out", T + "/" + "n" * 250], "name"),
    ("wp-out-dotdot", ["maximize", T + "/ck", "--neuron", "block1:0", "--out", T + "/ck/.."], "input"),
    # --- --force needs the marker
    ("force-lookalike-gallery", ["maximize", T + "/ck", "--neuron", "block1:0", "--out", T + "/lookalike",
                                 "--force"], "did not write"),
    ("force-fake-card", ["maximize", T + "/ck", "--neuron", "block1:0", "--out", T + "/fakecard", "--force"],
     "did not write"),
    ("force-checkpoint-plus-notes", ["maximize", T + "/ck", "--neuron", "block1:0", "--out", T + "/ck-notes",
                                     "--force"], "did not write"),
    ("force-marker-not-json", ["maximize", T + "/ck", "--neuron", "block1:0", "--out", T + "/fakemarker",
                               "--force"], "did not write"),
    ("force-users-folder", ["hierarchy", "alpha-sweep", *QUICK, "--out", T + "/mine", "--force"], "did not write"),
    # --- result files naming files outside their folder
    ("leak-compare-dotdot", ["gallery", T + "/ck", "--study", T + "/cmp-dotdot", "--render-steps", "0", "--out",
                             T + "/o"], "files.robustness"),
    ("leak-compare-absolute", ["gallery", T + "/ck", "--study", T + "/cmp-abs", "--render-steps", "0", "--out",
                               T + "/o"], "files.robustness"),
    ("leak-compare-climb", ["gallery", T + "/ck", "--study", T + "/cmp-deep", "--render-steps", "0", "--out",
                            T + "/o"], "files.render_metrics"),
    ("leak-compare-symlink", ["gallery", T + "/ck", "--study", T + "/cmp-link", "--render-steps", "0", "--out",
                              T + "/o"], "robustness.png"),
    ("leak-image-study-symlink", ["gallery", T + "/ck", "--study", T + "/img-link", "--render-steps", "0", "--out",
                                  T + "/o"], "teacher_alignment.png"),
    ("leak-image-study-unit", ["gallery", T + "/ck", "--study", T + "/img-unit", "--render-steps", "0", "--out",
                               T + "/o"], "units[].files.joint"),
    ("leak-study-symlink", ["gallery", T + "/ck", "--study", T + "/pur-link", "--render-steps", "0", "--out",
                            T + "/o"], "extra.png"),
    ("leak-hierarchy-symlink", ["gallery", T + "/ck", "--hierarchy", T + "/hier-link", "--render-steps", "0",
                                "--out", T + "/o"], "zz.png"),
    ("leak-attacks-symlink", ["gallery", T + "/ck", "--attacks", T + "/att-link", "--render-steps", "0", "--out",
                              T + "/o"], "zz.png"),
    ("leak-attacks-dirlink", ["gallery", T + "/ck", "--attacks", T + "/att-dirlink", "--render-steps", "0",
                              "--out", T + "/o"], "sub"),
    ("leak-vis-dotdot", ["gallery", T + "/ck", "--vis", T + "/vis-dotdot", "--out", T + "/o"], "images[].file"),
    ("leak-vis-absolute", ["gallery", T + "/ck", "--vis", T + "/vis-abs", "--out", T + "/o"], "images[].file"),
    ("leak-vis-example", ["gallery", T + "/ck", "--vis", T + "/vis-example", "--out", T + "/o"],
     "dataset_examples[].files"),
    # --- results that break their schema
    ("schema-accuracy-2", ["gallery", T + "/ck", "--robust", T + "/att-acc2", "--render-steps", "0", "--out",
                           T + "/o"], "clean_accuracy"),
    ("schema-accuracy-negative", ["gallery", T + "/ck", "--attacks", T + "/att-accneg", "--render-steps", "0",
                                  "--out", T + "/o"], "robust_accuracy"),
    ("schema-accuracy-bool", ["gallery", T + "/ck", "--attacks", T + "/att-accbool", "--render-steps", "0",
                              "--out", T + "/o"], "boolean"),
    ("schema-eps-negative", ["gallery", T + "/ck", "--attacks", T + "/att-epsneg", "--render-steps", "0",
                             "--out", T + "/o"], "eps"),
    ("schema-curve-string", ["gallery", T + "/ck", "--attacks", T + "/att-curvestr", "--render-steps", "0",
                             "--out", T + "/o"], "curve"),
    ("schema-models-dict", ["gallery", T + "/ck", "--attacks", T + "/att-modelsdict", "--render-steps", "0",
                            "--out", T + "/o"], "models"),
    ("schema-point-list", ["gallery", T + "/ck", "--attacks", T + "/att-pointlist", "--render-steps", "0",
                           "--out", T + "/o"], "eps"),
    ("schema-accuracy-list", ["gallery", T + "/ck", "--attacks", T + "/att-accstr", "--render-steps", "0",
                              "--out", T + "/o"], "robust_accuracy"),
    ("schema-nan-literal", ["gallery", T + "/ck", "--attacks", T + "/att-nan", "--render-steps", "0", "--out",
                            T + "/o"], "NaN"),
    ("schema-infinity-literal", ["gallery", T + "/ck", "--attacks", T + "/att-inf", "--render-steps", "0",
                                 "--out", T + "/o"], "Infinity"),
    ("schema-deep-nesting", ["gallery", T + "/ck", "--attacks", T + "/att-deep", "--render-steps", "0", "--out",
                             T + "/o"], "nested"),
    ("schema-huge-integer", ["gallery", T + "/ck", "--attacks", T + "/att-hugeint", "--render-steps", "0",
                             "--out", T + "/o"], "digits"),
    ("schema-not-utf8", ["gallery", T + "/ck", "--attacks", T + "/att-latin1", "--render-steps", "0", "--out",
                         T + "/o"], "UTF-8"),
    ("schema-compare-accuracy", ["gallery", T + "/ck", "--study", T + "/cmp-acc", "--render-steps", "0", "--out",
                                 T + "/o"], "clean_accuracy.mean"),
    ("schema-negative-std", ["gallery", T + "/ck", "--study", T + "/hier-std", "--render-steps", "0", "--out",
                             T + "/o"], "std"),
    ("schema-summary-list", ["gallery", T + "/ck", "--hierarchy", T + "/hier-summary", "--render-steps", "0",
                             "--out", T + "/o"], "summary"),
    # --- sizes beyond the bounds, refused before anything is allocated
    ("size-compare-seeds", ["compare", "--seeds", str(10**9), "--out", T + "/o"], "--seeds"),
    ("size-compare-width", ["compare", "--width", str(10**6), "--out", T + "/o"], "--width"),
    ("size-compare-workers", ["compare", "--workers", str(10**6), "--out", T + "/o"], "--workers"),
    ("size-compare-render-units", ["compare", "--render-units", str(10**9), "--out", T + "/o"], "--render-units"),
    ("size-scaling-d", ["hierarchy", "scaling", "--d", "100000,200000", "--out", T + "/o"], "--d"),
    ("size-scaling-n", ["hierarchy", "scaling", "--n", "1e11,2e11", "--out", T + "/o"], "--n"),
    ("size-alpha-width", ["hierarchy", "alpha-sweep", "--width", str(10**9), "--out", T + "/o"], "--width"),
    ("size-alpha-n-train", ["hierarchy", "alpha-sweep", "--n-train", str(10**11), "--out", T + "/o"], "--n-train"),
    ("size-hier-seeds", ["hierarchy", "run", "--preset", "quick", "--seeds", str(10**9), "--out", T + "/o"],
     "--seeds"),
    ("size-hier-d", ["hierarchy", "run", "--preset", "quick", "--d", "100000", "--out", T + "/o"], "--d"),
    ("size-images-seeds", ["hierarchy", "images", "--quick", "--seeds", str(10**9), "--out", T + "/o"], "--seeds"),
    ("size-train-memory", ["train", "--dataset", "synthetic", "--d", "4000", "--n-train", str(10**8), "--out",
                           T + "/o"], "GiB"),
    ("size-train-d", ["train", "--dataset", "synthetic", "--d", "100000", "--out", T + "/o"], "--d"),
    ("size-attack-restarts", ["attack", T + "/ck", "--restarts", str(10**12), "--out", T + "/o"], "--restarts"),
    ("size-attack-steps", ["attack", T + "/ck", "--steps", str(10**12), "--out", T + "/o"], "--steps"),
    ("size-weights-header", ["attack", *M, "--weights", T + "/huge.safetensors", "--eps", "0.1", "--out", T + "/o"],
     "safetensors"),
    ("size-weights-shape", ["attack", *M, "--weights", T + "/wrongshape.safetensors", "--eps", "0.1", "--out",
                            T + "/o"], "shape"),
    ("size-input-shape-vs-data", ["attack", "--model", "torch.nn:Identity", "--input-shape", "3,32,32",
                                  "--dataset", "digits", "--eps", "0.1", "--out", T + "/o"], "input-shape"),
    # --- non-finite models and options
    ("nan-logits-attack", ["attack", *M, "--eps", "0.1", "--n-examples", "8", "--out", T + "/o"], "NaN"),
    ("inf-logits-attack", ["attack", "--model", "hostile_models:inf", "--input-shape", "1,8,8", "--dataset",
                           "digits", "--eps", "0.1", "--n-examples", "8", "--out", T + "/o"], "NaN"),
    ("nan-logits-square", ["attack", *M, "--attack", "square", "--eps", "0.1", "--n-examples", "8", "--out",
                           T + "/o"], "NaN"),
    ("scalar-output-attack", ["attack", "--model", "hostile_models:scalar", "--input-shape", "1,8,8", "--dataset",
                              "digits", "--eps", "0.1", "--n-examples", "8", "--out", T + "/o"], "logits"),
    ("nan-std", ["attack", "--model", "torch.nn:Identity", "--input-shape", "1,8,8", "--dataset", "digits",
                 "--mean", "0", "--std", "nan", "--eps", "0.1", "--out", T + "/o"], "--std"),
    ("inf-mean", ["maximize", "--model", "torch.nn:Identity", "--input-shape", "1,8,8", "--neuron", "logits:0",
                  "--mean", "inf", "--std", "1", "--out", T + "/o"], "--mean"),
    ("zero-std", ["maximize", "--model", "torch.nn:Identity", "--input-shape", "1,8,8", "--neuron", "logits:0",
                  "--mean", "0", "--std", "0", "--out", T + "/o"], "--std"),
    ("nan-alpha", ["hierarchy", "alpha-sweep", "--alphas", "0.1,nan", "--out", T + "/o"], "--alphas"),
    ("inf-scaling-d", ["hierarchy", "scaling", "--d", "4,inf", "--out", T + "/o"], "--d"),
    ("nan-target-error", ["hierarchy", "scaling", "--target-error", "nan", "--out", T + "/o"], "--target-error"),
    ("nograd-attack", ["attack", "--model", "hostile_models:nograd", "--input-shape", "1,8,8", "--dataset", "digits",
                       "--eps", "0.1", "--n-examples", "8", "--out", T + "/o"], "no gradient"),
    ("nograd-maximize", ["maximize", "--model", "hostile_models:nograd", "--input-shape", "1,8,8", "--neuron",
                         "logits:0", "--steps", "2", "--out", T + "/o"], "no gradient"),
    ("schema-purify-combine", ["purify", "--combine", T + "/badpurify", "--out", T + "/o"], "purify"),
    ("size-alpha-n-train-1", ["hierarchy", "alpha-sweep", "--n-train", "1", "--seeds", "1", "--out", T + "/o"],
     "--n-train"),
    # --- duplicate list values
    ("dup-alphas", ["hierarchy", "alpha-sweep", "--alphas", "0.1,0.2,0.1", "--out", T + "/o"], "once"),
    ("dup-compare-eps", ["compare", "--eps", "0.1,0.1", "--out", T + "/o"], "once"),
    ("dup-compare-modes", ["compare", "--modes", "joint,layerwise,joint", "--out", T + "/o"], "once"),
    ("dup-attack", ["attack", T + "/ck", "--attack", "fgsm", "--attack", "fgsm", "--out", T + "/o"], "once"),
    ("dup-scaling-d", ["hierarchy", "scaling", "--d", "4,6,4", "--out", T + "/o"], "once"),
    ("dup-scaling-n", ["hierarchy", "scaling", "--n", "100,100", "--out", T + "/o"], "once"),
    ("dup-lr-grid", ["hierarchy", "run", "--preset", "quick", "--lr-grid", "0.1,0.1", "--out", T + "/o"], "once"),
    # --- hierarchy correction and prior-renders
    ("dup-correction-alphas", ["hierarchy", "correction", "--quick", "--alphas", "0.1,0.1", "--out", T + "/o"], "once"),
    ("dup-correction-width", ["hierarchy", "correction", "--quick", "--width", "16,16", "--out", T + "/o"], "once"),
    ("size-correction-width", ["hierarchy", "correction", "--quick", "--width", str(10**7), "--out", T + "/o"],
     "--width"),
    ("size-correction-memory", ["hierarchy", "correction", "--width", "60000", "--seeds", "1000", "--out", T + "/o"],
     "GiB"),
    ("nan-correction-alphas", ["hierarchy", "correction", "--quick", "--alphas", "0.1,nan", "--out", T + "/o"],
     "--alphas"),
    ("size-correction-threads", ["hierarchy", "correction", "--quick", "--threads", "0", "--out", T + "/o"],
     "--threads"),
    ("prior-units-empty", ["prior-renders", "--checkpoint", T + "/ck", "--quick", "--units", "9-1", "--out", T + "/o"],
     "9-1"),
    ("prior-steps-zero", ["prior-renders", "--checkpoint", T + "/ck", "--quick", "--steps", "0", "--out", T + "/o"],
     "--steps"),
    ("prior-not-checkpoint", ["prior-renders", "--checkpoint", T + "/mine", "--quick", "--out", T + "/o"], "card.json"),
    # --- the data priors of maximize
    ("reg-generator-weight", ["maximize", T + "/ck", "--neuron", "block1:0", "--reg", "generator:abc", "--out",
                              T + "/o"], "generator:abc"),
    ("reg-sphere-nan", ["maximize", T + "/ck", "--neuron", "block1:0", "--reg", "sphere:nan", "--out", T + "/o"],
     "finite"),
    ("reg-pca-negative", ["maximize", T + "/ck", "--neuron", "block1:0", "--reg", "pca:-1", "--out", T + "/o"], "pca"),
    # --- own models (path/file.py:FACTORY), their weights, own data
    ("own-factory-raises", ["attack", "--model", T + "/own_net.py:boom", "--input-shape", "1,8,8", "--dataset",
                            "digits", "--eps", "0.1", "--out", T + "/o"], "boom"),
    ("own-factory-exits", ["maximize", "--model", T + "/own_net.py:leave", "--input-shape", "1,8,8", "--neuron",
                           "logits:0", "--out", T + "/o"], "sys.exit"),
    ("own-factory-not-module", ["gallery", "--model", T + "/own_net.py:notmodel", "--input-shape", "1,8,8",
                                "--render-steps", "0", "--out", T + "/o"], "nn.Module"),
    ("own-model-arg-form", ["attack", "--model", T + "/own_net.py:tiny", "--model-arg", "noequals", "--input-shape",
                            "1,8,8", "--dataset", "digits", "--out", T + "/o"], "KEY=VALUE"),
    ("own-model-arg-type", ["attack", "--model", T + "/own_net.py:tiny", "--model-arg", "width=abc",
                            "--input-shape", "1,8,8", "--dataset", "digits", "--out", T + "/o"], "width"),
    ("own-weights-garbage", ["attack", "--model", T + "/own_net.py:tiny", "--weights", T + "/garbage.pt",
                             "--input-shape", "1,8,8", "--dataset", "digits", "--out", T + "/o"], "garbage.pt"),
    ("own-weights-mismatch", ["maximize", "--model", T + "/own_net.py:tiny", "--weights", T + "/other.pt",
                              "--input-shape", "1,8,8", "--neuron", "logits:0", "--out", T + "/o"], "other.pt"),
    ("own-weights-and-random", ["attack", "--model", T + "/own_net.py:tiny", "--weights", T + "/other.pt",
                                "--random-init", "--input-shape", "1,8,8", "--dataset", "digits", "--out", T + "/o"],
     "--random-init"),
    ("own-tensorboard-file", ["maximize", "--model", T + "/own_net.py:tiny", "--input-shape", "1,8,8", "--neuron",
                              "logits:0", "--steps", "1", "--tensorboard", T + "/secret.png", "--out", T + "/o"],
     "--tensorboard"),
    ("npz-nan", ["attack", "--model", T + "/own_net.py:tiny", "--data", T + "/nan.npz", "--out", T + "/o"], "NaN"),
    ("npz-labels-out-of-range", ["attack", "--model", T + "/own_net.py:tiny", "--data", T + "/labels-big.npz",
                                 "--out", T + "/o"], "classes"),
    ("npz-labels-float", ["attack", "--model", T + "/own_net.py:tiny", "--data", T + "/labels-float.npz",
                          "--out", T + "/o"], "y has dtype"),
    ("npz-x-out-of-range", ["maximize", "--model", T + "/own_net.py:tiny", "--data", T + "/x-range.npz", "--neuron",
                            "logits:0", "--out", T + "/o"], "[0, 1]"),
    ("npz-x-2d", ["attack", "--model", T + "/own_net.py:tiny", "--data", T + "/x-2d.npz", "--out", T + "/o"],
     "shape"),
    ("npz-x-complex", ["attack", "--model", T + "/own_net.py:tiny", "--data", T + "/x-complex.npz", "--out",
                       T + "/o"], "dtype"),
    ("npz-no-x", ["gallery", "--model", T + "/own_net.py:tiny", "--data", T + "/no-x.npz", "--render-steps", "0",
                  "--out", T + "/o"], "no array named x"),
    ("npz-y-length", ["attack", "--model", T + "/own_net.py:tiny", "--data", T + "/y-length.npz", "--out", T + "/o"],
     "y has shape"),
    ("npz-not-zip", ["attack", "--model", T + "/own_net.py:tiny", "--data", T + "/notzip.npz", "--out", T + "/o"],
     "not a readable"),
    ("npz-huge-claim", ["attack", "--model", T + "/own_net.py:tiny", "--data", T + "/huge.npz", "--out", T + "/o"],
     "values, more than"),
    ("npz-wrapping-claim", ["attack", "--model", T + "/own_net.py:tiny", "--data", T + "/wrap.npz", "--out", T + "/o"],
     "values, more than"),
    ("npz-shape-vs-input", ["attack", "--model", T + "/own_net.py:tiny", "--data", T + "/x-range.npz",
                            "--input-shape", "3,8,8", "--out", T + "/o"], "input"),
]


def test_catalogue_is_large_enough():
    assert len(CASES) >= 100
    assert len({c[0] for c in CASES}) == len(CASES)
    classes = {c[0].split("-")[0] for c in CASES}
    assert classes >= {"wp", "force", "leak", "schema", "size", "nan", "nograd", "dup", "prior", "reg", "own", "npz"}


@pytest.mark.parametrize("name,argv,needle", CASES, ids=[c[0] for c in CASES])
def test_hostile_input(world, run_cli, monkeypatch, name, argv, needle):
    monkeypatch.syspath_prepend(str(world))
    before = _tree(world)
    if "--model" in argv and "--weights" not in argv:
        argv = [*argv, "--random-init"]  # the hostile model is the point, not its weights
    res = run_cli(*[a.replace(T, str(world)) for a in argv])
    # progress bars end with a carriage return, so the error may share their line
    lines = [line[line.index("featviz:"):] for line in res.err.replace("\r", "\n").splitlines() if "featviz:" in line]
    assert res.code == 2, f"exit {res.code}: {res.err[-800:]}"
    assert len(lines) == 1 and lines[0].startswith("featviz: error:"), res.err[-800:]
    assert "Traceback" not in res.err
    assert needle.lower() in lines[0].lower(), lines[0]
    assert _tree(world) == before  # nothing written, moved or deleted; no lock or temporary area left
