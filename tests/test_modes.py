"""featviz.modes: every library entry point that runs a model leaves each module's train/eval
flag and each parameter's requires_grad exactly as it found them, including the mixed state of
a layerwise training stage (frozen blocks in eval mode, the stage's blocks training)."""

from __future__ import annotations

import pytest
import torch

from featviz.modes import frozen_eval, restored_modes


def _layerwise_stage(model):
    """The state train() puts a model in during stage 2 of layerwise training."""
    from featviz.train import Stage, _set_stage

    _set_stage(model, Stage("stage2", trainable=(2,), depth=2, epochs=1))
    return _state(model)


def _state(model):
    return ([(n, m.training) for n, m in model.named_modules()],
            [(n, p.requires_grad) for n, p in model.named_parameters()])


def test_frozen_eval_sets_then_restores_per_module(tiny_convnet):
    before = _layerwise_stage(tiny_convnet)
    assert not tiny_convnet.block(1).training and tiny_convnet.block(2).training  # really mixed
    with frozen_eval(tiny_convnet) as model:
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
    assert _state(tiny_convnet) == before


def test_restored_modes_restores_after_an_exception(tiny_convnet):
    before = _layerwise_stage(tiny_convnet)
    with pytest.raises(RuntimeError), restored_modes(tiny_convnet):
        tiny_convnet.train()
        for p in tiny_convnet.parameters():
            p.requires_grad_(True)
        raise RuntimeError("boom")
    assert _state(tiny_convnet) == before


def _render(model):
    from featviz.vis import render

    render(model, "block1:0", steps=2)


def _layer_shapes(model):
    from featviz.vis.neurons import layer_shapes

    layer_shapes(model, model.input_shape)


def _unit_activations(model):
    from featviz.vis.matching import unit_activations

    unit_activations(model, "block2", torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)))


def _attack(model):
    from featviz.attacks import pgd

    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    pgd(steps=2)(model, x, torch.zeros(4, dtype=torch.long), 0.1, gen=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("use", [_render, _layer_shapes, _unit_activations, _attack])
def test_library_calls_keep_a_layerwise_stage_intact(tiny_convnet, use):
    # A whole-model restore (model.train(was_training)) would put the frozen block 1 back in
    # train mode, so its BatchNorm statistics would move during the rest of the stage.
    before = _layerwise_stage(tiny_convnet)
    use(tiny_convnet)
    assert _state(tiny_convnet) == before
