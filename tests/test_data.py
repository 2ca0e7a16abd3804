import gzip
import struct

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from featviz.data import load_dataset, load_digits, load_synthetic, split_indices
from featviz.errors import DataError


def test_digits_split_shapes_and_normalization():
    data = load_digits()
    assert data.x_train.shape == (1438, 1, 16, 16) and data.x_test.shape == (359, 1, 16, 16)
    assert 0.0 <= float(data.x_train.min()) and float(data.x_train.max()) <= 1.0
    assert data.num_classes == 10 and data.task == "classification"
    norm = data.info["normalization"]
    assert norm["mean"][0] == pytest.approx(float(data.x_train.mean()), abs=1e-5)
    assert norm["std"][0] == pytest.approx(float(data.x_train.std()), abs=1e-4)
    # stratified: every class keeps ~20% of its images in the test set
    for c in range(10):
        n_test, n_all = int((data.y_test == c).sum()), int((data.y_test == c).sum() + (data.y_train == c).sum())
        assert abs(n_test / n_all - 0.2) < 0.02
    again = load_digits()
    assert torch.equal(again.x_test, data.x_test) and torch.equal(again.y_train, data.y_train)


def test_digits_other_size_and_bad_size():
    assert load_digits(image_size=8).x_train.shape[-1] == 8
    with pytest.raises(DataError):
        load_digits(image_size=2)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=60), st.integers(0, 1000))
def test_split_indices_is_a_partition(labels, seed):
    labels = torch.tensor(labels)
    parts = split_indices(labels, (0.7, 0.2, 0.1), seed)
    joined = torch.cat(parts)
    assert sorted(joined.tolist()) == list(range(len(labels)))
    assert all(torch.equal(a, b) for a, b in zip(parts, split_indices(labels, (0.7, 0.2, 0.1), seed)))


def test_synthetic_is_seeded_and_test_set_does_not_depend_on_n_train():
    a = load_synthetic(d=5, k=2, depth=2, n_train=100, n_val=10, n_test=50, seed=3)
    b = load_synthetic(d=5, k=2, depth=2, n_train=200, n_val=10, n_test=50, seed=3)
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_test, b.y_test)
    assert torch.equal(a.x_train, b.x_train[:100])  # more data extends the training set
    c = load_synthetic(d=5, k=2, depth=2, n_train=100, n_val=10, n_test=50, seed=4)
    assert not torch.equal(a.x_test, c.x_test)
    assert a.task == "regression" and a.x_val.shape == (10, 5)
    with pytest.raises(DataError):
        load_synthetic(alpha=0.0)


def _write_idx(path, array: np.ndarray, gz: bool = False):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)


def _fake_mnist(root, sub="MNIST/raw", n_train=20, n_test=10):
    raw = root / sub
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    _write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, 28, 28)))
    _write_idx(raw / "train-labels-idx1-ubyte", rng.integers(0, 10, (n_train,)))
    _write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)))
    _write_idx(raw / "t10k-labels-idx1-ubyte", rng.integers(0, 10, (n_test,)))


@pytest.mark.parametrize("name,sub", [("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw")])
def test_mnist_family_reads_real_idx_files(tmp_path, name, sub):
    _fake_mnist(tmp_path, sub)
    data = load_dataset(name, data_root=tmp_path)
    assert data.x_train.shape == (20, 1, 28, 28) and data.x_test.shape == (10, 1, 28, 28)
    assert data.x_train.max() <= 1.0 and data.y_train.dtype == torch.int64
    small = load_dataset(name, data_root=tmp_path, image_size=14)
    assert small.x_train.shape[-1] == 14


def test_missing_dataset_files_name_what_is_expected_where(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*MNIST/raw"):
        load_dataset("mnist", data_root=tmp_path)
    with pytest.raises(DataError, match="--data-root"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="data_batch_1.bin"):
        load_dataset("cifar10", data_root=tmp_path)
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("imagenet")


def test_cifar10_binary_batches(tmp_path):
    sub = tmp_path / "cifar-10-batches-bin"
    sub.mkdir()
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = np.concatenate([rng.integers(0, 10, (4, 1)), rng.integers(0, 256, (4, 3072))], axis=1)
        (sub / name).write_bytes(rec.astype(np.uint8).tobytes())
    data = load_dataset("cifar10", data_root=tmp_path)
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    assert len(data.info["normalization"]["mean"]) == 3
    (sub / "test_batch.bin").write_bytes(b"\x00" * 100)  # truncated
    with pytest.raises(DataError, match="not a CIFAR-10 binary batch"):
        load_dataset("cifar10", data_root=tmp_path)


@pytest.fixture
def no_data_env(monkeypatch):
    monkeypatch.delenv("FEATVIZ_DATA", raising=False)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "unpacked"])
def test_mnist_gz_as_downloaded_and_unpacked_both_load(tmp_path, no_data_env, gz):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 256, (12, 28, 28)), rng.integers(0, 10, (12,))
    for stem, arr in [("train-images-idx3-ubyte", x), ("train-labels-idx1-ubyte", y),
                      ("t10k-images-idx3-ubyte", x[:5]), ("t10k-labels-idx1-ubyte", y[:5])]:
        _write_idx(raw / (stem + (".gz" if gz else "")), arr, gz=gz)
    data = load_dataset("mnist", data_root=tmp_path)
    assert data.x_train.shape == (12, 1, 28, 28) and data.x_test.shape == (5, 1, 28, 28)
    assert torch.equal((data.x_train[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(x.astype(np.uint8)))
    assert data.y_train.tolist() == y.tolist()
    assert data.info["data_root"] == str(tmp_path.resolve())  # the card remembers where the data was


def test_truncated_gz_and_bad_magic_are_data_errors(tmp_path, no_data_env):
    _fake_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    blob = gzip.compress((raw / "train-images-idx3-ubyte").read_bytes())
    (raw / "train-images-idx3-ubyte").unlink()
    (raw / "train-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_dataset("mnist", data_root=tmp_path)
    (raw / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + b"\x00" * 12))
    with pytest.raises(DataError, match="IDX"):
        load_dataset("mnist", data_root=tmp_path)


def test_featviz_data_env_is_the_default_root_and_the_error_lists_where_it_looked(tmp_path, monkeypatch):
    _fake_mnist(tmp_path / "env")
    monkeypatch.setenv("FEATVIZ_DATA", str(tmp_path / "env"))
    assert load_dataset("mnist").x_train.shape == (20, 1, 28, 28)
    monkeypatch.setenv("FEATVIZ_DATA", str(tmp_path / "empty"))
    # the env var first, then the card's recorded root
    _fake_mnist(tmp_path / "recorded")
    assert load_dataset("mnist", recorded_root=str(tmp_path / "recorded")).x_train.shape[0] == 20
    with pytest.raises(DataError) as err:
        load_dataset("mnist", recorded_root=str(tmp_path / "gone"))
    msg = err.value.one_line()
    for needle in ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte", ".gz", str(tmp_path / "empty" / "MNIST" / "raw"),
                   str(tmp_path / "gone" / "MNIST" / "raw"), "FEATVIZ_DATA"]:
        assert needle in msg, (needle, msg)


def test_cifar_python_batches_are_unpickled_only_when_official(tmp_path, no_data_env):
    import pickle

    sub = tmp_path / "cifar-10-batches-py"
    sub.mkdir()
    rng = np.random.default_rng(3)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8), "labels": [1, 2, 3, 4]}
        (sub / name).write_bytes(pickle.dumps(batch))
    (sub / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))
    with pytest.raises(DataError, match="published files"):
        load_dataset("cifar10", data_root=tmp_path)


def test_checkpoint_trained_on_mnist_finds_its_data_again(tmp_path, run_cli, monkeypatch):
    """train with FEATVIZ_DATA; attack and maximize the checkpoint with neither --data-root nor the env var."""
    import json

    monkeypatch.setenv("FEATVIZ_DATA", str(tmp_path / "data"))
    _fake_mnist(tmp_path / "data", n_train=40, n_test=16)
    res = run_cli("train", "--dataset", "mnist", "--image-size", "8", "--width", "3", "--depth", "1", "--epochs", "1",
                  "--out", tmp_path / "ckpt")
    assert res.code == 0, res.err
    card = json.loads((tmp_path / "ckpt" / "card.json").read_text())
    assert card["dataset"]["name"] == "mnist" and card["dataset"]["data_root"] == str((tmp_path / "data").resolve())
    monkeypatch.delenv("FEATVIZ_DATA")
    res = run_cli("attack", tmp_path / "ckpt", "--attack", "fgsm", "--eps", "0.1", "--n-show", "0", "--json",
                  "--out", tmp_path / "att")
    assert res.code == 0, res.err
    assert json.loads(res.out)["models"][0]["clean_accuracy"] is not None
    res = run_cli("maximize", tmp_path / "ckpt", "--neuron", "block1:0", "--steps", "2", "--top-k", "2",
                  "--out", tmp_path / "vis")
    assert res.code == 0, res.err
    metrics = json.loads((tmp_path / "vis" / "metrics.json").read_text())
    assert len(metrics["dataset_examples"][0]["files"]) >= 1  # the examples came from the recorded root
    res = run_cli("train", "--dataset", "mnist", "--data-root", tmp_path / "data", "--image-size", "8", "--width", "3",
                  "--depth", "1", "--epochs", "1", "--seed", "1", "--out", tmp_path / "ckpt2")
    assert res.code == 0, res.err
    res = run_cli("gallery", tmp_path / "ckpt", tmp_path / "ckpt2", "--render-steps", "0", "--json",
                  "--out", tmp_path / "gal")
    assert res.code == 0, res.err
    assert json.loads(res.out)["comparisons"]  # units matched on the test images found through the cards
