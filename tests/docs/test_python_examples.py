"""The SDK pages stay true: every ```python block of docs/concepts.md, docs/client.md and
docs/recipes.md runs against a fresh coord server, with ``SERVER`` replaced by its address.

Each concepts example asserts the guarantee it illustrates (one compare-and-set wins,
per-session order, read-your-writes, the watch event before the new data, ...), so a
regression in the server or the SDK that breaks a documented guarantee fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: Each page and the fewest examples it must keep.
PAGES = {"concepts.md": 8, "client.md": 8, "recipes.md": 3}
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
BLOCKS = {page: _PYTHON_BLOCK.findall((DOCS / page).read_text()) for page in PAGES}


@pytest.mark.parametrize("page", PAGES)
def test_docs_page_has_examples(page: str) -> None:
    assert len(BLOCKS[page]) >= PAGES[page]
    assert all("SERVER" in block for block in BLOCKS[page])


@pytest.mark.parametrize(
    ("page", "index"),
    [(page, index) for page, blocks in BLOCKS.items() for index in range(len(blocks))],
)
def test_docs_example_runs(page: str, index: int, coord_server: Any) -> None:
    """Each example runs to completion against a live server."""
    code = BLOCKS[page][index].replace("SERVER", coord_server.address)
    exec(compile(code, f"docs/{page}[{index}]", "exec"), {"__name__": "__main__"})
