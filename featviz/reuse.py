"""Whether a saved checkpoint can stand in for training from a recipe: its card must show
exactly the recipe (dataset, mode, adversary, epochs, seed, optimizer settings, architecture).

    from featviz.reuse import reusable
    ckpt = reusable(Path("models/digits-joint"), spec)   # None: train it
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from .checkpoint import Checkpoint, load_checkpoint
from .errors import CheckpointError
from .fileio import to_json
from .recipes import TrainSpec


def _adv_key(adv: dict[str, Any] | None) -> tuple | None:
    """Adversarial training as far as reuse cares (cards may add derived fields)."""
    return None if not adv else (adv.get("attack"), float(adv.get("eps", 0)), adv.get("steps"))


def recipe_of(card: dict[str, Any]) -> dict[str, Any]:
    """The parts of a card that say how a model was trained (what reuse must match)."""
    training = card.get("training", {})
    arch = card.get("arch", {})
    return {"dataset": card.get("dataset"), "mode": training.get("mode"),
            "adv": _adv_key(training.get("adv")), "epochs": training.get("epochs"), "seed": training.get("seed"),
            "lr": training.get("lr"), "batch_size": training.get("batch_size"), "act": arch.get("act"),
            "widths": arch.get("widths")}


def expected_recipe(spec: TrainSpec) -> dict[str, Any]:
    """What :func:`recipe_of` reads from the card of a model trained from ``spec``."""
    from .data import load_dataset
    from .recipes import build_for

    d = spec.defaults()
    data = load_dataset(spec.dataset, seed=spec.seed, image_size=spec.image_size, **spec.synthetic)
    arch = build_for(data, spec).arch
    info = json.loads(to_json(data.info))  # as the card stores it
    return {"dataset": info, "mode": spec.mode, "adv": _adv_key(spec.adv), "epochs": spec.epochs or d["epochs"],
            "seed": spec.seed, "lr": spec.lr or d["lr"], "batch_size": spec.batch_size or d["batch_size"],
            "act": arch.get("act"), "widths": arch.get("widths")}


def load_if(folder: Path | None, wanted: Callable[[dict[str, Any]], bool]) -> Checkpoint | None:
    """The checkpoint in ``folder`` if there is one, it loads cleanly and ``wanted(card)``
    holds; otherwise None (train it). The one reuse check of featviz: the demo and the
    studies pass what their recipe requires of the card."""
    if folder is None or not (folder / "card.json").is_file():
        return None
    try:
        ckpt = load_checkpoint(folder)
    except CheckpointError:
        return None
    return ckpt if wanted(ckpt.card) else None


def reusable(folder: Path, spec: TrainSpec) -> Checkpoint | None:
    """The checkpoint in ``folder`` if it loads cleanly and was trained from ``spec``."""
    return load_if(folder, lambda card: recipe_of(card) == expected_recipe(spec))


__all__ = ["expected_recipe", "load_if", "recipe_of", "reusable"]
