"""Atomic writes: the one place where featviz puts bytes on disk.

A reader (or a crash, or ``kill -9``) sees either the previous file or the complete
new one, never a half-written file: data goes to a temporary file in the same folder,
is flushed to disk, and is then renamed over the target (``os.replace`` is atomic on
POSIX and Windows within one file system).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import FeatvizError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _finite(obj: Any) -> Any:
    """Replace NaN/Inf floats by None so the JSON stays standard (RFC 8259)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def to_json(obj: Any, indent: int | None = 2) -> str:
    """Serialize to standard JSON (NaN/Inf become null, keys keep their order)."""
    return json.dumps(_finite(json.loads(json.dumps(obj, default=_json_default))), indent=indent)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj) + "\n")


def save_png(path: str | os.PathLike, image) -> Path:
    """Save a PIL image as PNG atomically."""
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


# Every output folder featviz writes holds this file; ``--force`` replaces only folders that do
# (or legacy featviz folders recognised by ``is_featviz_output``), never a folder of the user's.
OUTPUT_MARKER = ".featviz-output"
_COMMAND: contextvars.ContextVar[str | None] = contextvars.ContextVar("featviz_command", default=None)


def set_command_line(command: str | None) -> None:
    """Record the command line that output markers name (the CLI sets it once per command)."""
    _COMMAND.set(command)


def write_output_marker(folder: str | os.PathLike) -> Path:
    """Mark ``folder`` as made by featviz (a small JSON file: version and command)."""
    from . import __version__

    info = {"made_by": "featviz", "version": __version__, "command": _COMMAND.get()}
    return atomic_write_text(Path(folder) / OUTPUT_MARKER, json.dumps(info) + "\n")


def is_featviz_output(folder: str | os.PathLike) -> bool:
    """True if ``folder`` was written by featviz: it holds the output marker, or (folders from
    versions before the marker) it is a checkpoint (a featviz ``card.json`` beside
    ``model.safetensors``) or a gallery (an ``index.html`` signed by featviz)."""
    folder = Path(folder)
    if (folder / OUTPUT_MARKER).is_file():
        return True
    card, weights, index = folder / "card.json", folder / "model.safetensors", folder / "index.html"
    try:
        if card.is_file() and weights.is_file() and card.stat().st_size < 1_000_000:
            data = json.loads(card.read_text(encoding="utf-8"))
            return isinstance(data, dict) and str(data.get("format", "")).startswith("featviz-checkpoint/")
        if index.is_file() and index.stat().st_size < 10_000_000:
            return "Made by featviz" in index.read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return False
    return False


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name, then swap it into place.

    Yields the temporary folder to fill. On success the folder gets the output marker
    (:data:`OUTPUT_MARKER`) and the previous content of ``target`` (if any) is replaced
    in two renames; on failure the temporary folder is removed and ``target`` is left
    exactly as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        write_output_marker(tmp)
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Load a JSON object from ``path`` or raise one clear error naming ``what`` it should be."""
    if not path.is_file():
        raise FeatvizError(f"{path} does not exist", f"expected the {what}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeatvizError(f"{path} is not valid JSON ({exc.__class__.__name__})", f"regenerate the {what}") from None
    if not isinstance(data, dict):
        raise FeatvizError(f"{path} must hold a JSON object", f"regenerate the {what}")
    return data
