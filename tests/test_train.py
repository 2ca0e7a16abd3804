import copy

import pytest
import torch

from featviz.devices import seeded
from featviz.errors import DivergenceError, FeatvizError
from featviz.nets import QuadraticDenseConvNet, QuadraticDenseMLP
from featviz.train import TrainConfig, evaluate, plan_stages, train_model


def _mlp(seed=0, data=None, **kw):
    with seeded(seed):
        return QuadraticDenseMLP(6, [8, 8], **kw)


def test_stage_plans():
    assert [(s.name, s.trainable, s.depth) for s in plan_stages("joint", 3, 5)] == [("joint", (1, 2, 3), 3)]
    lw = plan_stages("layerwise", 3, 5)
    assert [(s.name, s.trainable, s.depth, s.epochs) for s in lw] == [
        ("block1", (1,), 1, 5), ("block2", (2,), 2, 5), ("block3", (3,), 3, 5)]
    lj = plan_stages("layerwise+joint", 2, 5, joint_epochs=7)
    assert [(s.name, s.epochs) for s in lj] == [("block1", 5), ("block2", 5), ("joint", 7)]


def test_joint_training_learns_the_teacher(tiny_synthetic):
    model = _mlp()
    before = evaluate(model, tiny_synthetic.x_test, tiny_synthetic.y_test, "regression")["rel_mse"]
    result = train_model(model, tiny_synthetic, TrainConfig(epochs=20, batch_size=32, lr=1e-2), progress=False)
    after = result.metrics["rel_test_mse"]
    assert after < 0.05 * before and after < 0.15
    assert len(result.history) == 20 and result.stages[0]["epochs"] == 20
    assert not model.training  # handed back in eval mode


def test_layerwise_freezes_earlier_blocks_bit_identically(tiny_synthetic):
    model = _mlp()
    snapshots = {}

    def on_epoch(m, stage, record):
        if stage.name == "block1" and record["epoch"] == stage.epochs:
            snapshots["block1"] = copy.deepcopy(m.block1.state_dict())
            snapshots["block2"] = copy.deepcopy(m.block2.state_dict())

    result = train_model(model, tiny_synthetic, TrainConfig(mode="layerwise", epochs=3, batch_size=64),
                         on_epoch=on_epoch, progress=False)
    assert [s["name"] for s in result.stages] == ["block1", "block2"]
    after = model.block1.state_dict()
    for key, value in snapshots["block1"].items():  # weights AND BatchNorm running statistics
        assert torch.equal(value, after[key]), key
    assert not torch.equal(snapshots["block2"]["linear.weight"], model.block2.linear.weight)
    assert all(p.requires_grad for p in model.parameters())  # unfrozen for later use


def test_layerwise_then_joint_moves_block1(tiny_synthetic):
    model = _mlp()
    snap = {}

    def on_epoch(m, stage, record):
        if stage.name == "block2" and record["epoch"] == stage.epochs:
            snap["w"] = m.block1.linear.weight.detach().clone()

    result = train_model(model, tiny_synthetic, TrainConfig(mode="layerwise+joint", epochs=2, joint_epochs=3,
                                                            batch_size=64), on_epoch=on_epoch, progress=False)
    assert [s["name"] for s in result.stages] == ["block1", "block2", "joint"]
    assert [s["epochs"] for s in result.stages] == [2, 2, 3]
    assert not torch.equal(snap["w"], model.block1.linear.weight)


def test_same_seed_same_weights_other_seed_other_weights(tiny_synthetic):
    cfg = TrainConfig(epochs=2, batch_size=128, seed=5)
    a, b = _mlp(), _mlp()
    train_model(a, tiny_synthetic, cfg, progress=False)
    train_model(b, tiny_synthetic, cfg, progress=False)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = _mlp()
    train_model(c, tiny_synthetic, TrainConfig(epochs=2, batch_size=128, seed=6), progress=False)
    assert not torch.equal(a.block1.linear.weight, c.block1.linear.weight)


def test_classification_on_digits(tiny_digits):
    with seeded(0):
        model = QuadraticDenseConvNet(1, 10, widths=(8, 16), image_size=8,
                                      input_mean=tiny_digits.info["normalization"]["mean"],
                                      input_std=tiny_digits.info["normalization"]["std"])
    result = train_model(model, tiny_digits, TrainConfig(epochs=12, batch_size=32, lr=1e-2), progress=False)
    assert result.metrics["test_accuracy"] > 0.75  # chance is 0.1
    assert 0.0 <= result.metrics["train_accuracy"] <= 1.0


def test_divergence_is_detected_with_a_hint(tiny_synthetic):
    model = _mlp(norm="none")
    with pytest.raises(DivergenceError, match="lower --lr"):
        train_model(model, tiny_synthetic, TrainConfig(epochs=3, lr=10.0, optimizer="sgd", batch_size=64),
                    progress=False)


@pytest.mark.parametrize("bad", [dict(mode="sideways"), dict(epochs=0), dict(lr=-1.0), dict(lr=float("nan")),
                                 dict(batch_size=0), dict(optimizer="lbfgs")])
def test_bad_configs_are_refused(tiny_synthetic, bad):
    with pytest.raises(FeatvizError):
        train_model(_mlp(), tiny_synthetic, TrainConfig(**bad), progress=False)
