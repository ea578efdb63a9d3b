"""A TCP proxy on 127.0.0.1 that injects network faults between a client and a server.

Theory of operation: every accepted connection gets its own upstream connection and two
pumps (client→server, server→client), all inside one cancel scope per connection. The
faults are states of the proxy, not of a connection:

* **cut** cancels every open connection's scope; the shielded cleanup closes both sockets
  with ``SO_LINGER=0``, so the peers see a reset (on asyncio a FIN may precede it, because
  anyio half-closes before closing). New connections are not affected.
* **stall** is a partition: a pump that has read a chunk (or end-of-stream) holds it until
  the proxy resumes, and reads nothing more meanwhile, so further bytes queue in the
  kernel's socket buffers and the sender eventually blocks, as behind a dead link.
  Connections accepted while stalled are held before their upstream connect. Nothing is
  dropped: :meth:`TcpProxy.resume` forwards everything in order, then the held EOFs.
* **refuse** closes each new connection at once (with a reset) while it lasts; open
  connections keep working.

A reset on either side of a connection is propagated as a reset to the other side.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, ExitStack
from types import TracebackType
from typing import Self, TypeVar

import anyio
import anyio.abc
import anyio.from_thread
from anyio.abc import SocketAttribute
from anyio.from_thread import start_blocking_portal

__all__ = ["SyncTcpProxy", "TcpProxy"]

_T = TypeVar("_T")
_LOOPBACK = "127.0.0.1"
_ABORT_LINGER = struct.pack("ii", 1, 0)  # l_onoff=1, l_linger=0: close() sends RST


class _Connection:
    __slots__ = ("abort", "done", "scope")

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.abort = False
        self.done = anyio.Event()


async def _close(stream: anyio.abc.SocketStream, *, abort: bool) -> None:
    if abort:
        with contextlib.suppress(OSError, anyio.TypedAttributeLookupError):
            raw = stream.extra(SocketAttribute.raw_socket)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _ABORT_LINGER)
    with contextlib.suppress(OSError, anyio.BrokenResourceError):
        await stream.aclose()


class TcpProxy:
    """An async TCP proxy listening on 127.0.0.1 (port 0) and forwarding to a target.

    Use it as an async context manager; leaving the block closes the listener and every
    connection::

        async with TcpProxy("127.0.0.1", zk.port) as proxy:
            client = Client(proxy.address)
            ...
            await proxy.cut()

    Args:
        target_host: Host to forward to (use a loopback address in tests).
        target_port: Port to forward to.
        connect_retry: Seconds to keep retrying the upstream connect of an accepted
            connection before resetting it. The default (0) resets at once when the target
            refuses; a peer that reacts to "connection refused" by retrying, but to
            "connected, then reset" by giving up (ZooKeeper's learner), needs a short retry
            so a target that is just starting to listen looks like a slow connect instead.
        listen_host: The loopback address to listen on (any of 127.0.0.0/8).
        listen_port: The port to listen on; 0 picks a free one.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        connect_retry: float = 0.0,
        listen_host: str = _LOOPBACK,
        listen_port: int = 0,
    ) -> None:
        self._target = (target_host, target_port)
        self._connect_retry = connect_retry
        self._listen = (listen_host, listen_port)
        self._port: int | None = None
        self._connections: set[_Connection] = set()
        self._accepted = 0
        self._stalled = False
        self._resumed: anyio.Event | None = None  # created in stall(), inside the event loop
        self._refusing = False
        self._stack: AsyncExitStack | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            listener = await anyio.create_tcp_listener(
                local_host=self._listen[0], local_port=self._listen[1]
            )
            stack.push_async_callback(listener.aclose)
            (socket_listener,) = listener.listeners
            assert isinstance(socket_listener, anyio.abc.SocketListener)
            self._port = socket_listener.extra(SocketAttribute.local_port)
            task_group = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(task_group.cancel_scope.cancel)  # runs first on exit (LIFO)
            task_group.start_soon(self._serve, socket_listener, task_group)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        if stack is None:
            return None
        return await stack.__aexit__(exc_type, exc, tb)

    # -- addresses and counters -------------------------------------------------------------

    @property
    def host(self) -> str:
        """The listening host (``"127.0.0.1"`` unless ``listen_host`` was given)."""
        return self._listen[0]

    @property
    def port(self) -> int:
        """The listening port.

        Raises:
            RuntimeError: The proxy is not started.
        """
        if self._port is None:
            raise RuntimeError("TcpProxy is not started")
        return self._port

    @property
    def address(self) -> str:
        """``"HOST:PORT"``, the address clients should connect to."""
        return f"{self.host}:{self.port}"

    @property
    def connection_count(self) -> int:
        """Connections currently open through the proxy (including held ones)."""
        return len(self._connections)

    @property
    def accepted_count(self) -> int:
        """Connections accepted since start, refused ones included."""
        return self._accepted

    @property
    def stalled(self) -> bool:
        """Whether forwarding is stalled."""
        return self._stalled

    @property
    def refusing(self) -> bool:
        """Whether new connections are refused."""
        return self._refusing

    # -- faults -----------------------------------------------------------------------------

    async def cut(self) -> int:
        """Abruptly close every open connection on both sides and wait until they are closed.

        New connections are accepted as usual afterwards (unless refusing).

        Returns:
            How many connections were cut.
        """
        victims = list(self._connections)
        for connection in victims:
            connection.abort = True
            connection.scope.cancel()
        for connection in victims:
            await connection.done.wait()
        return len(victims)

    def stall(self) -> None:
        """Stop forwarding in both directions, keeping every socket open (a partition).

        Bytes and end-of-stream received meanwhile are held, not dropped; new connections
        are accepted but not connected upstream until :meth:`resume`.
        """
        if not self._stalled:
            self._stalled = True
            self._resumed = anyio.Event()

    def resume(self) -> None:
        """Forward again, delivering in order everything held during the stall."""
        self._stalled = False
        if self._resumed is not None:
            self._resumed.set()

    def refuse(self) -> None:
        """Close new connections immediately (with a reset) until :meth:`accept`."""
        self._refusing = True

    def accept(self) -> None:
        """Accept and forward new connections again."""
        self._refusing = False

    # -- internals --------------------------------------------------------------------------

    async def _wait_flowing(self) -> None:
        while self._stalled and self._resumed is not None:
            await self._resumed.wait()

    async def _serve(
        self,
        listener: anyio.abc.SocketListener,
        task_group: anyio.abc.TaskGroup,
    ) -> None:
        while True:
            client = await listener.accept()
            self._accepted += 1
            task_group.start_soon(self._handle, client)

    async def _handle(self, client: anyio.abc.SocketStream) -> None:
        connection = _Connection()
        self._connections.add(connection)
        upstream: anyio.abc.SocketStream | None = None
        try:
            with connection.scope:
                if self._refusing:
                    connection.abort = True
                    return
                await self._wait_flowing()
                upstream = await self._connect_upstream()
                if upstream is None:
                    connection.abort = True  # target down: look like a refused connection
                    return
                async with anyio.create_task_group() as task_group:
                    task_group.start_soon(self._pump, connection, client, upstream)
                    task_group.start_soon(self._pump, connection, upstream, client)
        finally:
            with anyio.CancelScope(shield=True):
                await _close(client, abort=connection.abort)
                if upstream is not None:
                    await _close(upstream, abort=connection.abort)
            self._connections.discard(connection)
            connection.done.set()

    async def _connect_upstream(self) -> anyio.abc.SocketStream | None:
        deadline = anyio.current_time() + self._connect_retry
        while True:
            try:
                return await anyio.connect_tcp(*self._target)
            except OSError:
                if anyio.current_time() >= deadline:
                    return None
            await anyio.sleep(0.05)

    async def _pump(
        self,
        connection: _Connection,
        source: anyio.abc.SocketStream,
        sink: anyio.abc.SocketStream,
    ) -> None:
        try:
            while True:
                data: bytes | None
                try:
                    data = await source.receive()
                except anyio.EndOfStream:
                    data = None
                await self._wait_flowing()
                if data is None:
                    await sink.send_eof()
                    return
                await sink.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            # A reset (or a send into a reset peer) on one side resets the other side too.
            connection.abort = True
            connection.scope.cancel()


class SyncTcpProxy:
    """A :class:`TcpProxy` running on its own event loop thread, for synchronous tests.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`)::

        with SyncTcpProxy("127.0.0.1", zk.port) as proxy:
            client = KazooClient(hosts=proxy.address)
            ...
            proxy.cut()

    Args:
        target_host: Host to forward to.
        target_port: Port to forward to.
        backend: The anyio backend of the proxy's thread (``"asyncio"`` or ``"trio"``).
        connect_retry: See :class:`TcpProxy`.
        listen_host: See :class:`TcpProxy`.
        listen_port: See :class:`TcpProxy`.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        backend: str = "asyncio",
        connect_retry: float = 0.0,
        listen_host: str = _LOOPBACK,
        listen_port: int = 0,
    ) -> None:
        self._proxy = TcpProxy(
            target_host,
            target_port,
            connect_retry=connect_retry,
            listen_host=listen_host,
            listen_port=listen_port,
        )
        self._backend = backend
        self._stack: ExitStack | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None

    def start(self) -> None:
        """Start the event loop thread and the proxy.

        Raises:
            RuntimeError: Already started.
        """
        if self._stack is not None:
            raise RuntimeError("SyncTcpProxy is already started")
        with ExitStack() as stack:
            portal = stack.enter_context(start_blocking_portal(self._backend))
            stack.enter_context(portal.wrap_async_context_manager(self._proxy))
            self._portal = portal
            self._stack = stack.pop_all()

    def stop(self) -> None:
        """Close every connection, the listener and the event loop thread. Idempotent."""
        stack, self._stack = self._stack, None
        self._portal = None
        if stack is not None:
            stack.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The listening port (see :attr:`TcpProxy.port`)."""
        return self._proxy.port

    @property
    def address(self) -> str:
        """``"127.0.0.1:PORT"`` (see :attr:`TcpProxy.address`)."""
        return self._proxy.address

    @property
    def connection_count(self) -> int:
        """Connections currently open through the proxy."""
        return self._call(lambda: self._proxy.connection_count)

    @property
    def accepted_count(self) -> int:
        """Connections accepted since start."""
        return self._call(lambda: self._proxy.accepted_count)

    def cut(self, timeout: float | None = 10.0) -> int:
        """Abruptly close every open connection and wait until they are closed.

        Args:
            timeout: Seconds to wait for the connections to close; ``None`` waits forever.

        Returns:
            How many connections were cut.

        Raises:
            TimeoutError: The connections did not close within ``timeout``.
        """

        async def cut() -> int:
            with anyio.fail_after(timeout):
                return await self._proxy.cut()

        return self._call_async(cut)

    def stall(self) -> None:
        """Stop forwarding, keeping sockets open (see :meth:`TcpProxy.stall`)."""
        self._call(self._proxy.stall)

    def resume(self) -> None:
        """Forward again, delivering what was held (see :meth:`TcpProxy.resume`)."""
        self._call(self._proxy.resume)

    def refuse(self) -> None:
        """Close new connections immediately (see :meth:`TcpProxy.refuse`)."""
        self._call(self._proxy.refuse)

    def accept(self) -> None:
        """Accept new connections again (see :meth:`TcpProxy.accept`)."""
        self._call(self._proxy.accept)

    def _portal_or_raise(self) -> anyio.from_thread.BlockingPortal:
        if self._portal is None:
            raise RuntimeError("SyncTcpProxy is not started")
        return self._portal

    def _call(self, func: Callable[[], _T]) -> _T:
        return self._portal_or_raise().call(func)

    def _call_async(self, func: Callable[[], Awaitable[_T]]) -> _T:
        return self._portal_or_raise().call(func)
