"""Model modes (train/eval, ``requires_grad``) set for a block and restored exactly.

Restoring is *per module and per parameter*, never ``model.train(was_training)``: during
a layerwise training stage the frozen blocks sit in eval mode (their BatchNorm statistics
must not move) and have ``requires_grad=False`` while the stage's blocks train, so a
whole-model restore would silently unfreeze them.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def restored_modes(model: nn.Module) -> Iterator[nn.Module]:
    """Record every module's ``training`` flag and every parameter's ``requires_grad``;
    whatever the block changes, put them back as they were on exit."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters for the block, then every module's mode and
    parameter's ``requires_grad`` restored (see :func:`restored_modes`).

    Eval mode so BatchNorm uses (and does not update) its running statistics and a
    batch of one is accepted; frozen parameters so gradients flow to the input only.
    """
    with restored_modes(model):
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        yield model


__all__ = ["frozen_eval", "restored_modes"]
