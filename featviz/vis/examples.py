"""Dataset examples: the images of a dataset that most activate each unit.

One streaming pass over the data in batches: every batch updates a running top-k per
unit, so memory holds k images per unit, never the whole dataset's activations.
All neuron sets are scored in the same pass (one forward per batch).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..modes import frozen_eval
from .hooks import ActivationCapture, Preprocess
from .neurons import Neuron, NeuronSet
from .render import model_device


@dataclass
class TopExamples:
    """The k dataset images that most activate ``neuron``, strongest first.

    ``indices`` are positions in the data as iterated; ``activations`` the unit's
    values (the same number the render objective scores); ``images`` (k, C, H, W).
    """

    neuron: Neuron
    indices: list[int]
    activations: list[float]
    images: torch.Tensor

    @property
    def best(self) -> float:
        return self.activations[0] if self.activations else float("nan")


def _batches(data: torch.Tensor | Iterable, batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(data, torch.Tensor):
        for start in range(0, len(data), batch_size):
            yield data[start:start + batch_size]
        return
    for item in data:  # a DataLoader or any iterable of tensors / (x, y) pairs
        yield item[0] if isinstance(item, (tuple, list)) else item


@torch.no_grad()
def top_examples(model: nn.Module, neuron_sets: Sequence[NeuronSet], data: torch.Tensor | Iterable, k: int = 6,
                 *, batch_size: int = 256, preprocess: Preprocess | None = None,
                 device: torch.device | str | None = None, progress: bool = False) -> list[list[TopExamples]]:
    """Top-``k`` examples of every unit of every set, from one pass over ``data``.

    Args:
        data: (N, C, H, W) images in [0, 1], or an iterable of such batches
            (or of (images, labels) pairs).
        k: examples per unit (fewer if the data is smaller).
        batch_size: images per forward pass when ``data`` is a tensor.

    Returns one list per neuron set, one :class:`TopExamples` per unit.
    """
    device = torch.device(device) if device is not None else model_device(model)
    layers = [ns.layer for ns in neuron_sets]
    best_vals: list[torch.Tensor | None] = [None] * len(neuron_sets)  # (k', U) each
    best_idx: list[torch.Tensor | None] = [None] * len(neuron_sets)
    kept: dict[int, torch.Tensor] = {}  # dataset index -> image, only for current top-k members
    offset = 0
    total = len(data) if isinstance(data, torch.Tensor) else None
    bar = tqdm(total=total, desc="dataset examples", unit="img", file=sys.stderr, disable=not progress, leave=False)
    with frozen_eval(model), ActivationCapture(model, layers, preprocess) as cap:
        for batch in _batches(data, batch_size):
            acts = cap.run(batch.to(device))
            index = torch.arange(offset, offset + len(batch))
            for s, ns in enumerate(neuron_sets):
                vals = ns.values(acts).float().cpu()  # (B, U)
                idx = index[:, None].expand_as(vals)
                if best_vals[s] is not None:
                    vals = torch.cat([best_vals[s], vals])
                    idx = torch.cat([best_idx[s], idx])
                top = torch.topk(vals, min(k, len(vals)), dim=0)
                best_vals[s], best_idx[s] = top.values, idx.gather(0, top.indices)
            needed = {int(i) for t in best_idx if t is not None for i in t.flatten()}
            for i in range(len(batch)):
                if offset + i in needed:
                    kept[offset + i] = batch[i].detach().cpu()
            kept = {i: img for i, img in kept.items() if i in needed}
            offset += len(batch)
            bar.update(len(batch))
    bar.close()
    results = []
    for s, ns in enumerate(neuron_sets):
        per_unit = []
        for u, neuron in enumerate(ns.neurons):
            indices = [] if best_idx[s] is None else [int(i) for i in best_idx[s][:, u]]
            values = [] if best_vals[s] is None else [float(v) for v in best_vals[s][:, u]]
            images = torch.stack([kept[i] for i in indices]) if indices else torch.empty(0)
            per_unit.append(TopExamples(neuron, indices, values, images))
        results.append(per_unit)
    return results


__all__ = ["TopExamples", "top_examples"]
