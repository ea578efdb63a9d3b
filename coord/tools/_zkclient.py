"""Internal: a small blocking ZooKeeper client for coord's operator tools. Not public API.

Applications use coord's SDK; this client exists so that ``coord export`` and ``coord
import`` need nothing beyond :mod:`coord.protocol` and the standard library (kazoo is a
test-only dependency), and so that they can pipeline. It works against any server
speaking ZooKeeper's client protocol: coord, or Apache ZooKeeper 3.5 and later.

Theory of operation
-------------------
One TCP connection, one session, one thread. The handshake and ``addauth`` are done by
:meth:`ZkClient.connect`; after that each request is a frame ``RequestHeader | record``
with a fresh xid. A ZooKeeper server answers a session's requests in the order it
received them, so replies are matched to requests by position and the xid is only
checked (a mismatch is a protocol error). Notifications (xid -1) cannot arrive -- this
client sets no watches -- and are skipped like ping replies (xid -2).

:meth:`ZkClient.call_many` pipelines: it keeps up to ``window`` requests in flight,
writing every request it may send in one ``sendall`` and reading every reply that has
arrived in one ``recv``, so a tree of thousands of nodes costs a few dozen round trips
rather than thousands. The window is bounded because a reply may be as large as a
node's data (up to ``jute.maxbuffer``, 1 MiB) and a server buffers what the client has
not yet read (coord closes a connection holding more than 64 MiB of unread replies).

The session is kept alive by a ping before any request sent after a third of the session
timeout of silence. Any failure of the connection is a :class:`ZkClientError`; the tools
do not reconnect (their work is not idempotent in general), they fail and say so.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from coord.protocol import (
    ACL,
    PROTOCOL_VERSION,
    RESPONSE_TYPES,
    AuthPacket,
    CloseSessionRequest,
    ConnectRequest,
    ConnectResponse,
    CoordError,
    CreateMode,
    CreateRequest,
    CreateTTLRequest,
    ErrorCode,
    ExistsRequest,
    FrameDecoder,
    GetACLRequest,
    GetACLResponse,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    NoNodeError,
    OpCode,
    ProtocolError,
    Record,
    ReplyHeader,
    RequestHeader,
    SetACLRequest,
    SetDataRequest,
    Stat,
    Xid,
    error_for_code,
    frame,
)

from ._common import parse_address

__all__ = ["Call", "ZkClient", "ZkClientError"]

#: Requests in flight at most in :meth:`ZkClient.call_many`.
WINDOW: Final = 96
#: The largest reply frame accepted (generous: a server's own limit applies first).
MAX_REPLY: Final = 64 << 20
_NO_PASSWORD = bytes(16)
_REPLY_HEADER = struct.Struct(">iqi")  # xid, zxid, err
_HEADER_SIZE = _REPLY_HEADER.size


class ZkClientError(Exception):
    """The connection or session failed (refused, closed, timed out, garbled)."""


@dataclass(frozen=True, slots=True)
class Call:
    """One request for :meth:`ZkClient.call_many`: its opcode, record and path."""

    op: OpCode
    request: Record
    path: str


class ZkClient:
    """A connected session (see the module docs). Build it with :meth:`connect`.

    Use from one thread; close it (or use it as a context manager) to end the session.
    """

    def __init__(
        self, sock: socket.socket, address: str, session_id: int, session_timeout: int
    ) -> None:
        self._sock = sock
        #: ``host:port`` of the server connected to.
        self.address = address
        #: The session id the server assigned.
        self.session_id = session_id
        #: The negotiated session timeout, in milliseconds.
        self.session_timeout = session_timeout
        self._decoder = FrameDecoder(MAX_REPLY)
        self._xid = 0
        self._last_send = time.monotonic()
        self._closed = False

    @property
    def local_address(self) -> str:
        """This end's IP address (what the server's ``ip`` ACL scheme sees, barring NAT)."""
        return str(self._sock.getsockname()[0])

    # --- connecting -----------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        servers: str,
        *,
        timeout: float = 10.0,
        session_timeout: int = 30_000,
        auth: Sequence[tuple[str, bytes]] = (),
    ) -> ZkClient:
        """Open a session with the first server of ``servers`` that accepts one.

        Args:
            servers: ``host:port``, or several separated by commas, tried in order.
            timeout: seconds allowed for connecting and, later, for each reply.
            session_timeout: the session timeout asked for, in milliseconds.
            auth: ``(scheme, credentials)`` pairs sent with ``addauth`` after the
                handshake, e.g. ``("digest", b"user:password")``.

        Raises:
            ZkClientError: no server accepted a session (every failure is named), or
                the server rejected a credential.
        """
        failures: list[str] = []
        for address in (part.strip() for part in servers.split(",")):
            if not address:
                continue
            host, port = parse_address(address)
            try:
                sock = socket.create_connection((host, port), timeout=timeout)
            except OSError as exc:
                failures.append(f"{address}: {exc.strerror or exc}")
                continue
            try:
                client = cls._handshake(sock, f"{host}:{port}", session_timeout)
            except (OSError, ZkClientError, ProtocolError) as exc:
                sock.close()
                failures.append(f"{address}: {exc}")
                continue
            try:
                for scheme, credentials in auth:
                    client._add_auth(scheme, credentials)
            except BaseException:
                client._abort()
                raise
            return client
        raise ZkClientError("cannot open a session: " + ("; ".join(failures) or "no server"))

    @classmethod
    def _handshake(cls, sock: socket.socket, address: str, session_timeout: int) -> ZkClient:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        request = ConnectRequest(PROTOCOL_VERSION, 0, session_timeout, 0, _NO_PASSWORD)
        sock.sendall(frame(request.to_bytes()))
        decoder = FrameDecoder(MAX_REPLY)
        while (payload := decoder.next_frame()) is None:
            data = sock.recv(65536)
            if not data:
                raise ZkClientError("the server closed the connection during the handshake")
            decoder.receive_data(data)
        response = ConnectResponse.from_bytes(payload)
        if response.time_out <= 0:
            raise ZkClientError("the server refused the session")
        client = cls(sock, address, response.session_id, response.time_out)
        client._decoder = decoder
        return client

    def _add_auth(self, scheme: str, credentials: bytes) -> None:
        header = RequestHeader(Xid.AUTH, OpCode.AUTH).to_bytes()
        self._send(frame(header + AuthPacket(0, scheme, credentials).to_bytes()))
        head = None
        while head is None:
            for reply in self._read_frames():
                if (candidate := _header(reply)).xid == Xid.AUTH:
                    head = candidate
        if head.err == ErrorCode.AUTH_FAILED:
            raise ZkClientError(f"the server rejected the {scheme} credentials (AuthFailed)")
        if head.err:
            raise ZkClientError(f"addauth {scheme} failed: {error_for_code(head.err)}")

    # --- requests --------------------------------------------------------------------

    def call_many(
        self, calls: Sequence[Call], *, window: int = WINDOW
    ) -> list[Record | CoordError]:
        """Send ``calls`` pipelined; their results in the same order.

        Args:
            calls: the requests, sent in this order (a server applies them in order).
            window: requests in flight at most.

        Returns:
            For each call its response record, or the :class:`CoordError` it failed with
            (``NoNodeError``, ``NodeExistsError``, ``NoAuthError``, ...).

        Raises:
            ZkClientError: the connection failed or a reply did not come in time.
        """
        results: list[Record | CoordError] = []
        count = len(calls)
        sent = 0
        first_xid = self._xid + 1
        out = bytearray()
        while len(results) < count:
            self._maybe_ping(out)
            while sent < count and sent - len(results) < window:
                call = calls[sent]
                self._xid += 1
                payload = RequestHeader(self._xid, call.op).to_bytes() + call.request.to_bytes()
                out += frame(payload)
                sent += 1
            if out:
                self._send(bytes(out))
                out.clear()
            for reply in self._read_frames():
                head = _header(reply)
                if head.xid in (Xid.PING, Xid.NOTIFICATION):
                    continue
                index = len(results)
                if head.xid != first_xid + index:
                    raise ZkClientError(
                        f"protocol error: reply xid {head.xid}, expected {first_xid + index}"
                    )
                call = calls[index]
                if head.err:
                    results.append(error_for_code(head.err, call.path))
                    continue
                try:
                    results.append(RESPONSE_TYPES[call.op].from_bytes(reply[_HEADER_SIZE:]))
                except ProtocolError as exc:
                    raise ZkClientError(
                        f"garbled reply to {call.op.name} {call.path}: {exc}"
                    ) from exc
        return results

    def call(self, op: OpCode, request: Record, path: str) -> Record:
        """Send one request and return its response.

        Raises:
            CoordError: the server answered with an error code.
            ZkClientError: the connection failed.
        """
        (result,) = self.call_many([Call(op, request, path)])
        if isinstance(result, CoordError):
            raise result
        return result

    def get_data(self, path: str) -> tuple[bytes | None, Stat]:
        """A node's data (None when created with null data) and Stat."""
        response = self.call(OpCode.GET_DATA, GetDataRequest(path, False), path)
        assert isinstance(response, GetDataResponse)
        return response.data, response.stat

    def get_children(self, path: str) -> list[str]:
        """A node's child names, in the server's order."""
        response = self.call(OpCode.GET_CHILDREN, GetChildrenRequest(path, False), path)
        assert isinstance(response, GetChildrenResponse)
        return list(response.children)

    def get_acl(self, path: str) -> tuple[tuple[ACL, ...], Stat]:
        """A node's ACL and Stat."""
        response = self.call(OpCode.GET_ACL, GetACLRequest(path), path)
        assert isinstance(response, GetACLResponse)
        return response.acl, response.stat

    def exists(self, path: str) -> Stat | None:
        """A node's Stat, or None when it does not exist."""
        try:
            response = self.call(OpCode.EXISTS, ExistsRequest(path, False), path)
        except NoNodeError:
            return None
        return response.stat  # type: ignore[attr-defined,no-any-return]

    def create(
        self,
        path: str,
        data: bytes | None,
        acl: Sequence[ACL],
        mode: CreateMode = CreateMode.PERSISTENT,
        ttl: int = -1,
    ) -> str:
        """Create a node; returns its path (with the sequence suffix, if sequential)."""
        op, request = create_call(path, data, acl, mode, ttl)
        response = self.call(op, request, path)
        return response.path  # type: ignore[attr-defined,no-any-return]

    def set_data(self, path: str, data: bytes | None, version: int = -1) -> Stat:
        """Replace a node's data if its version matches (-1: any); returns the new Stat."""
        response = self.call(OpCode.SET_DATA, SetDataRequest(path, data, version), path)
        return response.stat  # type: ignore[attr-defined,no-any-return]

    def set_acl(self, path: str, acl: Sequence[ACL], version: int = -1) -> Stat:
        """Replace a node's ACL if its aversion matches (-1: any); returns the new Stat."""
        response = self.call(OpCode.SET_ACL, SetACLRequest(path, tuple(acl), version), path)
        return response.stat  # type: ignore[attr-defined,no-any-return]

    # --- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """End the session (its ephemeral nodes go) and close the connection."""
        if self._closed:
            return
        try:
            self.call_many([Call(OpCode.CLOSE_SESSION, CloseSessionRequest(), "")])
        except (ZkClientError, OSError):
            pass
        finally:
            self._abort()

    def _abort(self) -> None:
        self._closed = True
        self._sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- I/O -------------------------------------------------------------------------

    def _maybe_ping(self, out: bytearray) -> None:
        if time.monotonic() - self._last_send > self.session_timeout / 3000:
            out += frame(RequestHeader(Xid.PING, OpCode.PING).to_bytes())

    def _send(self, data: bytes) -> None:
        if self._closed:
            raise ZkClientError("the connection is closed")
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self._abort()
            raise ZkClientError(f"sending to {self.address} failed: {exc}") from exc
        self._last_send = time.monotonic()

    def _read_frames(self) -> list[bytes]:
        """At least one frame: those buffered, else those one ``recv`` completes."""
        decoder = self._decoder
        while True:
            try:
                frames = decoder.frames()
            except ProtocolError as exc:
                self._abort()
                raise ZkClientError(f"protocol error from {self.address}: {exc}") from exc
            if frames:
                return frames
            try:
                data = self._sock.recv(1 << 18)
            except TimeoutError as exc:
                self._abort()
                raise ZkClientError(f"no reply from {self.address} in time") from exc
            except OSError as exc:
                self._abort()
                raise ZkClientError(f"reading from {self.address} failed: {exc}") from exc
            if not data:
                self._abort()
                raise ZkClientError(f"{self.address} closed the connection (session lost?)")
            decoder.receive_data(data)


def _header(reply: bytes) -> ReplyHeader:
    if len(reply) < _REPLY_HEADER.size:
        raise ZkClientError(f"garbled reply: {len(reply)} bytes, shorter than a header")
    return ReplyHeader(*_REPLY_HEADER.unpack_from(reply))


def create_call(
    path: str,
    data: bytes | None,
    acl: Sequence[ACL],
    mode: CreateMode = CreateMode.PERSISTENT,
    ttl: int = -1,
) -> tuple[OpCode, Record]:
    """The opcode and record creating a node of ``mode`` (``ttl`` for the TTL modes)."""
    if mode.is_ttl:
        return OpCode.CREATE_TTL, CreateTTLRequest(path, data, tuple(acl), int(mode), ttl)
    if mode.is_container:
        return OpCode.CREATE_CONTAINER, CreateRequest(path, data, tuple(acl), int(mode))
    return OpCode.CREATE, CreateRequest(path, data, tuple(acl), int(mode))
