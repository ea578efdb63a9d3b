"""docs/configuration.md's settings table is generated from ServerConfig and kept current."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from coord.server._config import ServerConfig
from coord.tools._config_docs import (
    BEGIN,
    DOC_PATH,
    END,
    REGENERATE,
    render_settings_table,
    update_page,
)


def test_configuration_page_table_is_up_to_date() -> None:
    """The table between the markers is exactly what ServerConfig generates."""
    text = DOC_PATH.read_text(encoding="utf-8")
    assert update_page(text) == text, (
        f"docs/configuration.md is out of date with ServerConfig; run: {REGENERATE}"
    )


def test_settings_table_has_a_row_per_field_with_flag_env_and_default() -> None:
    table = render_settings_table()
    rows = table.splitlines()[2:]
    assert [r.split("|")[1].strip(" `") for r in rows] == [
        f.name for f in dataclasses.fields(ServerConfig)
    ]
    port = next(r for r in rows if r.startswith("| `port` "))
    assert "`2181`" in port and "`--port`" in port and "`COORD_PORT`" in port
    audit = next(r for r in rows if r.startswith("| `audit` "))
    assert "`--audit`, `--no-audit`" in audit and "`false`" in audit


def test_update_page_keeps_the_prose_and_replaces_only_the_table() -> None:
    page = f"# Title\n\nprose before\n\n{BEGIN}\n| stale |\n{END}\n\nprose after\n"
    new = update_page(page)
    assert new.startswith("# Title\n\nprose before\n\n" + BEGIN + "\n| TOML key |")
    assert new.endswith(END + "\n\nprose after\n")
    assert "| stale |" not in new
    assert update_page(new) == new


def test_config_docs_check_exits_1_on_a_stale_page(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(f"intro\n{BEGIN}\n| stale |\n{END}\n")
    command = [sys.executable, "-m", "coord.tools._config_docs", "--path", str(page)]
    stale = subprocess.run([*command, "--check"], capture_output=True, text=True, check=False)
    assert stale.returncode == 1 and REGENERATE in stale.stdout
    subprocess.run([*command, "--write"], check=True, capture_output=True)
    fresh = subprocess.run([*command, "--check"], capture_output=True, text=True, check=False)
    assert fresh.returncode == 0, fresh.stdout
    assert page.read_text().startswith("intro\n" + BEGIN)
