"""One direction of dependency: no module imports a layer above its own.

services/ (entry points, fronts) -> gproc/ core -> wrappers/, connectors/,
storage_gateway/; security/ is used by all of them and uses none of them.
Read from the source (every import statement, function-level ones included).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = {p.stem for p in (REPO / "gproc").glob("*.py")} - {"__init__", "errors"}
LOWER = ("wrappers", "connectors", "storage_gateway", "security")


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def _forbidden(folder: str) -> tuple[str, ...]:
    above = ["gproc.services"]
    if folder in LOWER:
        above += [f"gproc.{m}" for m in CORE]
    if folder != "security":
        return tuple(above)
    return (*above, "gproc.wrappers", "gproc.connectors", "gproc.storage_gateway")


@pytest.mark.parametrize("folder", [*LOWER, "gproc"])
def test_no_upward_imports(folder: str) -> None:
    bad = {
        f"{path.relative_to(REPO)}: {name}"
        for path in sorted((REPO / folder).rglob("*.py"))
        if "migrations" not in path.parts
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in _forbidden(folder))
    }
    assert not bad, sorted(bad)
