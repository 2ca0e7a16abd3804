"""Names safe to use as file names and in links."""

from __future__ import annotations

import re
from typing import Iterable


def slug(text: str, taken: Iterable[str] = (), *, fallback: str = "model", max_len: int = 40) -> str:
    """A lower-case, file-name-safe form of ``text``: runs of anything but ``a-z0-9``
    become ``-`` (so no path separators and no dots anywhere), at most ``max_len``
    characters, ``fallback`` when nothing is left; made unique against ``taken`` with a
    numeric suffix (``joint``, ``joint-2``, ...)."""
    base = re.sub(r"[^a-z0-9]+", "-", str(text).lower())[:max_len].strip("-") or fallback
    taken = set(taken)
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


__all__ = ["slug"]
