"""The sync facade: the async client run by a blocking portal, for threaded code.

Theory of operation
-------------------
There is one implementation of the protocol, pings, retries and watches: the async
:class:`~coord.client.Client`. A :class:`SyncClient` starts an event loop in a thread of
its own (anyio's ``start_blocking_portal``), enters the async client there, and turns
each call into ``portal.call(...)``. Only this facade takes ``timeout=``: the call is run
under ``anyio.fail_after(timeout)`` in the loop and raises :class:`TimeoutError`.

Watch callbacks never run in the event loop thread (a callback that blocks, or calls the
client, would stall or deadlock it) nor in the caller's thread: a dedicated thread per
client runs them one at a time, in the order the events arrived. Watch streams are
blocking iterators over the async ones.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from coord.protocol import ACL, ClientInfo, Stat

from ._client import Client
from ._retry import RetryPolicy
from ._tls import TlsOptions
from ._transaction import ReadOp, ReadResult, Transaction
from ._types import ClientClosedError, ConnectionState, OpResult, WatchedEvent
from ._watch import OneShotWatch, WatchStream

__all__ = ["SyncClient", "SyncTransaction", "SyncWatchStream", "connect_sync"]

log = logging.getLogger("coord.client")

T = TypeVar("T")
WatchCallback = Callable[[WatchedEvent], object]


class _CallbackThread:
    """Runs callbacks one at a time on a dedicated daemon thread."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., object], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def post(self, callback: Callable[..., object], *args: Any) -> None:
        self._queue.put((callback, args))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            callback, args = item
            try:
                callback(*args)
            except Exception:
                log.exception("watch callback %r failed", callback)

    def stop(self) -> None:
        self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)


class SyncClient:
    """A blocking client with the operations of :class:`~coord.client.Client`.

    Create it with :func:`connect_sync` and use it as a context manager. It is safe to
    call from several threads at once. Each operation takes ``timeout=`` (seconds,
    ``None``: no limit) and raises :class:`TimeoutError` when it expires; everything
    else -- arguments, results, errors, retries -- is as in the async client.
    One-shot watches are callbacks, run on the client's callback thread.
    """

    def __init__(
        self,
        hosts: str,
        *,
        session_timeout: float = 10.0,
        auth: Sequence[tuple[str, bytes | str]] = (),
        read_only: bool = False,
        retry: RetryPolicy | None = None,
        backend: str = "asyncio",
        zones: Mapping[str, str] | None = None,
        zone: str | None = None,
        probe_interval: float = 10.0,
        tls: TlsOptions | ssl.SSLContext | bool | None = None,
    ) -> None:
        self._client = Client(
            hosts,
            session_timeout=session_timeout,
            auth=auth,
            read_only=read_only,
            retry=retry,
            zones=zones,
            zone=zone,
            probe_interval=probe_interval,
            tls=tls,
        )
        self._backend = backend
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._client_cm: AbstractContextManager[Client] | None = None
        self._callbacks: _CallbackThread | None = None

    def __repr__(self) -> str:
        return f"<SyncClient {self._client!r}>"

    # --- lifecycle ------------------------------------------------------------------------

    def open(self) -> Self:
        """Start the event loop thread and connect (what ``with`` does).

        Connecting is bounded by the session timeout, as for the async client.

        Raises:
            ConnectionLossError: no server could be reached within the session timeout.
            AuthFailedError: the credentials were rejected.
        """
        if self._portal is not None:
            raise RuntimeError("the client is already open")
        portal_cm = start_blocking_portal(self._backend)
        portal = portal_cm.__enter__()
        try:
            client_cm = portal.wrap_async_context_manager(self._client)
            client_cm.__enter__()
        except BaseException as exc:
            portal_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._portal_cm, self._portal, self._client_cm = portal_cm, portal, client_cm
        self._callbacks = _CallbackThread(f"coord-callbacks-{id(self):x}")
        return self

    def close(self) -> None:
        """Close the session and stop the threads. Idempotent."""
        client_cm, self._client_cm = self._client_cm, None
        portal_cm, self._portal_cm = self._portal_cm, None
        self._portal = None
        try:
            if client_cm is not None:
                client_cm.__exit__(None, None, None)
        finally:
            if portal_cm is not None:
                portal_cm.__exit__(None, None, None)
            callbacks, self._callbacks = self._callbacks, None
            if callbacks is not None:
                callbacks.stop()

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- plumbing -------------------------------------------------------------------------

    def run(self, func: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None) -> T:
        """Run ``await func(*args)`` on the client's event loop thread and return its result.

        The bridge for async code built on :attr:`client` (recipes use it to offer ``with``).

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            ClientClosedError: the client is not open.
        """
        return self._call(func, *args, timeout=timeout)

    def _call(
        self, func: Callable[..., Awaitable[T]], *args: Any, timeout: float | None = None
    ) -> T:
        portal = self._portal
        if portal is None:
            raise ClientClosedError("the client is not open")
        if timeout is None:
            return portal.call(func, *args)

        async def bounded() -> T:
            with anyio.fail_after(timeout):
                return await func(*args)

        return portal.call(bounded)

    def _post(self, callback: Callable[..., object]) -> Callable[..., None]:
        callbacks = self._callbacks
        if callbacks is None:
            raise ClientClosedError("the client is not open")

        def post(*args: Any) -> None:
            callbacks.post(callback, *args)

        return post

    def _watched(self, watch: OneShotWatch, callback: WatchCallback | None) -> None:
        if callback is not None:
            watch.add_callback(self._post(callback))

    # --- state ----------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The async client behind this facade (use it only in its event loop)."""
        return self._client

    @property
    def state(self) -> ConnectionState | None:
        """The connection state."""
        return self._client.state

    @property
    def session_id(self) -> int:
        """The session id."""
        return self._client.session_id

    @property
    def session_timeout(self) -> float:
        """The negotiated session timeout, in seconds."""
        return self._client.session_timeout

    def wait_connected(self, timeout: float | None = None) -> None:
        """Block until connected (see :meth:`Client.wait_connected`)."""
        self._call(self._client.wait_connected, timeout=timeout)

    def add_listener(self, listener: Callable[[ConnectionState], object]) -> None:
        """Call ``listener(state)`` on the callback thread on every state change."""
        post = self._post(listener)

        async def add() -> None:
            self._client.add_listener(post)

        self._call(add)

    # --- operations -----------------------------------------------------------------------

    def create(
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
        timeout: float | None = None,
    ) -> str:
        """See :meth:`Client.create`."""

        async def run() -> str:
            return await self._client.create(
                path,
                data,
                acl=acl,
                ephemeral=ephemeral,
                sequential=sequential,
                container=container,
                ttl=ttl,
                makepath=makepath,
                protected=protected,
            )

        return self._call(run, timeout=timeout)

    def create_with_stat(
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
        timeout: float | None = None,
    ) -> tuple[str, Stat]:
        """See :meth:`Client.create_with_stat`."""

        async def run() -> tuple[str, Stat]:
            return await self._client.create_with_stat(
                path,
                data,
                acl=acl,
                ephemeral=ephemeral,
                sequential=sequential,
                container=container,
                ttl=ttl,
                makepath=makepath,
                protected=protected,
            )

        return self._call(run, timeout=timeout)

    def ensure_path(
        self, path: str, *, acl: Iterable[ACL] | None = None, timeout: float | None = None
    ) -> None:
        """See :meth:`Client.ensure_path`."""

        async def run() -> None:
            await self._client.ensure_path(path, acl=acl)

        self._call(run, timeout=timeout)

    def get(
        self, path: str, *, watch: WatchCallback | None = None, timeout: float | None = None
    ) -> tuple[bytes, Stat]:
        """See :meth:`Client.get`; ``watch`` is a callback run once on the callback thread."""

        async def run() -> tuple[bytes, Stat]:
            if watch is None:
                return await self._client.get(path)
            data, stat, handle = await self._client.get(path, watch=True)
            self._watched(handle, watch)
            return data, stat

        return self._call(run, timeout=timeout)

    def exists(
        self, path: str, *, watch: WatchCallback | None = None, timeout: float | None = None
    ) -> Stat | None:
        """See :meth:`Client.exists`; ``watch`` is a callback run once on the callback thread."""

        async def run() -> Stat | None:
            if watch is None:
                return await self._client.exists(path)
            stat, handle = await self._client.exists(path, watch=True)
            self._watched(handle, watch)
            return stat

        return self._call(run, timeout=timeout)

    def children(
        self, path: str, *, watch: WatchCallback | None = None, timeout: float | None = None
    ) -> list[str]:
        """See :meth:`Client.children`; ``watch`` is a callback run once on the callback
        thread."""

        async def run() -> list[str]:
            if watch is None:
                return await self._client.children(path)
            names, handle = await self._client.children(path, watch=True)
            self._watched(handle, watch)
            return names

        return self._call(run, timeout=timeout)

    def children_with_stat(
        self, path: str, *, watch: WatchCallback | None = None, timeout: float | None = None
    ) -> tuple[list[str], Stat]:
        """See :meth:`Client.children_with_stat`."""

        async def run() -> tuple[list[str], Stat]:
            if watch is None:
                return await self._client.children_with_stat(path)
            names, stat, handle = await self._client.children_with_stat(path, watch=True)
            self._watched(handle, watch)
            return names, stat

        return self._call(run, timeout=timeout)

    def set(
        self, path: str, data: bytes, version: int = -1, *, timeout: float | None = None
    ) -> Stat:
        """See :meth:`Client.set`."""
        return self._call(self._client.set, path, data, version, timeout=timeout)

    def delete(
        self,
        path: str,
        version: int = -1,
        *,
        recursive: bool = False,
        timeout: float | None = None,
    ) -> None:
        """See :meth:`Client.delete`."""

        async def run() -> None:
            await self._client.delete(path, version, recursive=recursive)

        self._call(run, timeout=timeout)

    def all_children_number(self, path: str, *, timeout: float | None = None) -> int:
        """See :meth:`Client.all_children_number`."""
        return self._call(self._client.all_children_number, path, timeout=timeout)

    def ephemerals(self, prefix: str = "/", *, timeout: float | None = None) -> list[str]:
        """See :meth:`Client.ephemerals`."""
        return self._call(self._client.ephemerals, prefix, timeout=timeout)

    def get_acl(self, path: str, *, timeout: float | None = None) -> tuple[list[ACL], Stat]:
        """See :meth:`Client.get_acl`."""
        return self._call(self._client.get_acl, path, timeout=timeout)

    def set_acl(
        self,
        path: str,
        acl: Iterable[ACL],
        version: int = -1,
        *,
        timeout: float | None = None,
    ) -> Stat:
        """See :meth:`Client.set_acl`."""
        return self._call(self._client.set_acl, path, tuple(acl), version, timeout=timeout)

    def sync(self, path: str = "/", *, timeout: float | None = None) -> None:
        """See :meth:`Client.sync`."""
        self._call(self._client.sync, path, timeout=timeout)

    def get_config(self, *, timeout: float | None = None) -> tuple[bytes, Stat]:
        """See :meth:`Client.get_config`."""
        return self._call(self._client.get_config, timeout=timeout)

    def reconfig(
        self,
        joining: str | Sequence[str] | None = None,
        leaving: str | Sequence[str | int] | None = None,
        new_members: str | Sequence[str] | None = None,
        from_config: int = -1,
        *,
        timeout: float | None = None,
    ) -> tuple[bytes, Stat]:
        """See :meth:`Client.reconfig`."""
        return self._call(
            self._client.reconfig, joining, leaving, new_members, from_config, timeout=timeout
        )

    def whoami(self, *, timeout: float | None = None) -> list[ClientInfo]:
        """See :meth:`Client.whoami`."""
        return self._call(self._client.whoami, timeout=timeout)

    def add_auth(
        self, scheme: str, credentials: bytes | str, *, timeout: float | None = None
    ) -> None:
        """See :meth:`Client.add_auth`."""
        self._call(self._client.add_auth, scheme, credentials, timeout=timeout)

    def multi_read(self, *ops: ReadOp, timeout: float | None = None) -> list[ReadResult]:
        """See :meth:`Client.multi_read`."""
        return self._call(self._client.multi_read, *ops, timeout=timeout)

    def transaction(self) -> SyncTransaction:
        """A new transaction builder; ``commit(timeout=...)`` applies it."""
        return SyncTransaction(self, self._client.transaction())

    # --- watch streams --------------------------------------------------------------------

    def _stream(self, factory: Callable[[str], WatchStream], path: str) -> SyncWatchStream:
        portal = self._portal
        if portal is None:
            raise ClientClosedError("the client is not open")
        # Built in the event loop thread: the stream owns anyio primitives.
        return SyncWatchStream(self, portal.call(factory, path))

    def watch(self, path: str) -> SyncWatchStream:
        """A blocking iterator of one node's changes (see :meth:`Client.watch`)."""
        return self._stream(self._client.watch, path)

    def watch_children(self, path: str) -> SyncWatchStream:
        """A blocking iterator of a node's children changes (see
        :meth:`Client.watch_children`)."""
        return self._stream(self._client.watch_children, path)

    def watch_tree(self, path: str) -> SyncWatchStream:
        """A blocking iterator of a subtree's changes (see :meth:`Client.watch_tree`)."""
        return self._stream(self._client.watch_tree, path)


class SyncTransaction:
    """The blocking counterpart of :class:`~coord.client.Transaction`."""

    def __init__(self, client: SyncClient, transaction: Transaction) -> None:
        self._client = client
        self._txn = transaction

    def create(
        self,
        path: str,
        data: bytes = b"",
        *,
        acl: Iterable[ACL] | None = None,
        ephemeral: bool = False,
        sequential: bool = False,
        container: bool = False,
        ttl: float | None = None,
    ) -> SyncTransaction:
        """Add a create (see :meth:`Transaction.create`)."""
        self._txn.create(
            path,
            data,
            acl=acl,
            ephemeral=ephemeral,
            sequential=sequential,
            container=container,
            ttl=ttl,
        )
        return self

    def set(self, path: str, data: bytes, version: int = -1) -> SyncTransaction:
        """Add a set (see :meth:`Transaction.set`)."""
        self._txn.set(path, data, version)
        return self

    def delete(self, path: str, version: int = -1) -> SyncTransaction:
        """Add a delete (see :meth:`Transaction.delete`)."""
        self._txn.delete(path, version)
        return self

    def check(self, path: str, version: int) -> SyncTransaction:
        """Add a version check (see :meth:`Transaction.check`)."""
        self._txn.check(path, version)
        return self

    def commit(self, *, timeout: float | None = None) -> list[OpResult]:
        """Apply the ops atomically (see :meth:`Transaction.commit`)."""
        return self._client._call(self._txn.commit, timeout=timeout)


class SyncWatchStream:
    """A blocking iterator over a :class:`~coord.client.WatchStream`.

    Use it as a context manager (registers the watch on entry, removes it on exit)::

        with client.watch("/config") as events:
            for event in events:
                ...

    ``next_event(timeout=...)`` waits for one event with a limit.
    """

    def __init__(self, client: SyncClient, stream: WatchStream) -> None:
        self._client = client
        self._stream = stream

    @property
    def path(self) -> str:
        """The watched path."""
        return self._stream.path

    def start(self, timeout: float | None = None) -> None:
        """Register the watch (done on entry, or by the first ``next``)."""
        self._client._call(self._stream.start, timeout=timeout)

    def close(self) -> None:
        """Remove the watch; iteration ends."""
        with contextlib.suppress(ClientClosedError):
            self._client._call(self._stream.aclose)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> WatchedEvent:
        return self.next_event()

    def next_event(self, timeout: float | None = None) -> WatchedEvent:
        """The next event.

        Raises:
            StopIteration: the stream or the client was closed.
            SessionExpiredError: the session was lost.
            TimeoutError: ``timeout`` expired first.
        """
        try:
            return self._client._call(self._stream.__anext__, timeout=timeout)
        except (StopAsyncIteration, ClientClosedError):
            raise StopIteration from None


def connect_sync(
    hosts: str,
    *,
    session_timeout: float = 10.0,
    auth: Sequence[tuple[str, bytes | str]] = (),
    read_only: bool = False,
    retry: RetryPolicy | None = None,
    backend: str = "asyncio",
    zones: Mapping[str, str] | None = None,
    zone: str | None = None,
    probe_interval: float = 10.0,
    tls: TlsOptions | ssl.SSLContext | bool | None = None,
) -> SyncClient:
    """A blocking client; use it with ``with``.

    ::

        with coord.connect_sync("zk1:2181,zk2:2181") as client:
            client.create("/config", b"v1")

    Args:
        hosts, session_timeout, auth, read_only, retry, zones, zone, probe_interval, tls:
            as for :func:`coord.connect`.
        backend: the anyio backend of the client's event loop thread (``"asyncio"`` or
            ``"trio"``).

    Returns:
        An unopened :class:`SyncClient`: entering it connects; leaving it closes.
    """
    return SyncClient(
        hosts,
        session_timeout=session_timeout,
        auth=auth,
        read_only=read_only,
        retry=retry,
        backend=backend,
        zones=zones,
        zone=zone,
        probe_interval=probe_interval,
        tls=tls,
    )
