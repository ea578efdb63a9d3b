"""The async client: the anyio driver around :class:`~coord.client._core.ClientCore`.

Theory of operation
-------------------
A :class:`Client` owns one task group for its whole life. In it, a *supervisor* task
connects to the servers in turn (the connect string's hosts, shuffled once) and, for each
TCP connection, runs three tasks in a per-connection scope: the **reader** (feeds the
core, dispatches replies and watch events), the **writer** (the only task that writes to
the socket; everyone else appends to the connection's buffer and wakes it) and the
**timer** (pings and dead-peer detection, as the core computes them). When any of them
fails, the scope is cancelled: the connection is gone, every request in flight fails with
:class:`~coord.ConnectionLossError`, the state becomes ``SUSPENDED`` and the supervisor
connects to the next server with the same session id, password and last zxid.

A request is no task: the caller encodes it through the core, registers a small
:class:`_Call` under its xid, hands the bytes to the writer and waits on the call's event;
the reader completes it. Cancelling the caller abandons the call -- the reply is still
consumed in order and dropped.

Retries are the caller's loop (:meth:`Client._retrying`), governed by
:class:`~coord.client.RetryPolicy`; each attempt first waits for a usable connection, so
an operation issued while ``SUSPENDED`` simply waits for ``RECONNECTED``. The session is
given up (``LOST``) when a server says it expired, or when the client could not talk to
any server for the whole negotiated session timeout -- by then the servers have expired it
too. The client never creates a new session by itself: state of the old one (ephemeral
nodes, watches, locks) is gone, and pretending otherwise is how applications get
split-brained. Open a new client instead.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import ssl
import struct
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Literal, Self, TypeVar, overload

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from coord.protocol import (
    ACL,
    AddWatchRequest,
    AuthFailedError,
    BadVersionError,
    ClientInfo,
    CloseSessionRequest,
    ConnectionLossError,
    CoordError,
    Create2Response,
    CreateResponse,
    DeleteRequest,
    EmptyResponse,
    ErrorCode,
    EventType,
    ExistsRequest,
    ExistsResponse,
    GetACLRequest,
    GetACLResponse,
    GetAllChildrenNumberRequest,
    GetAllChildrenNumberResponse,
    GetChildren2Request,
    GetChildren2Response,
    GetChildrenRequest,
    GetChildrenResponse,
    GetDataRequest,
    GetDataResponse,
    GetEphemeralsRequest,
    GetEphemeralsResponse,
    KeeperState,
    MultiOp,
    MultiRequest,
    MultiResponse,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    NotReadOnlyError,
    OpCode,
    OperationTimeoutError,
    ProtocolError,
    ReconfigRequest,
    Record,
    RemoveWatchesRequest,
    SessionExpiredError,
    SetACLRequest,
    SetACLResponse,
    SetDataRequest,
    SetDataResponse,
    Stat,
    SyncRequest,
    ThrottledOpError,
    WatcherType,
    WhoAmIRequest,
    WhoAmIResponse,
    error_for_code,
)

from ._core import (
    AuthReply,
    ClientCore,
    Connected,
    Event,
    Phase,
    Reply,
    SessionExpired,
    WatchesRestored,
    WatchEvent,
)
from ._hosts import (
    HostPolicy,
    Probe,
    first_preferred,
    is_write,
    parse_isro,
    parse_zones,
    probe_targets,
)
from ._paths import Chroot, HostPort, join_path, parent_path, parse_connect_string, validate_path
from ._registry import WatchKind
from ._retry import RetryPolicy
from ._tls import TlsOptions, tls_context
from ._transaction import (
    GetData,
    ReadOp,
    ReadResult,
    Transaction,
    create_op,
    read_ops,
)
from ._types import OPEN_ACL_UNSAFE, ClientClosedError, ConnectionState, WatchedEvent
from ._watch import OneShotWatch, WatchStream

__all__ = ["Client", "connect"]

log = logging.getLogger("coord.client")

T = TypeVar("T")
R = TypeVar("R", bound=Record)

_Watcher = OneShotWatch | WatchStream
#: The node holding the ensemble's configuration (never under the chroot).
CONFIG_PATH = "/zookeeper/config"
_RETRYABLE = (ConnectionLossError, OperationTimeoutError, ThrottledOpError)
_ABORT_LINGER = struct.pack("ii", 1, 0)
#: Longest a close waits for the server to confirm the session's end.
_CLOSE_TIMEOUT = 2.0
#: Largest pause between two rounds of connection attempts over all servers.
_MAX_RECONNECT_DELAY = 1.0
#: Longest a probe of a better server (TCP connect, ``isro``) may take.
_PROBE_TIMEOUT = 2.0
#: Longest a planned move waits for a moment with no request in flight.
_QUIET_WAIT = 2.0


class _Move(ConnectionLossError):
    """Why a connection was closed on purpose: the session moves to a better server."""


class _Call:
    """A request in flight: completed by the reader, awaited by the caller."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: Reply | AuthReply | None = None
        self.error: CoordError | None = None

    def set(self, result: Reply | AuthReply) -> None:
        self.result = result
        self.done.set()

    def fail(self, error: CoordError) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

    async def wait(self) -> Reply | AuthReply:
        await self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class _Connection:
    """One TCP connection: its stream, its output buffer and the scope of its tasks."""

    __slots__ = (
        "connected",
        "error",
        "host",
        "out",
        "priming",
        "ready",
        "retime",
        "scope",
        "stream",
        "wakeup",
    )

    def __init__(self, stream: anyio.abc.ByteStream, host: HostPort) -> None:
        self.stream = stream
        self.host = host
        self.ready = anyio.Event()
        self.out = bytearray()
        self.wakeup = anyio.Event()
        #: Set when the core's timers may have moved earlier (the handshake completed):
        #: the timer task recomputes its sleep instead of finishing the old one.
        self.retime = anyio.Event()
        self.scope = anyio.CancelScope()
        self.error: BaseException | None = None
        self.priming = 0
        self.connected: Connected | None = None

    def send(self, data: bytes) -> None:
        if data:
            self.out += data
            self.wakeup.set()

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.scope.cancel()


class _StateStream:
    """``Client.states()``: the current state, then every change, ending after a final one."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._queue: deque[ConnectionState] = deque()
        self._wakeup = anyio.Event()
        self._done = False
        if client._state is not None:
            self._queue.append(client._state)
        client._state_streams.add(self)

    def _push(self, state: ConnectionState) -> None:
        self._queue.append(state)
        self._wakeup.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ConnectionState:
        while True:
            if self._queue:
                state = self._queue.popleft()
                if state.is_final:
                    self._close()
                return state
            if self._done:
                raise StopAsyncIteration
            self._wakeup = anyio.Event()
            await self._wakeup.wait()

    def _close(self) -> None:
        self._done = True
        self._client._state_streams.discard(self)

    async def aclose(self) -> None:
        """Stop receiving states."""
        self._close()
        self._queue.clear()
        self._wakeup.set()


def _as_bytes(value: bytes | bytearray | memoryview | str, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


class Client:
    """An async ZooKeeper/coord client; create it with :func:`connect`.

    Every operation is a coroutine and works under asyncio and trio. None takes a
    timeout: bound a call with ``anyio.fail_after``. Operations issued while the
    connection is down wait for it to come back (or for the session to be lost).
    Operations that are safe to repeat are retried after a connection loss according to
    the client's :class:`RetryPolicy` (see "Retries" in ``docs/client.md``).

    Paths are absolute and relative to the connect string's chroot, if any. Node data is
    ``bytes``; a node created with null data (by another client) reads as ``b""``.
    """

    def __init__(
        self,
        hosts: str,
        *,
        session_timeout: float = 10.0,
        auth: Sequence[tuple[str, bytes | str]] = (),
        read_only: bool = False,
        retry: RetryPolicy | None = None,
        zones: Mapping[str, str] | None = None,
        zone: str | None = None,
        probe_interval: float = 10.0,
        tls: TlsOptions | ssl.SSLContext | bool | None = None,
        open_stream: Callable[[], Awaitable[anyio.abc.ByteStream]] | None = None,
    ) -> None:
        parsed = parse_connect_string(hosts)
        self._open_stream = open_stream
        if not session_timeout > 0:
            raise ValueError("session_timeout must be positive")
        if not probe_interval > 0:
            raise ValueError("probe_interval must be positive")
        self._policy = HostPolicy(parsed.hosts, parse_zones(zones), zone)
        self._probe_interval = float(probe_interval)
        self._tls = tls_context(tls)
        self._tls_hostname = tls.server_hostname if isinstance(tls, TlsOptions) else None
        #: The better server a probe found: the next round starts with it.
        self._move_to: HostPort | None = None
        #: A planned move is under way: SUSPENDED is only reported if it fails.
        self._moving = False
        self._connect_string = hosts
        self._hosts = parsed.hosts
        self._chroot = Chroot(parsed.chroot)
        self._requested_timeout = float(session_timeout)
        self._retry_policy = retry if retry is not None else RetryPolicy()
        self._core: ClientCore[_Watcher] = ClientCore(
            max(1, round(session_timeout * 1000)), read_only=read_only
        )
        for scheme, credentials in auth:
            pair = (scheme, _as_bytes(credentials, "credentials"))
            if pair not in self._core.credentials:
                self._core.credentials.append(pair)
        self._random = random.Random()
        self._state: ConnectionState | None = None
        self._final: tuple[type[CoordError], str] | None = None
        self._fatal: CoordError | None = None
        self._listeners: list[Callable[[ConnectionState], object]] = []
        self._state_streams: set[_StateStream] = set()
        self._streams: set[WatchStream] = set()
        self._calls: dict[int, _Call] = {}
        self._conn: _Connection | None = None
        self._ready_conn: _Connection | None = None
        self._changed: anyio.Event | None = None
        self._stack: AsyncExitStack | None = None
        self._supervisor_scope: anyio.CancelScope | None = None
        self._task_status: anyio.abc.TaskStatus[None] | None = None
        self._persistent_supported: bool | None = None
        self._last_heard = 0.0
        self._entered = False

    def __repr__(self) -> str:
        state = self._state.value if self._state else "new"
        return f"<Client {self._connect_string!r} {state} session=0x{self.session_id:x}>"

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Connect and establish a session.

        Retries the servers in turn until one accepts, for up to the session timeout.

        Raises:
            ConnectionLossError: no server could be reached within the session timeout.
            AuthFailedError: a server rejected the credentials given to :func:`connect`.
        """
        if self._entered:
            raise RuntimeError("a Client can only be used once; call coord.connect() again")
        self._entered = True
        self._changed = anyio.Event()
        self._supervisor_scope = anyio.CancelScope()
        stack = AsyncExitStack()
        tg = await stack.enter_async_context(anyio.create_task_group())
        try:
            await tg.start(self._supervise)
        except BaseException:
            tg.cancel_scope.cancel()
            await stack.aclose()
            self._finish(ConnectionState.CLOSED, ClientClosedError, "the client failed to connect")
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.close()
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        if exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class()):
            # The body's own exception must not go through the task group, which would
            # wrap it in an ExceptionGroup: the background tasks are already cancelled.
            await stack.__aexit__(None, None, None)
            return None
        return await stack.__aexit__(exc_type, exc, tb)

    async def close(self) -> None:
        """Close the session (its ephemeral nodes are deleted) and the client.

        Waits briefly for the server to confirm; runs shielded from cancellation.
        Idempotent. State becomes ``CLOSED``; later operations raise
        :class:`ClientClosedError`.
        """
        if not self._entered or self._state is ConnectionState.CLOSED:
            return
        with anyio.CancelScope(shield=True):
            conn = self._ready_conn
            if conn is not None and self._final is None:
                with anyio.move_on_after(_CLOSE_TIMEOUT), contextlib.suppress(CoordError):
                    await self._call(OpCode.CLOSE_SESSION, CloseSessionRequest())
            self._finish(ConnectionState.CLOSED, ClientClosedError, "the client is closed")
            # Cancel the supervisor only: cancelling the task group's own scope would also
            # cancel the rest of an `async with` body that calls close().
            if self._supervisor_scope is not None:
                self._supervisor_scope.cancel()

    # --- state ----------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState | None:
        """The connection state (``None`` before the client is entered)."""
        return self._state

    @property
    def session_id(self) -> int:
        """The session id (0 before the first connection)."""
        return self._core.session_id

    @property
    def session_password(self) -> bytes:
        """The session password the server issued (to re-attach the session elsewhere)."""
        return self._core.passwd

    @property
    def session_timeout(self) -> float:
        """The session timeout in seconds: negotiated with the server once connected."""
        if self._core.timeout:
            return self._core.timeout / 1000
        return self._requested_timeout

    @property
    def last_contact(self) -> float:
        """When a server was last heard from, on anyio's clock (``anyio.current_time()``).

        Recipes use it to bound how long a hold may be trusted while suspended.
        """
        return self._last_heard

    @property
    def read_only(self) -> bool:
        """Whether the current server is in read-only mode (only with ``read_only=True``)."""
        return self._core.read_only

    @property
    def last_zxid(self) -> int:
        """The highest zxid the client has seen."""
        return self._core.last_zxid

    @property
    def server(self) -> str | None:
        """The ``host:port`` of the server currently connected, if any."""
        conn = self._ready_conn
        return str(conn.host) if conn is not None else None

    @property
    def zone(self) -> str | None:
        """The client's zone (``None``: no zone preference)."""
        return self._policy.zone

    @property
    def chroot(self) -> str:
        """The chroot of the connect string (``""`` if none)."""
        return self._chroot.prefix

    async def wait_connected(self) -> None:
        """Wait until the client is connected (``CONNECTED`` or ``RECONNECTED``).

        Raises:
            SessionExpiredError: the session was lost.
            ClientClosedError: the client was closed.
        """
        await self._wait_ready()

    def states(self) -> _StateStream:
        """An async iterator of connection states: the current one, then each change.

        It ends after yielding ``LOST`` or ``CLOSED``::

            async for state in client.states():
                if state is ConnectionState.SUSPENDED:
                    ...
        """
        return _StateStream(self)

    def add_listener(self, listener: Callable[[ConnectionState], object]) -> None:
        """Call ``listener(state)`` in the event loop on every state change.

        Listeners must not block; exceptions they raise are logged and ignored.
        """
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[ConnectionState], object]) -> None:
        """Remove a listener added with :meth:`add_listener` (no error if absent)."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def _set_state(self, state: ConnectionState) -> None:
        current = self._state
        reopening = current is ConnectionState.LOST and state is ConnectionState.CLOSED
        if current is not None and current.is_final and not reopening:
            return
        if state is self._state:
            return
        log.info("client %s: %s", self._connect_string, state.value)
        self._state = state
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:
                log.exception("connection state listener %r failed", listener)
        for stream in list(self._state_streams):
            stream._push(state)
        changed = self._changed
        self._changed = anyio.Event()
        if changed is not None:
            changed.set()

    def _finish(self, state: ConnectionState, error: type[CoordError], message: str) -> None:
        """Enter a final state: fail everything waiting and end every watch."""
        if self._final is None or state is ConnectionState.CLOSED:
            self._final = (error, message)
        for watcher in self._core.close():
            watcher._end(self._final_error())
        for stream in list(self._streams):
            stream._end(self._final_error())
        calls, self._calls = self._calls, {}
        for call in calls.values():
            call.fail(self._final_error())
        self._ready_conn = None
        if self._conn is not None:
            self._conn.fail(self._final_error())
        self._set_state(state)

    def _final_error(self) -> CoordError:
        assert self._final is not None
        cls, message = self._final
        return cls(message)

    async def _wait_ready(self) -> _Connection:
        while True:
            if self._final is not None:
                raise self._final_error()
            conn = self._ready_conn
            if conn is not None:
                return conn
            if self._changed is None:
                raise RuntimeError("the client is not open: use `async with coord.connect(...)`")
            await self._changed.wait()

    # --- the supervisor and the connection tasks ------------------------------------------

    async def _supervise(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        self._task_status = task_status
        assert self._supervisor_scope is not None
        with self._supervisor_scope:
            await self._connect_loop()

    async def _connect_loop(self) -> None:
        core = self._core
        begin = anyio.current_time()
        self._last_heard = begin
        failed_rounds = 0
        last_error: BaseException | None = None
        round_: list[HostPort] = []
        while True:
            if self._session_given_up():
                return
            if not round_:
                # Local zone first (see _hosts.py), or the server a probe found.
                round_ = first_preferred(self._policy.round(self._random), self._move_to)
                self._move_to = None
            host = round_.pop(0)
            timeout = self._connect_timeout(len(self._hosts))
            stream: anyio.abc.ByteStream | None = None
            was_ready = False
            started = anyio.current_time()
            try:
                with anyio.fail_after(timeout):
                    stream = await self._open(host)
            except (OSError, TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
                last_error = _root_cause(exc)
                log.debug("cannot connect to %s: %s", host, last_error)
            if stream is not None:
                handshake = max(0.001, timeout - (anyio.current_time() - started))
                error, was_ready = await self._run_connection(stream, host, handshake)
                if error is not None:
                    last_error = error
                if self._final is not None or core.phase in (Phase.EXPIRED, Phase.CLOSED):
                    return
                if self._fatal is not None:
                    if self._task_status is not None:
                        raise self._fatal
                    self._finish(ConnectionState.LOST, type(self._fatal), str(self._fatal))
                    return
            if was_ready:
                # Start a new round from the preferred servers: at once after a planned
                # move, after a short pause after a loss (as after a failed round).
                failed_rounds = 0
                round_ = []
                if not self._moving:
                    await anyio.sleep(0.05 * (0.5 + self._random.random() / 2))
                continue
            if self._moving:
                # The planned move failed: now the client really is disconnected.
                self._moving = False
                self._set_state(ConnectionState.SUSPENDED)
            now = anyio.current_time()
            if core.session_id and self._task_status is None:
                if self._session_given_up():
                    return
            elif now - begin >= self._requested_timeout:
                raise ConnectionLossError(
                    f"could not connect to {self._connect_string!r} within "
                    f"{self._requested_timeout:g} s: {_describe(last_error)}"
                ) from last_error
            if not round_:
                failed_rounds += 1
                delay = min(_MAX_RECONNECT_DELAY, 0.025 * 2**failed_rounds)
                await anyio.sleep(delay * (0.5 + self._random.random() / 2))

    async def _open(self, host: HostPort) -> anyio.abc.ByteStream:
        """A TCP connection to ``host``, wrapped in TLS when the client has TLS options
        (or the stream ``open_stream`` gives, when the client was made with one)."""
        if self._open_stream is not None:
            return await self._open_stream()
        if self._tls is None:
            return await anyio.connect_tcp(host.host, host.port)
        return await anyio.connect_tcp(
            host.host,
            host.port,
            ssl_context=self._tls,
            tls_hostname=self._tls_hostname or host.host,
            tls_standard_compatible=False,
        )

    def _session_given_up(self) -> bool:
        """After a whole session timeout without hearing from any server, the servers
        have expired the session: enter LOST (Curator's rule)."""
        core = self._core
        if not core.session_id or self._task_status is not None:
            return False
        if anyio.current_time() - self._last_heard < self.session_timeout:
            return False
        log.warning(
            "session 0x%x lost: no server reached for the session timeout (%.3g s)",
            core.session_id,
            self.session_timeout,
        )
        self._finish(
            ConnectionState.LOST,
            SessionExpiredError,
            "no server could be reached for the whole session timeout",
        )
        return True

    def _connect_timeout(self, host_count: int) -> float:
        """The Java client's ``sessionTimeout / hosts``, and never past the session's end."""
        timeout = self.session_timeout / host_count
        if self._core.session_id and self._task_status is None:
            remaining = self._last_heard + self.session_timeout - anyio.current_time()
            timeout = min(timeout, remaining)
        return max(timeout, 0.001)

    async def _run_connection(
        self, stream: anyio.abc.ByteStream, host: HostPort, connect_timeout: float
    ) -> tuple[BaseException | None, bool]:
        core = self._core
        conn = _Connection(stream, host)
        was_ready = False
        self._conn = conn
        try:
            with conn.scope:
                async with anyio.create_task_group() as tg:
                    conn.send(core.connect(anyio.current_time(), connect_timeout))
                    tg.start_soon(self._writer, conn)
                    tg.start_soon(self._timer, conn)
                    tg.start_soon(self._prober, conn)
                    await self._reader(conn)
        finally:
            with anyio.CancelScope(shield=True):
                self._conn = None
                was_ready = self._ready_conn is conn
                if was_ready:
                    self._ready_conn = None
                xids, tokens = core.connection_lost()
                error = ConnectionLossError(f"connection to {host} lost: {conn.error or 'closed'}")
                for xid in xids:
                    call = self._calls.pop(xid, None)
                    if call is not None:
                        call.fail(error)
                for token in tokens:
                    if isinstance(token, _Call):
                        token.fail(error)
                await _abort(stream)
                if was_ready and isinstance(conn.error, _Move):
                    log.info("session 0x%x leaves %s: %s", core.session_id, host, conn.error)
                    self._moving = True
                elif was_ready:
                    log.info("connection to %s lost: %s", host, conn.error)
                    self._set_state(ConnectionState.SUSPENDED)
        return conn.error, was_ready

    async def _reader(self, conn: _Connection) -> None:
        core = self._core
        try:
            while True:
                data = await conn.stream.receive()
                now = anyio.current_time()
                events = core.receive_data(data, now)
                self._last_heard = now
                if events:
                    self._handle(events, conn)
                conn.send(core.data_to_send())
        except anyio.EndOfStream:
            conn.fail(ConnectionLossError("the server closed the connection"))
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            conn.fail(exc)
        except ProtocolError as exc:
            log.warning("protocol error from %s: %s", conn.host, exc)
            conn.fail(exc)

    async def _writer(self, conn: _Connection) -> None:
        try:
            while True:
                if not conn.out:
                    conn.wakeup = anyio.Event()
                    await conn.wakeup.wait()
                    continue
                data = bytes(conn.out)
                conn.out.clear()
                await conn.stream.send(data)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            conn.fail(exc)

    async def _timer(self, conn: _Connection) -> None:
        core = self._core
        while True:
            try:
                out = core.tick(anyio.current_time())
            except ConnectionLossError as exc:
                log.info("connection to %s timed out: %s", conn.host, exc)
                conn.fail(exc)
                return
            conn.send(out)
            # Sleep until the next ping or dead-peer check, or until the handshake
            # completes: the handshake's timeout (T / hosts) is longer than the ping
            # interval and the read timeout that follow it, and a timer still sleeping on
            # it would neither ping nor notice a silent server for that long.
            conn.retime = anyio.Event()
            with anyio.move_on_after(min(core.next_timeout(anyio.current_time()), 3600.0)):
                await conn.retime.wait()

    def _handle(self, events: list[Event[_Watcher]], conn: _Connection) -> None:
        for event in events:
            if isinstance(event, Reply):
                call = self._calls.pop(event.xid, None)
                if call is not None:
                    call.set(event)
            elif isinstance(event, WatchEvent):
                self._dispatch(event)
            elif isinstance(event, AuthReply):
                if isinstance(event.token, _Call):
                    event.token.set(event)
                elif event.err:
                    self._fatal = AuthFailedError(
                        f"the server rejected the {event.scheme!r} credentials"
                    )
                    conn.fail(self._fatal)
                else:
                    conn.priming -= 1
                    if conn.priming == 0 and conn.connected is not None:
                        self._ready(conn, conn.connected)
            elif isinstance(event, Connected):
                log.info(
                    "session 0x%x %s on %s (timeout %d ms%s)",
                    event.session_id,
                    "established" if event.new_session else "re-established",
                    conn.host,
                    event.timeout,
                    ", read-only" if event.read_only else "",
                )
                conn.connected = event
                conn.priming = len(self._core.credentials)
                if conn.priming == 0:
                    self._ready(conn, event)
            elif isinstance(event, SessionExpired):
                log.warning("session 0x%x expired", self._core.session_id)
                error = SessionExpiredError("the session expired")
                for watcher in event.watchers:
                    watcher._end(error)
                self._finish(ConnectionState.LOST, SessionExpiredError, "the session expired")
                conn.fail(error)
            elif isinstance(event, WatchesRestored):
                for stream in list(self._streams):
                    stream._restored(event)

    def _ready(self, conn: _Connection, event: Connected) -> None:
        self._ready_conn = conn
        conn.ready.set()
        conn.retime.set()  # now pings and the read timeout apply
        if self._moving:
            # A planned move succeeded: the session never was in doubt.
            self._moving = False
            self._changed_now()
        elif self._task_status is not None:
            self._set_state(ConnectionState.CONNECTED)
            self._task_status.started()
            self._task_status = None
        else:
            self._set_state(ConnectionState.RECONNECTED)

    def _changed_now(self) -> None:
        """Wake the operations waiting for a connection, without a state change."""
        changed = self._changed
        self._changed = anyio.Event()
        if changed is not None:
            changed.set()

    # --- moving to a better server ----------------------------------------------------------

    async def _prober(self, conn: _Connection) -> None:
        """While connected to a less preferred server, look for a better one and move.

        Less preferred: a read-only server (look for a read-write one with ``isro``), or
        one outside the client's zone (look for a local one). See ``_hosts.py``.
        """
        await conn.ready.wait()
        while True:
            probes = probe_targets(
                self._policy,
                conn.host,
                read_only=self._core.read_only,
                rng=self._random,
                accept_read_only=self._core.can_be_read_only,
            )
            if not probes:
                return
            await anyio.sleep(self._probe_interval)
            for probe in probes:
                if await self._probe(probe):
                    await self._move(conn, probe.host)
                    return

    async def _probe(self, probe: Probe) -> bool:
        """Whether ``probe.host`` is worth moving to (it accepts / says ``rw``)."""
        with anyio.move_on_after(_PROBE_TIMEOUT):
            try:
                if probe.kind == "tcp":
                    stream: anyio.abc.ByteStream = await anyio.connect_tcp(
                        probe.host.host, probe.host.port
                    )
                else:
                    stream = await self._open(probe.host)
            except (OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
                log.debug("probe of %s: %s", probe.host, exc)
                return False
            try:
                if probe.kind == "tcp":
                    return True
                await stream.send(b"isro")
                reply = b""
                with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    while len(reply) < 2:
                        reply += await stream.receive()
                return parse_isro(reply) is True
            finally:
                with anyio.CancelScope(shield=True):
                    await _abort(stream)
        return False

    async def _move(self, conn: _Connection, host: HostPort) -> None:
        """Close ``conn`` at a quiet moment; the supervisor reconnects to ``host`` first."""
        with anyio.move_on_after(_QUIET_WAIT):
            while self._calls or self._core.pending:  # noqa: ASYNC110 - nothing signals it
                await anyio.sleep(0.005)
        self._move_to = host
        conn.fail(_Move(f"moving the session to the preferred server {host}"))

    def _dispatch(self, event: WatchEvent[_Watcher]) -> None:
        try:
            kind = EventType(event.type)
            state = KeeperState(event.state)
        except ValueError:
            log.warning("ignoring a watch event of unknown type %d", event.type)
            return
        watched = WatchedEvent(kind, self._chroot.to_client(event.path), event.zxid, state)
        for watcher in event.watchers:
            watcher._deliver(watched)

    def _drop_connection(self) -> bool:
        """Abort the current connection, as a network failure would (for tests)."""
        conn = self._conn
        if conn is None:
            return False
        conn.fail(ConnectionLossError("connection dropped on purpose"))
        return True

    # --- requests -------------------------------------------------------------------------

    async def _call(self, op: int, record: Record, watcher: _Watcher | None = None) -> Reply:
        conn = await self._wait_ready()
        if self._core.read_only and is_write(op):
            raise NotReadOnlyError(
                f"connected to the read-only server {conn.host}: writes are refused",
                path=getattr(record, "path", None),
            )
        xid, data = self._core.request(op, record, anyio.current_time(), watcher)
        call = _Call()
        self._calls[xid] = call
        conn.send(data)
        result = await call.wait()
        assert isinstance(result, Reply)
        return result

    def _send_ignored(self, op: int, record: Record) -> None:
        """Send a request whose reply nobody waits for (if connected)."""
        conn = self._ready_conn
        if conn is not None:
            _, data = self._core.request(op, record, anyio.current_time())
            conn.send(data)

    @staticmethod
    def _body(reply: Reply, path: str | None, kind: type[R]) -> R:
        if reply.err:
            raise error_for_code(reply.err, path)
        body = reply.body
        if not isinstance(body, kind):
            raise ProtocolError(f"expected {kind.__name__}, got {type(body).__name__}")
        return body

    async def _retrying(self, attempt: Callable[[int], Awaitable[T]]) -> T:
        policy = self._retry_policy
        start = anyio.current_time()
        attempts = 0
        while True:
            attempts += 1
            try:
                return await attempt(attempts)
            except _RETRYABLE as exc:
                elapsed = anyio.current_time() - start
                if not policy.allows(attempts, elapsed):
                    raise
                delay = policy.backoff(attempts, self._random.random())
                log.debug("retrying after %s (attempt %d) in %.3f s", exc, attempts, delay)
                await anyio.sleep(delay)

    async def _read(
        self,
        op: int,
        record: Record,
        path: str,
        kind: type[R],
        watcher: _Watcher | None = None,
    ) -> R:
        async def attempt(_: int) -> R:
            return self._body(await self._call(op, record, watcher), path, kind)

        return await self._retrying(attempt)

    def _server_path(self, path: str, *, sequential: bool = False) -> str:
        return self._chroot.to_server(validate_path(path, sequential=sequential))

    def _acl(self, acl: Iterable[ACL] | None) -> tuple[ACL, ...]:
        if acl is None:
            return OPEN_ACL_UNSAFE
        acls = tuple(acl)
        for entry in acls:
            if not isinstance(entry, ACL):
                raise TypeError(f"acl entries must be ACL, not {type(entry).__name__}")
        return acls

    # --- reads ----------------------------------------------------------------------------

    @overload
    async def get(self, path: str, *, watch: Literal[False] = False) -> tuple[bytes, Stat]: ...

    @overload
    async def get(self, path: str, *, watch: Literal[True]) -> tuple[bytes, Stat, OneShotWatch]: ...

    async def get(
        self, path: str, *, watch: bool = False
    ) -> tuple[bytes, Stat] | tuple[bytes, Stat, OneShotWatch]:
        """Read a node's data and Stat.

        Args:
            path: the node.
            watch: also set a one-shot watch, fired by the node's next data change or
                deletion, and return it as a third element.

        Returns:
            ``(data, stat)``, or ``(data, stat, watch)`` with ``watch=True``. Null data
            reads as ``b""``.

        Raises:
            NoNodeError: the node does not exist (no watch is set).
            NoAuthError: the ACL does not grant READ.
        """
        spath = self._server_path(path)
        watcher = OneShotWatch(path) if watch else None
        body = await self._read(
            OpCode.GET_DATA, GetDataRequest(spath, watch), path, GetDataResponse, watcher
        )
        data = body.data if body.data is not None else b""
        if watcher is not None:
            return data, body.stat, watcher
        return data, body.stat

    @overload
    async def exists(self, path: str, *, watch: Literal[False] = False) -> Stat | None: ...

    @overload
    async def exists(
        self, path: str, *, watch: Literal[True]
    ) -> tuple[Stat | None, OneShotWatch]: ...

    async def exists(
        self, path: str, *, watch: bool = False
    ) -> Stat | tuple[Stat | None, OneShotWatch] | None:
        """A node's Stat, or ``None`` if it does not exist.

        ZooKeeper checks no ACL for ``exists``.

        Args:
            path: the node.
            watch: also set a one-shot watch -- fired by the node's creation if it is
                missing, else by its next data change or deletion -- and return
                ``(stat, watch)``.

        Returns:
            The Stat or ``None``; with ``watch=True``, ``(stat_or_none, watch)``.

        Raises:
            BadArgumentsError: an invalid path.
        """
        spath = self._server_path(path)
        watcher = OneShotWatch(path) if watch else None
        stat = await self._exists(spath, path, watch, watcher)
        if watcher is not None:
            return stat, watcher
        return stat

    async def _exists(
        self, spath: str, path: str, watch: bool, watcher: _Watcher | None
    ) -> Stat | None:
        async def attempt(_: int) -> Stat | None:
            reply = await self._call(OpCode.EXISTS, ExistsRequest(spath, watch), watcher)
            if reply.err == ErrorCode.NO_NODE:
                return None
            return self._body(reply, path, ExistsResponse).stat

        return await self._retrying(attempt)

    @overload
    async def children(self, path: str, *, watch: Literal[False] = False) -> list[str]: ...

    @overload
    async def children(
        self, path: str, *, watch: Literal[True]
    ) -> tuple[list[str], OneShotWatch]: ...

    async def children(
        self, path: str, *, watch: bool = False
    ) -> list[str] | tuple[list[str], OneShotWatch]:
        """The names of a node's children, unsorted (as the server returns them).

        Args:
            path: the node.
            watch: also set a one-shot watch fired when a child is created or deleted or
                the node is deleted, and return ``(names, watch)``.

        Raises:
            NoNodeError: the node does not exist (no watch is set).
            NoAuthError: the ACL does not grant READ.
        """
        spath = self._server_path(path)
        watcher = OneShotWatch(path) if watch else None
        body = await self._read(
            OpCode.GET_CHILDREN,
            GetChildrenRequest(spath, watch),
            path,
            GetChildrenResponse,
            watcher,
        )
        names = list(body.children)
        if watcher is not None:
            return names, watcher
        return names

    @overload
    async def children_with_stat(
        self, path: str, *, watch: Literal[False] = False
    ) -> tuple[list[str], Stat]: ...

    @overload
    async def children_with_stat(
        self, path: str, *, watch: Literal[True]
    ) -> tuple[list[str], Stat, OneShotWatch]: ...

    async def children_with_stat(
        self, path: str, *, watch: bool = False
    ) -> tuple[list[str], Stat] | tuple[list[str], Stat, OneShotWatch]:
        """A node's child names and its own Stat (``getChildren2``).

        Args:
            path: the node.
            watch: as for :meth:`children`; the watch is returned third.

        Raises:
            NoNodeError: the node does not exist.
            NoAuthError: the ACL does not grant READ.
        """
        spath = self._server_path(path)
        watcher = OneShotWatch(path) if watch else None
        body = await self._read(
            OpCode.GET_CHILDREN2,
            GetChildren2Request(spath, watch),
            path,
            GetChildren2Response,
            watcher,
        )
        names = list(body.children)
        if watcher is not None:
            return names, body.stat, watcher
        return names, body.stat

    async def all_children_number(self, path: str) -> int:
        """The number of descendants of a node (children, grandchildren, ...).

        Raises:
            NoNodeError: the node does not exist.
        """
        spath = self._server_path(path)
        body = await self._read(
            OpCode.GET_ALL_CHILDREN_NUMBER,
            GetAllChildrenNumberRequest(spath),
            path,
            GetAllChildrenNumberResponse,
        )
        return body.total_number

    async def ephemerals(self, prefix: str = "/") -> list[str]:
        """The paths of this session's ephemeral nodes whose path starts with ``prefix``.

        Args:
            prefix: a path prefix (not necessarily a whole node name).
        """
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ValueError("prefix must be an absolute path prefix")
        sprefix = self._chroot.to_server(prefix) if prefix != "/" else self._chroot.to_server("/")
        body = await self._read(
            OpCode.GET_EPHEMERALS, GetEphemeralsRequest(sprefix), prefix, GetEphemeralsResponse
        )
        return sorted(self._chroot.to_client(p) for p in body.ephemerals)

    async def get_acl(self, path: str) -> tuple[list[ACL], Stat]:
        """A node's ACL and Stat.

        Raises:
            NoNodeError: the node does not exist.
            NoAuthError: the ACL grants neither READ nor ADMIN.
        """
        spath = self._server_path(path)
        body = await self._read(OpCode.GET_ACL, GetACLRequest(spath), path, GetACLResponse)
        return list(body.acl), body.stat

    async def sync(self, path: str = "/") -> None:
        """Wait until the server the client is connected to has caught up with the leader.

        Reads issued after ``sync`` returns see every write committed before it was
        called (ZooKeeper's "sync + read" for cross-client consistency).
        """
        spath = self._server_path(path)
        await self._read(OpCode.SYNC, SyncRequest(spath), path, Record)

    async def get_config(self) -> tuple[bytes, Stat]:
        """The ensemble's configuration (ZooKeeper's ``getConfig``): the data of
        ``/zookeeper/config`` (whatever the chroot) and its Stat.

        The data is ZooKeeper's dynamic configuration format, one line per member, then
        the version (the zxid of the reconfig that made it, in hex)::

            server.1=10.0.0.1:2888:0:participant;10.0.0.1:2181
            version=100000004

        Raises:
            NoAuthError: the node's ACL does not grant READ.
        """
        body = await self._read(
            OpCode.GET_DATA, GetDataRequest(CONFIG_PATH, False), CONFIG_PATH, GetDataResponse
        )
        return (body.data or b""), body.stat

    async def reconfig(
        self,
        joining: str | Sequence[str] | None = None,
        leaving: str | Sequence[str | int] | None = None,
        new_members: str | Sequence[str] | None = None,
        from_config: int = -1,
    ) -> tuple[bytes, Stat]:
        """Change the ensemble's members (ZooKeeper's ``reconfig``; the server needs
        ``reconfig_enabled``). Either incremental -- ``joining`` servers, ``leaving`` ids
        -- or the whole new set in ``new_members``. A server is written as in ZooKeeper,
        ``server.<id>=<host>:<peer port>:<port 2>[:participant|:observer];<host>:<port>``
        (coord's member form, ``<id>=<host>:<peer port>[:observer];<host>:<client port>``,
        is accepted too); a string may hold several, comma-separated.

        coord makes one membership change per request (Raft's single-server changes):
        add a member, remove one, or switch one between participant and observer.

        Args:
            from_config: the configuration version the change is based on (the
                ``version=`` of :meth:`get_config`, as an int); ``-1``: whatever it is.

        Returns:
            the new configuration's data and the Stat of ``/zookeeper/config``.

        Raises:
            ReconfigDisabledError: the server does not allow reconfiguration.
            NoAuthError: neither superuser nor granted WRITE on ``/zookeeper/config``.
            BadVersionError: ``from_config`` is not the current version.
            BadArgumentsError: the request cannot be parsed, changes nothing, or changes
                more than one member.
            ReconfigInProgressError: another change is not committed yet; retry.
            NewConfigNoQuorumError: the new voters connected to the leader are no majority.
            ConnectionLossError: the outcome is unknown (read :meth:`get_config`).
        """

        def joined(value: str | Sequence[str | int] | None) -> str:
            if value is None:
                return ""
            if isinstance(value, str):
                return value
            return ",".join(str(v) for v in value)

        request = ReconfigRequest(
            joined(joining), joined(leaving), joined(new_members), from_config
        )
        body = self._body(await self._call(OpCode.RECONFIG, request), CONFIG_PATH, GetDataResponse)
        return (body.data or b""), body.stat

    async def whoami(self) -> list[ClientInfo]:
        """The identities the session is authenticated as (``whoAmI``)."""
        body = await self._read(OpCode.WHO_AM_I, WhoAmIRequest(), "/", WhoAmIResponse)
        return list(body.client_info)

    async def multi_read(self, *ops: ReadOp) -> list[ReadResult]:
        """Several reads in one round trip (``multiRead``); not atomic.

        Args:
            ops: :class:`GetData` and :class:`GetChildren` values.

        Returns:
            One result per op: ``(data, stat)`` for :class:`GetData`, a list of names
            for :class:`GetChildren`, or the :class:`CoordError` that op got (e.g.
            :class:`NoNodeError`) -- a failed read does not fail the others.
        """
        paths = read_ops(ops)
        multi_ops = []
        for op, path in zip(ops, paths):
            spath = self._chroot.to_server(path)
            if isinstance(op, GetData):
                multi_ops.append(MultiOp(OpCode.GET_DATA, GetDataRequest(spath, False)))
            else:
                multi_ops.append(MultiOp(OpCode.GET_CHILDREN, GetChildrenRequest(spath, False)))
        if not multi_ops:
            return []
        response = await self._read(
            OpCode.MULTI_READ, MultiRequest(tuple(multi_ops)), paths[0], MultiResponse
        )
        results: list[ReadResult] = []
        for result, path in zip(response.results, paths):
            body = result.body
            if isinstance(body, GetDataResponse):
                results.append((body.data if body.data is not None else b"", body.stat))
            elif isinstance(body, GetChildrenResponse):
                results.append(list(body.children))
            else:
                code = getattr(body, "err", result.err)
                results.append(error_for_code(code, path))
        return results

    # --- writes ---------------------------------------------------------------------------

    async def create(
        self,
        path: str,
        data: bytes = b"",
        *,
        acl: Iterable[ACL] | None = None,
        ephemeral: bool = False,
        sequential: bool = False,
        container: bool = False,
        ttl: float | None = None,
        makepath: bool = False,
        protected: bool | None = None,
    ) -> str:
        """Create a node.

        Args:
            path: the node; with ``sequential``, the prefix of its name (may end with
                ``/``).
            data: its data.
            acl: its ACL (default: :data:`OPEN_ACL_UNSAFE`).
            ephemeral: delete it when the session ends.
            sequential: append the parent's 10-digit sequence number to the name.
            container: a container node, deleted by the server once its last child is.
            ttl: a persistent node deleted by the server when it has had no change and no
                child for ``ttl`` seconds (the server must enable TTL nodes).
            makepath: create missing ancestors first (persistent, empty, same ACL).
            protected: prefix the name with ``_c_<uuid>-`` so that a create whose reply
                was lost can be found again and is never applied twice. Default: True for
                sequential nodes (which are otherwise never retried), False otherwise.

        Returns:
            The created path (with its sequence suffix and protection prefix).

        Raises:
            NodeExistsError: the node exists.
            NoNodeError: the parent does not exist (and ``makepath`` is False).
            NoChildrenForEphemeralsError: the parent is ephemeral.
            NoAuthError: the parent's ACL does not grant CREATE.
            InvalidACLError: the ACL is empty or invalid.
            BadArgumentsError: an invalid path or combination of options.
            UnimplementedError: the server does not support this node type.
        """
        created, _ = await self._create(
            path,
            data,
            acl=acl,
            ephemeral=ephemeral,
            sequential=sequential,
            container=container,
            ttl=ttl,
            makepath=makepath,
            protected=protected,
            with_stat=False,
        )
        return created

    async def create_with_stat(
        self,
        path: str,
        data: bytes = b"",
        *,
        acl: Iterable[ACL] | None = None,
        ephemeral: bool = False,
        sequential: bool = False,
        container: bool = False,
        ttl: float | None = None,
        makepath: bool = False,
        protected: bool | None = None,
    ) -> tuple[str, Stat]:
        """As :meth:`create`, also returning the new node's Stat (``create2``)."""
        created, stat = await self._create(
            path,
            data,
            acl=acl,
            ephemeral=ephemeral,
            sequential=sequential,
            container=container,
            ttl=ttl,
            makepath=makepath,
            protected=protected,
            with_stat=True,
        )
        assert stat is not None
        return created, stat

    async def _create(
        self,
        path: str,
        data: bytes,
        *,
        acl: Iterable[ACL] | None,
        ephemeral: bool,
        sequential: bool,
        container: bool,
        ttl: float | None,
        makepath: bool,
        protected: bool | None,
        with_stat: bool,
    ) -> tuple[str, Stat | None]:
        validate_path(path, sequential=sequential)
        if path == "/" and not sequential:  # "/" sequential names a child: /0000000000
            raise NodeExistsError(path="/")
        payload = _as_bytes(data, "data")
        acls = self._acl(acl)
        if protected is None:
            protected = sequential
        parent, name = path.rsplit("/", 1)
        parent = parent or "/"
        prefix = ""
        if protected:
            prefix = f"_c_{uuid.uuid4()}-"
            path = join_path(parent, prefix + name)
            validate_path(path, sequential=sequential)
        op, record = create_op(
            self._chroot.to_server(path),
            payload,
            acls,
            ephemeral=ephemeral,
            sequential=sequential,
            container=container,
            ttl=ttl,
            with_stat=with_stat,
        )
        # After an attempt with an unknown outcome, the zxid before it was sent: a node
        # created after it, matching the request, is taken to be ours.
        unknown_since: int | None = None
        retry_safe = protected or not sequential

        async def attempt(number: int) -> tuple[str, Stat | None]:
            nonlocal unknown_since
            if unknown_since is not None and protected:
                found = await self._find_protected(parent, prefix)
                if found is not None:
                    stat = await self.exists(found) if with_stat else None
                    return found, stat
            before = self._core.last_zxid
            try:
                reply = await self._call(op, record)
            except _RETRYABLE:
                if unknown_since is None:
                    unknown_since = before
                raise
            if reply.err == ErrorCode.NODE_EXISTS and unknown_since is not None and not protected:
                stat = await self._created_by_us(path, payload, ephemeral, unknown_since)
                if stat is not None:
                    return path, stat if with_stat else None
            if reply.err:
                raise error_for_code(reply.err, path)
            body = reply.body
            if isinstance(body, Create2Response):
                return self._chroot.to_client(body.path), body.stat
            assert isinstance(body, CreateResponse)
            return self._chroot.to_client(body.path), None

        async def attempt_with_parents(number: int) -> tuple[str, Stat | None]:
            try:
                return await attempt(number)
            except NoNodeError:
                if not makepath or parent == "/":
                    raise
            await self._ensure_path(parent, acls)
            return await attempt(number)

        if not retry_safe:
            return await attempt_with_parents(1)
        return await self._retrying(attempt_with_parents)

    async def _find_protected(self, parent: str, prefix: str) -> str | None:
        try:
            names = await self.children(parent)
        except NoNodeError:
            return None
        for name in names:
            if name.startswith(prefix):
                return join_path(parent, name)
        return None

    async def _created_by_us(
        self, path: str, data: bytes, ephemeral: bool, since: int
    ) -> Stat | None:
        """After NodeExists on a retried create: is the node the one our lost attempt made?"""
        try:
            current, stat = await self.get(path)
        except NoNodeError:
            return None
        if stat.czxid <= since:
            return None
        if ephemeral:
            return stat if stat.ephemeral_owner == self.session_id else None
        return stat if stat.ephemeral_owner == 0 and current == data else None

    async def _ensure_path(self, path: str, acl: tuple[ACL, ...]) -> None:
        """Create ``path`` and its missing ancestors (persistent, empty)."""
        if path == "/":
            return
        try:
            await self.create(path, b"", acl=acl)
        except NodeExistsError:
            return
        except NoNodeError:
            await self._ensure_path(parent_path(path), acl)
            with contextlib.suppress(NodeExistsError):
                await self.create(path, b"", acl=acl)

    async def ensure_path(self, path: str, *, acl: Iterable[ACL] | None = None) -> None:
        """Create ``path`` and any missing ancestor (persistent, empty); no error if it exists."""
        validate_path(path)
        await self._ensure_path(path, self._acl(acl))

    async def set(self, path: str, data: bytes, version: int = -1) -> Stat:
        """Replace a node's data.

        Args:
            path: the node.
            data: the new data.
            version: the version the node must have (-1: any).

        Returns:
            The node's new Stat.

        Raises:
            NoNodeError: the node does not exist.
            BadVersionError: ``version`` does not match.
            NoAuthError: the ACL does not grant WRITE.
        """
        spath = self._server_path(path)
        payload = _as_bytes(data, "data")
        record = SetDataRequest(spath, payload, version)
        unknown_since: int | None = None

        async def attempt(_: int) -> Stat:
            nonlocal unknown_since
            before = self._core.last_zxid
            try:
                reply = await self._call(OpCode.SET_DATA, record)
            except _RETRYABLE:
                if unknown_since is None:
                    unknown_since = before
                raise
            if reply.err == ErrorCode.BAD_VERSION and unknown_since is not None and version >= 0:
                # Did the attempt whose reply was lost apply? Then the node is at
                # version + 1 with our data, written after that attempt was sent.
                current, stat = await self.get(path)
                if (
                    stat.version == version + 1
                    and current == payload
                    and stat.mzxid > unknown_since
                ):
                    return stat
                raise BadVersionError(path=path)
            return self._body(reply, path, SetDataResponse).stat

        return await self._retrying(attempt)

    async def set_acl(self, path: str, acl: Iterable[ACL], version: int = -1) -> Stat:
        """Replace a node's ACL.

        Args:
            path: the node.
            acl: the new ACL.
            version: the ACL version (``aversion``) the node must have (-1: any).

        Returns:
            The node's new Stat.

        Raises:
            NoNodeError: the node does not exist.
            BadVersionError: ``version`` does not match.
            NoAuthError: the ACL does not grant ADMIN.
            InvalidACLError: the ACL is empty or invalid.
        """
        spath = self._server_path(path)
        acls = self._acl(acl)
        record = SetACLRequest(spath, acls, version)
        unknown = False

        async def attempt(_: int) -> Stat:
            nonlocal unknown
            try:
                reply = await self._call(OpCode.SET_ACL, record)
            except _RETRYABLE:
                unknown = True
                raise
            if reply.err == ErrorCode.BAD_VERSION and unknown and version >= 0:
                current, stat = await self.get_acl(path)
                if stat.aversion == version + 1 and tuple(current) == acls:
                    return stat
                raise BadVersionError(path=path)
            return self._body(reply, path, SetACLResponse).stat

        return await self._retrying(attempt)

    async def delete(self, path: str, version: int = -1, *, recursive: bool = False) -> None:
        """Delete a node.

        Args:
            path: the node.
            version: the version the node must have (-1: any).
            recursive: delete its descendants first (children are deleted whatever their
                version; the whole is not atomic, and is retried while nodes are added
                concurrently).

        Raises:
            NoNodeError: the node does not exist. After a connection loss the delete is
                retried, and a NoNode answer to the retry counts as success: the node is
                gone, as asked (our first attempt most likely deleted it).
            BadVersionError: ``version`` does not match.
            NotEmptyError: the node has children (and ``recursive`` is False).
            NoAuthError: the parent's ACL does not grant DELETE.
        """
        spath = self._server_path(path)
        if recursive:
            await self._delete_tree(path, version)
            return
        await self._delete(spath, path, version)

    async def _delete(self, spath: str, path: str, version: int) -> None:
        record = DeleteRequest(spath, version)
        unknown = False

        async def attempt(_: int) -> None:
            nonlocal unknown
            try:
                reply = await self._call(OpCode.DELETE, record)
            except _RETRYABLE:
                unknown = True
                raise
            if reply.err == ErrorCode.NO_NODE and unknown:
                return
            self._body(reply, path, EmptyResponse)

        await self._retrying(attempt)

    async def _delete_tree(self, path: str, version: int) -> None:
        for _ in range(100):
            try:
                names = await self.children(path)
            except NoNodeError:
                if version >= 0:
                    raise
                return
            for name in names:
                with contextlib.suppress(NoNodeError):
                    await self._delete_tree(join_path(path, name), -1)
            try:
                await self._delete(self._chroot.to_server(path), path, version)
                return
            except NotEmptyError:
                continue  # a child was added meanwhile
            except NoNodeError:
                if version >= 0:
                    raise
                return
        raise NotEmptyError(f"children keep being added under {path}", path=path)

    def transaction(self) -> Transaction:
        """A new :class:`Transaction` builder (ZooKeeper's ``multi``)."""
        return Transaction(self)

    async def _multi(self, ops: tuple[MultiOp, ...], path: str) -> MultiResponse:
        reply = await self._call(OpCode.MULTI, MultiRequest(ops))
        return self._body(reply, path, MultiResponse)

    # --- sessions and auth ----------------------------------------------------------------

    async def add_auth(self, scheme: str, credentials: bytes | str) -> None:
        """Authenticate the session (``addauth``); credentials are re-sent on reconnect.

        Args:
            scheme: e.g. ``"digest"``.
            credentials: for digest, ``b"user:password"``.

        Raises:
            AuthFailedError: the server rejected the credentials (it then closes the
                connection; the client reconnects without them).
        """
        payload = _as_bytes(credentials, "credentials")

        async def attempt(_: int) -> None:
            conn = await self._wait_ready()
            call = _Call()
            conn.send(self._core.add_auth(scheme, payload, anyio.current_time(), call))
            result = await call.wait()
            assert isinstance(result, AuthReply)
            if result.err:
                raise AuthFailedError(f"the server rejected the {scheme!r} credentials")

        await self._retrying(attempt)

    # --- watches --------------------------------------------------------------------------

    def watch(self, path: str) -> WatchStream:
        """Every change of one node: created, data changed, deleted.

        Returns a :class:`WatchStream`, an async iterator of :class:`WatchedEvent` and an
        async context manager. It uses a persistent watch (``addWatch``) when the server
        has them and re-armed one-shot watches otherwise; it survives reconnects and
        misses no change (changes made while disconnected may be reported as one event).
        """
        return WatchStream(self, path, self._server_path(path), "data")

    def watch_children(self, path: str) -> WatchStream:
        """Changes of a node's children list (and the node's own creation and deletion).

        See :meth:`watch`.
        """
        return WatchStream(self, path, self._server_path(path), "children")

    def watch_tree(self, path: str) -> WatchStream:
        """Every creation, data change and deletion of a node and all its descendants.

        Uses a persistent-recursive watch when the server has them. After a reconnect,
        if the server's state moved meanwhile, yields one ``EventType.NONE`` event for
        ``path``: changes below it while disconnected cannot be replayed; re-read them.
        See :meth:`watch`.
        """
        return WatchStream(self, path, self._server_path(path), "tree")

    async def _add_persistent_watch(self, spath: str, mode: int, watcher: WatchStream) -> None:
        async def attempt(_: int) -> None:
            conn = await self._wait_ready()
            now = anyio.current_time()
            xid, data = self._core.request(
                OpCode.ADD_WATCH, AddWatchRequest(spath, mode), now, watcher
            )
            # Read the node's existence in the same round trip: it is the baseline for
            # the catch-up entries sent with the watch after a reconnect.
            xid2, data2 = self._core.request(OpCode.EXISTS, ExistsRequest(spath, False), now)
            call, call2 = _Call(), _Call()
            self._calls[xid] = call
            self._calls[xid2] = call2
            conn.send(data + data2)
            reply = await call.wait()
            assert isinstance(reply, Reply)
            if reply.err:
                raise error_for_code(reply.err, watcher.path)
            await call2.wait()

        await self._retrying(attempt)

    def _remove_watcher(
        self, kind: WatchKind, spath: str, watcher: _Watcher, *, server: bool = True
    ) -> None:
        if self._core.registry.remove(kind, spath, watcher) and server:
            if kind is WatchKind.PERSISTENT:
                self._send_ignored(
                    OpCode.REMOVE_WATCHES, RemoveWatchesRequest(spath, WatcherType.PERSISTENT)
                )
            elif kind is WatchKind.PERSISTENT_RECURSIVE:
                self._send_ignored(
                    OpCode.REMOVE_WATCHES,
                    RemoveWatchesRequest(spath, WatcherType.PERSISTENT_RECURSIVE),
                )

    async def _exists_watch(self, spath: str, watcher: _Watcher) -> Stat | None:
        return await self._exists(spath, self._chroot.to_client(spath), True, watcher)

    async def _children_watch(self, spath: str, watcher: _Watcher) -> Stat:
        path = self._chroot.to_client(spath)
        body = await self._read(
            OpCode.GET_CHILDREN2,
            GetChildren2Request(spath, True),
            path,
            GetChildren2Response,
            watcher,
        )
        return body.stat

    async def _children_names_watch(self, spath: str, watcher: _Watcher) -> list[str]:
        path = self._chroot.to_client(spath)
        body = await self._read(
            OpCode.GET_CHILDREN, GetChildrenRequest(spath, True), path, GetChildrenResponse, watcher
        )
        return list(body.children)


def _root_cause(exc: BaseException) -> BaseException:
    """The OSError/SSLError behind anyio's BrokenResourceError, if any."""
    cause = exc.__cause__
    if isinstance(exc, anyio.BrokenResourceError) and cause is not None:
        return cause
    return exc


def _describe(error: BaseException | None) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: the server's certificate was refused: {error.verify_message or error}"
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error}"
    return str(error)


async def _abort(stream: anyio.abc.ByteStream) -> None:
    """Close a socket at once (RST), whatever is still queued."""
    with contextlib.suppress(Exception):
        raw = stream.extra(SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _ABORT_LINGER)
    with contextlib.suppress(Exception):
        await stream.aclose()


def connect(
    hosts: str,
    *,
    session_timeout: float = 10.0,
    auth: Sequence[tuple[str, bytes | str]] = (),
    read_only: bool = False,
    retry: RetryPolicy | None = None,
    zones: Mapping[str, str] | None = None,
    zone: str | None = None,
    probe_interval: float = 10.0,
    tls: TlsOptions | ssl.SSLContext | bool | None = None,
    open_stream: Callable[[], Awaitable[anyio.abc.ByteStream]] | None = None,
) -> Client:
    """A client for the servers of ``hosts``; use it with ``async with``.

    ::

        async with coord.connect("zk1:2181,zk2:2181/myapp") as client:
            await client.create("/config", b"v1")

    Args:
        hosts: ZooKeeper's connect string: ``host:port`` pairs separated by commas,
            optionally followed by a chroot (``/myapp``) applied to every path.
        session_timeout: the session timeout to ask for, in seconds; the server
            negotiates it into its bounds (by default 2 to 20 ticks).
        auth: credentials sent on every connection, e.g. ``[("digest", b"u:p")]``.
        read_only: accept a server in read-only mode (reads only) when no quorum is up.
        retry: how operations that are safe to repeat are retried after a connection
            loss (default: ``RetryPolicy()``; ``RetryPolicy.never()`` disables it).
        zones: the zone label of servers of ``hosts``, as ``{"host:port": "zone"}``.
        zone: the client's own zone: its servers are tried first, and while connected
            elsewhere the client probes them and moves back when one is up.
        probe_interval: seconds between two probes for a better server (a local one
            when connected outside the zone, a read-write one when read-only).
        tls: ``TlsOptions``, an ``ssl.SSLContext``, or ``True`` (system CAs): connect
            with TLS (ZooKeeper's ``secureClientPort``).
        open_stream: open the byte stream to the server yourself instead of connecting
            to ``hosts`` (which then only names the server in logs): called for each
            (re)connection, it returns a stream speaking ZooKeeper's protocol, such as an
            in-process connection to a server's transport handler (the HTTP API gateway).

    Returns:
        An unopened :class:`Client`: entering it connects and establishes the session;
        leaving it closes the session.

    Raises:
        ValueError: a malformed connect string.
    """
    return Client(
        hosts,
        session_timeout=session_timeout,
        auth=auth,
        read_only=read_only,
        retry=retry,
        zones=zones,
        zone=zone,
        probe_interval=probe_interval,
        tls=tls,
        open_stream=open_stream,
    )
