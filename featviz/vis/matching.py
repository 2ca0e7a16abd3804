"""Match the units of one layer across models by how they respond to the same data.

Two models trained differently learn their units in arbitrary order; to put "the
same" unit side by side, each unit is summarized by its spatially averaged activation
on every data example, units are compared by Pearson correlation over the examples,
and a one-to-one assignment maximizing the total correlation (Hungarian algorithm)
pairs them up. The gallery command computes the matches (it has the models and the data)
and writes them to ``matches.json`` (format ``MATCHES_FORMAT``, see
:func:`featviz.gallery.compute_matches`); the pages only read that file.
"""

from __future__ import annotations

import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from ..modes import frozen_eval

MATCHES_FORMAT = "featviz-matches/1"


@torch.no_grad()
def unit_activations(model: nn.Module, layer: str, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Per-unit responses of ``layer`` (``block1``...) of a featviz model to images ``x``.

    ``x``: (N, C, H, W) in [0, 1]. Returns (N, units): conv maps are averaged over
    space. Runs in eval mode and restores the model's mode afterwards.
    """
    names = [info.name for info in model.layer_info()]
    if layer not in names:
        raise ValueError(f"unknown layer {layer!r}; the model has {', '.join(names)}")
    index = names.index(layer)
    device = next(model.parameters()).device
    outs = []
    with frozen_eval(model):
        for i in range(0, len(x), batch_size):
            h = model.features(x[i:i + batch_size].to(device), depth=index + 1)[index]
            outs.append((h.flatten(2).mean(-1) if h.dim() > 2 else h).float().cpu())
    return torch.cat(outs)


def correlation_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of every column of ``a`` (N, P) with every column of ``b`` (N, Q) -> (P, Q).

    A constant (dead) unit correlates 0 with everything instead of giving NaN.
    """
    a = a.double() - a.double().mean(0)
    b = b.double() - b.double().mean(0)
    na, nb = a.norm(dim=0), b.norm(dim=0)
    corr = (a.T @ b) / (na[:, None] * nb[None, :]).clamp_min(1e-12)
    corr[na < 1e-12, :] = 0.0
    corr[:, nb < 1e-12] = 0.0
    return corr


def match_units(reference: torch.Tensor, other: torch.Tensor) -> list[tuple[int | None, float | None]]:
    """For each reference unit, the other model's unit it is paired with and their correlation.

    ``reference`` (N, P) and ``other`` (N, Q) are :func:`unit_activations` on the same
    examples. The pairing is one-to-one and maximizes the summed correlation; when
    Q < P the reference units left over get ``(None, None)``.
    """
    if reference.shape[0] != other.shape[0]:
        raise ValueError("both activation matrices must cover the same examples")
    corr = correlation_matrix(reference, other)
    rows, cols = linear_sum_assignment(corr.numpy(), maximize=True)
    pairs: list[tuple[int | None, float | None]] = [(None, None)] * reference.shape[1]
    for r, c in zip(rows.tolist(), cols.tolist()):
        pairs[r] = (c, float(corr[r, c]))
    return pairs
