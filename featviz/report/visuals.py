"""Render the unit images a gallery shows, with the feature-visualization library."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from ..checkpoint import Checkpoint
from ..errors import DataError

GALLERY_REGS = ("none", "standard")  # the contrast every layer page shows: noise vs image


def render_visuals(ckpt: Checkpoint, out: str | Path, *, layers: Sequence[str] | None = None,
                   regs: Sequence[str] = GALLERY_REGS, steps: int = 256, top_k: int = 5,
                   data_limit: int | None = None, data_root: str | Path | None = None, seed: int = 0,
                   device: torch.device | str = "cpu", progress: bool = True) -> Path:
    """Render every unit of ``layers`` (default: all) of a checkpoint under each setting
    in ``regs`` as one batch per layer, rank the top-``top_k`` training images per unit
    (the first ``data_limit`` images; all by default), and write PNGs and
    ``metrics.json`` (the ``featviz maximize`` format) into the folder ``out``.

    When the checkpoint's dataset cannot be loaded here, the images are rendered
    without dataset examples. Returns ``out``.
    """
    from ..data import load_dataset
    from ..vis.maximize import maximize, save_maximization

    info = ckpt.card.get("dataset", {})
    try:
        if info.get("source") == "user":  # a model shown with the user's --data
            from ..data.user import load_user_data

            examples = load_user_data(info["path"], getattr(ckpt.model, "input_shape", None)).x_train[:data_limit]
        else:
            examples = load_dataset(info.get("name", "?"), data_root=data_root, image_size=info.get("image_size"),
                                    recorded_root=info.get("data_root")).x_train[:data_limit]
    except DataError:
        examples = None
    names = list(layers) if layers else [str(layer["name"]) for layer in ckpt.card.get("layers", [])]
    model = ckpt.model.to(device)
    try:
        result = maximize(model, [f"{name}:*" for name in names], list(regs), steps=steps, seed=seed, device=device,
                          dataset=examples, top_k=top_k if examples is not None else 0, progress=progress)
        save_maximization(result, out, grid=False)
    finally:
        model.cpu()
    return Path(out)
