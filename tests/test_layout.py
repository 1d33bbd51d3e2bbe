"""The package layout: imports point one way, from ``viz`` and ``examples`` into ``ncg``, never back."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE_THE_LIBRARY = ("viz", "examples")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every ``import`` and ``from ... import`` in the file at ``path``,
    including those inside functions (relative imports name their module as written)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


def test_imported_modules_sees_nested_imports(tmp_path):
    module = tmp_path / "module.py"
    module.write_text("import os, viz.figure\n\ndef f():\n    from examples.evolve_mnist import main\n"
                      "    from . import sibling\n")
    assert imported_modules(module) == [(1, "os"), (1, "viz.figure"), (4, "examples.evolve_mnist")]


@pytest.mark.parametrize("path", sorted((ROOT / "ncg").rglob("*.py")), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_the_library_imports_neither_viz_nor_examples(path):
    wrong = [f"line {line}: {module}" for line, module in imported_modules(path)
             if module.split(".")[0] in OUTSIDE_THE_LIBRARY]
    assert not wrong, (f"{path.relative_to(ROOT)} imports outside the library ({', '.join(wrong)}); "
                       "move the code it needs into ncg/")
