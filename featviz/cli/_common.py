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


def check_out(path: Path, force: bool, marker: str | None = None) -> Path:
    """Refuse an ``--out`` that is a file, or a non-empty folder without ``--force``.

    A folder that already holds ``marker`` (e.g. the ``card.json`` of a checkpoint
    that this command would write atomically anyway) also needs ``--force``.
    """
    if path.exists() and not path.is_dir():
        raise FeatvizError(f"--out {path} is a file", "choose a folder path")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise FeatvizError(f"--out {path} is not empty", "choose another folder or pass --force to replace it")
    parent = path.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise FeatvizError(f"--out {path}: {parent} is a file, not a folder", "choose a folder path")
    if not os.access(parent, os.W_OK):
        raise FeatvizError(f"--out {path}: cannot write under {parent}", "choose a writable folder")
    return path


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
