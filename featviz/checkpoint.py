"""Checkpoints: a folder with ``model.safetensors`` (weights only) and ``card.json``.

Loading never executes code from the files: weights are read with safetensors (a
JSON header plus raw tensor bytes; a pickle is rejected as a malformed header), the
model is rebuilt from the card's ``arch`` through a fixed registry of classes, and
every tensor's name, shape and dtype is checked against that model.

The check comes before anything is allocated: the card's model is first built on
PyTorch's ``meta`` device (shapes, no memory) and compared with the safetensors header
(read by hand: 8 bytes of length, then JSON), and its size is held to
:data:`MAX_PARAMETERS`. A card edited to absurd widths is refused in milliseconds.
The format is documented in ``docs/formats.md``.
"""

from __future__ import annotations

import json
import math
import struct
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .errors import CheckpointError, FeatvizError
from .fileio import ANY, NUM, STR, Opt, atomic_directory, check_values, parse_json, to_json, validate
from .nets import HierarchicalNet, build_model, layer_table

FORMAT = "featviz-checkpoint/1"
WEIGHTS = "model.safetensors"
CARD = "card.json"
REQUIRED_KEYS = ("format", "arch", "dataset", "training", "metrics", "layers", "versions")
MAX_CARD_BYTES = 16 * 2**20
# The shape of the card's sections (docs/formats.md); ``arch`` is checked against the weights.
CARD_SCHEMA = {
    "arch": {"*": ANY}, "dataset": {"name": Opt(STR)},
    "training": {"mode": Opt(STR), "adv": Opt({"*": ANY}), "epochs": Opt(ANY), "seed": Opt(ANY)},
    "metrics": {"stages": Opt([{"name": Opt(STR), "epochs": Opt(ANY)}]), "test_accuracy": Opt(NUM),
                "train_accuracy": Opt(NUM), "rel_test_mse": Opt(NUM)},
    "layers": [{"name": STR, "units": NUM, "kind": Opt(STR)}],
    "versions": {"*": ANY},
    "name": Opt(STR),
}
# Sane limits checked before any tensor is allocated. The largest model `featviz train` builds
# (conv, --width 4096, 3 blocks) has 1.2·10⁹ values; 2·10⁹ (8 GB of float32) admits it. The header
# check comes first, so a card that disagrees with its weights never gets near this limit.
MAX_PARAMETERS = 2_000_000_000
MAX_HEADER_BYTES = 100_000_000  # the limit safetensors itself enforces
MAX_ARCH_LIST = 1024  # longest list in an arch (widths, strides...): bounds the modules built
_SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}


@dataclass
class Checkpoint:
    model: HierarchicalNet
    card: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return self.card.get("name") or self.path.name


def make_card(model: HierarchicalNet, *, dataset: dict, training: dict, metrics: dict,
              name: str | None = None) -> dict[str, Any]:
    """A model card in the ``featviz-checkpoint/1`` format (see docs/formats.md)."""
    card = {
        "format": FORMAT,
        "arch": dict(model.arch),
        "dataset": dataset,
        "training": training,
        "metrics": metrics,
        "layers": [info.to_dict() for info in layer_table(model)],
        "versions": {"featviz": __version__, "torch": torch.__version__.split("+")[0],
                     "python": platform.python_version()},
    }
    if name:
        card["name"] = name
    return card


def _state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(path: str | os.PathLike, model: HierarchicalNet, card: dict[str, Any],
                    extra_files: dict[str, bytes] | None = None) -> Path:
    """Write the checkpoint folder atomically (a crash leaves the previous one intact).

    Refuses non-finite weights: a diverged model is never written out.
    """
    from safetensors.torch import save

    tensors = _state_tensors(model)
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise FeatvizError(f"refusing to save a model with NaN/Inf in {bad[0]}", "training diverged; lower --lr")
    blob = save(tensors, metadata={"format": FORMAT})
    with atomic_directory(path) as tmp:
        (tmp / WEIGHTS).write_bytes(blob)
        (tmp / CARD).write_text(to_json(card) + "\n", encoding="utf-8")
        for fname, data in (extra_files or {}).items():
            (tmp / fname).write_bytes(data)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
    return Path(path)


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``card.json`` of a checkpoint folder."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist", "pass a folder made by `featviz train`")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a file, not a folder",
                              f"a checkpoint is a folder with {WEIGHTS} and {CARD}")
    card_path = path / CARD
    if not card_path.is_file():
        raise CheckpointError(f"{path} has no {CARD}", "is this a folder made by `featviz train`?")
    try:
        if card_path.stat().st_size > MAX_CARD_BYTES:
            raise CheckpointError(f"{card_path} is larger than {MAX_CARD_BYTES // 2**20} MiB; not a featviz card")
        card = parse_json(card_path.read_text(encoding="utf-8"), card_path, "model card")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{card_path} is not valid JSON ({exc.__class__.__name__})") from None
    except FeatvizError as exc:
        raise CheckpointError(exc.message, exc.hint) from None
    if not isinstance(card, dict):
        raise CheckpointError(f"{card_path} must hold a JSON object")
    if card.get("format") != FORMAT:
        raise CheckpointError(f"{card_path} has format {card.get('format')!r}, expected {FORMAT!r}",
                              "retrain with this featviz version")
    missing = [k for k in REQUIRED_KEYS if k not in card]
    if missing:
        raise CheckpointError(f"{card_path} lacks {', '.join(missing)}")
    if not isinstance(card["arch"], dict):
        raise CheckpointError(f"{card_path}: 'arch' must be an object of constructor arguments")
    try:
        validate(card, CARD_SCHEMA, card_path)
        check_values(card, card_path)
    except FeatvizError as exc:
        raise CheckpointError(exc.message, exc.hint) from None
    return card


def read_safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """The tensor table of a safetensors file, ``{name: {"dtype": "F32", "shape": [...]}}``,
    read from its header alone (8-byte little-endian length, then JSON); no tensor is read.

    Raises :class:`CheckpointError` for anything that is not a consistent safetensors header
    (a pickle, a truncated file, offsets outside the file).
    """
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{path} is not a valid safetensors file ({why})",
                               "featviz never loads pickles; retrain or restore the file")

    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise bad("shorter than its 8-byte header length")
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise bad(f"header length {length} does not fit the file")
            header = json.loads(fh.read(length).decode("utf-8"))
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad("header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    data_size = size - 8 - length
    table: dict[str, dict[str, Any]] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], [int(n) for n in entry["shape"]], entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise bad(f"entry {name!r} lacks dtype, shape or data_offsets") from None
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= data_size):
            raise bad(f"{name} points outside the file")
        if any(n < 0 for n in shape):
            raise bad(f"{name} has a negative dimension")
        table[name] = {"dtype": dtype, "shape": shape}
    return table


def _check_arch_size(arch: dict[str, Any], where: Path) -> None:
    """Bound what building the card's arch could cost before building anything."""
    for key, value in arch.items():
        if isinstance(value, (list, tuple)) and len(value) > MAX_ARCH_LIST:
            raise CheckpointError(f"{where}: arch.{key} has {len(value)} entries (at most {MAX_ARCH_LIST})",
                                  "the card was edited or damaged; restore it")


def _meta_model(card: dict[str, Any], where: Path) -> HierarchicalNet:
    """The card's model on the meta device: every shape, no memory."""
    _check_arch_size(card["arch"], where)
    try:
        with torch.device("meta"):
            return build_model(card["arch"])
    except FeatvizError as exc:
        raise CheckpointError(f"{where}: {exc.one_line()}") from None
    except (RuntimeError, OverflowError, MemoryError, TypeError, ValueError, KeyError, IndexError, AttributeError,
            ZeroDivisionError) as exc:  # the arch's values are the card's, edited or damaged
        first = (str(exc).splitlines() or [exc.__class__.__name__])[0]
        raise CheckpointError(f"{where}: cannot build the card's arch ({exc.__class__.__name__}: {first})",
                              "the card was edited or damaged; restore it") from None


def check_weights_match_card(card: dict[str, Any], weights: Path, where: Path) -> int:
    """Compare the card's model with the weights' header: names, shapes, dtypes, size.

    Raises :class:`CheckpointError` naming the first differing tensor (in the model's
    order), or when the model exceeds :data:`MAX_PARAMETERS`. Returns the number of values.
    Nothing is allocated: the model is built on the meta device.
    """
    expected = _meta_model(card, where).state_dict()
    table = read_safetensors_header(weights)
    for key, ref in expected.items():
        got = table.get(key)
        if got is None:
            raise CheckpointError(f"{weights} does not match the card's arch (missing {key})")
        if tuple(got["shape"]) != tuple(ref.shape):
            raise CheckpointError(f"{weights}: {key} has shape {tuple(got['shape'])}, the card's arch needs "
                                  f"{tuple(ref.shape)}", "the card or the weights were edited; restore them")
        want = _SAFETENSORS_DTYPES.get(ref.dtype, str(ref.dtype))
        if got["dtype"] != want:
            raise CheckpointError(f"{weights}: {key} has dtype {got['dtype']}, expected {want}")
    unexpected = sorted(set(table) - set(expected))
    if unexpected:
        raise CheckpointError(f"{weights} does not match the card's arch (unexpected {unexpected[0]})")
    total = sum(ref.numel() for ref in expected.values())
    if total > MAX_PARAMETERS:
        raise CheckpointError(f"{where}: the card's model has {total:,} values, more than featviz loads "
                              f"({MAX_PARAMETERS:,})", "the card was edited or damaged; restore it")
    return total


def load_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu") -> Checkpoint:
    """Load and validate a checkpoint folder; the model is returned in eval mode.

    The card is checked against the weights' header before the model is built (see
    :func:`check_weights_match_card`), so a hostile card cannot make featviz allocate.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    card = read_card(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{path} has no {WEIGHTS}", "the checkpoint is incomplete; retrain it")
    check_weights_match_card(card, weights, path / CARD)
    try:
        model = build_model(card["arch"])
    except FeatvizError as exc:
        raise CheckpointError(f"{path / CARD}: {exc.one_line()}") from None
    try:
        tensors = load(weights.read_bytes())
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise CheckpointError(f"{weights} is not a valid safetensors file ({msg})",
                              "featviz never loads pickles; retrain or restore the file") from None
    for key, got in tensors.items():
        if got.is_floating_point() and not torch.isfinite(got).all():
            raise CheckpointError(f"{weights}: {key} contains NaN/Inf", "the model diverged; retrain it")
    model.load_state_dict(tensors, strict=True)
    model.to(device).eval()
    return Checkpoint(model=model, card=card, path=path)


def summarize(card: dict[str, Any]) -> dict[str, Any]:
    """The fields ``featviz info`` shows."""
    metrics = card.get("metrics", {})
    out = {
        "name": card.get("name"),
        "arch": card["arch"].get("class"),
        "act": card["arch"].get("act"),
        "dataset": card.get("dataset", {}).get("name"),
        "mode": card.get("training", {}).get("mode"),
        "adv": card.get("training", {}).get("adv"),
        "layers": card.get("layers", []),
        "metrics": {k: v for k, v in metrics.items() if k != "stages"},
        "stages": [{k: v for k, v in s.items() if k in ("name", "epochs", "test_accuracy", "test_rel_mse")}
                   for s in metrics.get("stages", [])],
    }
    return {k: v for k, v in out.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
