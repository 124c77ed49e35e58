"""docs/architecture.md's module table is the package as it is, and its layering holds."""

from __future__ import annotations

import ast
import re

from .conftest import ROOT

PACKAGE = ROOT / "sse_sync"
ROW = re.compile(r"^\| `([\w.]+\.py)`(?:, `([\w.]+\.py)`)? \| .* \| (.*) \|$")


def _table() -> list[tuple[str, str]]:
    """(module, its import column) per row of the table, in order."""
    rows = []
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            for name in match.group(1, 2):
                if name:
                    rows.append((name.removesuffix(".py"), match.group(3)))
    return rows


def _imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports (at any depth of its code)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module)
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_every_module_has_a_row() -> None:
    """Each module of the package is in the table once, and no row names a missing one."""
    listed = [name for name, _ in _table()]
    assert sorted(listed) == sorted(p.stem for p in PACKAGE.glob("*.py"))


def test_modules_import_only_rows_above() -> None:
    """Apart from ``__init__``, a module imports only modules in rows above its own."""
    seen: set[str] = set()
    for name, _ in _table():
        if name != "__init__":
            assert _imports(name) <= seen, f"{name} imports {_imports(name) - seen} from below"
        seen.add(name)


def test_import_column_is_true() -> None:
    """The table's "imports" column lists what each module imports."""
    for name, column in _table():
        if name in {"__init__", "__main__", "_check"}:
            continue  # "any", and a shared row
        listed = set(re.findall(r"`([\w.]+)`", column))
        assert listed == _imports(name), name
