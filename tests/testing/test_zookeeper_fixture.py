"""ZooKeeperProcess, run_zkcli and require_zookeeper against Debian's Apache ZooKeeper 3.8."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl

import coord.testing
from coord.testing import (
    ZooKeeperProcess,
    ZooKeeperStartError,
    _zookeeper,
    require_zookeeper,
    run_zkcli,
    zookeeper_available,
)


def digest(user: str, password: str) -> str:
    """ZooKeeper's digest form of ``user:password`` (as for superDigest)."""
    sha1 = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(sha1).decode()}"


@pytest.fixture(scope="module")
def default_zookeeper() -> Iterator[ZooKeeperProcess]:
    """A server with every option at its default (not the shared conftest one)."""
    require_zookeeper()
    with ZooKeeperProcess() as zk:
        yield zk


@pytest.fixture
def kazoo(default_zookeeper: ZooKeeperProcess) -> Iterator[KazooClient]:
    client = KazooClient(hosts=default_zookeeper.address)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


def test_coord_testing_exports_its_public_names() -> None:
    """Every name in coord.testing.__all__ exists."""
    for name in coord.testing.__all__:
        assert hasattr(coord.testing, name), name


# -- availability policy ----------------------------------------------------------------------


def test_zookeeper_available_names_a_missing_jar(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the Debian jars the reason names the jar and the package."""
    monkeypatch.setattr(_zookeeper, "JAVA_DIR", tmp_path)
    monkeypatch.setattr(_zookeeper, "_java", lambda: "/usr/bin/java")
    reason = zookeeper_available()
    assert reason is not None
    assert "zookeeper.jar" in reason
    assert "apt-get install zookeeper" in reason


def test_zookeeper_available_names_missing_java(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without java on PATH the reason says so."""
    monkeypatch.setenv("PATH", "")
    reason = zookeeper_available()
    assert reason is not None
    assert "java" in reason


@pytest.mark.parametrize("ci", ["true", "TRUE", "1"])
def test_require_zookeeper_fails_on_ci_when_unavailable(
    monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    """On CI a missing ZooKeeper is a failure, not a skip."""
    monkeypatch.setattr(_zookeeper, "zookeeper_available", lambda: "no java (test)")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"required on CI.*no java"):
        require_zookeeper()


def test_require_zookeeper_skips_off_ci_when_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Off CI a missing ZooKeeper skips with the reason."""
    monkeypatch.setattr(_zookeeper, "zookeeper_available", lambda: "no java (test)")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no java"):
        require_zookeeper()


def test_require_zookeeper_passes_when_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_zookeeper, "zookeeper_available", lambda: None)
    monkeypatch.setenv("CI", "true")
    require_zookeeper()


# -- the server ---------------------------------------------------------------------------------


@pytest.mark.zookeeper
def test_ZooKeeperProcess_serves_clients_on_loopback(
    default_zookeeper: ZooKeeperProcess, kazoo: KazooClient
) -> None:
    """The server listens on 127.0.0.1, answers 4lw commands and serves kazoo."""
    assert default_zookeeper.address == f"127.0.0.1:{default_zookeeper.port}"
    assert default_zookeeper.running
    assert default_zookeeper.start_duration is not None
    assert default_zookeeper.four_letter_word("ruok") == "imok"
    assert "Mode: standalone" in default_zookeeper.four_letter_word("srvr")
    kazoo.create("/served", b"data")
    assert kazoo.get("/served")[0] == b"data"
    assert (default_zookeeper.directory / "data").is_dir()
    assert default_zookeeper.log_path.is_file()


@pytest.mark.zookeeper
def test_ZooKeeperProcess_writes_the_requested_config(default_zookeeper: ZooKeeperProcess) -> None:
    """zoo.cfg has the loopback address, unlimited connections and no admin server."""
    config = (default_zookeeper.directory / "zoo.cfg").read_text()
    for line in (
        "tickTime=2000",
        "clientPortAddress=127.0.0.1",
        f"clientPort={default_zookeeper.port}",
        "admin.enableServer=false",
        "4lw.commands.whitelist=*",
        "maxClientCnxns=0",
    ):
        assert line in config.splitlines()
    assert "maxClientCnxns=0" in default_zookeeper.four_letter_word("conf")


@pytest.mark.zookeeper
def test_ZooKeeperProcess_extra_config_and_system_properties_apply() -> None:
    """extra_config lands in zoo.cfg (overriding defaults); system_properties become -D
    options, e.g. a superDigest that lets "super" read a node whose ACL excludes it."""
    require_zookeeper()
    with ZooKeeperProcess(
        tick_time=500,
        max_client_cnxns=7,
        extra_config={"minSessionTimeout": 1500, "maxSessionTimeout": 3000},
        system_properties={
            "zookeeper.DigestAuthenticationProvider.superDigest": digest("super", "secret")
        },
    ) as zk:
        conf = zk.four_letter_word("conf")
        assert re.search(r"^minSessionTimeout=1500$", conf, re.M)
        assert re.search(r"^maxSessionTimeout=3000$", conf, re.M)
        assert re.search(r"^maxClientCnxns=7$", conf, re.M)
        assert re.search(r"^tickTime=500$", conf, re.M)

        owner = KazooClient(hosts=zk.address, auth_data=[("digest", "owner:pw")])
        stranger = KazooClient(hosts=zk.address)
        root = KazooClient(hosts=zk.address, auth_data=[("digest", "super:secret")])
        clients = (owner, stranger, root)
        for client in clients:
            client.start(timeout=10)
        try:
            owner.create("/private", b"secret", acl=[make_digest_acl("owner", "pw", all=True)])
            with pytest.raises(NoAuthError):
                stranger.get("/private")
            assert root.get("/private")[0] == b"secret"
        finally:
            for client in clients:
                client.stop()
                client.close()


@pytest.mark.zookeeper
def test_ZooKeeperProcess_restart_keeps_port_and_data() -> None:
    """restart() brings the server back on the same port with its data."""
    require_zookeeper()
    with ZooKeeperProcess() as zk:
        port, pid = zk.port, zk.pid
        client = KazooClient(hosts=zk.address)
        client.start(timeout=10)
        client.create("/durable", b"kept")
        client.stop()
        client.close()

        zk.restart()

        assert (zk.port, zk.running) == (port, True)
        assert zk.pid != pid
        client = KazooClient(hosts=zk.address)
        client.start(timeout=10)
        try:
            assert client.get("/durable")[0] == b"kept"
        finally:
            client.stop()
            client.close()


@pytest.mark.zookeeper
def test_ZooKeeperProcess_stop_kills_the_jvm_and_removes_its_directory() -> None:
    """stop() ends the JVM and deletes the temp directory; calling it again is harmless."""
    require_zookeeper()
    zk = ZooKeeperProcess()
    zk.start()
    directory = zk.directory
    assert directory.is_dir()
    zk.stop()
    assert not zk.running
    assert not directory.exists()
    zk.stop()


@pytest.mark.zookeeper
def test_ZooKeeperProcess_failed_start_reports_the_log_tail() -> None:
    """A server that cannot start raises ZooKeeperStartError quoting ZooKeeper's log, and
    leaves nothing behind."""
    require_zookeeper()
    zk = ZooKeeperProcess(extra_config={"tickTime": "not-a-number"}, startup_timeout=20)
    with pytest.raises(ZooKeeperStartError, match=r"exited with status[\s\S]*not-a-number"):
        zk.start()
    assert not zk.running
    with pytest.raises(RuntimeError):
        _ = zk.directory


# -- zkCli ----------------------------------------------------------------------------------------


@pytest.mark.zookeeper
def test_run_zkcli_runs_many_commands_in_one_session(default_zookeeper: ZooKeeperProcess) -> None:
    """One JVM runs every command in order in one session, and each command's output is
    split out of the combined stdout/stderr."""
    result = run_zkcli(
        default_zookeeper.address,
        "create -c /cli",
        "create -t 5000 /cli-ttl data",
        "addWatch -m PERSISTENT_RECURSIVE /cli",
        "whoami",
        "getEphemerals /",
        "create -e /cli-eph",
        "getEphemerals /",
        "create /cli/child hello",
        "getAllChildrenNumber /cli",
        "get -s /cli",
        "ls /cli",
        "addauth digest u:p",
        "whoami",
        "setAcl /cli auth:u:p:cdrwa",
        "getAcl /cli",
        "get /cli-missing",
    )
    out = result.outputs
    assert len(result) == 16
    assert (out[0].stdout, out[0].stderr) == ("", "Created /cli")  # create reports on stderr
    assert out[1].stderr == "Created /cli-ttl"  # TTL nodes need extendedTypesEnabled
    assert (out[2].stdout, out[2].stderr) == ("", "")
    assert out[3].stdout == "Auth scheme: User\nip: 127.0.0.1"
    assert out[4].stdout == "[]"
    assert out[6].stdout == "[/cli-eph]"
    assert out[8].stdout == "1"
    get_lines = out[9].stdout.splitlines()
    assert get_lines[0] == "null"  # a container node created without data
    assert "numChildren = 1" in get_lines
    assert out[10].stdout == "[child]"
    assert out[12].stdout.splitlines() == [
        "Auth scheme: User",
        "ip: 127.0.0.1",
        "digest: u",
    ]
    assert out[14].stdout.splitlines() == [f"'digest,'{digest('u', 'p')}", ": cdrwa"]
    assert out[15].stderr == "Node does not exist: /cli-missing"
    assert (out[15].returncode, result.returncode) == (1, 1)
    assert all(o.returncode is None for o in result.outputs[:-1])
    # The recursive watch saw the child; the session opened and closed cleanly.
    assert "WatchedEvent state:SyncConnected type:NodeCreated path:/cli/child" in result.events
    assert result.events[0] == "WatchedEvent state:SyncConnected type:None path:null"
    assert result.events[-1] == "WatchedEvent state:Closed type:None path:null"
    # quit closed the session, so its ephemeral is gone.
    assert run_zkcli(default_zookeeper.address, "ls /").stdout.count("cli-eph") == 0


@pytest.mark.zookeeper
def test_run_zkcli_script_runs_each_command_through_zkCli_sh(
    default_zookeeper: ZooKeeperProcess,
) -> None:
    """script=True runs zkCli.sh once per command, each with its own exit status."""
    result = run_zkcli(
        default_zookeeper.address, "create /script 'a b'", "get /script", "get /nope", script=True
    )
    assert [o.returncode for o in result.outputs] == [0, 0, 1]
    assert result[0].stderr == "Created /script"
    assert result[1].stdout == "a b"
    assert result[2].stderr == "Node does not exist: /nope"
    assert "SLF4J" not in result.stderr  # the NOP-binding warning is stripped


def test_run_zkcli_rejects_multi_line_commands() -> None:
    with pytest.raises(ValueError, match="newline"):
        run_zkcli("127.0.0.1:1", "ls /\ndeleteall /")
    with pytest.raises(ValueError, match="at least one"):
        run_zkcli("127.0.0.1:1")
