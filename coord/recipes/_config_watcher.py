"""ConfigWatcher: the current value of a node, or of a whole subtree, kept up to date.

Theory of operation
-------------------
The equivalent of Curator's ``CuratorCache`` / kazoo's ``TreeCache`` and ``DataWatch``,
built on the client's watch streams (which survive reconnects and miss no change):

1. register the stream first (``client.watch`` for one node, ``client.watch_tree`` for a
   subtree), *then* read the state -- a change after the registration fires an event, a
   change before it is in what we read, so there is no gap;
2. on each event, re-read what it names and update the cache. Events are hints ("re-read
   this"), never data: several changes may arrive as one event, and a re-read may already
   show a later state than the event -- the next event re-reads again, so the cache
   converges on the server's state.

Tree events and what they re-read:

* ``NODE_CREATED`` *p*: the subtree at *p* (read its data, list its children, recurse);
* ``NODE_DATA_CHANGED`` *p*: the data of *p* (gone meanwhile: forget the subtree);
* ``NODE_DELETED`` *p*: forget the subtree at *p*;
* ``NODE_CHILDREN_CHANGED`` *p* (emulated streams): list *p*'s children, read the new ones,
  forget the vanished ones;
* ``NONE`` (after a reconnect when the server moved meanwhile: changes below the root
  cannot be replayed): the whole subtree again.

Memory is one ``bytes`` per node of the subtree (and one snapshot copy per yield).

Failure semantics:

* disconnect (``SUSPENDED``): the snapshot stays as it is (it may be stale); iteration
  waits for the reconnection;
* reconnect: the stream catches up (the changed nodes' events, or one ``NONE`` event for a
  tree) and a new snapshot is yielded if anything changed meanwhile;
* session expiry: iteration raises :class:`~coord.SessionExpiredError` (the watches are
  gone with the session); closing the client ends the iteration.

With a :class:`~coord.client.SyncClient`, ``with`` and ``for`` work the same way
(blocking), and :meth:`ConfigWatcher.next_snapshot` takes a ``timeout``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import anyio
from anyio.abc import TaskStatus

from coord.client import Client, EventType, SyncClient, WatchedEvent
from coord.client._paths import join_path
from coord.client._watch import WatchStream
from coord.protocol import NoNodeError
from coord.recipes._contender import async_client
from coord.recipes._facade import SyncContext, SyncIterator, sync_client

__all__ = ["ConfigWatcher", "Snapshot", "SnapshotStream"]

log = logging.getLogger("coord.recipes")

Snapshot = bytes | None | dict[str, bytes]
"""What a :class:`ConfigWatcher` yields: ``bytes | None`` for one node, ``dict[str, bytes]``
(absolute path -> data, the root included) for a subtree."""

T = TypeVar("T")


def _under(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it."""
    if path == root:
        return True
    prefix = root if root.endswith("/") else root + "/"
    return path.startswith(prefix)


class ConfigWatcher(SyncContext, SyncIterator):
    """The value of ``path`` (or of its whole subtree) kept up to date.

    ``async for snapshot in watcher`` yields the current snapshot at once, then a new one
    after every change (equal consecutive snapshots are not repeated). Use it as an async
    context manager to remove the watch when done (otherwise it is removed when the
    client closes)::

        async with ConfigWatcher(client, "/config/app", recursive=True) as watcher:
            async for snapshot in watcher:
                apply(snapshot)

    or with a callback: ``snapshot = await tg.start(watcher.run, callback)``. On a
    SyncClient: ``with ConfigWatcher(sync, path) as watcher: for snapshot in watcher:``.

    Args:
        client: a :class:`~coord.client.Client` (or a :class:`~coord.client.SyncClient`,
            whose async client is used).
        path: the node watched; it need not exist.
        recursive: watch the node and all its descendants.

    Snapshots: for one node, its data or ``None`` while it does not exist; for a subtree, a
    new ``dict`` from absolute path to data (empty while the root does not exist).

    Failure semantics: see :mod:`coord.recipes._config_watcher` -- stale but kept while
    suspended, caught up on reconnect, :class:`~coord.SessionExpiredError` on expiry.
    """

    def __init__(self, client: Client | SyncClient, path: str, *, recursive: bool = False) -> None:
        self._sync = sync_client(client)
        self._client = async_client(client)
        self.path = path
        self.recursive = recursive
        self._nodes: dict[str, bytes] = {}
        self._data: bytes | None = None
        self._stream: WatchStream | None = None
        self._last: Snapshot = None
        self._yielded = False

    def __repr__(self) -> str:
        return f"<ConfigWatcher {self.path!r}{' recursive' if self.recursive else ''}>"

    @property
    def current(self) -> Snapshot:
        """The latest snapshot read (``None`` / ``{}`` before the first read)."""
        return dict(self._nodes) if self.recursive else self._data

    # --- life cycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Remove the watch (shielded); iteration ends."""
        stream, self._stream = self._stream, None
        if stream is not None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _start(self) -> None:
        if self._stream is not None:
            return
        if self.recursive:
            stream = self._client.watch_tree(self.path)
        else:
            stream = self._client.watch(self.path)
        await stream.__aenter__()
        self._stream = stream
        try:
            await self._sync_all()
        except BaseException:
            await self.aclose()
            raise

    # --- iteration --------------------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Snapshot:
        if self._stream is None:
            if self._yielded:
                raise StopAsyncIteration
            await self._start()
        if not self._yielded:
            return self._emit()
        while True:
            stream = self._stream
            if stream is None:
                raise StopAsyncIteration
            event = await stream.__anext__()  # StopAsyncIteration when the client closes
            await self._apply(event)
            snapshot = self.current
            if snapshot != self._last:
                return self._emit()

    def next_snapshot(self, timeout: float | None = None) -> Snapshot:
        """The next snapshot, blocking (SyncClient only).

        Raises:
            StopIteration: the watch was removed or the client closed.
            SessionExpiredError: the session was lost.
            TimeoutError: ``timeout`` seconds passed first.
            TypeError: the watcher was built on an async client.
        """
        result: Snapshot = self._next_blocking(timeout)
        return result

    def _emit(self) -> Snapshot:
        self._yielded = True
        self._last = self.current
        return self.current

    async def run(
        self,
        callback: Callable[[Snapshot], object],
        *,
        task_status: TaskStatus[Snapshot] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Call ``callback(snapshot)`` with the current snapshot and after each change.

        Runs until cancelled or the client is closed; ``await tg.start(watcher.run, cb)``
        returns the first snapshot once the callback has seen it.

        Raises:
            SessionExpiredError: the session was lost.
        """
        async with self:
            first = True
            async for snapshot in self:
                callback(snapshot)
                if first:
                    first = False
                    task_status.started(snapshot)

    # --- reads ------------------------------------------------------------------------------

    async def _sync_all(self) -> None:
        if self.recursive:
            await self._sync_subtree(self.path)
        else:
            await self._read_one()

    async def _read_one(self) -> None:
        try:
            self._data, _ = await self._client.get(self.path)
        except NoNodeError:
            self._data = None

    def _forget(self, path: str) -> None:
        for key in [key for key in self._nodes if _under(key, path)]:
            del self._nodes[key]

    async def _sync_subtree(self, path: str) -> None:
        """Re-read the subtree at ``path`` (replacing what the cache held under it)."""
        fresh: dict[str, bytes] = {}
        pending = [path]
        while pending:
            node = pending.pop()
            try:
                fresh[node], _ = await self._client.get(node)
                names = await self._client.children(node)
            except NoNodeError:
                fresh.pop(node, None)
                continue
            pending.extend(join_path(node, name) for name in names)
        self._forget(path)
        self._nodes.update(fresh)

    async def _sync_children(self, path: str) -> None:
        try:
            names = set(await self._client.children(path))
        except NoNodeError:
            self._forget(path)
            return
        known = {key.rsplit("/", 1)[1] for key in self._nodes if _parent(key) == path}
        for gone in known - names:
            self._forget(join_path(path, gone))
        for new in names - known:
            await self._sync_subtree(join_path(path, new))

    async def _apply(self, event: WatchedEvent) -> None:
        if not self.recursive:
            await self._read_one()
            return
        path = event.path if event.path and _under(event.path, self.path) else self.path
        if event.type is EventType.NONE:
            await self._sync_subtree(self.path)
        elif event.type is EventType.NODE_DELETED:
            self._forget(path)
        elif event.type is EventType.NODE_DATA_CHANGED:
            try:
                self._nodes[path], _ = await self._client.get(path)
            except NoNodeError:
                self._forget(path)
        elif event.type is EventType.NODE_CHILDREN_CHANGED:
            await self._sync_children(path)
        else:  # NODE_CREATED, or anything unexpected: re-read
            await self._sync_subtree(path)


def _parent(path: str) -> str:
    head = path.rsplit("/", 1)[0]
    return head or "/"


class SnapshotStream(SyncContext, SyncIterator, Generic[T]):
    """A :class:`ConfigWatcher` whose snapshots are turned into values by ``convert``;
    equal consecutive values are not repeated. Used by Group and ServiceRegistry.

    An async iterator and context manager; on a SyncClient, a blocking one."""

    def __init__(self, watcher: ConfigWatcher, convert: Callable[[Mapping[str, bytes]], T]) -> None:
        self._sync = watcher._sync
        self._watcher = watcher
        self._convert = convert
        self._last: Any = _UNSET

    async def __aenter__(self) -> Self:
        await self._watcher.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._watcher.aclose()

    async def aclose(self) -> None:
        """Remove the watch; iteration ends."""
        await self._watcher.aclose()

    def __aiter__(self) -> Self:
        return self

    def __next__(self) -> T:
        return self.next_snapshot()

    def next_snapshot(self, timeout: float | None = None) -> T:
        """The next value, blocking (SyncClient only); see :meth:`ConfigWatcher.next_snapshot`."""
        result: T = self._next_blocking(timeout)
        return result

    async def __anext__(self) -> T:
        while True:
            snapshot = await self._watcher.__anext__()
            assert isinstance(snapshot, dict)
            value = self._convert(snapshot)
            if value != self._last:
                self._last = value
                return value


_UNSET: Any = object()
