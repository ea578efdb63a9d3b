"""docs/concepts.md stays true: every ```python block runs against a fresh coord server.

Each example asserts the guarantee it illustrates (one compare-and-set wins, per-session
order, read-your-writes, the watch event before the new data, ...), so a regression in the
server or the SDK that breaks a documented guarantee fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "concepts.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)


def test_concepts_docs_have_examples() -> None:
    assert len(BLOCKS) >= 8
    assert all("SERVER" in block for block in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_concepts_docs_example_runs(index: int, coord_server: Any) -> None:
    """Each example runs to completion, with SERVER replaced by a live server's address."""
    code = BLOCKS[index].replace("SERVER", coord_server.address)
    exec(compile(code, f"docs/concepts.md[{index}]", "exec"), {"__name__": "__main__"})
