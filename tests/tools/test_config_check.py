"""``coord config check``: the server's loader plus start-up checks, every problem at once.

Exit status 0 (valid), 1 (invalid), 2 (usage error); ``--json`` for machines.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coord.cli import main
from coord.tools._config_check import check_config, format_check


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_check_config_on_a_good_file_reports_sources(tmp_path: Path) -> None:
    """Each value's source: file, env (naming the variable), override or default."""
    config_file = _write(
        tmp_path / "coord.toml",
        f'port = 2182\ndata_dir = "{tmp_path / "data"}"\nlog_levels = {{ access = "DEBUG" }}\n',
    )
    result = check_config(
        config_file,
        env={"COORD_TICK_TIME": "500", "HOME": "/x"},
        overrides={"log_level": "WARNING"},
    )
    assert result.ok, result.problems
    assert result.config is not None
    assert (result.config.port, result.config.tick_time) == (2182, 500)
    assert result.config.log_levels == {"access": "DEBUG"}
    assert result.sources["port"] == "file"
    assert result.sources["tick_time"] == "env (COORD_TICK_TIME)"
    assert result.sources["log_level"] == "override"
    assert result.sources["storage"] == "default"
    assert not (tmp_path / "data").exists()  # the check creates nothing


def test_config_check_cli_prints_OK_and_the_effective_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COORD_MAX_FRAME", "4096")
    config_file = _write(
        tmp_path / "coord.toml", f'data_dir = "{tmp_path}"\npeer_secret = "s3cret"\n'
    )
    assert main(["config", "check", str(config_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"OK: {config_file}"
    assert any(
        line.startswith("max_frame ") and "4096  # env (COORD_MAX_FRAME)" in line for line in out
    )
    assert any(line.startswith("data_dir ") and line.endswith("# file") for line in out)
    assert any(line.startswith("port ") and line.endswith("2181  # default") for line in out)
    secret = next(line for line in out if line.startswith("peer_secret "))
    assert "s3cret" not in secret and '"***"' in secret


def test_config_check_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = _write(tmp_path / "coord.toml", 'storage = "memory"\nport = 3000\n')
    assert (
        main(["config", "check", "--no-env", "--json", "--set", "tick-time=100", str(config_file)])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["problems"] == []
    assert report["config"]["port"] == 3000 and report["config"]["tick_time"] == 100
    assert report["sources"]["port"] == "file" and report["sources"]["tick_time"] == "override"
    assert report["config"]["four_letter_words"] == ["srvr", "ruok", "isro"]


def test_config_check_lists_every_problem_with_a_fix_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One run reports the type error, the unknown key, bad values, an unknown plugin,
    duplicate member addresses and an unreadable file, each with what to do."""
    blocker = _write(tmp_path / "a-file", "")
    config_file = _write(
        tmp_path / "bad.toml",
        f"""
port = "abc"
tick_tme = 5
log_level = "LOUD"
data_dir = "{blocker / "data"}"
tls_ca = "{tmp_path / "missing-ca.pem"}"
members = ["1=a:2888;a:2181", "2=a:2888;b:2181", "3=c:2888;b:2181"]
peer_secret = "x"

[plugins.nosuch]
x = 1
""",
    )
    assert main(["config", "check", "--no-env", str(config_file)]) == 1
    err = capsys.readouterr().err
    problems = [line for line in err.splitlines() if line.startswith("- ")]
    fixes = [line for line in err.splitlines() if line.startswith("  fix: ")]
    assert err.startswith(f"{config_file}: {len(problems)} problems")
    assert len(fixes) == len(problems)
    expected = [
        "port must be an integer, not 'abc' (from config file",
        "unknown config key 'tick_tme' in config file",
        "did you mean 'tick_time'?",
        "log_level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'LOUD'",
        "unknown plugin 'nosuch'",
        f"data_dir '{blocker / 'data'}' does not exist and cannot be created",
        "members 1 and 2 have the same peer address a:2888",
        "members 2 and 3 have the same client address b:2181",
        "tls_ca",
        "cannot be read: No such file or directory",
    ]
    for text in expected:
        assert text in err, text


def test_config_check_reports_tls_files_that_do_not_load(tmp_path: Path) -> None:
    cert = _write(tmp_path / "server.pem", "not a certificate\n")
    config_file = _write(
        tmp_path / "coord.toml",
        f'storage = "memory"\nsecure_port = 2281\ntls_cert = "{cert}"\ntls_client_auth = "none"\n',
    )
    result = check_config(config_file)
    assert [p.key for p in result.problems] == ["tls_cert"]
    assert "the TLS files do not load" in result.problems[0].message


def test_config_check_reports_an_invalid_toml_file(tmp_path: Path) -> None:
    config_file = _write(tmp_path / "coord.toml", "port = = 1\n")
    result = check_config(config_file)
    assert not result.ok
    assert "is not valid TOML" in format_check(result, "coord.toml")


def test_config_check_missing_file_or_bad_set_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", str(tmp_path / "nope.toml")]) == 2
    assert "is not a file" in capsys.readouterr().err
    config_file = _write(tmp_path / "coord.toml", "")
    assert main(["config", "check", "--set", "port", str(config_file)]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["config", "check"]) == 2


def test_config_check_reports_a_bad_environment_variable(tmp_path: Path) -> None:
    config_file = _write(tmp_path / "coord.toml", 'storage = "memory"\n')
    result = check_config(config_file, env={"COORD_PORTT": "1", "COORD_PORT": "x"})
    messages = [p.message for p in result.problems]
    assert any(
        "'COORD_PORTT' in the environment; did you mean 'COORD_PORT'?" in m for m in messages
    )
    assert any(
        "port must be an integer, not 'x' (from environment variable COORD_PORT)" in m
        for m in messages
    )


def test_config_check_own_member_entry_must_match_port(tmp_path: Path) -> None:
    config_file = _write(
        tmp_path / "coord.toml",
        'storage = "memory"\nport = 2182\nserver_id = 1\npeer_secret = "x"\n'
        'members = ["1=a:2888;a:2181", "2=b:2888;b:2181"]\n',
    )
    result = check_config(config_file)
    assert [p.key for p in result.problems] == ["members"]
    assert "gives client port 2181, but port is 2182" in result.problems[0].message
