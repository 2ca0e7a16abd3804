"""Everything featviz puts on disk goes through here: atomic files, the output-folder protocol,
and bounded JSON reading.

Files: data goes to a temporary file in the same folder, is flushed to disk and renamed over
the target (``os.replace`` is atomic within one file system), so a reader, a crash or
``kill -9`` sees the previous file or the complete new one, never half of one.

Output folders (``--out`` of every command, every checkpoint): see :func:`claim_output` and
:func:`atomic_directory`. In short: the folder is built in a temporary area beside ``--out``
that also holds a lock file; at the end it replaces ``--out`` only if ``--out`` is absent,
empty, or still exactly the featviz folder that was there at the start. Anything else is kept,
and the finished result is moved to ``OUT.featviz-NNN`` instead. A run never deletes a folder
it did not create.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import math
import os
import shutil
import socket
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .errors import FeatvizError

# Environment faults that are the machine's, not featviz's: they end in exit 2 naming the path.
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                                errno.ENAMETOOLONG, errno.EFBIG, errno.EMFILE, errno.ENFILE, errno.EIO,
                                errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.EXDEV})


def environment_error(exc: OSError, path: str | os.PathLike | None = None) -> FeatvizError:
    """A :class:`FeatvizError` for an OS fault while writing: the path, the reason and the errno."""
    where = exc.filename or path or "a file"
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    hint = {errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some disk space",
            errno.ENAMETOOLONG: "choose a shorter --out name"}.get(exc.errno or 0, "choose a folder you can write to")
    return FeatvizError(f"cannot write {where}: {exc.strerror or exc} ({code})", f"{hint}; nothing was left half-written")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    An OS fault (disk full, permission denied, name too long) removes the temporary file and
    raises a :class:`FeatvizError` naming the path and the errno."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            raise environment_error(exc, path) from None
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


# ---------------------------------------------------------------- bounded JSON reading

MAX_JSON_BYTES = 64 * 1024 * 1024  # a results file is kilobytes; a card is smaller still
MAX_JSON_DEPTH = 32                 # featviz writes at most 6 levels
MAX_INT_DIGITS = 19                 # |n| < 10**19: anything larger is not a count featviz wrote


def _depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` outside strings (scanned before parsing: the parser recurses)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json(text: str, source: str | os.PathLike, what: str) -> Any:
    """Parse JSON text with featviz's bounds: nesting at most :data:`MAX_JSON_DEPTH`, integers
    of at most :data:`MAX_INT_DIGITS` digits, no NaN/Infinity literals. Errors name ``source``."""
    if _depth(text) > MAX_JSON_DEPTH:
        raise FeatvizError(f"{source} is nested deeper than {MAX_JSON_DEPTH} levels", f"expected the {what}")

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            raise FeatvizError(f"{source} holds an integer of {len(digits.lstrip('-'))} digits "
                               f"(at most {MAX_INT_DIGITS})", f"expected the {what}")
        return int(digits)

    def parse_constant(name: str) -> float:
        raise FeatvizError(f"{source} holds the non-finite number {name}", f"expected the {what} (standard JSON)")

    try:
        return json.loads(text, parse_int=parse_int, parse_constant=parse_constant)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise FeatvizError(f"{source} is not valid JSON ({exc.__class__.__name__})", f"regenerate the {what}") from None


# Fields whose values are fractions of examples: every number under such a key lies in [0, 1].
FRACTION_SUFFIXES = ("accuracy",)
# Fields that cannot be negative (radii, spreads, durations, counts).
NONNEGATIVE_KEYS = frozenset({"eps", "std", "seconds", "mean_norm", "n", "steps", "epochs", "total_steps", "seeds",
                              "restarts", "n_test", "n_examples", "hf_ratio", "tv"})


def check_values(data: Any, source: str | os.PathLike) -> None:
    """The value rules of docs/formats.md that hold in every featviz results file: a number under
    a key ending in ``accuracy`` lies in [0, 1]; one under ``eps``, ``std``, ``seconds``, a count
    (and the other keys of :data:`NONNEGATIVE_KEYS`) is >= 0; booleans are not numbers there.
    Errors name the file and the field (``models[0].attacks[1].curve[2].robust_accuracy``)."""

    def numbers(value: Any, where: str) -> Iterator[tuple[float, str]]:
        if isinstance(value, bool):
            raise FeatvizError(f"{source}: {where} is a boolean, expected a number", "regenerate the results")
        if isinstance(value, (int, float)):
            yield float(value), where
        elif isinstance(value, list):
            for i, v in enumerate(value):
                yield from numbers(v, f"{where}[{i}]")
        elif isinstance(value, dict):
            for k, v in value.items():
                yield from numbers(v, f"{where}.{k}")
        elif value is not None and not isinstance(value, str):
            raise FeatvizError(f"{source}: {where} is not a number", "regenerate the results")

    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{key}" if where else str(key)
                if isinstance(key, str) and key.endswith(FRACTION_SUFFIXES) and not isinstance(item, str):
                    for number, at in numbers(item, name):
                        if not 0.0 <= number <= 1.0:
                            raise FeatvizError(f"{source}: {at} = {number:g} is not an accuracy in [0, 1]",
                                               "regenerate the results; featviz never writes that")
                elif key in NONNEGATIVE_KEYS and isinstance(item, (int, float)) and not isinstance(item, bool):
                    if item < 0:
                        raise FeatvizError(f"{source}: {name} = {item:g} is negative", "regenerate the results")
                else:
                    stack.append((item, name))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))


# ---------------------------------------------------------------- schemas
# A schema is plain data: ``NUM``/``STR``/``ANY`` for a value, ``[schema]`` for a list of it,
# ``{"*": schema}`` for an object with any keys, ``{"key": schema, ...}`` for an object with these
# keys (others allowed), and :class:`Opt` for a key that may be missing or null. Errors name the
# file and the field (``modes.joint.robust[2].eps``).

NUM, STR, ANY = "number", "string", "anything"


@dataclass(frozen=True)
class Opt:
    """A value that may be missing or null."""

    schema: Any


class Nullable(Opt):
    """A key that must be present; its value may be null."""


def _schema_error(source: Path, where: str, expected: str, value: Any) -> FeatvizError:
    shown = type(value).__name__ if not isinstance(value, (int, float, str)) or isinstance(value, bool) else repr(value)
    return FeatvizError(f"{source}: {where or 'the file'} should be {expected}, got {shown[:40]}",
                        "regenerate the results; featviz never writes that")


def validate(value: Any, schema: Any, source: Path, where: str = "") -> None:
    """Raise :class:`FeatvizError` naming ``source`` and the field where ``value`` breaks ``schema``."""
    if isinstance(schema, Opt):
        if value is not None:
            validate(value, schema.schema, source, where)
        return
    if schema is ANY:
        return
    if schema is NUM:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _schema_error(source, where, "a number", value)
        return
    if schema is STR:
        if not isinstance(value, str):
            raise _schema_error(source, where, "a string", value)
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise _schema_error(source, where, "a list", value)
        for i, item in enumerate(value):
            validate(item, schema[0], source, f"{where}[{i}]")
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise _schema_error(source, where, "an object", value)
        if "*" in schema:
            for key, item in value.items():
                validate(item, schema["*"], source, f"{where}.{key}" if where else str(key))
            return
        for key, sub in schema.items():
            name = f"{where}.{key}" if where else key
            if key not in value and (not isinstance(sub, Opt) or isinstance(sub, Nullable)):
                raise FeatvizError(f"{source}: {name} is missing", "regenerate the results")
            validate(value.get(key), sub, source, name)
        return
    raise TypeError(f"not a schema: {schema!r}")



def read_json(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """Load a JSON object from ``path`` (at most :data:`MAX_JSON_BYTES`, bounded depth and
    integer size, see :func:`parse_json`; values as :func:`check_values` says) or raise one
    clear error naming ``what`` it should be."""
    path = Path(path)
    if not path.is_file():
        raise FeatvizError(f"{path} does not exist", f"expected the {what}")
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise FeatvizError(f"{path} is {size / 1e6:.0f} MB, more than the {MAX_JSON_BYTES // 2**20} MiB "
                               "a featviz JSON file can be", f"expected the {what}")
        raw = path.read_bytes()
    except OSError as exc:
        raise FeatvizError(f"cannot read {path} ({exc.strerror or exc})", f"expected the {what}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FeatvizError(f"{path} is not valid JSON (not UTF-8)", f"regenerate the {what}") from None
    data = parse_json(text, path, what)
    if not isinstance(data, dict):
        raise FeatvizError(f"{path} must hold a JSON object", f"regenerate the {what}")
    check_values(data, path)
    return data


def inside(folder: str | os.PathLike, name: Any, source: str | os.PathLike, what: str) -> Path:
    """The file ``name`` (relative, from a results file ``source``) resolved inside ``folder``.

    Refused with one error naming ``what`` (the field, e.g. ``files.robustness``): a name that
    is not a non-empty string, absolute, climbs out with ``..``, resolves outside ``folder``
    through a symbolic link, or is not an existing regular file."""
    folder = Path(folder)
    if not isinstance(name, str) or not name or "\x00" in name:
        raise FeatvizError(f"{source}: {what} must name a file, got {name!r}", "regenerate the results")
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts:
        raise FeatvizError(f"{source}: {what} = {name!r} points outside {folder}", "refusing to read it")
    try:
        path = (folder / rel).resolve()
        root = folder.resolve()
    except (OSError, RuntimeError):
        raise FeatvizError(f"{source}: {what} = {name!r} cannot be resolved", "refusing to read it") from None
    if not path.is_relative_to(root):
        raise FeatvizError(f"{source}: {what} = {name!r} resolves outside {folder} (a symbolic link)",
                           "refusing to read it")
    if not path.is_file():
        raise FeatvizError(f"{source}: {what} = {name!r} is missing", "regenerate the results")
    return path


def check_contained(folder: str | os.PathLike, what: str, limit: int = 100_000) -> None:
    """Refuse a result folder holding a symbolic link that resolves outside it (the gallery
    publishes only what the folder itself holds); errors name the link and ``what`` the folder is."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    root = folder.resolve()
    for n, (base, dirs, files) in enumerate(os.walk(folder)):
        if n > limit:
            break
        for name in dirs + files:
            path = Path(base) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise FeatvizError(f"{what} {folder}: {path.relative_to(folder)} is a symbolic link that resolves "
                                   f"outside the folder", "the gallery publishes only what a result folder holds; "
                                   "remove the link")


# ---------------------------------------------------------------- output folders

# Every output folder featviz writes holds this file; ``--force`` replaces only folders that do
# (or checkpoints from before the marker, see ``is_featviz_output``), never a folder of the user's.
OUTPUT_MARKER = ".featviz-output"
_COMMAND: contextvars.ContextVar[str | None] = contextvars.ContextVar("featviz_command", default=None)
CHECKPOINT_FILES = frozenset({"card.json", "model.safetensors", "resume.safetensors", "resume.json"})
MAX_LISTING = 100_000  # entries compared between the start and the end of a run


def set_command_line(command: str | None) -> None:
    """Record the command line that output markers name (the CLI sets it once per command)."""
    _COMMAND.set(command)


def write_output_marker(folder: str | os.PathLike) -> Path:
    """Mark ``folder`` as made by featviz (a small JSON file: version and command)."""
    from . import __version__

    info = {"made_by": "featviz", "version": __version__, "command": _COMMAND.get()}
    return atomic_write_text(Path(folder) / OUTPUT_MARKER, json.dumps(info) + "\n")


def _small_json(path: Path, limit: int = 1_000_000) -> Any:
    """A small regular file parsed as JSON, or None (never follows a symbolic link)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        return parse_json(path.read_text(encoding="utf-8"), path, "file")
    except (OSError, UnicodeDecodeError, FeatvizError):
        return None


def _safetensors_header_ok(path: Path) -> bool:
    """True if ``path`` starts with a consistent safetensors header (length, then a JSON table)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            return False
        with open(path, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 2 <= n <= min(st.st_size - 8, 100_000_000):
                return False
            table = json.loads(fh.read(n))
    except (OSError, ValueError):
        return False
    return isinstance(table, dict) and all(
        isinstance(v, dict) and {"dtype", "shape", "data_offsets"} <= v.keys()
        for k, v in table.items() if k != "__metadata__")


def is_featviz_output(folder: str | os.PathLike) -> bool:
    """True if featviz wrote ``folder``: it holds the output marker, or (checkpoints written before
    the marker existed) it holds nothing but a featviz checkpoint: a ``card.json`` with a
    ``featviz-checkpoint/…`` format and an ``arch``, and a ``model.safetensors`` whose header is
    a real safetensors header (plus, optionally, the two files of a resumable checkpoint)."""
    folder = Path(folder)
    marker = _small_json(folder / OUTPUT_MARKER)
    if isinstance(marker, dict) and marker.get("made_by") == "featviz":
        return True
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return False
    if not {"card.json", "model.safetensors"} <= names <= CHECKPOINT_FILES:
        return False
    card = _small_json(folder / "card.json")
    return (isinstance(card, dict) and str(card.get("format", "")).startswith("featviz-checkpoint/")
            and isinstance(card.get("arch"), dict) and _safetensors_header_ok(folder / "model.safetensors"))


def snapshot(path: str | os.PathLike) -> tuple | None:
    """What is at ``path`` now, for comparing the end of a run with its start: None when nothing
    is there; else the device and inode plus, for a folder, every entry below it (name, type,
    size, modification time; the folder's own times are left out: renaming it changes them)."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        return ("other", st.st_dev, st.st_ino, st.st_mode, st.st_size, st.st_mtime_ns)
    entries: list[tuple] = []

    def walk(folder: Path, rel: str) -> bool:
        try:
            with os.scandir(folder) as it:
                children = list(it)
        except OSError:
            return False
        for child in children:
            if len(entries) >= MAX_LISTING:
                return False
            try:
                cst = child.stat(follow_symlinks=False)
            except OSError:
                return False
            name = f"{rel}/{child.name}" if rel else child.name
            entries.append((name, cst.st_ino, cst.st_mode, cst.st_size, cst.st_mtime_ns))
            if stat.S_ISDIR(cst.st_mode) and not walk(Path(child.path), name):
                return False
        return True

    listing = tuple(sorted(entries)) if walk(path, "") else None  # None: too large or unreadable
    return ("dir", st.st_dev, st.st_ino, listing)


def _is_empty_dir(snap: tuple | None) -> bool:
    return snap is not None and snap[0] == "dir" and snap[3] == ()


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux), so that a reused pid is not taken for the owner."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _holder_alive(holder: dict[str, Any]) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if holder.get("host") != socket.gethostname():
        return True  # another machine's run on a shared disk: cannot tell, so respect it
    if pid == os.getpid():
        return any(c.lock_id == holder.get("id") for c in _CLAIMS.values())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    start = _process_start(pid)
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False  # exited, not yet reaped
    except (OSError, IndexError):
        pass
    return start is None or holder.get("start") in (None, start)


@dataclass
class OutputClaim:
    """An output folder being written: its temporary area (lock file and build folder beside
    ``target``) and what was at ``target`` when the run started."""

    target: Path
    area: Path | None
    start: tuple | None
    lock_id: str = ""
    created: list[Path] = field(default_factory=list)


_CLAIMS: dict[Path, OutputClaim] = {}
AREA_SUFFIX = ".featviz-tmp"
LOCK = "lock"


def _absolute(target: str | os.PathLike) -> Path:
    target = Path(os.path.abspath(Path(target).expanduser()))
    return target.parent.resolve() / target.name


def _area(target: Path) -> Path:
    return target.parent / f".{target.name}{AREA_SUFFIX}"


def free_sibling(target: Path) -> Path:
    """``TARGET.featviz-NNN``, the first such name not taken."""
    for n in range(1, 10_000):
        candidate = target.with_name(f"{target.name}.featviz-{n:03d}")
        if not os.path.lexists(candidate):
            return candidate
    raise FeatvizError(f"no free name beside {target} to keep the result", "clean up the .featviz-NNN folders")


def _put_back(previous: Path, target: Path) -> Path:
    """Return a folder moved aside during a commit to ``target`` (or, if that is taken, beside it)."""
    dest = target if not os.path.lexists(target) else free_sibling(target)
    os.rename(previous, dest)
    return dest


def _clear_stale(area: Path, target: Path) -> None:
    """Remove a temporary area whose run is gone (it holds featviz's lock file, so featviz made it);
    a folder it had moved aside mid-commit goes back first."""
    stale = area.with_name(f"{area.name}.stale-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(area, stale)
    except FileNotFoundError:
        return
    if (stale / "previous").is_dir():
        _put_back(stale / "previous", target)
    shutil.rmtree(stale, ignore_errors=True)


def _acquire(target: Path) -> tuple[Path, str]:
    """Create the temporary area with its lock file atomically (staged, then renamed into place:
    a rename onto an existing area fails, because an area is never empty)."""
    from . import __version__

    area = _area(target)
    lock_id = f"{os.getpid()}-{time.time_ns()}"
    info = {"made_by": "featviz", "version": __version__, "pid": os.getpid(), "host": socket.gethostname(),
            "start": _process_start(os.getpid()), "id": lock_id, "command": _COMMAND.get(), "since": time.time()}
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.featviz-new-", dir=target.parent))
    try:
        (staging / LOCK).write_text(json.dumps(info) + "\n")
        for _ in range(3):
            try:
                os.rename(staging, area)
                return area, lock_id
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                    raise
            holder = _small_json(area / LOCK)
            if not isinstance(holder, dict) or holder.get("made_by") != "featviz":
                if not os.path.lexists(area):
                    continue
                raise FeatvizError(f"{area} is in the way of --out {target} and is not featviz's lock",
                                   "move it away; featviz does not delete what it did not make")
            if _holder_alive(holder):
                raise FeatvizError(f"another featviz run is writing {target}, pid {holder.get('pid')}"
                                   + (f" ({holder['command']})" if holder.get("command") else ""),
                                   "wait for it to finish or choose another --out")
            _clear_stale(area, target)
        raise FeatvizError(f"cannot lock --out {target}: its temporary area keeps changing", "try again")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_start(target: Path, snap: tuple | None, force: bool) -> None:
    """What is at ``target`` when a run starts: nothing, an empty folder, or (with ``force``)
    a featviz output folder; anything else ends the run before it computes anything."""
    if snap is None or _is_empty_dir(snap):
        return
    if snap[0] != "dir":
        kind = "a file" if stat.S_ISREG(snap[3]) else "a symbolic link" if stat.S_ISLNK(snap[3]) else "not a folder"
        raise FeatvizError(f"--out {target} is {kind}", "choose a folder path (name the folder itself)")
    if not force:
        raise FeatvizError(f"--out {target} is not empty", "choose another folder or pass --force to replace it")
    if os.path.islink(target):
        raise FeatvizError(f"--out {target} is a symbolic link", "name the folder itself")
    if not is_featviz_output(target):
        raise FeatvizError(f"--out {target} holds files featviz did not write (no {OUTPUT_MARKER}); "
                           "--force replaces only featviz output folders",
                           "choose another folder, or empty it yourself")


def claim_output(target: str | os.PathLike, force: bool = False,
                 inputs: tuple[str | os.PathLike, ...] | list = ()) -> OutputClaim:
    """Start writing the output folder ``target``: refuse what must not be replaced, take the lock,
    and remember what is there now (the commit compares against it).

    Refused with exit 2: ``target`` is one of ``inputs`` or a folder above one (not even
    ``--force`` replaces what the command reads); another live featviz process holds the lock
    ("another featviz run is writing OUT, pid N"; a lock whose process is gone is stale and
    cleared); ``target`` is non-empty without ``force``, or non-empty and not a featviz output
    folder (:func:`is_featviz_output`). Release with :func:`release_output` (the CLI releases
    every claim when a command ends)."""
    target = _absolute(target)
    if target.name in ("", ".", ".."):
        raise FeatvizError(f"--out {target} does not name a folder", "give a folder path")
    real = target.resolve()
    for item in inputs:
        if item is None or str(item) == "":
            continue
        used = Path(item).expanduser().resolve()
        if used == real or real in used.parents:
            raise FeatvizError(f"--out {target} is {'an input' if used == real else 'a folder above the input'} "
                               f"{item} of this command", "choose another --out; featviz never replaces what it reads")
    if target in _CLAIMS:
        raise FeatvizError(f"another featviz run is writing {target}, pid {os.getpid()}",
                           "wait for it to finish or choose another --out")
    _refuse_start(target, snapshot(target), force)
    created: list[Path] = []
    try:
        missing = [p for p in [target.parent, *target.parent.parents] if not os.path.lexists(p)]
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        if int(os.environ.get("RANK", "0") or 0) != 0:  # torchrun: rank 0 alone writes --out
            return OutputClaim(target, None, snapshot(target), created=created)
        area, lock_id = _acquire(target)
    except OSError as exc:
        _remove_created(created)
        raise environment_error(exc, target) from None
    except BaseException:
        _remove_created(created)
        raise
    claim = OutputClaim(target, area, None, lock_id, created)
    _CLAIMS[target] = claim
    try:
        claim.start = snapshot(target)  # after the lock: no featviz run can change it from here on
        _refuse_start(target, claim.start, force)
    except BaseException:
        release_output(claim)
        raise
    return claim


def _remove_created(created: list[Path]) -> None:
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only while empty: what the run created and left unused


def release_output(claim: OutputClaim) -> None:
    """Remove the claim's temporary area (lock and any unfinished build) and the parent folders
    it created that stayed empty."""
    if _CLAIMS.get(claim.target) is claim:
        del _CLAIMS[claim.target]
    if claim.area is not None:
        if (claim.area / "previous").exists():  # interrupted mid-commit: the old folder goes back
            with contextlib.suppress(OSError, FeatvizError):
                _put_back(claim.area / "previous", claim.target)
        shutil.rmtree(claim.area, ignore_errors=True)
        claim.area = None
    _remove_created(claim.created)


def release_all() -> None:
    """Release every claim of this process (the CLI calls it when a command ends, however it ends)."""
    for claim in list(_CLAIMS.values()):
        release_output(claim)


def _commit(claim: OutputClaim, build: Path) -> None:
    """Put the finished ``build`` at ``claim.target`` when allowed; else keep both and say where."""
    target = claim.target
    now = snapshot(target)
    reason = "it changed while featviz was running"
    if now is None or _is_empty_dir(now):
        try:
            os.rename(build, target)  # onto nothing, or onto an empty folder (rename replaces it)
            claim.start = snapshot(target)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise
            now = snapshot(target)
    elif now == claim.start and now[0] == "dir" and now[3] is not None and is_featviz_output(target):
        previous = claim.area / "previous"
        os.rename(target, previous)
        if snapshot(previous) == claim.start:
            os.rename(build, target)
            shutil.rmtree(previous, ignore_errors=True)  # the featviz folder the run was asked to replace
            claim.start = snapshot(target)
            return
        _put_back(previous, target)
    elif now == claim.start:
        reason = "it is not a folder featviz wrote"
    keep = free_sibling(target)
    os.rename(build, keep)
    raise FeatvizError(f"--out {target} changed while featviz was running ({reason}): it was left as it is, "
                       f"and the result was written to {keep}", "compare the two and keep what you need")


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Build an output folder in the temporary area beside ``target``, then commit it.

    Yields the folder to fill. On success the folder gets the output marker
    (:data:`OUTPUT_MARKER`) and replaces ``target`` only if ``target`` is absent, an empty
    folder, or exactly the featviz folder that was there when the run claimed it (same inode,
    same listing). Anything else at ``target`` is left untouched: the result goes to
    ``TARGET.featviz-NNN`` and a :class:`FeatvizError` says so. On failure (an error, Ctrl-C,
    SIGTERM) the build is removed and ``target`` is exactly as it was. OS faults (disk full,
    permission denied) become a :class:`FeatvizError` naming the path and errno.

    The CLI claims ``--out`` first (:func:`claim_output`, with ``--force`` and the inputs);
    a library call claims it here, as with ``--force``.
    """
    key = _absolute(target)
    claim = _CLAIMS.get(key)
    own = claim is None or claim.area is None
    if own:
        claim = claim_output(key, force=True)
    assert claim.area is not None
    build = claim.area / "build"
    try:
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir()
        yield build
        write_output_marker(build)
        _commit(claim, build)
    except OSError as exc:
        shutil.rmtree(build, ignore_errors=True)
        if exc.errno in ENVIRONMENT_ERRNOS:
            raise environment_error(exc, target) from None
        raise
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    finally:
        if own:
            release_output(claim)
