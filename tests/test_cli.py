"""The coord command: flags map one to one onto ServerConfig fields."""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import coord.cli
import coord.server
from coord.cli import configure_logging, main, parse_server_config
from coord.plugins import PluginError
from coord.server._config import ServerConfig


@pytest.fixture(autouse=True)
def no_coord_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() reads os.environ: keep the caller's COORD_* variables out of these tests."""
    for name in list(os.environ):
        if name.startswith("COORD_"):
            monkeypatch.delenv(name)


def test_parse_server_config_maps_flags_to_fields(tmp_path: Path) -> None:
    config = parse_server_config(["server", "--port", "0", "--data-dir", str(tmp_path)], {})
    assert config == ServerConfig(port=0, data_dir=str(tmp_path))


def test_server_help_has_a_flag_for_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI is derived from ServerConfig, so no field lacks a flag."""
    assert main(["server", "--help"]) == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(ServerConfig):
        assert "--" + f.name.replace("_", "-") in out, f.name


def test_parse_server_config_converts_every_kind_of_flag() -> None:
    argv = [
        "server",
        "--host", "0.0.0.0",
        "--storage", "memory",
        "--tick-time", "500",
        "--min-session-timeout", "1000",
        "--max-session-timeout", "9000",
        "--max-frame", "4096",
        "--max-client-connections", "0",
        "--handshake-timeout", "1.5",
        "--four-letter-words", "ruok,mntr",
        "--no-extended-types",
        "--container-check-interval", "100",
        "--super-digest", "super:D/InIHSb7yEEbrWz8b9l71RjZJU=",
        "--server-id", "3",
        "--plugins-disabled", "builtin.tcp",
        "--log-level", "debug",
    ]  # fmt: skip
    config = parse_server_config(argv, {})
    assert config == ServerConfig(
        host="0.0.0.0",
        storage="memory",
        tick_time=500,
        min_session_timeout=1000,
        max_session_timeout=9000,
        max_frame=4096,
        max_client_connections=0,
        handshake_timeout=1.5,
        four_letter_words=("ruok", "mntr"),
        extended_types=False,
        container_check_interval=100,
        super_digest="super:D/InIHSb7yEEbrWz8b9l71RjZJU=",
        server_id=3,
        plugins_disabled=("builtin.tcp",),
        log_level="DEBUG",
    )


def test_parse_server_config_flags_beat_env_beat_file(tmp_path: Path) -> None:
    """Only flags actually given override; absent flags leave env and file values alone."""
    path = tmp_path / "coord.toml"
    path.write_text("port = 1000\ntick_time = 100\nhost = '10.0.0.1'\n")
    env = {"COORD_PORT": "2000", "COORD_TICK_TIME": "200", "UNRELATED": "x"}
    config = parse_server_config(["server", "--config", str(path), "--port", "3000"], env)
    assert (config.port, config.tick_time, config.host) == (3000, 200, "10.0.0.1")


def test_parse_server_config_bad_flag_value_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_server_config(["server", "--port", "eighty"], {})
    assert info.value.code == 2
    assert "port must be an integer, not 'eighty'" in capsys.readouterr().err


def test_main_unknown_config_key_exits_2_with_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "coord.toml"
    path.write_text("data_dri = 'x'\n")
    monkeypatch.setattr(coord.server, "run", _must_not_run)
    assert main(["server", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("coord: unknown config key 'data_dri'")
    assert "did you mean 'data_dir'?" in err


def test_main_unknown_env_variable_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COORD_PROT", "1")
    monkeypatch.setattr(coord.server, "run", _must_not_run)
    assert main(["server"]) == 2
    assert "did you mean 'COORD_PORT'?" in capsys.readouterr().err


def _must_not_run(config: ServerConfig) -> int:
    raise AssertionError("the server must not start")


def test_main_server_runs_with_the_parsed_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[ServerConfig] = []

    def fake_run(config: ServerConfig) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr(coord.server, "run", fake_run)
    monkeypatch.setattr(coord.cli, "configure_logging", lambda level: None)
    assert main(["server", "--port", "0", "--data-dir", str(tmp_path)]) == 0
    assert seen == [ServerConfig(port=0, data_dir=str(tmp_path))]


def test_main_plugins_list_prints_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins", "list"]) == 0
    out = capsys.readouterr().out
    assert "builtin.tcp" in out and "built-in (coord.plugins.builtin.tcp)" in out


def test_main_without_command_prints_help_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([]) == 2
    assert "usage: coord" in capsys.readouterr().err
    assert main(["--version"]) == 0


def test_configure_logging_formats_time_level_logger_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        configure_logging("INFO")
        configure_logging("INFO")  # idempotent: one handler
        logging.getLogger("coord.audit").info("session %d closed", 7)
        logging.getLogger("coord.access").debug("not shown")
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if "coord." in line]
        assert len(lines) == 1
        assert "INFO" in lines[0] and "coord.audit: session 7 closed" in lines[0]
        assert lines[0][:4].isdigit()  # starts with the time
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_python_dash_m_coord_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "coord", "--version"],
        capture_output=True,
        text=True,
        cwd=Path(coord.cli.__file__).parent.parent,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("coord ")


def test_main_plugin_error_from_inside_the_server_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start-up PluginError surfacing from the server's task group is a clean exit 2."""

    def fake_run(config: ServerConfig) -> int:
        raise ExceptionGroup("unhandled", [PluginError("unknown storage backend 'rocks'")])

    monkeypatch.setattr(coord.server, "run", fake_run)
    monkeypatch.setattr(coord.cli, "configure_logging", lambda level: None)
    assert main(["server", "--storage", "rocks"]) == 2
    assert capsys.readouterr().err == "coord: unknown storage backend 'rocks'\n"


def test_main_other_errors_from_the_server_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(config: ServerConfig) -> int:
        raise ExceptionGroup("unhandled", [OSError("address in use")])

    monkeypatch.setattr(coord.server, "run", fake_run)
    monkeypatch.setattr(coord.cli, "configure_logging", lambda level: None)
    with pytest.raises(ExceptionGroup):
        main(["server"])
