"""docs/testing.md stays true: every ```python block runs (each starts its own server)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import coord.testing

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
TEXT = DOC.read_text()
BLOCKS = re.findall(r"^```python\n(.*?)^```$", TEXT, re.MULTILINE | re.DOTALL)


def test_testing_docs_have_examples() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_testing_docs_example_runs(index: int) -> None:
    exec(compile(BLOCKS[index], f"docs/testing.md[{index}]", "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize(
    "name",
    [
        "CoordServerThread",
        "running_server",
        "drop_connection",
        "expire_session",
        "TcpProxy",
        "SyncTcpProxy",
        "four_letter_word",
        "ZooKeeperProcess",
        "zookeeper_available",
        "require_zookeeper",
        "run_zkcli",
        "CoordEnsemble",
        "ZooKeeperEnsemble",
        "run_chaos",
        "check_linearizability",
        "StorageConformance",
        "AuthSchemeConformance",
        "TransportConformance",
    ],
)
def test_testing_docs_cover_the_helpers(name: str) -> None:
    """The helpers for users' tests are on the page (and still exported)."""
    assert name in coord.testing.__all__
    assert f"`{name}" in TEXT
