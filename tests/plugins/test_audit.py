"""The audit log: one line per state-changing request and per authentication attempt, on
the ``coord.audit`` logger and through the ``coord_audit_event`` hook; off by default."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import AuthFailedError, NoAuthError, NodeExistsError
from kazoo.security import ACL, Id, make_digest_acl

from coord.plugins import hookimpl
from coord.server import AUDIT_LOGGER, AuditEvent
from coord.testing import CoordServerThread


class Collector:
    """A plugin recording every audit event it is given."""

    __name__ = "audit_collector"

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []
        self.changed = threading.Condition()

    @hookimpl
    def coord_audit_event(self, event: AuditEvent) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def snapshot(self) -> list[AuditEvent]:
        with self.changed:
            return list(self.events)

    def wait_for(self, operation: str, session: int, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: any(e.operation == operation and e.session == session for e in self.events),
                timeout,
            )


class Failing:
    """A plugin whose audit hook always fails."""

    __name__ = "audit_failing"

    @hookimpl
    def coord_audit_event(self, event: AuditEvent) -> None:
        raise RuntimeError("audit sink down (expected by the test)")


@pytest.fixture
def kazoo(request: pytest.FixtureRequest) -> Iterator[Any]:
    clients: list[KazooClient] = []

    def make(server: CoordServerThread, **kwargs: Any) -> KazooClient:
        client = KazooClient(hosts=server.address, timeout=10.0, **kwargs)
        client.start(timeout=10)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()
        client.close()


def _audit_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == AUDIT_LOGGER]


def test_audit_requests_and_auth_attempts(kazoo: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Every write is one event with who, from where, what, which path and the result;
    reads are not audited; addauth attempts are, allowed or denied."""
    collector = Collector()
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    with CoordServerThread(plugins=[collector], audit=True) as server:
        zk = kazoo(server, auth_data=[("digest", "alice:secret")])
        zk.create("/a", b"1")
        zk.get("/a")
        zk.exists("/a")
        zk.set("/a", b"2")
        with pytest.raises(NodeExistsError):
            zk.create("/a")
        zk.create("/locked", acl=[make_digest_acl("bob", "pw", read=True)])
        other = kazoo(server)
        with pytest.raises(NoAuthError):
            other.set("/locked", b"x")
        transaction = zk.transaction()
        transaction.create("/a/x")
        transaction.set_data("/a", b"3")
        transaction.commit()
        zk.set_acls("/a", [ACL(31, Id("world", "anyone"))])
        zk.delete("/a/x")
        with pytest.raises(AuthFailedError):
            other.add_auth("nosuch", "x")
        session = zk.client_id[0]
        port = zk._connection._socket.getsockname()[1]
        zk.stop()
    events = collector.snapshot()

    mine = [e for e in events if e.session == session]
    assert [(e.operation, e.path, e.result, e.error) for e in mine] == [
        ("addauth", "", "allowed", ""),
        ("create", "/a", "allowed", ""),
        ("setData", "/a", "allowed", ""),
        ("create", "/a", "error", "NODE_EXISTS"),
        ("create", "/locked", "allowed", ""),
        ("multi", "/a/x,/a", "allowed", ""),
        ("setAcl", "/a", "allowed", ""),
        ("delete", "/a/x", "allowed", ""),
        ("closeSession", "", "allowed", ""),
    ]
    first = mine[1]
    assert first.client == f"127.0.0.1:{port}"
    assert "ip:127.0.0.1" in first.ids
    assert any(i.startswith("digest:alice:") for i in first.ids)
    assert mine[0].detail == "digest"

    denied = [e for e in events if e.result == "denied"]
    assert [(e.operation, e.path, e.error, e.detail) for e in denied] == [
        ("setData", "/locked", "NO_AUTH", ""),
        ("addauth", "", "AUTH_FAILED", "nosuch"),
    ]
    assert [e.operation for e in events if e.session == 0] == ["serverStart", "serverStop"]

    lines = _audit_lines(caplog)
    assert len(lines) == len(events)  # the logger and the hook see the same events
    assert lines[0].startswith('session=0x0 client="" ids="" operation=serverStart')
    setdata = next(line for line in lines if "operation=setData path=/locked" in line)
    assert "result=denied error=NO_AUTH" in setdata
    assert setdata.startswith(f"session=0x{denied[0].session:x} client=127.0.0.1:")


def test_audit_off_by_default(kazoo: Any, caplog: pytest.LogCaptureFixture) -> None:
    collector = Collector()
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    with CoordServerThread(plugins=[collector]) as server:
        zk = kazoo(server)
        zk.create("/quiet")
        zk.add_auth("digest", "a:b")
    assert collector.snapshot() == []
    assert _audit_lines(caplog) == []


def test_audit_failing_hook_is_logged_and_the_request_succeeds(
    kazoo: Any, caplog: pytest.LogCaptureFixture
) -> None:
    collector = Collector()
    caplog.set_level(logging.INFO)
    with CoordServerThread(plugins=[Failing(), collector], audit=True) as server:
        zk = kazoo(server)
        zk.create("/still-works", b"x")
        assert zk.get("/still-works")[0] == b"x"
    assert ("create", "/still-works") in [(e.operation, e.path) for e in collector.snapshot()]
    failures = [r for r in caplog.records if "plugin 'audit_failing' failed" in r.getMessage()]
    assert failures and failures[0].name == "coord.server"


def test_AuditEvent_line_quotes_values_with_spaces() -> None:
    event = AuditEvent(
        time=0.0,
        operation="create",
        result="allowed",
        session=0x1F,
        client="127.0.0.1:5",
        ids=("ip:127.0.0.1",),
        path="/with space",
    )
    assert event.line() == (
        'session=0x1f client=127.0.0.1:5 ids=ip:127.0.0.1 operation=create path="/with space" '
        "result=allowed"
    )


def test_audit_session_expiry() -> None:
    """A session the server expires (its client vanished) is audited as expireSession."""
    import socket

    from coord.protocol import ConnectRequest, ConnectResponse, FrameDecoder, frame

    collector = Collector()
    with CoordServerThread(plugins=[collector], audit=True, tick_time=100) as server:
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(frame(ConnectRequest(0, 0, 200, 0, bytes(16)).to_bytes()))
            decoder = FrameDecoder()
            while (data := decoder.next_frame()) is None:
                decoder.receive_data(sock.recv(4096))
            session = ConnectResponse.from_bytes(data).session_id
        assert collector.wait_for("expireSession", session), "the expiry was not audited"
