"""The site being written: templates, assets and page bookkeeping for the gallery."""

from __future__ import annotations

import math
import os
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable

import jinja2
from PIL import Image, UnidentifiedImageError

from ..errors import FeatvizError
from ..fileio import atomic_write_bytes, atomic_write_text

STYLESHEET = "static/style.css"
# No scripts, no frames, no plugins, nothing from the network: images and the
# stylesheet from the gallery's own folder only.
CSP = "default-src 'none'; img-src 'self'; style-src 'self'; base-uri 'none'; form-action 'none'"


def _fmt(value: Any, digits: int = 3) -> str:
    """A number for a table cell; missing values show as an en dash."""
    if isinstance(value, bool) or value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else "–"
    return str(value)


def _pct(value: Any) -> str:
    return "–" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{100 * value:.1f}%"


def environment() -> jinja2.Environment:
    """The Jinja2 environment: every ``{{ }}`` is HTML-escaped, undefined names are errors."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("featviz.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["fmt"] = _fmt
    env.filters["pct"] = _pct
    env.globals["csp"] = CSP
    env.globals["stylesheet"] = STYLESHEET
    return env


# Images a page loads eagerly: those a first screen shows (lazy images there load late or, in a
# headless screenshot, not at all); the rest stay lazy so long pages open fast. A layer page
# shows up to 36 unit images in a 1200×800 window; 48 leaves a margin for wider screens.
EAGER_IMAGES = 48


def eager_first_images(html: str, count: int) -> str:
    """Drop ``loading="lazy"`` from the first ``count`` images of a page."""
    return html.replace(' loading="lazy"', "", count)


class Site:
    """A gallery folder under construction: renders pages and brings images into it.

    Images already inside the folder are linked where they are; others are copied
    under ``img/``. Every image is opened with Pillow first (its decompression-bomb
    limit applies) to refuse non-images and to record width and height, which the
    pages state so lazy loading does not make the layout jump.
    """

    def __init__(self, root: Path, title: str):
        self.root = Path(root)
        self.title = title
        self.env = environment()
        self.pages: list[str] = []
        self._copied: dict[Path, dict[str, Any]] = {}

    def render(self, page: str, template: str, **context: Any) -> Path:
        html = self.env.get_template(template).render(title=self.title, page=page, **context)
        html = eager_first_images(html, EAGER_IMAGES)
        self.pages.append(page)
        return atomic_write_text(self.root / page, html)

    def image(self, src: Path, folder: str) -> dict[str, Any]:
        """``{"src": relative link, "width", "height"}`` for the image file ``src``."""
        src = Path(src).resolve()
        if src in self._copied:
            return self._copied[src]
        try:
            with Image.open(src) as im:
                width, height = im.size
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
            raise FeatvizError(f"{src} is not a readable image ({exc.__class__.__name__})",
                               "regenerate the result folder") from None
        root = self.root.resolve()
        if src.is_relative_to(root):
            rel = src.relative_to(root).as_posix()
        else:
            rel = self._free_name(f"{folder}/{src.name}")
            atomic_write_bytes(root / rel, src.read_bytes())
        entry = {"src": rel, "width": width, "height": height}
        self._copied[src] = entry
        return entry

    def _free_name(self, rel: str) -> str:
        taken = {e["src"] for e in self._copied.values()}
        stem, dot, ext = rel.rpartition(".")
        n = 2
        while rel in taken or (self.root / rel).exists():
            rel, n = f"{stem}-{n}{dot}{ext}", n + 1
        return rel

    def copy_images(self, files: Iterable[Path], folder: str, limit: int, within: Path,
                    exclude: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Bring up to ``limit`` images in, each with a caption made from its file name.

        A file that resolves outside ``within`` (a symbolic link planted in a result folder)
        is refused with an error naming it: the gallery publishes only what the folder holds.
        """
        out = []
        for f in files:
            if any(word in f.name.lower() for word in exclude):
                continue
            if not f.resolve().is_relative_to(within.resolve()):
                raise FeatvizError(f"{f} resolves outside {within} (a symbolic link)",
                                   "the gallery publishes only what a result folder holds; remove the link")
            if len(out) >= limit:
                break
            out.append(dict(self.image(f, folder), caption=f.stem.replace("_", " ").replace("-", " ")))
        return out

    def plot(self, rel: str, draw: Callable[[Path], Path]) -> dict[str, Any]:
        """Draw a plot into the site at ``rel`` and return its image entry."""
        path = draw(self.root / rel)
        return self.image(path, os.path.dirname(rel))

    def write_static(self) -> None:
        css = resources.files("featviz.report").joinpath(STYLESHEET).read_bytes()
        atomic_write_bytes(self.root / STYLESHEET, css)

    def summary(self) -> dict[str, Any]:
        """Pages written and their sizes in bytes (pages stay small: images are linked files)."""
        sizes = {p: (self.root / p).stat().st_size for p in self.pages}
        total = sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())
        return {"pages": self.pages, "bytes": {"largest_page": max(sizes.values(), default=0),
                                                "html": sum(sizes.values()), "total": total}}
