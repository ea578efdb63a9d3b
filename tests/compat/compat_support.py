"""Helpers for the differential compatibility tests (imported by ``tests/compat/test_*``).

The tests run one function against coord and against Apache ZooKeeper and compare what a
client can observe. Zxids and times differ between servers, so Stats are compared through
:func:`stat_shape` (the counters and sizes) and relations between zxids.

:class:`RawClient` speaks the wire protocol over a plain socket (with coord's own codec)
for requests kazoo refuses to send or whose raw reply header matters (e.g. a multi's).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.states import WatchedEvent, ZnodeStat

from coord.protocol import (
    PROTOCOL_VERSION,
    ConnectRequest,
    ConnectResponse,
    FrameDecoder,
    Reader,
    Record,
    ReplyHeader,
    RequestHeader,
    WatcherEvent,
    frame,
)

#: Generous bound for anything that should happen "at once".
WAIT = 10.0


def stat_shape(stat: ZnodeStat, session_id: int | None = None) -> dict[str, Any]:
    """The server-independent fields of a Stat.

    ``ephemeralOwner`` becomes ``"session"`` when it equals ``session_id`` so two servers'
    session ids compare equal.
    """
    owner: Any = stat.ephemeralOwner
    if session_id is not None and owner == session_id:
        owner = "session"
    return {
        "version": stat.version,
        "cversion": stat.cversion,
        "aversion": stat.aversion,
        "ephemeralOwner": owner,
        "dataLength": stat.dataLength,
        "numChildren": stat.numChildren,
    }


def error_name(fn: Callable[[], object]) -> str:
    """Run ``fn``; the kazoo exception's class name it raised, or ``"ok"``."""
    try:
        fn()
    except Exception as exc:
        return type(exc).__name__
    return "ok"


@contextlib.contextmanager
def kazoo_client(address: str, *, timeout: float = 10.0, **kwargs: Any) -> Iterator[KazooClient]:
    """A started kazoo client, stopped and closed afterwards."""
    client = KazooClient(hosts=address, timeout=timeout, **kwargs)
    client.start(timeout=WAIT)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.stop()
        with contextlib.suppress(Exception):
            client.close()


class EventLog:
    """Collects kazoo watch events; waiters block until a number of events arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, event: WatchedEvent) -> None:
        with self._cond:
            self.events.append((event.type, event.path))
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = WAIT) -> list[tuple[str, str]]:
        """Wait until at least ``count`` events arrived; return them all."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.events) >= count, timeout)
            return list(self.events)


def wait_for_state(client: KazooClient, state: str, timeout: float = WAIT) -> bool:
    """Wait until ``client`` reaches the kazoo ``state`` (e.g. ``KazooState.LOST``)."""
    reached = threading.Event()

    def listener(new_state: str) -> bool:
        if new_state == state:
            reached.set()
            return True
        return False

    client.add_listener(listener)
    if client.state == state:
        reached.set()
    try:
        return reached.wait(timeout)
    finally:
        client.remove_listener(listener)


@dataclass
class RawReply:
    """A reply as it came off the wire: its header and undecoded body."""

    header: ReplyHeader
    body: bytes


class RawClient:
    """A minimal synchronous ZooKeeper client over a socket, for hand-made requests.

    Watch notifications (xid -1) are kept in :attr:`notifications`; replies are returned
    by :meth:`call` in order.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout_ms: int = 10000,
        session: tuple[int, bytes] = (0, bytes(16)),
        last_zxid: int = 0,
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self.decoder = FrameDecoder()
        self.notifications: list[WatcherEvent] = []
        #: The largest zxid seen in a reply header (what a client reports on reconnect).
        self.last_zxid = last_zxid
        self._xid = 0
        request = ConnectRequest(PROTOCOL_VERSION, last_zxid, timeout_ms, *session)
        self.sock.sendall(frame(request.to_bytes()))
        self.session = ConnectResponse.from_bytes(self._frame())

    def _frame(self) -> bytes:
        while True:
            data = self.decoder.next_frame()
            if data is not None:
                return data
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.decoder.receive_data(chunk)

    def call(self, op: int, request: Record | None, *, xid: int | None = None) -> RawReply:
        """Send one request and return its reply (skipping notifications)."""
        if xid is None:
            self._xid += 1
            xid = self._xid
        out = bytearray(RequestHeader(xid, op).to_bytes())
        if request is not None:
            request.write(out)
        self.sock.sendall(frame(out))
        while True:
            data = self._frame()
            header = ReplyHeader.read(Reader(data))
            body = data[16:]
            if header.xid == -1:
                self.notifications.append(WatcherEvent.from_bytes(body))
                continue
            if header.zxid > self.last_zxid:
                self.last_zxid = header.zxid
            return RawReply(header, body)

    def drop(self) -> None:
        """Close the socket without closing the session (as a network failure would)."""
        self.sock.close()

    def close(self) -> None:
        if self.sock.fileno() != -1:
            with contextlib.suppress(OSError):
                self.call(-11, None)
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
