import pytest
import torch

from featviz.devices import seeded
from featviz.errors import FeatvizError
from featviz.nets import QuadraticDenseConvNet, QuadraticDenseMLP, Teacher, build_model, layer_table
from featviz.nets.base import resolve_connections


def test_mlp_shapes_and_layer_names():
    model = QuadraticDenseMLP(7, [5, 6, 3], out_dim=2)
    out = model(torch.randn(11, 7))
    assert out.shape == (11, 2)
    feats = model.features(torch.randn(11, 7))
    assert [f.shape for f in feats] == [(11, 5), (11, 6), (11, 3)]
    assert [(i.name, i.units, i.kind) for i in layer_table(model)] == [
        ("block1", 5, "dense"), ("block2", 6, "dense"), ("block3", 3, "dense")]
    names = dict(model.named_modules())
    assert {"block1", "block2", "block3"} <= set(names)


def test_connection_patterns():
    assert resolve_connections("dense", 3) == [[0], [1, 0], [2, 1, 0]]
    assert resolve_connections("chain", 3) == [[0], [1], [2]]
    assert resolve_connections("skip2", 3) == [[0], [1, 0], [2, 1]]
    assert resolve_connections([[0], [0], [2, 0]], 3) == [[0], [0], [2, 0]]
    with pytest.raises(FeatvizError):
        resolve_connections([[0], [2]], 2)  # layer 2 cannot read itself
    with pytest.raises(FeatvizError):
        resolve_connections("ring", 2)
    # DenseNet concatenation widens the input of each layer accordingly
    model = QuadraticDenseMLP(4, [3, 5, 2], connect="dense")
    assert model.block3.linear.in_features == 4 + 3 + 5


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_depth6_activations_stay_finite_at_init(mode):
    with seeded(1):
        model = QuadraticDenseMLP(20, [32] * 6, connect="dense")
    model.train(mode == "train")
    x = torch.randn(512, 20, generator=torch.Generator().manual_seed(0))
    feats = model.features(x)
    assert all(torch.isfinite(f).all() for f in feats)
    if mode == "train":  # batch statistics: every unit at zero mean, unit variance, whatever the depth
        for f in feats:
            assert f.mean(0).abs().max() < 1e-4
            assert (f.var(0, unbiased=False) - 1).abs().max() < 1e-2
    # without normalization z² compounds: the reason the normalization exists
    with seeded(1):
        raw = QuadraticDenseMLP(20, [32] * 6, connect="dense", norm="none")
    assert raw.features(x)[-1].abs().max() > 1e6 * feats[-1].abs().max()


def test_forward_depth_uses_only_earlier_blocks():
    model = QuadraticDenseMLP(5, [4, 4, 4]).eval()
    x = torch.randn(8, 5)
    before = model(x, depth=2).clone()
    with torch.no_grad():
        model.block3.linear.weight.add_(1.0)
        model.readouts[2].weight.add_(1.0)
    assert torch.equal(model(x, depth=2), before)
    assert not torch.allclose(model(x), model(x, depth=2))
    with pytest.raises(ValueError):
        model(x, depth=4)


def test_output_is_sum_of_readouts():
    model = QuadraticDenseMLP(5, [4, 3]).eval()
    x = torch.randn(6, 5)
    feats = model.features(x)
    manual = model.readouts[0](feats[0]) + model.readouts[1](feats[1])
    assert torch.allclose(model(x), manual)


def test_convnet_shapes_resolutions_and_normalization():
    model = QuadraticDenseConvNet(3, 7, widths=(4, 8, 8), image_size=16, input_mean=[0.5] * 3,
                                  input_std=[0.25] * 3).eval()
    x = torch.rand(2, 3, 16, 16)
    assert model(x).shape == (2, 7)
    assert [f.shape[-1] for f in model.features(x)] == [16, 8, 4]
    assert model.block2.conv.in_channels == 3 + 4  # dense: image + block1
    assert model.block3.conv.in_channels == 3 + 4 + 8
    # normalization lives inside the model: shifting it changes the output
    other = QuadraticDenseConvNet(3, 7, widths=(4, 8, 8), image_size=16).eval()
    other.load_state_dict({k: v for k, v in model.state_dict().items() if "input_" not in k}, strict=False)
    assert not torch.allclose(model(x), other(x))
    assert torch.allclose(model(x), other((x - 0.5) / 0.25), atol=1e-5)


def test_relu_variant_and_build_model_roundtrip():
    model = QuadraticDenseConvNet(1, 10, widths=(4, 4), image_size=8, act="relu")
    clone = build_model(model.arch)
    clone.load_state_dict(model.state_dict())
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(model.eval()(x), clone.eval()(x))
    with pytest.raises(FeatvizError):
        build_model({"class": "os.system"})
    with pytest.raises(FeatvizError):
        build_model({"class": "QuadraticDenseMLP", "bogus": 1})


def test_teacher_is_orthonormal_standardized_and_seeded():
    t = Teacher(d=12, k=3, depth=3, alpha=0.3, seed=4, n_calibration=50_000)
    w = t.w1_0
    assert torch.allclose(w @ w.T, torch.eye(3), atol=1e-5)
    assert torch.allclose(t.w2_1 @ t.w2_1.T, torch.eye(3), atol=1e-5)
    x = torch.randn(40_000, 12, generator=torch.Generator().manual_seed(9))
    feats = t.features(x)
    for f in feats[:2]:
        assert f.mean(0).abs().max() < 0.05
        assert (f.std(0) - 1).abs().max() < 0.1
    # layer 3 is a degree-8 polynomial of x: heavy tails make a fresh sample's std noisy
    assert ((feats[2].std(0) > 0.5) & (feats[2].std(0) < 2)).all()
    y = t(x)
    assert abs(float(y.var()) - 1) < 0.08
    # information gap: layer ℓ contributes alpha^(ℓ-1) of the signal's scale
    parts = [(0.3 ** l) * f.sum(1) for l, f in enumerate(feats)]
    assert parts[0].std() > parts[1].std() > parts[2].std()
    same = Teacher(d=12, k=3, depth=3, alpha=0.3, seed=4, n_calibration=50_000)
    assert torch.equal(same(x[:100]), y[:100])
    assert not torch.allclose(Teacher(d=12, k=3, depth=3, alpha=0.3, seed=5, n_calibration=50_000)(x[:100]), y[:100])
