"""Differential tests of sessions: timeouts, expiry, reattaching, on coord and ZooKeeper.

Both servers run with tickTime 500 ms, so negotiated timeouts are clamped to
[1000, 10000] ms. Expiry is provoked by stalling a :class:`SyncTcpProxy` between a kazoo
client and the server: the client's pings stop reaching the server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from compat_support import WAIT, EventLog, RawClient, kazoo_client
from kazoo.client import KazooClient
from kazoo.protocol.states import EventType as KzEvent
from kazoo.protocol.states import KazooState

from coord.protocol import (
    PROTOCOL_VERSION,
    ConnectRequest,
    ConnectResponse,
    EventType,
    ExistsRequest,
    FrameDecoder,
    OpCode,
    SetWatches,
    frame,
)
from coord.testing import SyncTcpProxy


@pytest.fixture
def proxy(target: Any) -> Iterator[SyncTcpProxy]:
    """A fault-injecting proxy in front of ``target``."""
    with SyncTcpProxy(target.host, target.port) as p:
        yield p


@pytest.mark.parametrize(
    ("requested", "negotiated"), [(100, 1000), (1000, 1000), (4321, 4321), (60000, 10000)]
)
def test_session_timeout_negotiated(target: Any, requested: int, negotiated: int) -> None:
    """The server clamps the requested timeout to [2, 20] ticks."""
    with RawClient(target.host, target.port, timeout_ms=requested) as raw:
        assert raw.session.time_out == negotiated
        assert raw.session.session_id != 0
        assert len(raw.session.passwd) == 16


def test_session_expiry_deletes_ephemerals_and_fires_watches(
    connect: Callable[..., KazooClient], proxy: SyncTcpProxy, root: str
) -> None:
    """A session whose client goes silent expires: its ephemerals are deleted (watchers
    of them and of their parent are told), and the client, once back, learns it is LOST."""
    observer = connect()
    observer.create(root)
    with kazoo_client(proxy.address, timeout=1.0) as doomed:
        doomed.create(root + "/e", b"", ephemeral=True)
        doomed.create(root + "/p", b"")
        log = EventLog()
        observer.exists(root + "/e", watch=log)
        observer.get_children(root, watch=log)
        lost = threading.Event()
        doomed.add_listener(lambda state: lost.set() if state == KazooState.LOST else None)
        proxy.stall()
        try:
            got = log.wait(2, timeout=WAIT)
        finally:
            proxy.resume()
        assert got == [(KzEvent.DELETED, root + "/e"), (KzEvent.CHILD, root)]
        assert observer.get_children(root) == ["p"]
        assert lost.wait(WAIT)


def test_session_reattach_with_id_and_password(
    connect: Callable[..., KazooClient], proxy: SyncTcpProxy, root: str
) -> None:
    """A second client given (session id, password) takes the session over: its
    ephemerals survive, and they go when that client closes the session."""
    observer = connect()
    observer.create(root)
    with kazoo_client(proxy.address, timeout=10.0) as first:
        first.create(root + "/e", ephemeral=True)
        session_id, password = first.client_id
        proxy.refuse()
        proxy.cut()
        second = connect(client_id=(session_id, password), timeout=10.0)
        assert second.client_id[0] == session_id
        stat = second.exists(root + "/e")
        assert stat is not None and stat.ephemeralOwner == session_id
        second.create(root + "/e2", ephemeral=True)
        second.stop()
        assert observer.get_children(root) == []


def test_session_wrong_password_is_expired(
    connect: Callable[..., KazooClient], target: Any, root: str
) -> None:
    """Reattaching with a wrong password is refused as an expired session (timeout 0);
    the session itself lives on."""
    owner = connect()
    owner.create(root, ephemeral=True)
    session_id, password = owner.client_id
    wrong = bytes(b ^ 0xFF for b in password)
    states: list[str] = []
    impostor = KazooClient(hosts=target.address, client_id=(session_id, wrong), timeout=10.0)
    impostor.add_listener(states.append)
    impostor.start(timeout=WAIT)
    try:
        # kazoo treats the refusal as expiry and starts a fresh session.
        assert impostor.client_id[0] != session_id
        assert impostor.exists(root).ephemeralOwner == session_id
    finally:
        impostor.stop()
        impostor.close()
    assert owner.exists(root) is not None


def test_session_raw_refusal_shape(connect: Callable[..., KazooClient], target: Any) -> None:
    """On the wire the refusal is a ConnectResponse with timeout 0 and session id 0."""
    owner = connect()
    session_id, _ = owner.client_id
    with contextlib.closing(socket.create_connection((target.host, target.port), WAIT)) as sock:
        request = ConnectRequest(PROTOCOL_VERSION, 0, 5000, session_id, bytes(16))
        sock.sendall(frame(request.to_bytes()))
        decoder = FrameDecoder()
        response = None
        while response is None:
            chunk = sock.recv(4096)
            assert chunk, "server closed without answering"
            decoder.receive_data(chunk)
            response = decoder.next_frame()
        refused = ConnectResponse.from_bytes(response)
        assert (refused.time_out, refused.session_id) == (0, 0)
        sock.settimeout(WAIT)
        while decoder.next_frame() is None and sock.recv(4096):
            pass  # the server then closes the connection


def test_session_close_deletes_ephemerals_at_once(
    connect: Callable[..., KazooClient], root: str
) -> None:
    """Closing a session (not expiry) deletes its ephemerals before the close returns, and
    watchers see DELETED then the parent's CHILD."""
    observer = connect()
    observer.create(root)
    log = EventLog()
    owner = connect()
    owner.create(root + "/a", ephemeral=True)
    owner.create(root + "/b", ephemeral=True, sequence=True)
    observer.get_children(root, watch=log)
    observer.exists(root + "/a", watch=log)
    owner.stop()
    assert sorted(log.wait(2)) == sorted([(KzEvent.DELETED, root + "/a"), (KzEvent.CHILD, root)])
    assert observer.get_children(root) == []
    assert owner.state == KazooState.LOST


def test_session_set_watches_after_reconnect(
    connect: Callable[..., KazooClient], target: Any, root: str
) -> None:
    """A client that reattaches its session re-registers its watches with setWatches and
    its last zxid; the server fires at once those whose nodes changed meanwhile (data
    changed, deleted, created, children changed) and keeps the others."""
    other = connect()
    for name in ("changed", "deleted", "children", "quiet"):
        other.create(f"{root}/{name}", makepath=True)
    first = RawClient(target.host, target.port)
    session = (first.session.session_id, first.session.passwd)
    first.call(OpCode.EXISTS, ExistsRequest("/", False))
    first.drop()
    last = first.last_zxid
    other.set(root + "/changed", b"x")
    other.delete(root + "/deleted")
    other.create(root + "/children/c")
    other.create(root + "/created")
    with RawClient(target.host, target.port, session=session, last_zxid=last) as second:
        assert second.session.session_id == session[0]
        request = SetWatches(
            last,
            (root + "/changed", root + "/deleted", root + "/quiet"),
            (root + "/created", root + "/absent"),
            (root + "/children", root + "/quiet"),
        )
        assert second.call(OpCode.SET_WATCHES, request, xid=-8).header.err == 0
        second.call(OpCode.EXISTS, ExistsRequest("/", False))
        fired = sorted((n.type, n.path) for n in second.notifications)
        assert fired == sorted(
            [
                (EventType.NODE_DATA_CHANGED, root + "/changed"),
                (EventType.NODE_DELETED, root + "/deleted"),
                (EventType.NODE_CREATED, root + "/created"),
                (EventType.NODE_CHILDREN_CHANGED, root + "/children"),
            ]
        )
        second.notifications.clear()
        other.set(root + "/quiet", b"now")
        other.create(root + "/quiet/c")
        other.create(root + "/absent")
        second.call(OpCode.EXISTS, ExistsRequest("/", False))
        assert [(n.type, n.path) for n in second.notifications] == [
            (EventType.NODE_DATA_CHANGED, root + "/quiet"),
            (EventType.NODE_CHILDREN_CHANGED, root + "/quiet"),
            (EventType.NODE_CREATED, root + "/absent"),
        ]
