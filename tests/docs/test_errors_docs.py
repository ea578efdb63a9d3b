"""docs/errors.md stays complete and true: every error class the SDK and the recipes export
is on the page with its result code, and the page's example runs against a coord server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

import coord
import coord.client
import coord.recipes

DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
TEXT = DOC.read_text()
BLOCKS = re.findall(r"^```python\n(.*?)^```$", TEXT, re.MULTILINE | re.DOTALL)


def _errors() -> dict[str, type[coord.CoordError]]:
    found: dict[str, type[coord.CoordError]] = {}
    for module in (coord, coord.client, coord.recipes):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, coord.CoordError):
                found[name] = value
    return found


@pytest.mark.parametrize("name", sorted(_errors()))
def test_errors_page_lists_every_error_with_its_code(name: str) -> None:
    error = _errors()[name]
    if error is coord.CoordError:
        assert "`coord.CoordError`" in TEXT
        return
    rows = [line for line in TEXT.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"docs/errors.md has {len(rows)} rows for {name}"
    if error.code is not None and name != "TransactionFailed":
        assert f"| {error.code} |" in rows[0], f"{name}: code {error.code} not in its row"


def test_errors_page_has_an_example() -> None:
    assert BLOCKS and all("SERVER" in block for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_errors_page_example_runs(index: int, coord_server: Any) -> None:
    code = BLOCKS[index].replace("SERVER", coord_server.address)
    exec(compile(code, f"docs/errors.md[{index}]", "exec"), {"__name__": "__main__"})
