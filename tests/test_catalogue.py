"""The bad-input catalogue: every user mistake ends in exit code 2, one line on stderr naming the
problem, no traceback, and nothing written. Each case runs the real CLI entry point."""

import gzip
import json
import pickle
import shutil

import pytest

SYN = ["--dataset", "synthetic", "--d", "4", "--k", "2", "--teacher-depth", "2", "--n-train", "64",
       "--depth", "2", "--width", "4", "--epochs", "1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny valid checkpoint, damaged copies of it, and dataset folders good and bad."""
    from featviz.cli import main

    root = tmp_path_factory.mktemp("catalogue")
    good = root / "good"
    try:
        main(["train", "--dataset", "digits", "--image-size", "8", "--width", "4", "--depth", "2", "--epochs", "1",
              "--out", str(good)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    blob = (good / "model.safetensors").read_bytes()
    card = json.loads((good / "card.json").read_text())

    def variant(name, weights=blob, card_obj=card, card_text=None):
        path = root / name
        path.mkdir()
        (path / "model.safetensors").write_bytes(weights)
        (path / "card.json").write_text(card_text if card_text is not None else json.dumps(card_obj))
        return path

    variant("truncated", weights=blob[: len(blob) // 3])
    flipped = bytearray(blob)
    flipped[2] ^= 0x7F
    variant("flipped", weights=bytes(flipped))
    variant("oldformat", card_obj=card | {"format": "featviz-checkpoint/0"})
    variant("nokeys", card_obj={k: v for k, v in card.items() if k not in ("arch", "layers")})
    variant("shapes", card_obj=card | {"arch": card["arch"] | {"widths": [8, 16]}})
    variant("pickle", weights=pickle.dumps({"block1.conv.weight": [0.0]}))
    variant("notjson", card_text="{ this is not json")
    variant("jsonlist", card_text="[1, 2, 3]")
    (root / "nocard").mkdir()
    (root / "nocard" / "model.safetensors").write_bytes(blob)
    (root / "afile").write_text("not a folder")
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("precious")
    (root / "emptydata").mkdir()
    bad_mnist = root / "badmnist" / "MNIST" / "raw"
    bad_mnist.mkdir(parents=True)
    for f in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte"]:
        (bad_mnist / f).write_bytes(b"\x00\x00\x08\x03garbage")
    bad_cifar = root / "badcifar" / "cifar-10-batches-bin"
    bad_cifar.mkdir(parents=True)
    for f in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (bad_cifar / f).write_bytes(b"\x01" * 1000)
    # hostile cards: widths/classes/channels/kernel edited to sizes that would need tens of GB
    arch = card["arch"]
    variant("hugewidth", card_obj=card | {"arch": arch | {"widths": [10**9] + arch["widths"][1:]}})
    variant("hugeclasses", card_obj=card | {"arch": arch | {"num_classes": 10**9}})
    variant("hugechannels", card_obj=card | {"arch": arch | {"in_channels": 10**8}})
    variant("hugekernel", card_obj=card | {"arch": arch | {"kernel_size": 10**6 + 1}})
    variant("longlist", card_obj=card | {"arch": arch | {"widths": [1] * 2000, "strides": [1] * 2000}})
    from safetensors.torch import load, save

    tensors = load(blob)
    tensors["block1.conv.weight"] = tensors["block1.conv.weight"].double()
    variant("float64", weights=save(tensors))
    # folders of the user's that --force must not touch
    thesis = root / "thesis"
    (thesis / "sub").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("\\documentclass{article}")
    (thesis / "sub" / "data.csv").write_text("1,2,3")
    fake = root / "fakeckpt"  # looks like a checkpoint at a glance, but its card is not featviz's
    fake.mkdir()
    (fake / "card.json").write_text('{"format": "someone-else/3"}')
    (fake / "model.safetensors").write_bytes(b"mine")
    hidden = root / "hidden"
    hidden.mkdir()
    (hidden / ".notes").write_text("private")
    gz = root / "gzmnist" / "MNIST" / "raw"
    gz.mkdir(parents=True)
    for f, payload in [("train-images-idx3-ubyte", b"\x00\x00\x08\x03" + bytes([0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28])),
                       ("train-labels-idx1-ubyte", b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02"),
                       ("t10k-images-idx3-ubyte", b"\x00\x00\x08\x03" + bytes([0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28])
                        + bytes(784)),
                       ("t10k-labels-idx1-ubyte", b"\x00\x00\x08\x01\x00\x00\x00\x01\x03")]:
        (gz / f"{f}.gz").write_bytes(gzip.compress(payload))  # train images: header only, pixels cut off
    hier = root / "hier-bad"
    hier.mkdir()
    (hier / "results.json").write_text("{broken")
    (root / "hier-empty").mkdir()
    return root


T = "{root}"
CASES = [
    # --- train ---
    ("train-unknown-dataset", ["train", "--dataset", "imagenet", "--out", T + "/o"], "imagenet"),
    ("train-unknown-mode", ["train", "--mode", "sideways", "--out", T + "/o"], "sideways"),
    ("train-zero-epochs", ["train", "--epochs", "0", "--out", T + "/o"], "--epochs"),
    ("train-negative-epochs", ["train", "--epochs", "-3", "--out", T + "/o"], "--epochs"),
    ("train-nan-lr", ["train", *SYN, "--lr", "nan", "--out", T + "/o"], "--lr"),
    ("train-negative-lr", ["train", *SYN, "--lr", "-1", "--out", T + "/o"], "--lr"),
    ("train-zero-batch", ["train", *SYN, "--batch-size", "0", "--out", T + "/o"], "--batch-size"),
    ("train-zero-width", ["train", *SYN, "--width", "0", "--out", T + "/o"], "--width"),
    ("train-bad-alpha", ["train", *SYN, "--alpha", "1.5", "--out", T + "/o"], "alpha"),
    ("train-mnist-no-root", ["train", "--dataset", "mnist", "--out", T + "/o"], "--data-root"),
    ("train-mnist-missing-files", ["train", "--dataset", "mnist", "--data-root", T + "/emptydata", "--out", T + "/o"],
     "train-images-idx3-ubyte"),
    ("train-mnist-root-is-file", ["train", "--dataset", "mnist", "--data-root", T + "/afile", "--out", T + "/o"],
     "is a file"),
    ("train-mnist-malformed", ["train", "--dataset", "mnist", "--data-root", T + "/badmnist", "--out", T + "/o"],
     "train-images-idx3-ubyte"),
    ("train-cifar-malformed", ["train", "--dataset", "cifar10", "--data-root", T + "/badcifar", "--out", T + "/o"],
     "CIFAR-10"),
    ("train-out-is-file", ["train", *SYN, "--out", T + "/afile"], "is a file"),
    ("train-out-not-empty", ["train", *SYN, "--out", T + "/full"], "not empty"),
    ("train-out-under-file", ["train", *SYN, "--out", T + "/afile/sub"], "afile"),
    ("train-missing-cuda", ["train", *SYN, "--device", "cuda:3", "--out", T + "/o"], "cuda"),
    ("train-unknown-device", ["train", *SYN, "--device", "tpu", "--out", T + "/o"], "tpu"),
    ("train-huge-image", ["train", "--image-size", "100000", "--out", T + "/o"], "--image-size"),
    ("train-resume-missing", ["train", "--resume", T + "/nothing"], "does not exist"),
    ("train-resume-finished", ["train", "--resume", T + "/good"], "not a resumable"),
    ("train-unknown-option", ["train", "--bogus"], "--bogus"),
    ("train-adv-without-eps", ["train", *SYN, "--adv", "pgd", "--out", T + "/o"], "--eps"),
    # --- info: damaged and hostile checkpoints ---
    ("info-missing", ["info", T + "/nothing"], "does not exist"),
    ("info-file", ["info", T + "/afile"], "is a file"),
    ("info-no-card", ["info", T + "/nocard"], "card.json"),
    ("info-truncated", ["info", T + "/truncated"], "safetensors"),
    ("info-bitflipped", ["info", T + "/flipped"], "safetensors"),
    ("info-old-format", ["info", T + "/oldformat"], "format"),
    ("info-missing-keys", ["info", T + "/nokeys"], "lacks"),
    ("info-shape-mismatch", ["info", T + "/shapes"], "shape"),
    ("info-pickle", ["info", T + "/pickle"], "never loads pickles"),
    ("info-card-not-json", ["info", T + "/notjson"], "not valid JSON"),
    ("info-card-not-object", ["info", T + "/jsonlist"], "JSON object"),
    # --- maximize ---
    ("max-unknown-layer", ["maximize", T + "/good", "--neuron", "block9:0", "--out", T + "/o"], "block1"),
    ("max-unit-out-of-range", ["maximize", T + "/good", "--neuron", "block1:99", "--out", T + "/o"], "99"),
    ("max-malformed-spec", ["maximize", T + "/good", "--neuron", "block1:abc", "--out", T + "/o"], "block1:abc"),
    ("max-bad-range", ["maximize", T + "/good", "--neuron", "block1:3-1", "--out", T + "/o"], "3-1"),
    ("max-unknown-reg", ["maximize", T + "/good", "--neuron", "block1:0", "--reg", "sparkle", "--out", T + "/o"],
     "sparkle"),
    ("max-negative-steps", ["maximize", T + "/good", "--neuron", "block1:0", "--steps", "-1", "--out", T + "/o"],
     "--steps"),
    ("max-damaged-checkpoint", ["maximize", T + "/truncated", "--neuron", "block1:0", "--out", T + "/o"],
     "safetensors"),
    ("max-pickle-checkpoint", ["maximize", T + "/pickle", "--neuron", "block1:0", "--out", T + "/o"], "pickle"),
    ("max-bad-factory", ["maximize", "--model", "nosuchmodule:make", "--input-shape", "1,8,8", "--neuron",
                         "conv:0", "--out", T + "/o"], "nosuchmodule"),
    ("max-huge-input", ["maximize", "--model", "torch.nn:Identity", "--input-shape", "3,200000,200000",
                        "--neuron", "logits:0", "--out", T + "/o"], "memory"),
    ("max-out-not-empty", ["maximize", T + "/good", "--neuron", "block1:0", "--out", T + "/full"], "not empty"),
    # --- attack ---
    ("att-negative-eps", ["attack", T + "/good", "--eps", "-0.1", "--out", T + "/o"], "eps"),
    ("att-nan-eps", ["attack", T + "/good", "--eps", "nan", "--out", T + "/o"], "eps"),
    ("att-absurd-eps", ["attack", T + "/good", "--eps", "1e9", "--out", T + "/o"], "eps"),
    ("att-malformed-sweep", ["attack", T + "/good", "--eps-sweep", "0:x:3", "--out", T + "/o"], "0:x:3"),
    ("att-empty-sweep", ["attack", T + "/good", "--eps-sweep", "0:0.3:0", "--out", T + "/o"], "sweep"),
    ("att-zero-steps", ["attack", T + "/good", "--steps", "0", "--out", T + "/o"], "steps"),
    ("att-unknown-attack", ["attack", T + "/good", "--attack", "laser", "--out", T + "/o"], "laser"),
    ("att-missing-checkpoint", ["attack", T + "/nothing", "--out", T + "/o"], "does not exist"),
    ("att-pickle-checkpoint", ["attack", T + "/pickle", "--out", T + "/o"], "pickle"),
    # --- gallery, hierarchy, demo ---
    ("gal-missing-checkpoint", ["gallery", T + "/nothing", "--out", T + "/o"], "does not exist"),
    ("gal-hierarchy-no-results", ["gallery", T + "/good", "--hierarchy", T + "/hier-empty", "--render-steps", "0",
                                  "--out", T + "/o"], "results.json"),
    ("gal-hierarchy-broken-json", ["gallery", T + "/good", "--hierarchy", T + "/hier-bad", "--render-steps", "0",
                                   "--out", T + "/o"], "results.json"),
    ("hier-zero-seeds", ["hierarchy", "run", "--preset", "quick", "--seeds", "0", "--out", T + "/o"], "seeds"),
    ("hier-bad-alpha", ["hierarchy", "run", "--preset", "quick", "--alpha", "2", "--out", T + "/o"], "alpha"),
    ("hier-unknown-preset", ["hierarchy", "run", "--preset", "nope", "--out", T + "/o"], "nope"),
    ("demo-out-is-file", ["demo", "--quick", "--out", T + "/afile"], "is a file"),
    ("unknown-command", ["frobnicate"], "frobnicate"),
    # --- --force replaces only folders featviz made ---
    ("train-force-foreign", ["train", *SYN, "--out", T + "/thesis", "--force"], "did not write"),
    ("max-force-foreign", ["maximize", T + "/good", "--neuron", "block1:0", "--steps", "1", "--out", T + "/thesis",
                           "--force"], "did not write"),
    ("att-force-foreign", ["attack", T + "/good", "--out", T + "/thesis", "--force"], "did not write"),
    ("gal-force-foreign", ["gallery", T + "/good", "--render-steps", "0", "--out", T + "/thesis", "--force"],
     "did not write"),
    ("hier-force-foreign", ["hierarchy", "run", "--preset", "quick", "--out", T + "/full", "--force"], "did not write"),
    ("demo-force-foreign", ["demo", "--quick", "--out", T + "/thesis", "--force"], "did not write"),
    ("purify-force-foreign", ["purify", "--quick", "--out", T + "/thesis", "--force"], "did not write"),
    ("hier-images-force-foreign", ["hierarchy", "images", "--quick", "--out", T + "/thesis", "--force"],
     "did not write"),
    ("hier-images-out-proc", ["hierarchy", "images", "--quick", "--out", "/proc/featviz-out"], "/proc"),
    ("train-force-foreign-card", ["train", *SYN, "--out", T + "/fakeckpt", "--force"], "did not write"),
    ("max-force-hidden-file", ["maximize", T + "/good", "--neuron", "block1:0", "--out", T + "/hidden", "--force"],
     "did not write"),
    # --- --out checked before any data or model is loaded ---
    ("train-out-proc", ["train", *SYN, "--out", "/proc/featviz-out"], "/proc"),
    ("max-out-proc", ["maximize", T + "/good", "--neuron", "block1:0", "--steps", "1", "--out", "/proc/featviz-out"],
     "/proc"),
    ("att-out-sys", ["attack", T + "/good", "--eps", "0.1", "--out", "/sys/featviz-out"], "/sys"),
    ("gal-out-proc", ["gallery", T + "/good", "--render-steps", "0", "--out", "/proc/featviz-out"], "/proc"),
    ("hier-out-proc", ["hierarchy", "run", "--preset", "quick", "--out", "/proc/featviz-out"], "/proc"),
    ("demo-out-dev", ["demo", "--quick", "--out", "/dev/featviz-out"], "/dev"),
    # --- hostile cards are refused before anything is allocated ---
    ("info-huge-width", ["info", T + "/hugewidth"], "block1.conv.weight"),
    ("info-huge-classes", ["info", T + "/hugeclasses"], "readouts"),
    ("info-huge-channels", ["info", T + "/hugechannels"], "input_mean"),
    ("info-huge-kernel", ["info", T + "/hugekernel"], "block1.conv.weight"),
    ("info-long-arch-list", ["info", T + "/longlist"], "2000 entries"),
    ("info-dtype-in-header", ["info", T + "/float64"], "F64"),
    ("max-huge-width", ["maximize", T + "/hugewidth", "--neuron", "block1:0", "--out", T + "/o"], "block1.conv.weight"),
    ("att-huge-width", ["attack", T + "/hugewidth", "--out", T + "/o"], "block1.conv.weight"),
    ("gal-huge-classes", ["gallery", T + "/hugeclasses", "--render-steps", "0", "--out", T + "/o"], "readouts"),
    # --- data as downloaded ---
    ("train-mnist-gz-truncated", ["train", "--dataset", "mnist", "--data-root", T + "/gzmnist", "--out", T + "/o"],
     "train-images-idx3-ubyte.gz"),
]


def test_catalogue_is_large_enough():
    assert len(CASES) >= 80
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,argv,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_input(world, run_cli, name, argv, needle):
    before = sorted(p.name for p in world.iterdir())
    res = run_cli(*[a.replace(T, str(world)) for a in argv])
    lines = [l for l in res.err.splitlines() if l.strip()]
    assert res.code == 2, f"exit {res.code}: {res.err[-800:]}"
    assert len(lines) == 1 and lines[0].startswith("featviz: error:"), res.err[-800:]
    assert "Traceback" not in res.err
    assert needle.lower() in lines[0].lower(), lines[0]
    assert sorted(p.name for p in world.iterdir()) == before  # nothing written, nothing half-written
    assert (world / "full" / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in (world / "thesis").rglob("*")) == ["data.csv", "sub", "thesis.tex"]
    assert (world / "thesis" / "sub" / "data.csv").read_text() == "1,2,3"
    assert sorted(p.name for p in (world / "hidden").iterdir()) == [".notes"]
    assert (world / "fakeckpt" / "model.safetensors").read_bytes() == b"mine"
    shutil.rmtree(world / "o", ignore_errors=True)


def test_force_replaces_a_folder_featviz_made_and_names_the_command(world, run_cli, tmp_path):
    out = tmp_path / "vis"
    args = ["maximize", world / "good", "--neuron", "block1:0", "--steps", "1", "--top-k", "0", "--out", out]
    assert run_cli(*args).code == 0
    marker = json.loads((out / ".featviz-output").read_text())
    assert marker["made_by"] == "featviz" and marker["command"].startswith("featviz maximize ")
    (out / "stale.png").write_bytes(b"old")
    assert run_cli(*args).code == 2  # not empty, no --force
    assert run_cli(*args, "--force").code == 0  # featviz's own folder: replaced
    assert not (out / "stale.png").exists() and (out / "metrics.json").is_file()
    # a checkpoint from before the marker (a real card and real weights, nothing else) is featviz's
    legacy = tmp_path / "legacy"
    shutil.copytree(world / "good", legacy)
    (legacy / ".featviz-output").unlink(missing_ok=True)
    res = run_cli("train", *SYN, "--out", legacy, "--force")
    assert res.code == 0, res.err
    # a page that merely says "Made by featviz" is not: --force needs the marker
    gal = tmp_path / "oldgallery"
    gal.mkdir()
    (gal / "index.html").write_text("<footer>Made by featviz: a static page</footer>")
    res = run_cli("gallery", world / "good", "--render-steps", "0", "--out", gal, "--force")
    assert res.code == 2 and "did not write" in res.err, res.err
    assert [p.name for p in gal.iterdir()] == ["index.html"]


@pytest.mark.parametrize("command", [
    ["maximize", "{root}/truncated", "--neuron", "block1:0"],
    ["attack", "{root}/pickle"],
    ["gallery", "{root}/hugewidth"],
    ["train", "--dataset", "mnist", "--data-root", "{root}/badmnist"],
])
def test_out_is_checked_before_the_model_or_data_is_loaded(world, run_cli, command):
    res = run_cli(*[a.replace(T, str(world)) for a in command], "--out", "/proc/featviz-out")
    assert res.code == 2 and "/proc" in res.err and "safetensors" not in res.err and "idx" not in res.err.lower()
