import json
import os
import pickle

import pytest
import torch

from featviz.checkpoint import FORMAT, load_checkpoint, make_card, read_card, save_checkpoint
from featviz.errors import CheckpointError, FeatvizError


def _card(model):
    return make_card(model, dataset={"name": "digits", "image_size": 8}, training={"mode": "joint", "adv": None,
                     "epochs": 1, "seed": 0, "command": "featviz train", "seconds": 0.1},
                     metrics={"test_accuracy": 0.5, "train_accuracy": 0.6, "stages": []})


@pytest.fixture
def saved(tmp_path, tiny_convnet):
    path = tmp_path / "ckpt"
    # make the BatchNorm statistics non-trivial so the round trip covers buffers too
    tiny_convnet.train()(torch.rand(16, 1, 8, 8))
    save_checkpoint(path, tiny_convnet.eval(), _card(tiny_convnet))
    return path, tiny_convnet


def test_round_trip_is_bit_exact(saved):
    path, model = saved
    ckpt = load_checkpoint(path)
    assert sorted(os.listdir(path)) == [".featviz-output", "card.json", "model.safetensors"]
    for (k, a), (k2, b) in zip(model.state_dict().items(), ckpt.model.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(model(x), ckpt.model(x))
    assert not ckpt.model.training
    card = json.loads((path / "card.json").read_text())
    assert card["format"] == FORMAT == "featviz-checkpoint/1"
    assert set(card) >= {"format", "arch", "dataset", "training", "metrics", "layers", "versions"}
    assert card["layers"] == [{"name": "block1", "units": 4, "kind": "conv"},
                              {"name": "block2", "units": 6, "kind": "conv"}]
    assert card["versions"]["featviz"] and card["versions"]["torch"]


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what a hostile pickle does when loaded
        return (open, (self.marker, "w"))


def test_a_pickle_is_refused_and_never_executed(saved, tmp_path):
    path, _ = saved
    marker = tmp_path / "pwned"
    (path / "model.safetensors").write_bytes(pickle.dumps({"block1.conv.weight": _Exploit(str(marker))}))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.save({"w": torch.zeros(1)}, path / "model.safetensors")  # torch's zip-pickle format too
    with pytest.raises(CheckpointError, match="never loads pickles"):
        load_checkpoint(path)


def test_truncated_and_bitflipped_weights_are_refused(saved):
    path, _ = saved
    blob = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    flipped = bytearray(blob)
    flipped[3] ^= 0xFF  # the header length
    (path / "model.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


@pytest.mark.parametrize("edit,match", [
    (lambda c: c.update(format="featviz-checkpoint/0"), "format"),
    (lambda c: c.pop("arch"), "lacks arch"),
    (lambda c: c["arch"].update(widths=[5, 6]), "shape"),
    (lambda c: c["arch"].update({"class": "Sequential"}), "unknown model class"),
    (lambda c: c["arch"].update(bogus=1), "cannot build"),
])
def test_card_problems_are_one_line_errors(saved, edit, match):
    path, _ = saved
    card = json.loads((path / "card.json").read_text())
    edit(card)
    (path / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=match) as info:
        load_checkpoint(path)
    assert "\n" not in info.value.one_line()


def test_missing_paths(tmp_path, saved):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is a file"):
        load_checkpoint(tmp_path / "file")
    path, _ = saved
    (path / "card.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_card(path)


def test_failed_save_leaves_previous_checkpoint_intact(saved, monkeypatch):
    path, model = saved
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    import featviz.checkpoint as ck

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ck, "to_json", boom)
    with pytest.raises(RuntimeError):
        save_checkpoint(path, model, _card(model))
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp left behind


def test_nan_weights_are_never_saved(tmp_path, tiny_convnet):
    with torch.no_grad():
        tiny_convnet.block1.conv.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(FeatvizError, match="NaN"):
        save_checkpoint(tmp_path / "bad", tiny_convnet, _card(tiny_convnet))
    assert not (tmp_path / "bad").exists()


def _edit_card(path, **arch):
    card = json.loads((path / "card.json").read_text())
    card["arch"].update(arch)
    (path / "card.json").write_text(json.dumps(card))


def test_header_is_compared_with_the_card_before_the_model_is_built(saved, monkeypatch):
    import featviz.checkpoint as checkpoint
    from featviz.checkpoint import check_weights_match_card, read_safetensors_header

    path, model = saved
    table = read_safetensors_header(path / "model.safetensors")
    assert table["block1.conv.weight"] == {"dtype": "F32", "shape": list(model.block1.conv.weight.shape)}
    assert check_weights_match_card(read_card(path), path / "model.safetensors", path) == \
        sum(t.numel() for t in model.state_dict().values())
    built, real_build = [], checkpoint.build_model

    def build(arch):
        built.append(torch.get_default_device().type)
        return real_build(arch)

    monkeypatch.setattr(checkpoint, "build_model", build)
    _edit_card(path, widths=[10**9, 6])
    with pytest.raises(CheckpointError, match=r"block1\.conv\.weight has shape \(4, 1, 3, 3\).*\(1000000000, 1, 3, 3\)"):
        load_checkpoint(path)
    assert built == ["meta"]  # refused before any model was built for real (only on the meta device)


def test_size_limit_and_hostile_headers(saved, monkeypatch):
    import featviz.checkpoint as checkpoint

    path, _ = saved
    monkeypatch.setattr(checkpoint, "MAX_PARAMETERS", 10)
    with pytest.raises(CheckpointError, match="more than featviz loads"):
        load_checkpoint(path)
    monkeypatch.undo()
    weights = path / "model.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes((2**62).to_bytes(8, "little") + blob[8:])  # header length beyond the file
    with pytest.raises(CheckpointError, match="header length"):
        load_checkpoint(path)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    header["block1.conv.weight"]["data_offsets"] = [0, 10**12]  # points past the end of the file
    text = json.dumps(header).encode()
    weights.write_bytes(len(text).to_bytes(8, "little") + text + blob[8 + n:])
    with pytest.raises(CheckpointError, match="outside the file"):
        load_checkpoint(path)


def test_info_on_a_card_edited_to_width_1e9_stays_small(saved, tmp_path):
    """The whole `featviz info` process on the edited card costs no more memory than `info` on a
    good checkpoint in the same environment (it used to try to allocate 36 GB). Standalone, both
    peak at ~0.8 GB, most of it `import torch`; the absolute figure depends on the environment."""
    import shutil
    import subprocess
    import sys

    path, _ = saved
    good = tmp_path / "good"
    shutil.copytree(path, good)
    _edit_card(path, widths=[10**9, 10**9])
    code = ("import resource, sys\nfrom featviz.cli import main\ntry:\n    main(['info', sys.argv[1]])\n"
            "except SystemExit as exc:\n    code = exc.code\n"
            "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'EXIT', code, file=sys.stderr)")

    def info(folder):
        res = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=300,
                             env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
        return int(res.stderr.split("PEAK")[1].split()[0]), res.stderr.split("EXIT")[1].split()[0], res.stderr

    good_kb, good_exit, _ = info(good)
    peak_kb, exit_code, err = info(path)
    assert good_exit == "0"
    assert exit_code == "2" and "featviz: error:" in err, err[-500:]
    assert peak_kb < good_kb + 128 * 1024, f"peak RSS {peak_kb} kB vs {good_kb} kB for a good checkpoint"
    assert peak_kb < 1536 * 1024, f"peak RSS {peak_kb} kB"
