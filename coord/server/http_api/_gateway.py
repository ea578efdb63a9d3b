"""The HTTP API's ZooKeeper sessions: in-process clients of the server's transport handler.

Theory of operation
-------------------
The HTTP API is a protocol gateway, not a second implementation of the tree: every HTTP
request becomes ZooKeeper requests on a session of coord's own client, whose byte stream
is an in-process pipe (:mod:`._streams`) handed to the server's transport handler exactly
like an accepted TCP connection. So a request takes the server's real path: ACL checks,
quotas, throttling, audit, per-session ordering, and in an ensemble forwarding of writes
to the leader.

The :class:`~coord.server.PeerInfo` given to the handler is the HTTP client's (its
address, and its verified TLS client certificate), so the ``ip`` and ``x509`` schemes see
the HTTP client. HTTP Basic credentials become ``addauth digest user:password`` on the
session. Sessions are therefore pooled per *identity* (client address, Basic credentials,
certificate): requests of one identity share one session (they are pipelined on it, in
order), and a pooled session unused for ``http_idle_timeout`` seconds is closed.

Sessions a client creates itself (``POST /v1/sessions``, for ephemeral nodes) are owned:
named by an unguessable token, usable only by the identity that created it (any address
with the same credentials and certificate), kept alive by ``PUT /v1/sessions/<token>``
and closed (its ephemeral nodes deleted) when the client deletes it or lets its timeout
pass without a keep-alive, as an etcd lease.

The pool holds at most ``http_max_sessions`` sessions; a new one first closes the least
recently used idle pooled session, and with none idle the request is refused (503).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.abc

from coord.client import Client
from coord.protocol import Id
from coord.protocol._errors import CoordError
from coord.server._acl import PeerInfo
from coord.server._http import HTTPError

if TYPE_CHECKING:
    from coord.server._config import ServerConfig
    from coord.server._transport import ConnectionHandler

__all__ = ["Gateway", "GatewaySession", "Identity"]

log = logging.getLogger("coord.server")

#: The session timeout pooled sessions ask for, in seconds (the server bounds it).
_POOLED_TIMEOUT: Final = 30.0
#: How long opening a session may take before the request gets 503.
_OPEN_TIMEOUT: Final = 10.0
_LABEL: Final = "http-gateway:1"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who an HTTP request is: what its session is pooled by.

    Attributes:
        host: the client's address (the ``ip`` scheme).
        port: the client's port (for logs only; not part of the identity).
        credentials: HTTP Basic ``(user, password)`` (the ``digest`` scheme), if any.
        certificate: the verified TLS client certificate, DER (the ``x509`` scheme).
        subject: that certificate's subject DN.
    """

    host: str
    port: int
    credentials: tuple[str, str] | None
    certificate: bytes | None
    subject: str | None

    @property
    def key(self) -> tuple[str, tuple[str, str] | None, bytes | None]:
        return (self.host, self.credentials, self.certificate)

    @property
    def owner_key(self) -> tuple[tuple[str, str] | None, bytes | None]:
        """What an owned session checks: credentials and certificate, not the address."""
        return (self.credentials, self.certificate)

    @property
    def peer(self) -> PeerInfo:
        return PeerInfo(self.host, self.port, self.subject, self.certificate)


class GatewaySession:
    """One ZooKeeper session held by the gateway.

    Attributes:
        client: the session's client (coord's SDK over the in-process stream).
        identity: whose session it is.
        token: the owned session's name (None for a pooled session).
        timeout: an owned session's keep-alive timeout in seconds.
    """

    def __init__(self, identity: Identity, token: str | None, timeout: float) -> None:
        self.identity = identity
        self.token = token
        self.timeout = timeout
        self.client: Client | None = None
        self.busy = 0
        self.last_used = anyio.current_time()
        self.stop = anyio.Event()
        self.closed = anyio.Event()

    @property
    def alive(self) -> bool:
        client = self.client
        return (
            client is not None
            and not self.stop.is_set()
            and (client.state is None or not client.state.is_final)
        )

    def auth_ids(self, server: Any) -> tuple[Id, ...]:
        """The identities the server gave this session (for filtering watch events)."""
        assert self.client is not None
        connection = server.by_session.get(self.client.session_id) if server else None
        if connection is None:
            return ()
        return tuple(connection.auth)


class Gateway:
    """The pool of sessions the HTTP API uses (see the module docstring).

    Args:
        config: the server configuration (pool bounds).
        handler: the server's connection handler.
        tg: where sessions and their server-side connections run.
    """

    def __init__(
        self, config: ServerConfig, handler: ConnectionHandler, tg: anyio.abc.TaskGroup
    ) -> None:
        self.config = config
        self.handler = handler
        self.tg = tg
        #: The running server, once ``coord_server_started`` gave it (for connection limits).
        self.server: Any = None
        self.pooled: dict[tuple[Any, ...], GatewaySession] = {}
        self.owned: dict[str, GatewaySession] = {}
        self._opening: dict[tuple[Any, ...], anyio.Lock] = {}

    def __len__(self) -> int:
        return len(self.pooled) + len(self.owned)

    # --- sessions --------------------------------------------------------------------------

    @asynccontextmanager
    async def session(
        self, identity: Identity, token: str | None = None
    ) -> AsyncIterator[GatewaySession]:
        """The session to serve a request of ``identity`` on (owned when ``token``).

        Raises:
            HTTPError: 404 unknown session; 401 the credentials were refused; 503 no
                session can be opened now.
        """
        if token is not None:
            session = self._owned(identity, token)
        else:
            session = await self._pooled(identity)
        session.busy += 1
        try:
            yield session
        finally:
            session.busy -= 1
            session.last_used = anyio.current_time()

    def _owned(self, identity: Identity, token: str) -> GatewaySession:
        session = self.owned.get(token)
        if session is None or session.identity.owner_key != identity.owner_key:
            raise HTTPError(
                404,
                "unknown_session",
                "no such session (it expired, was closed, or belongs to another identity); "
                "create one with POST /v1/sessions",
            )
        if not session.alive:
            self.owned.pop(token, None)
            raise HTTPError(410, "session_expired", "the session expired; create a new one")
        return session

    async def _pooled(self, identity: Identity) -> GatewaySession:
        key = identity.key
        session = self.pooled.get(key)
        if session is not None and session.alive:
            return session
        lock = self._opening.setdefault(key, anyio.Lock())
        try:
            async with lock:
                session = self.pooled.get(key)
                if session is not None and session.alive:
                    return session
                session = GatewaySession(identity, None, _POOLED_TIMEOUT)
                await self._open(session)
                self.pooled[key] = session
                return session
        finally:
            if not lock.locked() and self._opening.get(key) is lock:
                del self._opening[key]

    async def create_owned(self, identity: Identity, lease: float) -> GatewaySession:
        """Open a session owned by ``identity`` (``POST /v1/sessions``), closed after
        ``lease`` seconds without a request or keep-alive.

        Raises:
            HTTPError: as :meth:`session`.
        """
        session = GatewaySession(identity, secrets.token_urlsafe(18), lease)
        await self._open(session)
        self.owned[session.token or ""] = session
        return session

    async def close_owned(self, identity: Identity, token: str) -> None:
        """Close an owned session (its ephemeral nodes go).

        Raises:
            HTTPError: 404 unknown session.
        """
        session = self._owned(identity, token)
        self.owned.pop(token, None)
        await self._close(session)

    def keep_alive(self, identity: Identity, token: str) -> GatewaySession:
        """Restart an owned session's timeout.

        Raises:
            HTTPError: 404 unknown session, 410 it expired.
        """
        session = self._owned(identity, token)
        session.last_used = anyio.current_time()
        return session

    async def _open(self, session: GatewaySession) -> None:
        self._make_room()
        identity = session.identity
        server = self.server
        limit = self.config.max_client_connections
        if server is not None and limit and server.per_ip.get(identity.host, 0) >= limit:
            raise HTTPError(
                503,
                "too_many_connections",
                f"{identity.host} already has {limit} sessions (max_client_connections)",
                [("Retry-After", "1")],
            )
        try:
            with anyio.fail_after(_OPEN_TIMEOUT):
                await self.tg.start(self._run, session)
        except TimeoutError:
            raise HTTPError(
                503, "unavailable", "no session could be opened", [("Retry-After", "1")]
            ) from None
        except CoordError as exc:
            from coord.protocol._errors import AuthFailedError

            if isinstance(exc, AuthFailedError):
                raise HTTPError(
                    401,
                    "auth_failed",
                    "the credentials were refused",
                    [("WWW-Authenticate", 'Basic realm="coord"')],
                    zookeeper="AuthFailed",
                ) from None
            raise HTTPError(
                503, "unavailable", f"no session could be opened: {exc}", [("Retry-After", "1")]
            ) from None

    def _make_room(self) -> None:
        if len(self) < self.config.http_max_sessions:
            return
        idle = [s for s in self.pooled.values() if s.busy == 0]
        if not idle:
            raise HTTPError(
                503,
                "too_many_sessions",
                f"the HTTP API holds {len(self)} sessions (http_max_sessions); retry later",
                [("Retry-After", "1")],
            )
        oldest = min(idle, key=lambda s: s.last_used)
        self._forget(oldest)
        oldest.stop.set()

    def _forget(self, session: GatewaySession) -> None:
        if session.token is not None:
            if self.owned.get(session.token) is session:
                del self.owned[session.token]
        elif self.pooled.get(session.identity.key) is session:
            del self.pooled[session.identity.key]

    async def _close(self, session: GatewaySession) -> None:
        self._forget(session)
        session.stop.set()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            await session.closed.wait()

    async def _run(
        self, session: GatewaySession, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        """Hold ``session`` open until it is stopped."""
        from ._streams import memory_stream_pair

        identity = session.identity

        async def open_stream() -> anyio.abc.ByteStream:
            ours, theirs = memory_stream_pair()
            self.tg.start_soon(self._serve, theirs, identity.peer)
            return ours

        auth: list[tuple[str, bytes | str]] = []
        if identity.credentials is not None:
            user, password = identity.credentials
            auth.append(("digest", f"{user}:{password}"))
        client = Client(_LABEL, session_timeout=session.timeout, auth=auth, open_stream=open_stream)
        try:
            async with client:
                session.client = client
                task_status.started()
                await session.stop.wait()
        finally:
            self._forget(session)
            session.stop.set()
            session.closed.set()

    async def _serve(self, stream: anyio.abc.ByteStream, peer: PeerInfo) -> None:
        async with stream:
            try:
                await self.handler(stream, peer)
            except Exception:
                log.exception("HTTP API session for %s:%d failed", peer.host, peer.port)

    async def reap(self) -> None:
        """Close idle pooled sessions and owned sessions past their timeout, forever."""
        interval = min(1.0, self.config.http_idle_timeout / 4)
        while True:
            await anyio.sleep(interval)
            now = anyio.current_time()
            for session in list(self.pooled.values()):
                idle = now - session.last_used > self.config.http_idle_timeout
                if (session.busy == 0 and idle) or not session.alive:
                    self._forget(session)
                    session.stop.set()
            for session in list(self.owned.values()):
                expired = session.busy == 0 and now - session.last_used > session.timeout
                if expired or not session.alive:
                    log.info("HTTP API session %s expired", session.token)
                    self._forget(session)
                    session.stop.set()
