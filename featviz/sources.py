"""Where models and data come from, resolved above the libraries.

:mod:`featviz.vis` and :mod:`featviz.attacks` take any ``nn.Module`` and tensors and never
read featviz's own files; this layer turns command-line options into those: a featviz
checkpoint folder (with its card's dataset) or ``MODULE:FACTORY`` with optional
safetensors weights. Normalization is explicit: featviz models normalize inside and
take [0, 1] images; for any other model the caller states ``mean``/``std`` and a
:class:`~featviz.normalize.Normalize` preprocess is applied (never guessed from the
model's class name).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from .errors import CheckpointError, DataError, FeatvizError, SpecError
from .normalize import Normalize


@dataclass
class Target:
    """A model ready to visualize: ``images`` are dataset images (N, C, H, W) for the
    examples (or None); ``note`` says why they are missing, when they are."""

    model: nn.Module
    input_shape: tuple[int, int, int]
    preprocess: nn.Module | None
    images: torch.Tensor | None
    name: str
    note: str | None = None
    data: Any = None  # the loaded Dataset (labels, test split) when images came from one


# Bounds on --input-shape: refused before anything is allocated.
MAX_CHANNELS, MAX_SIDE, MAX_INPUT_VALUES = 64, 4096, 1 << 24


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"1,16,16"`` -> (1, 16, 16); absurd sizes are refused before any memory is taken."""
    try:
        shape = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise SpecError(f"--input-shape {text!r} is not C,H,W", "e.g. --input-shape 3,32,32")
    c, h, w = shape
    if c > MAX_CHANNELS or h > MAX_SIDE or w > MAX_SIDE or c * h * w > MAX_INPUT_VALUES:
        raise SpecError(f"--input-shape {text} is too large for memory: featviz takes at most {MAX_CHANNELS} "
                        f"channels, {MAX_SIDE} pixels a side and {MAX_INPUT_VALUES:,} values per image",
                        "e.g. --input-shape 3,224,224")
    return shape  # type: ignore[return-value]


def parse_model_args(pairs: Sequence[str]) -> dict[str, Any]:
    """``--model-arg KEY=VALUE`` (repeatable) -> keyword arguments of the factory.

    VALUE is read as a Python literal (``10``, ``0.5``, ``True``, ``None``, ``(3, 32, 32)``,
    ``'text'``); anything that is not a literal is taken as a plain string."""
    kwargs: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SpecError(f"--model-arg {pair!r} is not KEY=VALUE", "e.g. --model-arg num_classes=10")
        if key in kwargs:
            raise SpecError(f"--model-arg {key} is given twice")
        try:
            kwargs[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            kwargs[key] = value
    return kwargs


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


@contextlib.contextmanager
def _importable(folder: str) -> Iterator[None]:
    """``folder`` first on ``sys.path`` while the user's module is imported, and removed right
    after: featviz's own later imports (matplotlib, ...) never come from the user's folder."""
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass


def _import_user_module(source: str, ref: str):
    """The module named by ``--model``: a file path (``dir/file.py``) or a dotted module
    importable from the current folder or the environment. Importing runs its code."""
    looks_like_file = source.endswith(".py") or "/" in source or os.sep in source
    try:
        if looks_like_file:
            path = Path(source).expanduser().resolve()
            if not path.is_file():
                raise SpecError(f"--model {ref}: no such file {source}", "give path/to/file.py:FACTORY")
            name = f"featviz_user_model_{abs(hash(str(path))):x}"
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise SpecError(f"--model {ref}: {source} is not a Python file")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses and pickling look their module up here
            with _importable(str(path.parent)):  # its sibling modules import as in `python file.py`
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    sys.modules.pop(name, None)
                    raise
            return module
        with _importable(os.getcwd()):  # as `python -m` would
            return importlib.import_module(source)
    except FeatvizError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name and source.split(".")[0] == exc.name.split(".")[0]:
            raise SpecError(f"--model {ref}: cannot import {source} ({exc})",
                            "run from the folder that holds it, install it, or give path/to/file.py:FACTORY") from None
        raise SpecError(f"--model {ref}: importing {source} failed: {_short(exc)}") from None
    except SystemExit as exc:
        raise SpecError(f"--model {ref}: importing {source} called sys.exit({exc.code!r})") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the user's module is arbitrary code: any failure is theirs to fix
        raise SpecError(f"--model {ref}: importing {source} failed: {_short(exc)}") from None


def load_factory(ref: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """``pkg.module:factory`` or ``path/to/file.py:factory`` -> ``factory(**kwargs)``.

    This imports and runs the named code, exactly as ``torch.hub`` does: only name code you
    trust. The current folder (or the file's folder) is importable during the import only.
    A factory that raises, calls ``sys.exit`` or returns anything but an ``nn.Module`` is a
    :class:`SpecError` naming it."""
    source, sep, attr = str(ref).rpartition(":")
    if not sep or not source or not attr.isidentifier():
        raise SpecError(f"--model {ref!r} is not MODULE:FACTORY or FILE.py:FACTORY",
                        "e.g. --model mypkg.nets:make_model or --model ./mynet.py:make_model")
    module = _import_user_module(source, ref)
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise SpecError(f"--model {ref}: {source} has no callable {attr!r}")
    kwargs = dict(kwargs or {})
    try:
        model = factory(**kwargs)
    except SystemExit as exc:
        raise SpecError(f"--model {ref}: {attr}() called sys.exit({exc.code!r})") from None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        hint = "pass its arguments with --model-arg KEY=VALUE" if isinstance(exc, TypeError) else None
        raise SpecError(f"--model {ref}: {attr}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) raised "
                        f"{_short(exc)}", hint) from None
    if not isinstance(model, nn.Module):
        raise SpecError(f"--model {ref}: {attr}() returned {type(model).__name__}, not an nn.Module")
    return model


TORCH_SUFFIXES = (".pt", ".pth", ".bin")
CONVERT_HINT = ("convert it in Python: build the model, load the file your usual way, then "
                "torch.save(model.state_dict(), 'weights.pt') or "
                "safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')")
# A weights file may carry more than the state dict (optimizer moments: 2x); far beyond is not this model's.
WEIGHTS_SLACK, WEIGHTS_EXTRA_BYTES = 4, 64 << 20
STATE_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def _state_nbytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from safetensors or a PyTorch file, never unpickling code."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import safe_open

        try:  # memory-mapped: the header is checked before any tensor is read
            with safe_open(str(path), framework="pt") as fh:
                return {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
            raise CheckpointError(f"--weights {path} is not a valid safetensors file ({_short(exc)})",
                                  "if torch.save wrote it, name it .pt") from None
    if suffix in TORCH_SUFFIXES:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                obj = _torch_load_error(path, exc)
            else:  # the legacy (non-zip) format cannot be memory-mapped
                try:
                    obj = torch.load(str(path), map_location="cpu", weights_only=True)
                except Exception as inner:  # noqa: BLE001 - any failure: the file is not a state dict
                    obj = _torch_load_error(path, inner)
        except Exception as exc:  # noqa: BLE001 - UnpicklingError, EOFError, zip errors...
            obj = _torch_load_error(path, exc)
        if isinstance(obj, dict) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in STATE_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None:
                obj = inner
        if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in obj.items()):
            raise CheckpointError(f"--weights {path} holds a {type(obj).__name__}, not a state dict of tensors",
                                  "save model.state_dict(), not the model; " + CONVERT_HINT)
        return obj
    raise CheckpointError(f"--weights {path}: featviz reads .safetensors and PyTorch state dicts "
                          f"({', '.join(TORCH_SUFFIXES)}), not {suffix or 'files without a suffix'}", CONVERT_HINT)


def _torch_load_error(path: Path, exc: BaseException):
    if "Unsupported global" in str(exc):  # the weights-only unpickler met a class: a pickled object
        raise CheckpointError(f"--weights {path} holds pickled Python objects, not only tensors (was the whole model "
                              "saved with torch.save(model)?); featviz never unpickles code",
                              "save model.state_dict() instead; " + CONVERT_HINT) from None
    raise CheckpointError(f"--weights {path} is not a readable PyTorch file ({_short(exc)})", CONVERT_HINT) from None


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a state dict into ``model`` (all keys must match): ``.safetensors``, or a PyTorch
    file (``.pt``/``.pth``/``.bin``, read with ``weights_only=True``; a dict holding the state
    dict under ``state_dict``/``model_state_dict``/``model`` is accepted, and the ``module.``
    prefix of ``DataParallel`` is dropped). A file far larger than the model's weights is
    refused before it is read."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"--weights {path} does not exist")
    size, need = path.stat().st_size, _state_nbytes(model)
    if size > WEIGHTS_SLACK * need + WEIGHTS_EXTRA_BYTES:
        raise CheckpointError(f"--weights {path} is {size / 1e6:.1f} MB, but the model's weights take "
                              f"{need / 1e6:.2f} MB", "this file belongs to another (larger) model")
    state = _read_state(path)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        expected = set(model.state_dict())
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or extra:
            detail = "; ".join(part for part in (
                f"missing {len(missing)} (e.g. {', '.join(missing[:3])})" if missing else "",
                f"unexpected {len(extra)} (e.g. {', '.join(extra[:3])})" if extra else "") if part)
        else:
            detail = next((line.strip() for line in str(exc).splitlines()[1:] if line.strip()), _short(exc))
        raise CheckpointError(f"--weights {path} does not fit the model: {detail}",
                              "check --model and --model-arg build the same architecture") from None


@dataclass
class ModelSpec:
    """The command line's description of a user model (see ``model_options`` in the CLI)."""

    ref: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    random_init: bool = False
    input_shape: str | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    data: Path | None = None

    @property
    def given(self) -> list[str]:
        """The model options that were set (for "goes with --model" messages)."""
        names = {"args": "--model-arg", "weights": "--weights", "random_init": "--random-init",
                 "input_shape": "--input-shape", "mean": "--mean", "std": "--std"}
        return [flag for attr, flag in names.items() if getattr(self, attr)]


def build_model(spec: ModelSpec, shape_hint: Sequence[int] | None = None) -> tuple[nn.Module, tuple[int, int, int]]:
    """The user's model with its weights, in eval mode on the CPU, and its input shape (C, H, W):
    ``--input-shape``, else the model's ``input_shape`` attribute, else ``shape_hint`` (the data's).

    No ``--weights`` is refused unless ``--random-init`` says an untrained model is meant."""
    shape = parse_shape(spec.input_shape) if spec.input_shape is not None else None
    if spec.weights is not None and spec.random_init:
        raise SpecError("--weights and --random-init exclude each other")
    model = load_factory(spec.ref, spec.args)
    if spec.weights is not None:
        load_weights(model, spec.weights)
    elif not spec.random_init:
        raise SpecError(f"--model {spec.ref}: no --weights given, so it would be studied with random weights",
                        "pass --weights FILE (.safetensors, .pt, .pth, .bin), or --random-init if that is meant")
    model.eval()
    if shape is None:
        raw = getattr(model, "input_shape", None) or shape_hint
        if raw is None:
            raise SpecError(f"--model {spec.ref}: its input shape is unknown",
                            "pass --input-shape C,H,W (or --data, whose images tell it)")
        shape = parse_shape(",".join(str(int(v)) for v in raw))
    if (spec.mean is None) != (spec.std is None):
        raise SpecError("--mean and --std go together")
    if spec.mean is not None:
        if len(spec.mean) != shape[0] or len(spec.std) != shape[0]:
            raise SpecError(f"--mean/--std need {shape[0]} values (one per channel)")
        if not all(math.isfinite(v) for v in [*spec.mean, *spec.std]) or min(spec.std) <= 0:
            raise SpecError("--mean/--std must be finite numbers, and std > 0")
    return model, shape


def user_data(spec: ModelSpec, shape: Sequence[int] | None = None):
    """``--data`` as a :class:`~featviz.data.Dataset` (or None when not given)."""
    if spec.data is None:
        return None
    from .data.user import load_user_data

    return load_user_data(spec.data, shape)


def _dataset_images(name: str, data_root: Path | None, image_size: int | None, shape: tuple[int, int, int],
                    explicit: bool, recorded_root: str | None = None) -> tuple[Any, str | None]:
    from .data import load_dataset

    try:
        data = load_dataset(name, data_root=data_root, image_size=image_size, recorded_root=recorded_root)
    except DataError as exc:
        if explicit:
            raise
        return None, f"dataset examples skipped: {exc.one_line()}"
    if not data.is_image or tuple(data.input_shape) != tuple(shape):
        msg = f"dataset {name} has inputs {tuple(data.input_shape)}, the model takes {tuple(shape)}"
        if explicit:
            raise DataError(msg, "pick a dataset that matches --input-shape")
        return None, f"dataset examples skipped: {msg}"
    return data, None


def probe_model(model: nn.Module, x: torch.Tensor, name: str, *, classes: int | None = None,
                what: str = "inputs", finite: bool = True) -> torch.Tensor:
    """Run ``model`` on a couple of inputs ``x``; every way it cannot serve is a :class:`SpecError`:
    an exception, output that is not an (N, K) tensor (when ``classes`` is asked: K logits with
    K >= ``classes``), or NaN/Inf output. Returns the output."""
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # noqa: BLE001 - a foreign model that cannot take these inputs
        raise SpecError(f"--model {name} fails on {what} of shape {tuple(x.shape)}: {_short(exc)}",
                        "check --input-shape (C,H,W) against what the model expects") from None
    if classes is not None:
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise SpecError(f"--model {name} outputs {got} for a batch of {len(x)}",
                            "the model must return (N, classes) logits")
        if out.shape[1] < classes:
            raise SpecError(f"--model {name} outputs {out.shape[1]} logits, but the data has {classes} classes",
                            "labels must be class indices of the model's logits")
    if finite and isinstance(out, torch.Tensor) and out.is_floating_point() and not torch.isfinite(out).all():
        raise SpecError(f"--model {name} outputs NaN or infinite values on {what}",
                        "check its weights (--weights) and normalization (--mean/--std)")
    return out


def load_target(checkpoint: Path | None, spec: ModelSpec | None = None, *, dataset: str | None = None,
                data_root: Path | None = None, want_data: bool = True,
                device: torch.device | str = "cpu") -> Target:
    """Resolve the CLI's model options into a :class:`Target` on ``device``.

    Either ``checkpoint`` (a featviz checkpoint folder of an image model) or ``spec.ref``
    (``MODULE:FACTORY`` or ``FILE.py:FACTORY`` with ``--weights``, ``--input-shape``,
    ``--mean``/``--std``). Dataset images for the examples come from ``--data``, else
    ``dataset`` or the checkpoint card; a named dataset that cannot be found is skipped
    with a note unless it was asked for explicitly (``dataset`` or ``data_root`` given).
    """
    spec = spec or ModelSpec()
    if (checkpoint is None) == (spec.ref is None):
        raise SpecError("give either a CHECKPOINT folder or --model MODULE:FACTORY (exactly one)")
    if spec.data is not None and dataset is not None:
        raise SpecError("--data and --dataset exclude each other", "give your own images or a dataset name")
    explicit = dataset is not None or data_root is not None
    image_size = recorded_root = None
    if checkpoint is not None:
        from .checkpoint import load_checkpoint

        if [g for g in spec.given if g != "--input-shape"]:
            raise SpecError(f"{', '.join(spec.given)} go with --model; a checkpoint carries its own")
        ckpt = load_checkpoint(checkpoint, device)
        shape = getattr(ckpt.model, "input_shape", None)
        if shape is None:
            raise SpecError(f"{checkpoint} is a {ckpt.card['arch'].get('class')} with vector inputs",
                            "featviz maximize visualizes image models (C, H, W inputs)")
        if spec.input_shape is not None and parse_shape(spec.input_shape) != tuple(shape):
            raise SpecError(f"--input-shape {spec.input_shape} does not match the checkpoint's {tuple(shape)}")
        model, preprocess, name = ckpt.model, None, ckpt.name
        card_data = ckpt.card.get("dataset", {})
        if spec.data is None:
            dataset = dataset or card_data.get("name")
        image_size, recorded_root = card_data.get("image_size"), card_data.get("data_root")
        data = user_data(spec, tuple(shape))
    else:
        hint = parse_shape(spec.input_shape) if spec.input_shape is not None else None
        data = user_data(spec, hint)
        model, shape = build_model(spec, data.input_shape if data is not None else None)
        model.to(device)
        preprocess = Normalize(spec.mean, spec.std).to(device) if spec.mean is not None else None
        name, image_size = spec.ref, shape[-1]
        probe_model(model if preprocess is None else nn.Sequential(preprocess, model),
                    (data.x_test[:2] if data is not None else torch.rand(2, *shape)).to(device), spec.ref,
                    what="its --data images" if data is not None else "random inputs", finite=data is not None)
    images, note, loaded = None, None, data
    if data is not None:
        if tuple(data.input_shape) != tuple(shape):
            raise DataError(f"--data {data.name} has images {tuple(data.input_shape)}, the model takes {tuple(shape)}",
                            "pass --input-shape to match the data, or other data")
        images = data.x_train
    elif want_data and dataset:
        loaded, note = _dataset_images(dataset, data_root, image_size, tuple(shape), explicit, recorded_root)
        images = None if loaded is None else loaded.x_train
    return Target(model, tuple(shape), preprocess, images, str(name), note, loaded)


# --------------------------------------------------------------------------- attack targets


def _attack_data(name: str, dataset, what: str, shape: tuple[int, ...], outputs: int | None = None):
    from .data.user import check_labels

    if dataset.task != "classification" or not dataset.is_image:
        raise SpecError(f"{name} is not an image classification dataset")
    if tuple(dataset.input_shape) != tuple(shape):
        raise SpecError(f"{name} has inputs {tuple(dataset.input_shape)}, {what} takes {tuple(shape)}",
                        "pick data that matches --input-shape")
    if outputs is not None:
        check_labels(dataset, outputs, what)


def checkpoint_targets(checkpoints: Sequence[str | Path], *, data_root: str | Path | None = None,
                       data: str | Path | None = None, device: torch.device | str = "cpu") -> list:
    """featviz checkpoints of image classifiers, each with its own dataset's test split, or
    all with the images of ``data`` (``--data``: an .npz or image folder)."""
    from .attacks.session import AttackTarget
    from .checkpoint import load_checkpoint
    from .data import load_dataset
    from .data.user import load_user_data

    cache: dict[tuple, Any] = {}
    targets = []
    for path in checkpoints:
        ckpt = load_checkpoint(path, device)
        info = ckpt.card.get("dataset", {})
        if info.get("task") != "classification":
            raise SpecError(f"{path} is a {info.get('task', 'non-classification')} model",
                            "attacks need an image classifier checkpoint")
        if data is not None:
            shape = tuple(getattr(ckpt.model, "input_shape", ()))
            key = ("--data", shape)
            if key not in cache:
                cache[key] = load_user_data(data, shape if len(shape) == 3 else None)
            _attack_data(f"--data {Path(data).name}", cache[key], str(path), shape,
                         int(info.get("num_classes") or 0) or None)
        else:
            key = (info.get("name"), info.get("image_size"))
            if key not in cache:
                cache[key] = load_dataset(info["name"], data_root=data_root, image_size=info.get("image_size"),
                                          recorded_root=info.get("data_root"))
        targets.append(AttackTarget(ckpt.name, str(path), ckpt.model, cache[key].x_test, cache[key].y_test))
    return targets


def factory_target(spec: ModelSpec, *, dataset: str | None = None, data_root: str | Path | None = None,
                   device: torch.device | str = "cpu"):
    """Any ``nn.Module`` (``spec``: ``--model`` with its weights) against the test split of
    ``dataset`` or the images of ``--data``. ``--mean``/``--std`` wrap it in
    :class:`~featviz.normalize.Normalized` so the attacks work on [0, 1] images. Input shape
    and class count must match the data."""
    from .attacks.session import AttackTarget
    from .data import load_dataset
    from .normalize import Normalized

    ref = spec.ref
    if spec.data is not None and dataset:
        raise SpecError("--data and --dataset exclude each other", "give your own images or a dataset name")
    if spec.data is None and not dataset:
        raise SpecError(f"--model {ref} needs test images: --data FILE.npz|FOLDER or --dataset NAME",
                        "e.g. --data my_test_set.npz or --dataset digits")
    hint = parse_shape(spec.input_shape) if spec.input_shape is not None else None
    if spec.data is not None:
        data, label = user_data(spec, hint), f"--data {Path(spec.data).name}"
        model, shape = build_model(spec, data.input_shape)
    else:
        model, shape = build_model(spec)
        data, label = load_dataset(dataset, data_root=data_root, image_size=shape[-1]), f"--dataset {dataset}"
    _attack_data(label, data, f"--model {ref}", shape)
    if spec.mean is not None:
        model = Normalized(model, spec.mean, spec.std)
    model = model.to(device).eval()
    out = probe_model(model, data.x_test[:2].to(device), ref, classes=max(data.num_classes, 1),
                      what=f"{label} images")
    _attack_data(label, data, f"--model {ref}", shape, int(out.shape[1]))
    return AttackTarget(ref, ref, model, data.x_test, data.y_test)




# --------------------------------------------------------------------------- gallery targets

MAX_GALLERY_LAYERS = 8


def feature_layers(model: nn.Module, limit: int = MAX_GALLERY_LAYERS) -> list[dict[str, Any]]:
    """The layers a gallery shows for a model featviz did not build: its convolutions (module
    paths from ``named_modules()``, as ``--neuron`` takes them), else its hidden linear layers,
    in order, at most ``limit``; each ``{"name", "units", "kind"}`` like a card's ``layers``."""
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n]
    if convs:
        return [{"name": n, "units": int(m.out_channels), "kind": "conv"} for n, m in convs[:limit]]
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear) and n][:-1]
    return [{"name": n, "units": int(m.out_features), "kind": "dense"} for n, m in linears[:limit]]


def user_checkpoint(spec: ModelSpec, device: torch.device | str = "cpu"):
    """``--model`` (with ``--weights`` and ``--data``) as a :class:`~featviz.checkpoint.Checkpoint`
    the gallery can show: a card made here (never saved) naming the model, its source, its
    layers (:func:`feature_layers`), the ``--data`` it is shown with and its accuracy there."""
    from . import __version__
    from .checkpoint import Checkpoint
    from .normalize import Normalized

    hint = parse_shape(spec.input_shape) if spec.input_shape is not None else None
    data = user_data(spec, hint)
    model, shape = build_model(spec, data.input_shape if data is not None else None)
    if spec.mean is not None:
        model = Normalized(model, spec.mean, spec.std)
    model.to(device).eval()
    if data is not None and tuple(data.input_shape) != tuple(shape):
        raise DataError(f"--data {data.name} has images {tuple(data.input_shape)}, the model takes {tuple(shape)}",
                        "pass --input-shape to match the data, or other data")
    probe = data.x_test[:2] if data is not None else torch.rand(2, *shape)
    out = probe_model(model, probe.to(device), spec.ref, what="its --data images" if data else "random inputs",
                      finite=data is not None)
    if getattr(model, "input_shape", None) is None:
        model.input_shape = tuple(shape)  # what the gallery reads to know it is an image model
    metrics: dict[str, Any] = {}
    if data is not None and data.info.get("labelled"):
        from .attacks.model import predict
        from .data.user import check_labels

        check_labels(data, int(out.shape[1]) if out.dim() == 2 else 0, f"--model {spec.ref}")
        pred = torch.cat([predict(model, data.x_test[i:i + 256].to(device)).cpu()
                          for i in range(0, len(data.x_test), 256)])
        metrics["test_accuracy"] = float((pred == data.y_test).float().mean())
    layers = feature_layers(model.model if isinstance(model, Normalized) else model)
    if isinstance(model, Normalized):
        layers = [dict(layer, name=f"model.{layer['name']}") for layer in layers]
    weights = Path(spec.weights).name if spec.weights is not None else "random initialization"
    card = {"format": "featviz-user-model/1", "name": spec.ref,
            "arch": {"class": type(model).__name__, "model": spec.ref, "model_args": dict(spec.args), "act": "—"},
            "dataset": dict(data.info) if data is not None else {"name": None},
            "training": {"mode": f"own model ({weights})", "adv": None},
            "metrics": metrics, "layers": layers,
            "versions": {"featviz": __version__, "torch": torch.__version__.split("+")[0]}}
    return Checkpoint(model=model, card=card, path=Path(spec.ref))


__all__ = ["ModelSpec", "Target", "build_model", "checkpoint_targets", "factory_target", "feature_layers",
           "load_factory", "load_target", "load_weights", "parse_model_args", "parse_shape", "probe_model",
           "user_checkpoint", "user_data"]
