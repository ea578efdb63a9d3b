"""The user documentation stays true: its examples run and its config reference is complete.

- ``examples/quickstart_kazoo.py`` (shown in docs/quickstart.md) runs against a coord
  server and exits 0 with the output the page describes;
- every ```toml block of docs/configuration.md loads with ``load_config``;
- every :class:`ServerConfig` field is documented in docs/configuration.md, with its CLI
  flag and environment variable, so adding a field without documenting it fails the build.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from coord.server._config import ServerConfig, load_config
from coord.testing._server import CoordServerThread

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
QUICKSTART_EXAMPLE = ROOT / "examples" / "quickstart_kazoo.py"
CONFIGURATION = DOCS / "configuration.md"

_TOML_BLOCK = re.compile(r"^```toml\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _run_quickstart(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(QUICKSTART_EXAMPLE), "--server", address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_quickstart_kazoo_example_runs_against_coord() -> None:
    """The quickstart example creates, reads, watches and deletes nodes and exits 0."""
    with CoordServerThread() as server:
        result = _run_quickstart(server.address)
        leftover = server.call(lambda: sorted(server.server.state.nodes))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"connected to {server.address}",
        "read /quickstart/config: color=blue (version 0)",
        "watch fired: CHANGED /quickstart/config",
        "wrote /quickstart/config: version 1",
        "stale write refused: BadVersionError",
        "registered /quickstart/workers/worker-0000000000",
        "workers: ['worker-0000000000']",
        "after the worker's session closed: []",
        "deleted /quickstart: exists -> None",
    ]
    assert not [path for path in leftover if path.startswith("/quickstart")]


def test_quickstart_kazoo_example_refuses_an_existing_root() -> None:
    """The example never works in (and then deletes) a subtree that already exists."""
    with CoordServerThread() as server:
        result = _run_quickstart(server.address, "--root", "/zookeeper")
    assert result.returncode == 1
    assert "/zookeeper already exists" in result.stderr


def test_quickstart_page_shows_the_example() -> None:
    """docs/quickstart.md points at the example it documents."""
    assert "examples/quickstart_kazoo.py" in (DOCS / "quickstart.md").read_text()


def _toml_blocks() -> list[str]:
    return _TOML_BLOCK.findall(CONFIGURATION.read_text())


def test_configuration_has_toml_examples() -> None:
    assert _toml_blocks(), "docs/configuration.md shows no ```toml block"


@pytest.mark.parametrize("index", range(len(_toml_blocks())) if CONFIGURATION.exists() else [])
def test_configuration_toml_block_loads(tmp_path: Path, index: int) -> None:
    """Every TOML example in docs/configuration.md is a valid coord config file."""
    path = tmp_path / "coord.toml"
    path.write_text(_toml_blocks()[index])
    config = load_config(file=path)
    assert isinstance(config, ServerConfig)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(ServerConfig)])
def test_configuration_documents_every_field(name: str) -> None:
    """Each ServerConfig field appears with its TOML key, CLI flag and env variable."""
    text = CONFIGURATION.read_text()
    flag = "--" + name.replace("_", "-")
    for spelling in (f"`{name}`", f"`{flag}", f"`COORD_{name.upper()}`"):
        assert spelling in text, f"docs/configuration.md does not mention {spelling}"
