"""Watch objects handed to users: one-shot watches and watch streams (async iterators).

Theory of operation
-------------------
Every object here is a *watcher* in the core's :class:`~coord.client._registry.WatchRegistry`:
the driver calls ``_deliver(event)`` for each notification it fires, ``_restored(...)``
after watches were re-registered on a new connection, and ``_end(error)`` when the
session is over. None of them runs a task: a one-shot watch is an :class:`anyio.Event`; a
stream is a queue that its consumer drains in ``__anext__``, re-arming one-shot watches
there when it emulates a persistent watch.

A :class:`WatchStream` uses ``addWatch`` (persistent, or persistent-recursive for trees)
when the server knows it and otherwise emulates it with one-shot watches re-armed after
each event (ZooKeeper before 3.6). Either way no change is lost:

* across a reconnect, the one-shot watches are re-registered relative to the last zxid
  the client saw, and persistent ones are re-registered with catch-up entries (see
  :mod:`coord.client._registry`), so a change made while the client was away fires;
* an emulated stream re-arms its watch *before* it hands out the event that fired it, so
  a change after the re-arm fires again and the consumer's read after the event sees any
  change before it; when the re-arming read shows the node appeared or vanished (or, on
  servers that send event zxids, changed again) meanwhile, that change is yielded too.

Several changes may be reported as one event when they happen while the client is away
(ZooKeeper itself coalesces them), so a consumer re-reads the node on each event. Below
the root of a *tree* watch, changes made while the client was away cannot be replayed by
the server: the stream then yields one ``EventType.NONE`` event for the root, meaning
"re-read the subtree", and only when the server's zxid moved in the meantime.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

import anyio

from coord.protocol import (
    AddWatchMode,
    CoordError,
    EventType,
    KeeperState,
    NoNodeError,
    SessionExpiredError,
    Stat,
    UnimplementedError,
)

from ._core import WatchesRestored
from ._paths import join_path, parent_path
from ._registry import WatchKind
from ._types import ClientClosedError, WatchedEvent

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["OneShotWatch", "WatchStream"]

log = logging.getLogger("coord.client")

WatchMode = Literal["data", "children", "tree"]

_DATA_TYPES = frozenset(
    {EventType.NODE_CREATED, EventType.NODE_DELETED, EventType.NODE_DATA_CHANGED}
)
_CHILD_TYPES = frozenset(
    {EventType.NODE_CREATED, EventType.NODE_DELETED, EventType.NODE_CHILDREN_CHANGED}
)


def _run_callback(callback: Callable[..., object], *args: object) -> None:
    """Callbacks run in the reader's turn: one that raises must not break the connection."""
    try:
        callback(*args)
    except Exception:
        log.exception("watch callback %r failed", callback)


def _end_state(error: CoordError) -> KeeperState:
    return KeeperState.EXPIRED if isinstance(error, SessionExpiredError) else KeeperState.CLOSED


class OneShotWatch:
    """A watch set by ``get``/``exists``/``children(..., watch=True)``: fires at most once.

    It survives reconnects (the client re-registers it, and a change made while the
    client was away fires it). Await :meth:`wait` for the event.
    """

    __slots__ = ("_callbacks", "_done", "_error", "_event", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._done = anyio.Event()
        self._event: WatchedEvent | None = None
        self._error: CoordError | None = None
        self._callbacks: list[Callable[[WatchedEvent], object]] = []

    def __repr__(self) -> str:
        state = "fired" if self._event else "ended" if self._error else "armed"
        return f"<OneShotWatch {self.path!r} {state}>"

    @property
    def fired(self) -> bool:
        """Whether the watch fired (see :attr:`event`)."""
        return self._event is not None

    @property
    def event(self) -> WatchedEvent | None:
        """The event that fired the watch, if it fired."""
        return self._event

    async def wait(self) -> WatchedEvent:
        """Wait until the watch fires.

        Returns:
            The event (its ``type`` says what changed).

        Raises:
            SessionExpiredError: the session was lost first; the watch is gone.
            ClientClosedError: the client was closed first.
        """
        await self._done.wait()
        if self._event is not None:
            return self._event
        assert self._error is not None
        raise self._error

    def add_callback(self, callback: Callable[[WatchedEvent], object]) -> None:
        """Call ``callback(event)`` in the event loop when the watch fires.

        When the session ends first, the callback gets an ``EventType.NONE`` event whose
        ``state`` is ``EXPIRED`` or ``CLOSED``. Runs at once if that already happened.
        """
        if self._done.is_set():
            _run_callback(callback, self._final_event())
        else:
            self._callbacks.append(callback)

    def _final_event(self) -> WatchedEvent:
        if self._event is not None:
            return self._event
        assert self._error is not None
        return WatchedEvent(EventType.NONE, self.path, -1, _end_state(self._error))

    def _deliver(self, event: WatchedEvent) -> None:
        if self._done.is_set():
            return
        self._event = event
        self._finish()

    def _end(self, error: CoordError) -> None:
        if self._done.is_set():
            return
        self._error = error
        self._finish()

    def _restored(self, restored: WatchesRestored) -> None:
        pass

    def _finish(self) -> None:
        self._done.set()
        callbacks, self._callbacks = self._callbacks, []
        event = self._final_event()
        for callback in callbacks:
            _run_callback(callback, event)


class WatchStream:
    """The events of a node (``watch``), of its children (``watch_children``) or of a
    subtree (``watch_tree``), as an async iterator that survives reconnects.

    Use it as an async context manager so the watch is registered before you read the
    current state, and removed when you are done::

        async with client.watch("/config") as events:
            data, stat = await client.get("/config")
            async for event in events:
                data, stat = await client.get("/config")

    Iterating without ``async with`` registers the watch on the first ``__anext__`` and
    removes it on :meth:`aclose`. Iteration ends when the client is closed, and raises
    :class:`~coord.SessionExpiredError` when the session is lost.
    """

    def __init__(self, client: Client, path: str, server_path: str, mode: WatchMode) -> None:
        self._client = client
        self.path = path
        self._spath = server_path
        self._mode: WatchMode = mode
        self._queue: deque[WatchedEvent] = deque()
        self._wakeup = anyio.Event()
        self._started = False
        self._closed = False
        self._error: CoordError | None = None
        self._persistent = False
        self._callbacks: list[Callable[[], object]] = []
        # Emulation state (one-shot watches re-armed by the consumer).
        self._data_armed = False
        self._child_armed = False
        self._exists: bool | None = None
        self._zxid: int | None = None  # mzxid (data) or pzxid (children) last reported
        self._nodes: dict[str, int | None] = {}  # tree: known nodes -> mzxid
        self._to_arm: dict[str, set[str]] = {}  # tree: path -> {"data", "child"}

    def __repr__(self) -> str:
        how = "persistent" if self._persistent else "emulated" if self._started else "new"
        return f"<WatchStream {self._mode} {self.path!r} {how}>"

    @property
    def persistent(self) -> bool:
        """Whether the server keeps a persistent watch (False: emulated with one-shots)."""
        return self._persistent

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Register the watch (done by ``async with`` or the first ``__anext__``).

        Raises:
            SessionExpiredError, ClientClosedError: the client cannot register watches.
        """
        if self._started:
            return
        self._started = True
        client = self._client
        client._streams.add(self)
        try:
            if client._persistent_supported is not False:
                mode = (
                    AddWatchMode.PERSISTENT_RECURSIVE
                    if self._mode == "tree"
                    else AddWatchMode.PERSISTENT
                )
                try:
                    await client._add_persistent_watch(self._spath, mode, self)
                except UnimplementedError:
                    client._persistent_supported = False
                else:
                    client._persistent_supported = True
                    self._persistent = True
                    return
            await self._arm(baseline=True)
        except BaseException:
            self._unregister()
            raise

    async def aclose(self) -> None:
        """Remove the watch; iteration ends. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._wakeup.set()
        if self._started:
            self._unregister()

    def _unregister(self) -> None:
        client = self._client
        client._streams.discard(self)
        if self._persistent:
            kind = WatchKind.PERSISTENT_RECURSIVE if self._mode == "tree" else WatchKind.PERSISTENT
            client._remove_watcher(kind, self._spath, self)
        else:
            paths = [self._spath, *self._nodes]
            for path in paths:
                for kind in (WatchKind.DATA, WatchKind.EXIST, WatchKind.CHILD):
                    client._remove_watcher(kind, path, self, server=False)

    # --- iteration ------------------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchedEvent:
        if not self._started:
            await self.start()
        while True:
            live = not self._closed and self._error is None
            if live and not self._persistent and self._needs_arming():
                # Re-arm *before* handing out the event: whatever changes after this
                # read fires the new watch, and the consumer's own read after the event
                # sees everything before it. No gap, even without event zxids.
                await self._arm(baseline=False)
                continue
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                raise StopAsyncIteration
            if self._error is not None:
                if isinstance(self._error, ClientClosedError):
                    raise StopAsyncIteration
                raise self._error
            self._wakeup = anyio.Event()
            await self._wakeup.wait()

    def _push(self, event: WatchedEvent) -> None:
        self._queue.append(event)
        self._wakeup.set()
        for callback in list(self._callbacks):
            _run_callback(callback)

    def _add_listener(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` in the event loop whenever an event is queued (sync facade)."""
        self._callbacks.append(callback)

    # --- called by the driver -------------------------------------------------------------

    def _deliver(self, event: WatchedEvent) -> None:
        if self._closed:
            return
        if self._persistent:
            if self._accepts(event.type):
                self._push(event)
            return
        if self._mode == "tree":
            self._tree_event(event)
            return
        kind = event.type
        if kind in _DATA_TYPES:
            self._data_armed = False
        if kind in (EventType.NODE_CHILDREN_CHANGED, EventType.NODE_DELETED):
            self._child_armed = False
        if kind == EventType.NODE_DELETED:
            self._exists, self._zxid = False, None
        elif kind == EventType.NODE_CREATED:
            self._exists, self._zxid = True, (event.zxid if event.zxid > 0 else None)
        elif self._accepts(kind):
            self._zxid = event.zxid if event.zxid > 0 else None
        if self._accepts(kind):
            self._push(event)

    def _restored(self, restored: WatchesRestored) -> None:
        if self._mode == "tree" and self._persistent and restored.zxid > restored.relative_zxid:
            self._push(WatchedEvent(EventType.NONE, self.path, restored.zxid))

    def _end(self, error: CoordError) -> None:
        if self._error is None:
            self._error = error
        self._wakeup.set()
        for callback in list(self._callbacks):
            _run_callback(callback)

    def _accepts(self, kind: EventType) -> bool:
        if self._mode == "data":
            return kind in _DATA_TYPES
        if self._mode == "children":
            return kind in _CHILD_TYPES
        return kind != EventType.NODE_CHILDREN_CHANGED

    # --- emulation with one-shot watches --------------------------------------------------

    def _needs_arming(self) -> bool:
        if self._mode == "tree":
            return bool(self._to_arm)
        if self._mode == "data":
            return not self._data_armed
        return not (self._child_armed or (self._exists is False and self._data_armed))

    def _synthesize(self, kind: EventType, path: str, zxid: int = -1) -> None:
        self._push(WatchedEvent(kind, path, zxid))

    async def _arm(self, *, baseline: bool) -> None:
        if self._mode == "data":
            await self._arm_data(baseline)
        elif self._mode == "children":
            await self._arm_children(baseline)
        else:
            if baseline:
                self._to_arm[self._spath] = {"data", "child"}
            await self._arm_tree(baseline)

    async def _arm_data(self, baseline: bool) -> None:
        stat = await self._client._exists_watch(self._spath, self)
        self._data_armed = True
        if not baseline:
            self._compare(stat, stat.mzxid if stat else None)
        self._exists = stat is not None
        self._zxid = stat.mzxid if stat else None

    async def _arm_children(self, baseline: bool) -> None:
        while True:
            try:
                stat = await self._client._children_watch(self._spath, self)
            except NoNodeError:
                created = await self._client._exists_watch(self._spath, self)
                self._data_armed = True
                if created is not None:
                    continue  # created meanwhile: watch its children
                self._child_armed = False
                if not baseline:
                    self._compare(None, None)
                self._exists, self._zxid = False, None
                return
            self._child_armed = True
            if not baseline:
                self._compare(stat, stat.pzxid)
            self._exists, self._zxid = True, stat.pzxid
            return

    def _compare(self, stat: Stat | None, zxid: int | None) -> None:
        """Yield the change a re-arm revealed, if the last event did not already tell it."""
        if self._exists is None:
            return
        if self._exists and stat is None:
            self._synthesize(EventType.NODE_DELETED, self.path)
        elif not self._exists and stat is not None:
            self._synthesize(EventType.NODE_CREATED, self.path, stat.czxid)
        elif stat is not None and zxid is not None and self._zxid is not None and zxid > self._zxid:
            kind = (
                EventType.NODE_DATA_CHANGED
                if self._mode == "data"
                else EventType.NODE_CHILDREN_CHANGED
            )
            self._synthesize(kind, self.path, zxid)

    # --- tree emulation -------------------------------------------------------------------

    def _client_path(self, server_path: str) -> str:
        return self._client._chroot.to_client(server_path)

    def _tree_event(self, event: WatchedEvent) -> None:
        spath = self._client._chroot.to_server(event.path)
        kind = event.type
        if kind == EventType.NODE_CHILDREN_CHANGED:
            self._to_arm.setdefault(spath, set()).add("child")
            self._wakeup.set()
            return
        if kind == EventType.NODE_CREATED:
            self._to_arm.setdefault(spath, set()).update(("data", "child"))
            if spath in self._nodes:
                return
            self._nodes[spath] = event.zxid if event.zxid > 0 else None
        elif kind == EventType.NODE_DATA_CHANGED:
            self._to_arm.setdefault(spath, set()).add("data")
            self._nodes[spath] = event.zxid if event.zxid > 0 else None
        elif kind == EventType.NODE_DELETED:
            if spath not in self._nodes:
                return
            self._forget(spath)
            if spath == self._spath:
                self._to_arm[spath] = {"data", "child"}
        self._push(event)

    def _forget(self, spath: str) -> None:
        prefix = spath.rstrip("/") + "/"
        for path in [p for p in self._nodes if p == spath or p.startswith(prefix)]:
            del self._nodes[path]
            self._to_arm.pop(path, None)

    async def _arm_tree(self, baseline: bool) -> None:
        client = self._client
        while self._to_arm and not self._closed:
            spath = next(iter(self._to_arm))
            kinds = self._to_arm.pop(spath)
            if "data" in kinds:
                stat = await client._exists_watch(spath, self)
                if stat is None:
                    if spath in self._nodes:
                        self._forget(spath)
                        self._synthesize(EventType.NODE_DELETED, self._client_path(spath))
                    continue
                known = self._nodes.get(spath, -1)
                if spath not in self._nodes:
                    if not baseline:
                        self._synthesize(
                            EventType.NODE_CREATED, self._client_path(spath), stat.czxid
                        )
                elif known is not None and known != -1 and stat.mzxid > known:
                    self._synthesize(
                        EventType.NODE_DATA_CHANGED, self._client_path(spath), stat.mzxid
                    )
                self._nodes[spath] = stat.mzxid
            if "child" in kinds and spath in self._nodes:
                try:
                    names = await client._children_names_watch(spath, self)
                except NoNodeError:
                    continue
                present = {join_path(spath, name) for name in names}
                for child in sorted(present):
                    if child not in self._nodes:
                        self._to_arm.setdefault(child, set()).update(("data", "child"))
                for known_path in [p for p in self._nodes if p != spath]:
                    if parent_path(known_path) == spath and known_path not in present:
                        self._forget(known_path)
                        self._synthesize(EventType.NODE_DELETED, self._client_path(known_path))
