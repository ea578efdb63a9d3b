"""docs/security.md and docs/plugins.md stay true: every ```python block runs (against a
fresh coord server where it names SERVER; ```py blocks are illustrations, not run), and
every ```toml block but pyproject snippets is a valid coord config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from coord.server import load_config

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ("security.md", "plugins.md")


def _blocks(kind: str) -> list[tuple[str, int, str]]:
    out = []
    for page in PAGES:
        text = (DOCS / page).read_text()
        found = re.findall(rf"^```{kind}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
        out += [(page, n, block) for n, block in enumerate(found)]
    return out


PYTHON = _blocks("python")
#: Config examples (a plugin's pyproject.toml snippet is not one).
TOML = [block for block in _blocks("toml") if "[project" not in block[2]]


def test_security_and_plugins_docs_have_examples() -> None:
    assert sum(page == "security.md" for page, _, _ in PYTHON) >= 5
    assert sum(page == "plugins.md" for page, _, _ in PYTHON) >= 1


@pytest.mark.parametrize(("page", "index", "code"), PYTHON, ids=[f"{p}[{i}]" for p, i, _ in PYTHON])
def test_docs_python_example_runs(page: str, index: int, code: str, coord_server: Any) -> None:
    code = code.replace("SERVER", repr(coord_server.address))
    exec(compile(code, f"docs/{page}[{index}]", "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize(("page", "index", "text"), TOML, ids=[f"{p}[{i}]" for p, i, _ in TOML])
def test_docs_toml_example_loads(page: str, index: int, text: str, tmp_path: Path) -> None:
    path = tmp_path / "coord.toml"
    path.write_text(text)
    load_config(file=path)


def test_index_links_the_pages() -> None:
    index = (DOCS / "index.md").read_text()
    assert "(plugins.md)" in index and "(security.md)" in index
