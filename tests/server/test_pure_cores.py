"""The pure cores never touch sockets, clocks, threads or randomness (CONVENTIONS.md 1).

Checked on the source: a module-level or function-level import of a forbidden module in
any core module fails the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import coord

ROOT = Path(coord.__file__).parent
CORES = [
    *sorted((ROOT / "protocol").glob("*.py")),
    ROOT / "server" / "_tree.py",
    ROOT / "server" / "_apply.py",
    ROOT / "server" / "_acl.py",
    ROOT / "server" / "_watches.py",
    ROOT / "server" / "_sessions.py",
    ROOT / "server" / "_persist.py",
    ROOT / "server" / "_raft.py",
    ROOT / "server" / "_quota.py",
]
FORBIDDEN = {"anyio", "asyncio", "trio", "socket", "selectors", "ssl", "threading", "time",
             "random", "uvloop", "subprocess"}  # fmt: skip


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", CORES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_PureCore_imports_no_io_clock_or_randomness(path: Path) -> None:
    """A core module imports none of the I/O, clock, thread or randomness modules."""
    assert _imports(path) & FORBIDDEN == set()
