"""Logging: JSON and human formats, levels by concern, the log file, and the access log.

The process tests start a real ``coord server`` with ``COORD_LOG_*`` variables and talk to
it with kazoo; the rest configure logging in this process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from coord.server._config import ConfigError, ServerConfig, load_config
from coord.server._logging import JsonFormatter, configure_logging
from coord.testing._server import CoordServerThread

_RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root and coord loggers back as they were."""
    names = ["", "coord", "coord.access", "coord.server", "coord.replication", "coord.audit"]
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in names}
    yield
    for name, (level, handlers) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)


def _record(**extra: object) -> logging.LogRecord:
    record = logging.getLogger("coord.access").makeRecord(
        "coord.access", logging.DEBUG, __file__, 1, "op %s", ("getData",), None, extra=extra
    )
    return record


def test_JsonFormatter_writes_one_object_with_ts_level_logger_message_and_fields() -> None:
    line = JsonFormatter().format(_record(session="0x1f", zxid="0x2", op="getData", n=3))
    assert "\n" not in line
    obj = json.loads(line)
    assert _RFC3339_UTC.match(obj["ts"]), obj["ts"]
    assert obj["level"] == "DEBUG"
    assert obj["logger"] == "coord.access"
    assert obj["message"] == "op getData"
    assert (obj["session"], obj["zxid"], obj["op"], obj["n"]) == ("0x1f", "0x2", "getData", 3)
    assert "args" not in obj and "msecs" not in obj  # only the record's own fields


def test_JsonFormatter_writes_the_exception_as_a_string() -> None:
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        record = logging.getLogger("coord.server").makeRecord(
            "coord.server", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    obj = json.loads(JsonFormatter().format(record))
    assert isinstance(obj["exception"], str)
    assert "Traceback" in obj["exception"] and "ValueError: boom" in obj["exception"]


def test_JsonFormatter_writes_unserialisable_fields_as_text() -> None:
    obj = json.loads(JsonFormatter().format(_record(path=Path("/x"), ids=("a", "b"))))
    assert obj["path"] == "/x" and obj["ids"] == ["a", "b"]


def test_configure_logging_levels_by_concern(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """log_levels wins over log_level for its concern only."""
    configure_logging("INFO", format="json", levels={"access": "DEBUG", "replication": "ERROR"})
    logging.getLogger("coord.access").debug("access shown")
    logging.getLogger("coord.server").debug("server debug hidden")
    logging.getLogger("coord.server").info("server info shown")
    logging.getLogger("coord.replication").warning("replication warning hidden")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(o["logger"], o["message"]) for o in lines] == [
        ("coord.access", "access shown"),
        ("coord.server", "server info shown"),
    ]


def test_configure_logging_again_replaces_handler_and_levels(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", levels={"access": "DEBUG"})
    configure_logging("WARNING", format="human")
    marked = [h for h in logging.getLogger().handlers if getattr(h, "_coord_handler", False)]
    assert len(marked) == 1
    logging.getLogger("coord.access").debug("no longer shown")
    logging.getLogger("coord.audit").warning("shown once")
    err = capsys.readouterr().err
    assert "no longer shown" not in err
    assert err.count("shown once") == 1 and "WARNING  coord.audit: shown once" in err


def test_configure_logging_appends_to_the_log_file(
    restore_logging: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "coord.log"
    log_file.write_text("earlier line\n")
    configure_logging("INFO", file=str(log_file))
    logging.getLogger("coord.server").info("to the file")
    assert "to the file" not in capsys.readouterr().err
    lines = log_file.read_text().splitlines()
    assert lines[0] == "earlier line" and lines[1].endswith("INFO     coord.server: to the file")


def test_log_settings_from_env_and_command_line_forms() -> None:
    """COORD_LOG_LEVELS takes JSON or name=level pairs; levels are case-insensitive."""
    config = load_config(
        env={"COORD_LOG_LEVELS": '{"access": "debug"}', "COORD_LOG_FORMAT": "json"},
    )
    assert config.log_levels == {"access": "DEBUG"} and config.log_format == "json"
    config = load_config(overrides={"log_levels": "access=DEBUG, replication=info"})
    assert config.log_levels == {"access": "DEBUG", "replication": "INFO"}
    config = ServerConfig(log_levels={"coord.client": "debug", "audit": "INFO"})
    assert config.log_levels == {"coord.client": "DEBUG", "audit": "INFO"}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"log_format": "xml"}, 'log_format must be "human" or "json"'),
        ({"log_levels": {"access": "LOUD"}}, "log_levels [access] must be one of DEBUG"),
        ({"log_levels": {"": "INFO"}}, "log_levels names unknown concern ''"),
        (
            {"log_levels": {"acces": "DEBUG"}},
            "log_levels names unknown concern 'acces' (did you mean 'access'?)",
        ),
        ({"log_file": ""}, "log_file must name a file"),
    ],
)
def test_bad_log_settings_are_rejected(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ServerConfig(**settings)  # type: ignore[arg-type]


def test_logging_concerns_are_the_config_concerns() -> None:
    from coord.server._config import LOG_CONCERNS
    from coord.server._logging import CONCERNS

    assert tuple(CONCERNS) == LOG_CONCERNS


def test_bad_log_levels_text_is_rejected() -> None:
    with pytest.raises(ConfigError, match="comma-separated name=value pairs"):
        load_config(env={"COORD_LOG_LEVELS": "access"})


def test_access_log_costs_nothing_when_disabled(restore_logging: None) -> None:
    """Without coord.access at DEBUG a connection keeps no access log."""
    logging.getLogger("coord.access").setLevel(logging.INFO)
    with CoordServerThread() as server:
        client = KazooClient(server.address)
        client.start()
        try:
            client.create("/x")
            connections = server.call(lambda: list(server.server.connections))
            assert connections and all(c.access is None for c in connections)
        finally:
            client.stop()
            client.close()


# --- a real server process ----------------------------------------------------------------


def _start_server(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    environment.update(env)
    process = subprocess.Popen(
        [sys.executable, "-m", "coord", "server", "--port", "0", "--storage", "memory"],
        env=environment,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process


def _wait_serving(stream: IO[str], lines: list[str]) -> str:
    """Read lines until the server says where it serves; return host:port."""
    for line in stream:
        lines.append(line)
        found = re.search(r"coord serving on (\S+:\d+)", line)
        if found:
            return found.group(1)
    raise AssertionError("the server exited before serving:\n" + "".join(lines))


def _wait_for_file_line(process: subprocess.Popen[str], log_file: Path) -> str:
    """Poll the log file (another process writes it) until the server serves."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        text = log_file.read_text() if log_file.exists() else ""
        found = re.search(r"coord serving on (\S+:\d+)", text)
        if found:
            return found.group(1)
        time.sleep(0.02)
    raise AssertionError(f"no 'serving' line in {log_file}")


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        _out, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _out, err = process.communicate()
    return err


def _use(address: str) -> None:
    client = KazooClient(address)
    client.start(timeout=10)
    try:
        client.create("/logged", b"v")
        client.get("/logged")
        with pytest.raises(NoNodeError):
            client.get("/missing")
    finally:
        client.stop()
        client.close()


def test_server_process_writes_json_with_access_lines_at_the_concern_level(
    tmp_path: Path,
) -> None:
    """COORD_LOG_FORMAT=json and COORD_LOG_LEVELS=access=DEBUG: one JSON object per line,
    an access line per request with its fields, and no DEBUG lines of other concerns."""
    process = _start_server(tmp_path, COORD_LOG_FORMAT="json", COORD_LOG_LEVELS="access=DEBUG")
    lines: list[str] = []
    try:
        assert process.stderr is not None
        address = _wait_serving(process.stderr, lines)
        _use(address)
    finally:
        lines.append(_stop(process))
    objects = [json.loads(line) for line in "".join(lines).splitlines() if line.strip()]
    access = [o for o in objects if o["logger"] == "coord.access"]
    by_op = {(o["op"], o.get("path")): o for o in access}
    create = by_op[("create", "/logged")]
    assert create["result"] == "OK" and create["err"] == 0
    assert create["session"].startswith("0x") and create["zxid"].startswith("0x")
    assert create["client"].startswith("127.0.0.1:") and create["latency_ms"] >= 0
    assert by_op[("getData", "/missing")]["result"] == "NO_NODE"
    assert by_op[("getData", "/missing")]["err"] == -101
    assert ("closeSession", "") in by_op
    assert by_op[("connect", None)]["timeout_ms"] > 0
    assert all(o["level"] == "DEBUG" for o in access)
    assert not [o for o in objects if o["level"] == "DEBUG" and o["logger"] != "coord.access"]
    assert any(o["logger"] == "coord.server" and o["level"] == "INFO" for o in objects)


def test_server_process_logs_to_the_log_file_without_access_lines_by_default(
    tmp_path: Path,
) -> None:
    """COORD_LOG_FILE: the log goes to the file (stderr stays empty); at the default
    level no access lines are written, but the audit lines are, in the same format."""
    log_file = tmp_path / "server.log"
    process = _start_server(tmp_path, COORD_LOG_FILE=str(log_file), COORD_AUDIT="true")
    try:
        _use(_wait_for_file_line(process, log_file))
    finally:
        err = _stop(process)
    assert err == ""
    text = log_file.read_text()
    assert "coord.access" not in text
    audit = [line for line in text.splitlines() if " coord.audit: " in line]
    assert any("operation=create path=/logged result=allowed" in line for line in audit)


def _json_lines(path: str) -> list[dict[str, object]]:
    out = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_ensemble_replication_lines_carry_member_leader_and_term() -> None:
    """coord.replication logs who leads, who follows, and the election after the leader
    dies, with member/leader/term fields; peer links going down carry the peer."""
    from coord.testing import CoordEnsemble

    with CoordEnsemble(3, proxies=False, config={"log_format": "json"}) as ensemble:
        leader = ensemble.wait_for_leader()
        ensemble.kill(leader)
        new_leader = ensemble.wait_for_leader(exclude=leader)
        logs = {i: _json_lines(m.log) for i, m in ensemble.members.items()}
    replication = {
        i: [o for o in lines if o["logger"] == "coord.replication"] for i, lines in logs.items()
    }
    leads = [o for o in replication[leader] if o.get("role") == "leader"]
    assert leads and leads[0]["member"] == leader == leads[0]["leader"]
    assert isinstance(leads[0]["term"], int)
    for ident in set(ensemble.members) - {leader}:
        follows = [o for o in replication[ident] if o.get("role") == "follower"]
        assert any(o["leader"] == leader and o["member"] == ident for o in follows)
        assert any(o.get("link") == "down" and o.get("peer") == leader for o in replication[ident])
    elected = [o for o in replication[new_leader] if o.get("role") == "leader"]
    assert elected[-1]["term"] > leads[0]["term"]  # type: ignore[operator]
    lost = [o for o in replication[new_leader] if o.get("previous_leader") == leader]
    assert lost, "the new leader logged losing the old one"


def test_server_with_an_unopenable_log_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    from coord.cli import main

    log_file = tmp_path / "missing-dir" / "coord.log"
    assert main(["server", "--storage", "memory", "--log-file", str(log_file)]) == 2
    assert f"coord: cannot open log_file '{log_file}': No such file or directory" in (
        capsys.readouterr().err
    )
