"""Links between the members of an ensemble: an authenticated handshake, framed messages.

Theory of operation
-------------------
Every member listens on its peer address and dials every other member. A link carries
frames one way only: a member *sends* on the connection it dialled and *receives* on the
connections it accepted. Two one-way links per pair need no rule for which of two
simultaneous dials survives (ZooKeeper's QuorumCnxManager keeps the one from the larger
id); messages are never duplicated across them.

Links are added and removed at runtime (:meth:`PeerNetwork.add_peer`,
:meth:`PeerNetwork.remove_peer`) as the membership changes; only members with a link may
dial in (anyone else fails the handshake, so a server started to join the ensemble is
refused until it has been added).

A link that breaks is dialled again with a growing back-off (50 ms to 1 s). What was
queued for a broken link is dropped: consensus retries what matters, and the driver learns
of the break through :attr:`PeerNetwork.generation` (forwarded writes sent on an older
generation of a link may be lost).

Authentication (a shared secret, so a stranger can neither join nor inject messages)::

    dialer   -> acceptor: MAGIC, dialer id, acceptor id, nonce_d (16 bytes)
    acceptor -> dialer:   nonce_a (16 bytes), HMAC-SHA256(secret, "acceptor" | ids | nonces)
    dialer   -> acceptor: HMAC-SHA256(secret, "dialer" | ids | nonces)

Each side proves it knows the secret over fresh nonces, so a recorded handshake cannot be
replayed. Frames follow: ``length (u32) | kind (u8) | payload``. The link is not
encrypted unless ``peer_tls`` is on (mutual TLS, certificates from one CA; the secret
handshake then runs inside it); otherwise keep peer traffic on a private network.

Wire codec of consensus messages: :func:`encode_raft` / :func:`decode_raft` (sans-IO,
tested alone).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from coord.protocol import ProtocolError

from ._raft import EntryKind, LogEntry, Message, MessageType, SnapshotMeta

__all__ = [
    "FRAME_FORWARD",
    "FRAME_LIVE",
    "FRAME_RAFT",
    "FRAME_RECONFIG",
    "FRAME_RECONFIG_RESULT",
    "MAX_PEER_FRAME",
    "PeerAuthError",
    "PeerNetwork",
    "decode_raft",
    "encode_raft",
    "frame",
]

log = logging.getLogger("coord.replication")

MAGIC = b"COORDPEER1"
#: Frame kinds.
FRAME_RAFT = 1  # a consensus message
FRAME_FORWARD = 2  # writes a member forwards to the leader (encoded entries, unstamped)
FRAME_LIVE = 3  # session ids a member saw alive (for the leader's expiry clock)
# 4, 5 and 6 carry snapshots (coord/server/_catchup.py).
FRAME_RECONFIG = 7  # a reconfig request on its way to the leader (an encoded entry)
FRAME_RECONFIG_RESULT = 8  # the leader refused a reconfig: tag (u64), error code (i32)

#: Largest frame accepted on a peer link (an append of many large entries).
MAX_PEER_FRAME = 256 * 1024 * 1024
_HELLO = struct.Struct(">10sII16s")
_NONCE = 16
_MAC = 32
_FRAME = struct.Struct(">IB")
_MSG = struct.Struct(">BIIQQQQ?QI")
_ENT = struct.Struct(">QQBI")
_SNAP = struct.Struct(">BQQI")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_OUT_LIMIT = 256 * 1024 * 1024


class PeerAuthError(Exception):
    """A peer failed the handshake (wrong secret, wrong member id, not a coord peer)."""


class _NotAMember(PeerAuthError):
    """The dialler is not (or no longer) a member: a server waiting to be added, or one
    that was removed."""


def frame(kind: int, payload: bytes) -> bytes:
    """One peer frame."""
    return _FRAME.pack(len(payload) + 1, kind) + payload


def encode_raft(m: Message) -> bytes:
    """The wire form of a consensus message (the payload of a ``FRAME_RAFT``)."""
    parts = [
        _MSG.pack(
            m.type,
            m.sender,
            m.to,
            m.term,
            m.log_term,
            m.index,
            m.commit,
            m.reject,
            m.reject_hint,
            len(m.entries),
        )
    ]
    pack = _ENT.pack
    for e in m.entries:
        parts.append(pack(e.index, e.term, e.kind, len(e.data)))
        parts.append(e.data)
    parts.append(_U32.pack(len(m.context)))
    parts.append(m.context)
    snap = m.snapshot
    if snap is None:
        parts.append(b"\0")
    else:
        parts.append(_SNAP.pack(1, snap.index, snap.term, len(snap.voters)))
        parts += [_U64.pack(v) for v in sorted(snap.voters)]
        parts.append(_U32.pack(len(snap.learners)))
        parts += [_U64.pack(v) for v in sorted(snap.learners)]
    return b"".join(parts)


def decode_raft(data: bytes | memoryview) -> Message:
    """Inverse of :func:`encode_raft`.

    Raises:
        ProtocolError: the bytes are not a consensus message.
    """
    view = memoryview(data)
    try:
        fields = _MSG.unpack_from(view, 0)
        mtype = MessageType(fields[0])
        offset = _MSG.size
        entries: list[LogEntry] = []
        for _ in range(fields[9]):
            index, term, kind, size = _ENT.unpack_from(view, offset)
            offset += _ENT.size
            if offset + size > len(view):
                raise ProtocolError("truncated entry in a consensus message")
            entries.append(
                LogEntry(index, term, bytes(view[offset : offset + size]), EntryKind(kind))
            )
            offset += size
        (size,) = _U32.unpack_from(view, offset)
        offset += 4
        context = bytes(view[offset : offset + size])
        if len(context) != size:
            raise ProtocolError("truncated context in a consensus message")
        offset += size
        snapshot = None
        if view[offset] == 1:
            _, index, term, count = _SNAP.unpack_from(view, offset)
            offset += _SNAP.size
            voters = [_U64.unpack_from(view, offset + 8 * k)[0] for k in range(count)]
            offset += 8 * count
            (count,) = _U32.unpack_from(view, offset)
            offset += 4
            learners = [_U64.unpack_from(view, offset + 8 * k)[0] for k in range(count)]
            offset += 8 * count
            snapshot = SnapshotMeta(index, term, frozenset(voters), frozenset(learners))
        elif view[offset] == 0:
            offset += 1
        else:
            raise ProtocolError(f"bad snapshot flag {view[offset]} in a consensus message")
    except (struct.error, ValueError, IndexError) as exc:
        raise ProtocolError(f"bad consensus message: {exc}") from None
    if offset != len(view):
        raise ProtocolError(f"{len(view) - offset} bytes after a consensus message")
    return Message(
        type=mtype,
        sender=fields[1],
        to=fields[2],
        term=fields[3],
        log_term=fields[4],
        index=fields[5],
        commit=fields[6],
        reject=fields[7],
        reject_hint=fields[8],
        entries=tuple(entries),
        snapshot=snapshot,
        context=context,
    )


def _mac(secret: bytes, role: bytes, dialer: int, acceptor: int, nd: bytes, na: bytes) -> bytes:
    msg = role + struct.pack(">II", dialer, acceptor) + nd + na
    return hmac.new(secret, msg, hashlib.sha256).digest()


class _Receiver:
    """Reassembles frames from a byte stream."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += await self.stream.receive()
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out


class _Link:
    """The outgoing half of a pair: a queue and the task that dials and sends it."""

    def __init__(self, peer: int, address: tuple[str, int]) -> None:
        self.peer = peer
        self.address = address
        self.out = bytearray()
        self.wakeup = anyio.Event()
        self.connected = False
        #: Set when the peer dialled us: it is up, so redial now instead of backing off.
        self.redial = anyio.Event()
        #: Cancels the link's dial loop when the peer is removed.
        self.scope: anyio.CancelScope | None = None

    async def back_off(self, delay: float) -> None:
        """Wait ``delay`` seconds before redialling, or less if the peer shows up."""
        with anyio.move_on_after(delay):
            await self.redial.wait()
        self.redial = anyio.Event()


class PeerNetwork:
    """This member's links to the others.

    Args:
        my_id: this member's id.
        addresses: every member's peer address by id (this member's included: it is the
            address listened on).
        secret: the ensemble's shared secret.
        on_frame: called with ``(sender id, kind, payload)`` for every frame received, in
            order per sender, from the receiving task (it must not block).
        bind_host: the address outgoing links are dialled from (``None``: any).
        on_link_up: called with a peer's id each time the link to it is (re)established.
        on_incoming_down: called with a peer's id when a link it dialled to us closes.
        server_ssl: with ``client_ssl``, links run inside mutual TLS: accepted links
            present this context's certificate and require one from the dialler.
        client_ssl: what dialled links present and verify the accepting member with.
    """

    def __init__(
        self,
        my_id: int,
        addresses: dict[int, tuple[str, int]],
        secret: bytes,
        on_frame: Callable[[int, int, memoryview], None],
        *,
        bind_host: str | None = None,
        on_link_up: Callable[[int], None] | None = None,
        on_incoming_down: Callable[[int], None] | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.my_id = my_id
        self.on_link_up = on_link_up
        self.on_incoming_down = on_incoming_down
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.addresses = dict(addresses)
        self.secret = secret
        self.on_frame = on_frame
        self.bind_host = bind_host
        self._links = {
            peer: _Link(peer, address) for peer, address in self.addresses.items() if peer != my_id
        }
        #: Per peer, how many times the outgoing link has been (re)established.
        self.generation: dict[int, int] = dict.fromkeys(self._links, 0)
        #: Peers whose incoming link is up (they can reach us).
        self.incoming: dict[int, int] = {}
        #: Cancel scopes of the accepted links, by peer (closed when it is removed).
        self._accepted: dict[int, set[anyio.CancelScope]] = {}
        self.bound: tuple[str, int] | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._strangers: dict[str, float] = {}
        #: When servers that are not members last dialled in (unauthenticated).
        self._knocks: dict[int, float] = {}

    # --- membership ---------------------------------------------------------------------

    @property
    def peers(self) -> frozenset[int]:
        """The members this one keeps links with."""
        return frozenset(self._links)

    def knocking(self, peer: int, within: float = 3.0) -> bool:
        """Whether ``peer``, not a member, dialled in within the last ``within`` seconds:
        it is probably up, waiting to be added (unauthenticated: a hint for the reconfig
        availability check, never for safety)."""
        when = self._knocks.get(peer)
        return when is not None and time.monotonic() - when <= within

    def add_peer(self, peer: int, address: tuple[str, int]) -> None:
        """Keep a link to a new member (dialled at once once :meth:`serve` runs); a known
        peer at a new address is redialled there."""
        if peer == self.my_id:
            return
        link = self._links.get(peer)
        if link is not None:
            if link.address == address:
                return
            self.remove_peer(peer)
        self.addresses[peer] = address
        link = self._links[peer] = _Link(peer, address)
        self.generation.setdefault(peer, 0)
        if self._tg is not None:
            self._tg.start_soon(self._dial_loop, link)
        log.info("peer link to member %d (%s:%d) added", peer, *address)

    def remove_peer(self, peer: int) -> None:
        """Drop the links with a member that left: stop dialling it, close its incoming
        links, refuse it from now on. What was queued for it is dropped."""
        link = self._links.pop(peer, None)
        self.addresses.pop(peer, None)
        if link is None:
            return
        link.connected = False
        link.out = bytearray()
        if link.scope is not None:
            link.scope.cancel()
        for scope in self._accepted.pop(peer, set()):
            scope.cancel()
        log.info("peer link to member %d removed", peer)

    # --- sending ------------------------------------------------------------------------

    def send(self, peer: int, data: bytes) -> None:
        """Queue a frame for ``peer``; dropped if the link is down."""
        link = self._links.get(peer)
        if link is None or not link.connected:
            return
        if len(link.out) > _OUT_LIMIT:
            log.warning("peer %d is not reading; dropping its link", peer)
            link.connected = False
            link.out = bytearray()
            link.wakeup.set()
            return
        link.out += data
        link.wakeup.set()

    def queued(self, peer: int) -> int:
        """Bytes waiting to be sent to ``peer``."""
        link = self._links.get(peer)
        return 0 if link is None else len(link.out)

    def connected(self, peer: int) -> bool:
        link = self._links.get(peer)
        return link is not None and link.connected

    # --- running ------------------------------------------------------------------------

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[Any] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen for peers and keep a link to each; runs until cancelled."""
        host, port = self.addresses[self.my_id]
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        async with listener, anyio.create_task_group() as tg:
            sockname = listener.extra(anyio.abc.SocketAttribute.local_address)
            self.bound = (str(sockname[0]), int(sockname[1]))
            self._tg = tg
            for link in self._links.values():
                tg.start_soon(self._dial_loop, link)
            task_status.started(self.bound)
            await listener.serve(self._accept)

    async def _accept(self, socket_stream: anyio.abc.SocketStream) -> None:
        peer = 0
        stream: anyio.abc.ByteStream = socket_stream
        try:
            if self.server_ssl is not None:
                with anyio.fail_after(5):
                    stream = await TLSStream.wrap(
                        socket_stream,
                        server_side=True,
                        ssl_context=self.server_ssl,
                        standard_compatible=False,
                    )
            receiver = _Receiver(stream)
            with anyio.fail_after(5):
                hello = await receiver.exactly(_HELLO.size)
                magic, dialer, acceptor, nonce_d = _HELLO.unpack(hello)
                if magic != MAGIC:
                    raise PeerAuthError("not a coord peer")
                if acceptor != self.my_id:
                    raise PeerAuthError(
                        f"peer says it is {dialer} dialling {acceptor}; this is {self.my_id}"
                    )
                if dialer not in self._links:
                    # A server waiting to be added (or a removed one). Refused before the
                    # secret is checked, so that its dialler backs off (a link that
                    # completed the handshake and then closed would be redialled at once):
                    # a knock is only a hint that it is up, never trusted for safety.
                    self._knocks[dialer] = time.monotonic()
                    raise _NotAMember(f"server {dialer} is not (or no longer) a member")
                nonce_a = os.urandom(_NONCE)
                await stream.send(
                    nonce_a + _mac(self.secret, b"acceptor", dialer, acceptor, nonce_d, nonce_a)
                )
                proof = await receiver.exactly(_MAC)
                expected = _mac(self.secret, b"dialer", dialer, acceptor, nonce_d, nonce_a)
                if not hmac.compare_digest(proof, expected):
                    raise PeerAuthError(f"peer claiming id {dialer} does not know the secret")
            peer = dialer
            self.incoming[peer] = self.incoming.get(peer, 0) + 1
            link = self._links[peer]
            if not link.connected:
                link.redial.set()  # it is up (it restarted?): dial it back at once
            on_frame = self.on_frame
            buffer = receiver.buffer
            with anyio.CancelScope() as scope:
                self._accepted.setdefault(peer, set()).add(scope)
                try:
                    while True:
                        while len(buffer) >= 5:
                            size, kind = _FRAME.unpack_from(buffer, 0)
                            if size < 1 or size > MAX_PEER_FRAME:
                                raise ProtocolError(f"bad peer frame length {size} from {peer}")
                            if len(buffer) < 4 + size:
                                break
                            payload = memoryview(bytes(buffer[5 : 4 + size]))
                            del buffer[: 4 + size]
                            on_frame(peer, kind, payload)
                        buffer += await stream.receive()
                finally:
                    self._accepted.get(peer, set()).discard(scope)
        except _NotAMember as exc:
            now = time.monotonic()
            if now - self._strangers.get(str(exc), -60.0) >= 60.0:  # once a minute each
                self._strangers[str(exc)] = now
                log.info("refused peer link: %s", exc)
        except (PeerAuthError, ssl.SSLError) as exc:
            remote = socket_stream.extra(anyio.abc.SocketAttribute.remote_address, None)
            log.warning("refused peer link from %s: %s", remote, exc)
        except TimeoutError:
            log.warning("peer link handshake timed out")
        except ProtocolError as exc:
            log.warning("closing peer link: %s", exc)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            if peer:
                self.incoming[peer] -= 1
                if self.on_incoming_down is not None:
                    self.on_incoming_down(peer)
            await stream.aclose()

    async def _dial_loop(self, link: _Link) -> None:
        with anyio.CancelScope() as scope:
            link.scope = scope
            if link.peer in self._links and self._links[link.peer] is link:
                await self._dial_forever(link)

    async def _dial_forever(self, link: _Link) -> None:
        delay = 0.05
        while True:
            try:
                stream = await self._dial(link)
            except (
                OSError,
                TimeoutError,
                PeerAuthError,
                ssl.SSLError,
                anyio.EndOfStream,
                anyio.BrokenResourceError,
                anyio.ClosedResourceError,
            ) as exc:
                if isinstance(exc, PeerAuthError):
                    log.error("peer %d refused us: %s", link.peer, exc)
                elif delay >= 1.0:
                    log.debug("cannot reach peer %d: %s", link.peer, exc)
                await link.back_off(delay)
                delay = min(1.0, delay * 2)
                continue
            delay = 0.05
            self.generation[link.peer] += 1
            link.connected = True
            link.out = bytearray()
            if self.on_link_up is not None:
                self.on_link_up(link.peer)
            log.info("link to peer %d up", link.peer, extra={"peer": link.peer, "link": "up"})
            try:
                # No exception may leave the task group: it would come out as an
                # ExceptionGroup and take the whole server down with this one link.
                async with stream, anyio.create_task_group() as tg:
                    tg.start_soon(self._watch_close, link, stream, tg.cancel_scope)
                    with contextlib.suppress(
                        anyio.BrokenResourceError, anyio.ClosedResourceError, OSError
                    ):
                        await self._send_loop(link, stream)
                    tg.cancel_scope.cancel()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass  # closing a broken stream
            finally:
                link.connected = False
                link.out = bytearray()
            log.info("link to peer %d down", link.peer, extra={"peer": link.peer, "link": "down"})
            await link.back_off(delay)

    async def _watch_close(
        self, link: _Link, stream: anyio.abc.ByteStream, scope: anyio.CancelScope
    ) -> None:
        """The peer never sends on a link we dialled: a read ends only when it closes (its
        process died, it restarted), which we learn at once instead of at the next send."""
        with contextlib.suppress(
            anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError
        ):
            while await stream.receive():
                pass
        link.connected = False
        link.wakeup.set()
        scope.cancel()

    async def _dial(self, link: _Link) -> anyio.abc.ByteStream:
        host, port = link.address
        with anyio.fail_after(2):
            stream: anyio.abc.ByteStream
            if self.client_ssl is None:
                stream = await anyio.connect_tcp(host, port, local_host=self.bind_host)
            else:
                stream = await anyio.connect_tcp(
                    host,
                    port,
                    local_host=self.bind_host,
                    ssl_context=self.client_ssl,
                    tls_standard_compatible=False,
                )
            try:
                receiver = _Receiver(stream)
                nonce_d = os.urandom(_NONCE)
                await stream.send(_HELLO.pack(MAGIC, self.my_id, link.peer, nonce_d))
                answer = await receiver.exactly(_NONCE + _MAC)
                nonce_a, proof = answer[:_NONCE], answer[_NONCE:]
                expected = _mac(self.secret, b"acceptor", self.my_id, link.peer, nonce_d, nonce_a)
                if not hmac.compare_digest(proof, expected):
                    raise PeerAuthError(f"member {link.peer} does not know the secret")
                await stream.send(
                    _mac(self.secret, b"dialer", self.my_id, link.peer, nonce_d, nonce_a)
                )
            except BaseException:
                await stream.aclose()
                raise
        return stream

    async def _send_loop(self, link: _Link, stream: anyio.abc.ByteStream) -> None:
        while link.connected:
            if not link.out:
                link.wakeup = anyio.Event()
                await link.wakeup.wait()
                continue
            data = link.out
            link.out = bytearray()
            await stream.send(bytes(data))
