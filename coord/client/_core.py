"""The client side of a ZooKeeper session, sans-IO: bytes and "now" in, bytes and events out.

Theory of operation
-------------------
A *session* outlives the TCP connections that carry it. :class:`ClientCore` holds what the
session needs across connections -- its id and password, the negotiated timeout, the last
zxid seen, the credentials to re-send, the watch registry -- and the state of the current
connection: the frame decoder, the next xid, the requests awaiting replies. It never
touches a socket, a clock or a task; the driver (``_client.py``) feeds it bytes and the
time, and sends what it returns. The shape is h11's:

* :meth:`ClientCore.connect` starts a connection and returns the ``ConnectRequest``;
* :meth:`ClientCore.receive_data` consumes bytes and returns :data:`Event` values:
  :class:`Connected` or :class:`SessionExpired` for the handshake, then :class:`Reply`,
  :class:`WatchEvent`, :class:`AuthReply` and :class:`WatchesRestored`;
* :meth:`ClientCore.request` encodes a request and returns its xid and bytes;
* :meth:`ClientCore.data_to_send` returns bytes the core decided to send by itself (the
  credentials and ``setWatches`` after a handshake, pings);
* :meth:`ClientCore.next_timeout` / :meth:`ClientCore.tick` drive pings and dead-peer
  detection from the time the driver passes in;
* :meth:`ClientCore.connection_lost` fails what was in flight.

Invariants, after ZooKeeper's ``ClientCnxn``:

* **Replies come in request order.** Each connection numbers requests 1, 2, 3...; a reply
  whose xid is not the oldest pending one means the stream is corrupt (or the server is
  not ZooKeeper): :class:`~coord.ProtocolError`, and the driver drops the connection. Pings
  (-2), credentials (-4) and notifications (-1) have fixed xids; credentials are answered
  in order among themselves; ``setWatches`` (-8) replies are pending entries like any other.
* **Liveness.** With a negotiated timeout *T*, the core sends a ping whenever nothing was
  sent for *T*/3 (at most every 10 s) and declares the connection dead when nothing was
  received for 2/3 *T* -- well before the server would expire the session after *T*, so
  the driver has time to reach another server (Java client: ``readTimeout = 2T/3``, ping
  at ``readTimeout/2``). The handshake gets ``connect_timeout`` (the Java client uses
  *T* divided by the number of servers).
* **Never back in time.** ``last_zxid`` is the highest zxid of any reply or notification;
  the ``ConnectRequest`` carries it so a server that is behind refuses the session rather
  than serving older data.
* **No missed watch event.** Watches are registered in :class:`WatchRegistry` on the reply
  that confirms them. After a handshake re-establishes the session, the core sends the
  credentials first (watch re-registration needs READ permission) and then the
  ``setWatches`` batches relative to ``watch_zxid``: the last zxid up to which every
  registered watch is known to have been in place on the server. It only advances when no
  ``setWatches`` batch is outstanding; otherwise a connection lost between two batches
  could re-register the second batch relative to a zxid it never covered.
* **Expiry is final.** A ``ConnectResponse`` with timeout 0 (or an ``Expired`` state
  notification) ends the session: :class:`SessionExpired` carries every watcher so the
  driver can tell them, and the core accepts no new connection.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from coord.protocol import (
    DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
    RESPONSE_TYPES,
    AddWatchMode,
    AddWatchRequest,
    AuthPacket,
    ConnectionLossError,
    ConnectRequest,
    ConnectResponse,
    ErrorCode,
    EventType,
    FrameDecoder,
    KeeperState,
    OpCode,
    ProtocolError,
    Reader,
    Record,
    ReplyHeader,
    RequestHeader,
    WatcherEvent,
    Xid,
    frame,
)

from ._registry import WatchKind, WatchRegistry

__all__ = [
    "AuthReply",
    "ClientCore",
    "Connected",
    "Event",
    "Phase",
    "Reply",
    "SessionExpired",
    "WatchEvent",
    "WatchesRestored",
]

W = TypeVar("W", bound=Hashable)

#: The Java client never lets more than this pass between two pings.
MAX_PING_INTERVAL = 10.0

_PING = frame(RequestHeader(Xid.PING, OpCode.PING).to_bytes())
_MAX_XID = 2**31 - 1


class Phase(enum.Enum):
    """Where the core is: between connections, in a handshake, connected, or done."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    EXPIRED = "expired"
    CLOSED = "closed"


# --- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    """The handshake succeeded.

    ``timeout`` is the negotiated session timeout in milliseconds; ``new_session`` is
    False when an existing session was re-established on this connection.
    """

    session_id: int
    passwd: bytes
    timeout: int
    read_only: bool
    new_session: bool


@dataclass(frozen=True, slots=True)
class SessionExpired(Generic[W]):
    """The server says the session is gone; ``watchers`` lists every registered watcher."""

    watchers: tuple[W, ...]


@dataclass(frozen=True, slots=True)
class Reply:
    """The reply to request ``xid``: the server's zxid, a result code and the decoded body.

    ``body`` is the op's response record when ``err`` is 0 and ``None`` otherwise.
    """

    xid: int
    zxid: int
    err: int
    op: int
    body: Record | None


@dataclass(frozen=True, slots=True)
class WatchEvent(Generic[W]):
    """A notification, with the watchers it fires (one-shot ones are now unregistered)."""

    type: int
    state: int
    path: str
    zxid: int
    watchers: tuple[W, ...]


@dataclass(frozen=True, slots=True)
class AuthReply:
    """The answer to credentials sent with :meth:`ClientCore.add_auth` or after a handshake.

    ``token`` is what the driver passed to :meth:`ClientCore.add_auth` (``None`` for the
    credentials the core re-sent by itself); ``err`` is 0 or ``AUTH_FAILED``.
    """

    err: int
    scheme: str
    token: object


@dataclass(frozen=True, slots=True)
class WatchesRestored:
    """Every ``setWatches`` batch sent after the handshake was answered, at ``zxid``.

    ``relative_zxid`` is the zxid the watches were re-registered relative to: events the
    server replayed cover changes after it.
    """

    zxid: int
    relative_zxid: int


Event: TypeAlias = (
    Connected | SessionExpired[W] | Reply | WatchEvent[W] | AuthReply | WatchesRestored
)


@dataclass(slots=True)
class _Pending(Generic[W]):
    xid: int
    op: int
    path: str | None
    watcher: W | None
    kind: WatchKind | None = None
    internal: bool = False


_ONE_SHOT_OPS: dict[int, WatchKind] = {
    OpCode.GET_DATA: WatchKind.DATA,
    OpCode.EXISTS: WatchKind.DATA,
    OpCode.GET_CHILDREN: WatchKind.CHILD,
    OpCode.GET_CHILDREN2: WatchKind.CHILD,
}
_EXISTENCE_OPS = frozenset(_ONE_SHOT_OPS)


class ClientCore(Generic[W]):
    """One client session over successive connections (see the module docstring).

    Args:
        session_timeout: the session timeout to ask for, in milliseconds.
        read_only: accept a read-only server (``ConnectRequest.readOnly``).
        max_frame: the largest frame accepted from the server (``jute.maxbuffer``).
        reassert_persistent: after a one-shot watch on a path that has a persistent
            watch, send ``addWatch`` again. ZooKeeper before 3.9.2 keeps one mode per
            (connection, path), so the one-shot registration would turn the persistent
            watch into a one-shot one (ZOOKEEPER-4466); re-adding it restores it.
    """

    def __init__(
        self,
        session_timeout: int,
        *,
        read_only: bool = False,
        max_frame: int = DEFAULT_MAX_FRAME,
        reassert_persistent: bool = True,
    ) -> None:
        if session_timeout <= 0:
            raise ValueError("session_timeout must be positive")
        self.requested_timeout = session_timeout
        self.can_be_read_only = read_only
        self.max_frame = max_frame
        self.reassert_persistent = reassert_persistent
        self.phase = Phase.IDLE
        self.session_id = 0
        self.passwd = bytes(16)
        self.timeout = 0
        self.read_only = False
        self.last_zxid = 0
        self.watch_zxid = 0
        self.registry: WatchRegistry[W] = WatchRegistry()
        self.credentials: list[tuple[str, bytes]] = []
        self._decoder = FrameDecoder(max_frame)
        self._pending: deque[_Pending[W]] = deque()
        self._auth_pending: deque[tuple[str, bytes, object]] = deque()
        self._restoring = 0
        self._restore_relative = 0
        self._xid = 0
        self._out = bytearray()
        self._last_recv = 0.0
        self._last_send = 0.0
        self._connect_timeout = 0.0

    # --- properties -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """The handshake of the current connection succeeded."""
        return self.phase is Phase.CONNECTED

    @property
    def pending(self) -> int:
        """Requests sent on this connection and not yet answered."""
        return len(self._pending) + len(self._auth_pending)

    @property
    def read_timeout(self) -> float:
        """Seconds of silence after which a connected connection is declared dead."""
        return self.timeout * 2 / 3000

    @property
    def ping_interval(self) -> float:
        """Seconds of sending nothing after which a ping is sent."""
        return min(self.timeout / 3000, MAX_PING_INTERVAL)

    # --- connection lifecycle -------------------------------------------------------------

    def connect(self, now: float, connect_timeout: float) -> bytes:
        """Start a handshake on a new connection.

        Args:
            now: the current time, in seconds (any monotonic origin).
            connect_timeout: seconds to wait for the handshake reply.

        Returns:
            The framed ``ConnectRequest``, to send first.

        Raises:
            RuntimeError: the session has expired or was closed, or a connection is open.
        """
        if self.phase is not Phase.IDLE:
            raise RuntimeError(f"cannot connect: session is {self.phase.value}")
        self._reset_connection()
        self.phase = Phase.CONNECTING
        self._connect_timeout = connect_timeout
        self._last_recv = self._last_send = now
        request = ConnectRequest(
            PROTOCOL_VERSION,
            self.last_zxid,
            self.requested_timeout,
            self.session_id,
            self.passwd,
            self.can_be_read_only,
        )
        return frame(request.to_bytes())

    def connection_lost(self) -> tuple[list[int], list[object]]:
        """The connection is gone: forget its state and report what was in flight.

        Returns:
            The xids of the requests that got no reply, and the tokens of the credentials
            that got no answer, oldest first; the driver fails them with
            :class:`~coord.ConnectionLossError`.
        """
        xids = [p.xid for p in self._pending if not p.internal and p.xid >= 0]
        tokens = [token for _, _, token in self._auth_pending if token is not None]
        self._reset_connection()
        if self.phase in (Phase.CONNECTING, Phase.CONNECTED):
            self.phase = Phase.IDLE
        return xids, tokens

    def _reset_connection(self) -> None:
        self._decoder = FrameDecoder(self.max_frame)
        self._pending.clear()
        self._auth_pending.clear()
        self._restoring = 0
        self._xid = 0
        self._out.clear()

    def close(self) -> list[W]:
        """The session is over on the client's side (closed, or given up as lost).

        Returns:
            Every watcher that was registered, now unregistered.
        """
        if self.phase is not Phase.EXPIRED:
            self.phase = Phase.CLOSED
        self._reset_connection()
        return self.registry.drain()

    # --- output ---------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes the core queued by itself (credentials, setWatches, pings); then empty."""
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    def _next_xid(self) -> int:
        xid = self._xid + 1
        if xid > _MAX_XID:
            xid = 1
        self._xid = xid
        return xid

    def request(
        self, op: int, record: Record, now: float, watcher: W | None = None
    ) -> tuple[int, bytes]:
        """Encode a request.

        Args:
            op: the :class:`~coord.protocol.OpCode`.
            record: the request record (its ``watch`` flag set when ``watcher`` is given).
            now: the current time.
            watcher: for getData/exists/getChildren(2) with a watch, and addWatch: the
                object to register when the reply confirms the watch.

        Returns:
            The xid the reply will carry, and the bytes to send.

        Raises:
            ConnectionLossError: no connection is established.
        """
        if self.phase is not Phase.CONNECTED:
            raise ConnectionLossError("not connected")
        xid = self._next_xid()
        path = getattr(record, "path", None)
        out = bytearray()
        RequestHeader(xid, op).write(out)
        record.write(out)
        data = frame(out)
        kind: WatchKind | None = None
        if watcher is not None:
            if op == OpCode.ADD_WATCH:
                mode = getattr(record, "mode", None)
                if mode == AddWatchMode.PERSISTENT:
                    kind = WatchKind.PERSISTENT
                elif mode == AddWatchMode.PERSISTENT_RECURSIVE:
                    kind = WatchKind.PERSISTENT_RECURSIVE
            else:
                kind = _ONE_SHOT_OPS.get(op)
            if kind is None or path is None:
                raise ValueError(f"opcode {op} does not set a watch")
        self._pending.append(_Pending(xid, op, path, watcher, kind))
        if (
            watcher is not None
            and self.reassert_persistent
            and op in _ONE_SHOT_OPS
            and path is not None
            and self.registry.is_persistent(path)
        ):
            data += self._reassert(path)
        self._last_send = now
        return xid, data

    def _reassert(self, path: str) -> bytes:
        out = b""
        for kind, mode in (
            (WatchKind.PERSISTENT, AddWatchMode.PERSISTENT),
            (WatchKind.PERSISTENT_RECURSIVE, AddWatchMode.PERSISTENT_RECURSIVE),
        ):
            if self.registry.has(kind, path):
                xid = self._next_xid()
                body = bytearray()
                RequestHeader(xid, OpCode.ADD_WATCH).write(body)
                AddWatchRequest(path, mode).write(body)
                out += frame(body)
                self._pending.append(
                    _Pending(xid, OpCode.ADD_WATCH, path, None, None, internal=True)
                )
        return out

    def add_auth(self, scheme: str, credentials: bytes, now: float, token: object) -> bytes:
        """Encode credentials (``addauth``); they are re-sent after every reconnect.

        Args:
            scheme: the auth scheme, e.g. ``"digest"``.
            credentials: the scheme's credentials, e.g. ``b"user:password"``.
            now: the current time.
            token: returned in the matching :class:`AuthReply`.

        Raises:
            ConnectionLossError: no connection is established.
        """
        if self.phase is not Phase.CONNECTED:
            raise ConnectionLossError("not connected")
        if (scheme, credentials) not in self.credentials:
            self.credentials.append((scheme, credentials))
        self._last_send = now
        return self._auth_frame(scheme, credentials, token)

    def _auth_frame(self, scheme: str, credentials: bytes, token: object) -> bytes:
        out = bytearray()
        RequestHeader(Xid.AUTH, OpCode.AUTH).write(out)
        AuthPacket(0, scheme, credentials).write(out)
        self._auth_pending.append((scheme, credentials, token))
        return frame(out)

    # --- timers ---------------------------------------------------------------------------

    def next_timeout(self, now: float) -> float:
        """Seconds until :meth:`tick` has something to do (``inf`` when not connected)."""
        if self.phase is Phase.CONNECTING:
            return max(0.0, self._last_recv + self._connect_timeout - now)
        if self.phase is Phase.CONNECTED:
            dead = self._last_recv + self.read_timeout
            ping = self._last_send + self.ping_interval
            return max(0.0, min(dead, ping) - now)
        return float("inf")

    def tick(self, now: float) -> bytes:
        """Check liveness at ``now``.

        Returns:
            A ping to send, or ``b""``.

        Raises:
            ConnectionLossError: nothing was received for too long; drop the connection.
        """
        if self.phase is Phase.CONNECTING:
            if now - self._last_recv >= self._connect_timeout:
                raise ConnectionLossError(
                    f"no handshake reply within {self._connect_timeout:.3g} s"
                )
            return b""
        if self.phase is not Phase.CONNECTED:
            return b""
        if now - self._last_recv >= self.read_timeout:
            raise ConnectionLossError(
                f"nothing received from the server for {now - self._last_recv:.3g} s"
            )
        if now - self._last_send >= self.ping_interval:
            self._last_send = now
            return _PING
        return b""

    # --- input ----------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Event[W]]:
        """Consume bytes from the server.

        Returns:
            The events they complete, in order.

        Raises:
            ProtocolError: a malformed frame or record, or a reply out of order; the
                connection must be dropped (:meth:`connection_lost`).
        """
        if self.phase not in (Phase.CONNECTING, Phase.CONNECTED):
            return []
        self._last_recv = now
        decoder = self._decoder
        decoder.receive_data(data)
        events: list[Event[W]] = []
        while self.phase in (Phase.CONNECTING, Phase.CONNECTED):
            payload = decoder.next_frame()
            if payload is None:
                break
            if self.phase is Phase.CONNECTING:
                events.append(self._handshake(payload))
            else:
                event = self._frame(payload)
                if event is not None:
                    events.append(event)
        return events

    def _handshake(self, payload: bytes) -> Event[W]:
        response = ConnectResponse.from_bytes(payload)
        if response.time_out <= 0:
            self.phase = Phase.EXPIRED
            self._reset_connection()
            return SessionExpired(tuple(self.registry.drain()))
        new_session = self.session_id == 0 or response.session_id != self.session_id
        if new_session and self.session_id != 0:
            # Another session than ours (cannot happen with a conforming server).
            raise ProtocolError("server answered with another session id")
        self.session_id = response.session_id
        self.passwd = response.passwd
        self.timeout = response.time_out
        self.read_only = response.read_only
        self.phase = Phase.CONNECTED
        self._prime()
        return Connected(
            response.session_id,
            response.passwd,
            response.time_out,
            response.read_only,
            new_session,
        )

    def _prime(self) -> None:
        out = self._out
        for scheme, credentials in self.credentials:
            out += self._auth_frame(scheme, credentials, None)
        batches = self.registry.set_watches(self.watch_zxid)
        self._restoring = len(batches)
        self._restore_relative = self.watch_zxid
        for op, record in batches:
            body = bytearray()
            RequestHeader(Xid.SET_WATCHES, op).write(body)
            record.write(body)
            out += frame(body)
            self._pending.append(_Pending(Xid.SET_WATCHES, op, None, None, None, internal=True))

    def _frame(self, payload: bytes) -> Event[W] | None:
        reader = Reader(payload)
        header = ReplyHeader.read(reader)
        xid = header.xid
        if xid == Xid.NOTIFICATION:
            return self._notification(header, reader)
        if xid == Xid.PING:
            return None
        if xid == Xid.AUTH:
            if not self._auth_pending:
                raise ProtocolError("credentials answered that were never sent")
            scheme, credentials, token = self._auth_pending.popleft()
            if header.err != 0 and (scheme, credentials) in self.credentials:
                self.credentials.remove((scheme, credentials))
            return AuthReply(header.err, scheme, token)
        if not self._pending:
            raise ProtocolError(f"reply with xid {xid} to no pending request")
        pending = self._pending[0]
        if pending.xid != xid:
            raise ProtocolError(f"xid out of order: expected {pending.xid}, got {xid}")
        body: Record | None = None
        if header.err == 0:
            body_type = RESPONSE_TYPES.get(pending.op)
            if body_type is None:
                raise ProtocolError(f"no reply type for opcode {pending.op}")
            body = body_type.read(reader)
            reader.expect_end(body_type.__name__)
        self._pending.popleft()
        zxid = header.zxid
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        if xid == Xid.SET_WATCHES:
            self._restoring -= 1
            if self._restoring == 0:
                self.watch_zxid = max(self.watch_zxid, zxid)
                return WatchesRestored(zxid, self._restore_relative)
            return None
        if not self._restoring and zxid > self.watch_zxid:
            self.watch_zxid = zxid
        self._after_reply(pending, header.err)
        if pending.internal:
            return None
        if pending.op == OpCode.CLOSE_SESSION and header.err == 0:
            self.phase = Phase.CLOSED
        return Reply(xid, zxid, header.err, pending.op, body)

    def _after_reply(self, pending: _Pending[W], err: int) -> None:
        op = pending.op
        path = pending.path
        if path is None:
            return
        registry = self.registry
        if op in _EXISTENCE_OPS:
            if err == 0:
                registry.note_exists(path, True)
            elif err == ErrorCode.NO_NODE:
                registry.note_exists(path, False)
        watcher = pending.watcher
        kind = pending.kind
        if watcher is None or kind is None:
            return
        if err == 0:
            registry.add(kind, path, watcher)
        elif err == ErrorCode.NO_NODE and op == OpCode.EXISTS:
            registry.add(WatchKind.EXIST, path, watcher)

    def _notification(self, header: ReplyHeader, reader: Reader) -> Event[W] | None:
        event = WatcherEvent.read(reader)
        reader.expect_end("WatcherEvent")
        if event.type == EventType.NONE:
            if event.state == KeeperState.EXPIRED:
                self.phase = Phase.EXPIRED
                self._reset_connection()
                return SessionExpired(tuple(self.registry.drain()))
            return None
        zxid = header.zxid
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        if not self._restoring and zxid > self.watch_zxid:
            self.watch_zxid = zxid
        watchers = self.registry.materialize(event.type, event.path)
        return WatchEvent(event.type, event.state, event.path, zxid, tuple(watchers))
