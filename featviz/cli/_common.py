"""Options and helpers shared by the commands."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
from functools import wraps
from pathlib import Path
from typing import Any, Callable, Iterator

import click

from ..errors import FeatvizError
from ..fileio import to_json
from ..numbers import parse_number, parse_numbers


def common_options(out: bool = True, json_flag: bool = True, force: bool = True,
                   out_required: bool = True) -> Callable:
    """Add ``--seed``, ``--device`` and, as asked, ``--out``/``--force`` and ``--json``."""

    def decorate(fn: Callable) -> Callable:
        opts = [
            click.option("--seed", type=int, default=0, show_default=True, help="Seed for every random draw."),
            click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda[:N] or mps."),
        ]
        if out:
            opts.append(click.option("--out", "out", type=click.Path(path_type=Path), required=out_required,
                                     help="Output folder."))
            if force:
                opts.append(click.option("--force", is_flag=True, help="Replace a non-empty --out."))
        if json_flag:
            opts.append(click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout."))
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return decorate


# Folders no output belongs in: the kernel's virtual file systems refuse or misbehave on writes.
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")


class Number(click.ParamType):
    """A click type for numbers that may be written as fractions (``8/255``)."""

    name = "NUMBER"

    def convert(self, value, param, ctx):
        try:
            return parse_number(value, param.opts[0] if param is not None and param.opts else "value")
        except FeatvizError as exc:
            self.fail(exc.one_line(), param, ctx)


def model_options(instead: str) -> Callable[[Callable], Callable]:
    """The options that name any ``nn.Module`` instead of a featviz checkpoint, and the user's
    own images, shared by maximize, attack and gallery. The command receives them packed as
    ``model`` (a :class:`featviz.sources.ModelSpec`); ``instead`` says what the model replaces."""
    options = [
        click.option("--model", "model_ref", metavar="MODULE:FACTORY|FILE.py:FACTORY",
                     help=f"Any model instead of {instead}: FACTORY(**model-args) in a module or a .py file returns "
                          "an nn.Module. This imports and runs that code (like torch.hub): name only code you trust."),
        click.option("--model-arg", "model_args", multiple=True, metavar="KEY=VALUE",
                     help="Keyword argument of the --model factory (repeatable; VALUE is a Python literal, "
                          "else a string)."),
        click.option("--weights", type=click.Path(path_type=Path),
                     help="State dict for --model: .safetensors, or .pt/.pth/.bin from torch.save(model.state_dict()) "
                          "(read with weights_only=True, never unpickling code)."),
        click.option("--random-init", is_flag=True,
                     help="Study --model with its random initial weights (without --weights this must be said)."),
        click.option("--input-shape", help="C,H,W of the --model input (default: the model's input_shape "
                                           "attribute, else the --data images)."),
        click.option("--mean", help="Per-channel mean the --model expects (images in [0, 1] are normalized with it)."),
        click.option("--std", help="Per-channel std for --mean."),
        click.option("--data", "user_data", type=click.Path(path_type=Path), metavar="FILE.npz|FOLDER",
                     help="Your own images: an .npz with x (N,C,H,W or N,H,W,C; uint8 or float in [0, 1]) and "
                          "y (int labels), or a folder with one sub-folder of images per class."),
    ]

    def decorate(fn: Callable) -> Callable:
        @wraps(fn)
        def wrapper(*args, model_ref=None, model_args=(), weights=None, random_init=False, input_shape=None,
                    mean=None, std=None, user_data=None, **kwargs):
            from ..sources import ModelSpec, parse_model_args

            stds = parse_numbers(std, "--std")
            if stds is not None and not all(v > 0 for v in stds):
                raise FeatvizError(f"--std {std!r}: every std must be > 0", "e.g. --std 0.5,0.5,0.5")
            spec = ModelSpec(ref=model_ref, args=parse_model_args(model_args), weights=weights,
                             random_init=random_init, input_shape=input_shape,
                             mean=parse_numbers(mean, "--mean"), std=stds, data=user_data)
            if model_ref is None and [g for g in spec.given if g != "--input-shape"]:
                from ..errors import SpecError

                raise SpecError(f"{', '.join(g for g in spec.given if g != '--input-shape')} go with --model; "
                                "a checkpoint carries its own")
            return fn(*args, model=spec, **kwargs)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate


def check_out(path: Path, force: bool, marker: str | None = None, inputs: tuple | list = ()) -> Path:
    """Check and claim ``--out`` before any data or model is loaded; every writing command calls this first.

    Refuses (exit 2, one line, nothing touched): a path that is a file or lies under a file;
    a path inside a system folder (/proc, /sys, /dev); a place where no folder can be created;
    a path that is one of the command's ``inputs`` or a folder above one; a folder another
    featviz run is writing; a non-empty folder without ``--force``; and, even with ``--force``,
    a non-empty folder that featviz did not make (see :func:`featviz.fileio.is_featviz_output`).
    Then claims it (:func:`featviz.fileio.claim_output`: lock file, start snapshot); write the
    output with :func:`featviz.fileio.atomic_directory`. ``marker`` is accepted for
    compatibility and ignored.
    """
    from ..fileio import claim_output

    path = Path(path).expanduser()
    resolved = path.resolve()
    for system in SYSTEM_FOLDERS:
        if resolved == Path(system) or Path(system) in resolved.parents:
            raise FeatvizError(f"--out {path} is inside {system}, a system folder", "choose a folder of your own")
    if path.exists() and not path.is_dir():
        raise FeatvizError(f"--out {path} is a file", "choose a folder path")
    if path.is_dir():
        try:
            next(iter(path.iterdir()), None)
        except OSError as exc:
            raise FeatvizError(f"--out {path} cannot be read ({exc.strerror or exc})", "choose another folder") from None
    ancestor = resolved.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise FeatvizError(f"--out {path}: {ancestor} is a file, not a folder", "choose a folder path")
    _probe_writable(path, ancestor)
    claim_output(path, force, inputs)
    return path


def _probe_writable(path: Path, folder: Path) -> None:
    """Create and remove a folder in ``folder``: the only test that is true for every user
    (permission bits say nothing to root, read-only mounts and virtual file systems)."""
    import tempfile

    try:
        probe = tempfile.mkdtemp(prefix=".featviz-probe-", dir=folder)
        os.rmdir(probe)
    except OSError as exc:
        raise FeatvizError(f"--out {path}: cannot write under {folder} ({exc.strerror or exc})",
                           "choose a writable folder") from None


@contextlib.contextmanager
def stop_on_sigint(what: str = "finishing this epoch, then saving a resumable checkpoint") -> Iterator[Callable[[], bool]]:
    """Turn the first Ctrl-C into a polite stop request (polled by the caller); a second
    Ctrl-C aborts at once. Yields the ``should_stop`` function."""
    requested = {"stop": False}

    def handler(signum, frame):
        if requested["stop"]:
            raise KeyboardInterrupt
        requested["stop"] = True
        click.echo(f"featviz: interrupt received: {what} (Ctrl-C again aborts)", err=True)

    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: requested["stop"]
    finally:
        signal.signal(signal.SIGINT, previous)


def emit_json(obj: Any) -> None:
    click.echo(to_json(obj))


def command_line() -> str:
    """The command as typed, for model cards (program name normalized)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    args = obj["argv"] if isinstance(obj, dict) and "argv" in obj else sys.argv[1:]
    return shlex.join(["featviz"] + [str(a) for a in args])


def with_device(fn: Callable) -> Callable:
    """Resolve ``--device`` into a torch.device before the command body runs."""

    @wraps(fn)
    def wrapper(*args, device: str = "auto", **kwargs):
        from ..devices import resolve_device

        return fn(*args, device=resolve_device(device), **kwargs)

    return wrapper


def parse_floats(text: str | None, what: str) -> tuple[float, ...] | None:
    """``"0.01,0.02"`` (fractions allowed: ``8/255``) -> (0.01, 0.02); None stays None; anything
    else is one clear error naming the option ``what`` (exit 2)."""
    values = parse_numbers(text, what)
    return None if values is None else tuple(values)
