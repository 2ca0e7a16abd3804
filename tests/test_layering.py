"""The layers of featviz, read from the imports (module-level and inside functions):

- the libraries (``vis``, ``attacks``) take any nn.Module: they never import featviz's own
  checkpoint or dataset code (loading lives above them, in ``featviz.sources``);
- the studies (``featviz.studies``) use the libraries and never the command line or the report;
- the report only reads result folders: it imports no library that runs a model or loads data;
- no module imports, directly or through others, a module that imports it back (no circles)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import featviz

PACKAGE = Path(featviz.__file__).parent

# (package, the featviz modules nothing in it may import)
RULES = {
    "vis": ("featviz.checkpoint", "featviz.data", "featviz.studies", "featviz.report", "featviz.cli"),
    "attacks": ("featviz.checkpoint", "featviz.data", "featviz.studies", "featviz.report", "featviz.cli"),
    "nets": ("featviz.studies", "featviz.report", "featviz.cli"),
    "hierarchy": ("featviz.studies", "featviz.report", "featviz.cli"),
    "studies": ("featviz.cli", "featviz.report", "featviz.demo", "featviz.gallery"),
    "report": ("featviz.attacks", "featviz.vis", "featviz.studies", "featviz.checkpoint", "featviz.data",
               "featviz.train", "featviz.gallery", "featviz.demo", "featviz.cli", "featviz.sources"),
}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    """``featviz.a.b`` for ``a/b.py``, ``featviz.a`` for ``a/__init__.py``."""
    parts = ("featviz",) + path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, root: Path = PACKAGE) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved,
    imports inside functions included)."""
    names: set[str] = set()
    for node, module in import_nodes(path, root):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        else:
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # `from .. import data`
    return names


def import_nodes(path: Path, root: Path = PACKAGE):
    """Every import statement of ``path`` (inside functions too) with the absolute module a
    ``from`` import reads from (relative levels resolved; None for a plain ``import``)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield node, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                yield node, f"{base}.{node.module}" if node.module else base
            else:
                yield node, node.module or ""


def _violations(sub: str, forbidden=None, root: Path = PACKAGE) -> list[str]:
    forbidden = forbidden if forbidden is not None else RULES[sub]
    found = []
    for path in sorted((root / sub).rglob("*.py")):
        for name in sorted(imported_modules(path, root)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(root)} imports {name}")
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """featviz module -> the featviz modules it imports. ``from P import x`` is an edge to the
    module ``P.x`` when there is one, else to ``P`` (``from ..stats import median`` imports
    ``featviz.stats``); the parent packages Python initializes on the way are not edges."""
    paths = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}

    def resolve(name: str) -> str | None:
        while name and name not in paths:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in paths.items():
        targets = set()
        for node, module in import_nodes(path, root):
            if isinstance(node, ast.Import):
                targets.update(resolve(alias.name) for alias in node.names)
            else:
                targets.update(f"{module}.{a.name}" if f"{module}.{a.name}" in paths else resolve(module)
                               for a in node.names)
        graph[name] = {t for t in targets if t and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_the_import_reader_sees_relative_and_nested_imports(tmp_path):
    sample = PACKAGE / "vis" / "render.py"
    names = imported_modules(sample)
    assert "featviz.devices" in names and "featviz.vis.hooks" in names and "torch" in names
    # a file that does import the loaders is caught, however it spells the import
    (tmp_path / "vis").mkdir()
    (tmp_path / "vis" / "bad.py").write_text("def f():\n    from .. import data\n    from ..checkpoint import x\n")
    assert _violations("vis", ("featviz.checkpoint", "featviz.data"), tmp_path) == [
        "vis/bad.py imports featviz.checkpoint", "vis/bad.py imports featviz.checkpoint.x",
        "vis/bad.py imports featviz.data"]


@pytest.mark.parametrize("sub", sorted(RULES))
def test_no_package_imports_a_layer_above_it(sub):
    assert _violations(sub) == []


def test_the_circle_finder_finds_circles_through_function_level_imports(tmp_path):
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from .c import g\n")
    (tmp_path / "c.py").write_text("from .a import x\n")
    (tmp_path / "d.py").write_text("from .a import x\n")
    assert circles(import_graph(tmp_path)) == [["featviz.a", "featviz.b", "featviz.c"]]


def test_featviz_has_no_import_circles():
    assert circles(import_graph()) == []


@pytest.mark.parametrize("module, names", [("featviz.attacks.specs", "ATTACKS"), ("featviz.studies.names", "COMPARE_MODES")])
def test_the_names_the_command_line_shows_import_without_torch(module, names):
    code = (f"import sys; from {module} import {names}; "
            f"assert 'torch' not in sys.modules, 'torch imported'; print(len({names}))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(PACKAGE.parent)))
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) >= 4
