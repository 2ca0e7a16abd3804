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


def model_options(instead: str) -> Callable[[Callable], Callable]:
    """The options that name any ``nn.Module`` instead of a featviz checkpoint (``--model``,
    ``--weights``, ``--input-shape``, ``--mean``, ``--std``), shared by the commands that take one;
    ``instead`` says what it replaces ("a checkpoint", "checkpoints")."""
    options = [
        click.option("--model", "model_ref", metavar="MODULE:FACTORY",
                     help=f"Any model instead of {instead}: FACTORY() in an importable module returns an nn.Module."),
        click.option("--weights", type=click.Path(path_type=Path), help="safetensors state dict for --model."),
        click.option("--input-shape", help="C,H,W of the --model input."),
        click.option("--mean", help="Per-channel mean the --model expects (images in [0, 1] are normalized with it)."),
        click.option("--std", help="Per-channel std for --mean."),
    ]

    def decorate(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def check_out(path: Path, force: bool, marker: str | None = None) -> Path:
    """Check ``--out`` before any data or model is loaded; every writing command calls this first.

    Refuses (exit 2, one line, nothing touched): a path that is a file or lies under a file;
    a path inside a system folder (/proc, /sys, /dev); a place where no folder can be created;
    a non-empty folder without ``--force``; and, even with ``--force``, a non-empty folder that
    featviz did not make (no output marker, see :func:`featviz.fileio.is_featviz_output`).
    Write the output with :func:`featviz.fileio.atomic_directory`, which marks the folder.
    ``marker`` is accepted for compatibility and ignored.
    """
    from ..fileio import OUTPUT_MARKER, is_featviz_output

    path = Path(path).expanduser()
    resolved = path.resolve()
    for system in SYSTEM_FOLDERS:
        if resolved == Path(system) or Path(system) in resolved.parents:
            raise FeatvizError(f"--out {path} is inside {system}, a system folder", "choose a folder of your own")
    if path.exists() and not path.is_dir():
        raise FeatvizError(f"--out {path} is a file", "choose a folder path")
    if path.is_dir():
        try:
            entries = list(path.iterdir())
        except OSError as exc:
            raise FeatvizError(f"--out {path} cannot be read ({exc.strerror or exc})", "choose another folder") from None
        if entries and not force:
            raise FeatvizError(f"--out {path} is not empty", "choose another folder or pass --force to replace it")
        if entries and not is_featviz_output(path):
            raise FeatvizError(f"--out {path} holds files featviz did not write (no {OUTPUT_MARKER}); "
                               "--force replaces only featviz output folders",
                               "choose another folder, or empty it yourself")
    ancestor = resolved.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise FeatvizError(f"--out {path}: {ancestor} is a file, not a folder", "choose a folder path")
    _probe_writable(path, ancestor)
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
    """``"0.01,0.02"`` -> (0.01, 0.02); None stays None; anything else is one clear error
    naming the option ``what`` (exit 2)."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise FeatvizError(f"{what} must be comma-separated numbers, got {text!r}", f"e.g. {what} 0.5,0.5") from None
    if not values:
        raise FeatvizError(f"{what} needs at least one value")
    return values
