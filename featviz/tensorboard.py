"""TensorBoard event files for ``--tensorboard DIR`` (train, maximize, attack).

An optional extra: ``pip install featviz[tensorboard]``. Events are written with
``torch.utils.tensorboard.SummaryWriter`` into ``DIR`` (a folder of the user's: featviz
adds event files and never removes anything there). Tags:

- train: ``train_loss``, ``train_accuracy``, ``test_accuracy`` (or ``test_rel_mse``), ...
  per epoch over the whole run (step = epoch counted across stages), and the same under
  ``<stage>/`` (``block1/train_loss``, ``joint/test_accuracy``) per epoch of that stage;
- maximize: one image per render (``<setting>/<neuron>``) and its metrics
  (``<setting>/activation``, ``hf_ratio``, ``tv``, ``noise_index``; step = the render's index);
- attack: ``<model>/<attack>/robust_accuracy`` with step = the index of ε in the sweep and the
  ε in the tag's text, plus a custom ``robust_accuracy_vs_eps`` scalar per ε in thousandths
  (step = round(1000·ε)) so the curve reads against ε.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import FeatvizError

INSTALL_HINT = "install it with: pip install 'featviz[tensorboard]' (or pip install tensorboard)"


def open_writer(folder: str | Path | None):
    """A ``SummaryWriter`` on ``folder`` (None -> None). Refuses, before any work, a missing
    tensorboard package or a folder that is a file."""
    if folder is None:
        return None
    if not str(folder).strip():  # Path("") is the current folder: never write there by accident
        raise FeatvizError("--tensorboard needs a folder name, got an empty one", "give a folder for the event files")
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise FeatvizError(f"--tensorboard {folder} is a file", "give a folder for the event files")
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise FeatvizError("--tensorboard needs the tensorboard package", INSTALL_HINT) from None
    try:
        return SummaryWriter(log_dir=str(folder))
    except OSError as exc:
        raise FeatvizError(f"--tensorboard {folder} cannot be written ({exc.strerror or exc})") from None


def log_epoch(writer, step: int, stage: str, record: dict[str, Any]) -> None:
    """One training epoch's record (``train_loss``, ``test_accuracy``, ...)."""
    for key, value in record.items():
        if key in ("stage", "epoch") or not isinstance(value, (int, float)):
            continue
        writer.add_scalar(key, value, step)
        writer.add_scalar(f"{stage}/{key}", value, int(record.get("epoch", step)))
    writer.flush()


def log_maximize(writer, metrics: dict[str, Any], folder: str | Path) -> None:
    """The renders saved in ``folder`` (``metrics.json``'s images) and their metrics."""
    import numpy as np
    from PIL import Image

    for step, image in enumerate(metrics.get("images", [])):
        tag = f"{image.get('reg', 'none')}/{image.get('neuron', step)}"
        path = Path(folder) / str(image.get("file", ""))
        if path.is_file():
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
            writer.add_image(tag, arr, step, dataformats="HWC")
        for key in ("activation", "relative_activation", "hf_ratio", "tv", "shift_stability", "noise_index"):
            if isinstance(image.get(key), (int, float)):
                writer.add_scalar(f"{image.get('reg', 'none')}/{key}", image[key], step)
    writer.flush()


def log_attack(writer, results: dict[str, Any]) -> None:
    """Every model's robust-accuracy curve, one scalar series per attack."""
    for model in results.get("models", []):
        writer.add_scalar(f"{model['name']}/clean_accuracy", model["clean_accuracy"], 0)
        for attack in model.get("attacks", []):
            name = f"{model['name']}/{attack['attack']}"
            for i, point in enumerate(attack.get("curve", [])):
                writer.add_scalar(f"{name}/robust_accuracy", point["robust_accuracy"], i)
                writer.add_scalar(f"{name}/robust_accuracy_vs_eps", point["robust_accuracy"],
                                  int(round(1000 * point["eps"])))
            writer.add_text(f"{name}/eps", ", ".join(f"{i}: {p['eps']:.6g}" for i, p in enumerate(attack["curve"])))
    writer.flush()


__all__ = ["INSTALL_HINT", "log_attack", "log_epoch", "log_maximize", "open_writer"]
