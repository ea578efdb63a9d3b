"""docs/recipes.md stays true: every ```python block runs against a fresh coord server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "recipes.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)


def test_recipes_docs_have_examples() -> None:
    assert len(BLOCKS) >= 3
    assert all("SERVER" in block for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_recipes_docs_example_runs(index: int, coord_server: Any) -> None:
    """Each example runs to completion, with SERVER replaced by a live server's address."""
    code = BLOCKS[index].replace("SERVER", coord_server.address)
    exec(compile(code, f"docs/recipes.md[{index}]", "exec"), {"__name__": "__main__"})
