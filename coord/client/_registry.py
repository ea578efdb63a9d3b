"""The client's watch registry: who waits for which event, and what to re-register.

Theory of operation
-------------------
ZooKeeper keeps one entry per (connection, path, kind) on the server; the client keeps the
watchers behind each entry (``ZKWatchManager`` in the Java client). Five tables, by path:

* ``DATA``  -- one-shot, set by ``getData`` and by ``exists`` on an existing node;
* ``EXIST`` -- one-shot, set by ``exists`` on a missing node (fires on creation);
* ``CHILD`` -- one-shot, set by ``getChildren``;
* ``PERSISTENT`` and ``PERSISTENT_RECURSIVE`` -- set by ``addWatch``, never fired away.

A watcher is registered when the *reply* to its request arrives and says the server set
the watch (success; for ``exists`` also NoNode), never when the request is sent: a failed
``getData`` leaves no watch on the server, so none must be left here.

:meth:`WatchRegistry.materialize` maps a notification to its watchers with the Java
client's rules: data and created events fire data and exist watches, child events fire
child watches, deletion fires all three; one-shot watchers are removed as they fire;
persistent watchers on the path, and recursive ones on the path or any ancestor (except
for child events, which recursive watches do not get), are kept. A watcher registered
under several kinds is notified once per event.

After a reconnect, :meth:`WatchRegistry.set_watches` produces the ``setWatches`` requests
that put every watch back, relative to the last zxid the client saw, so the server fires
at once those whose nodes changed meanwhile: no change is missed. ``setWatches2`` is used
only for batches holding persistent watches (older servers do not know it), and batches
stay near 128 KiB like the Java client's, under the server's frame limit.

The server does not replay missed events for persistent watches -- ZooKeeper's
``DataTree.setWatches`` just re-adds them. So for each persistent path the registry also
lists the path as a one-shot data (and, non-recursive, child) watch when the node is known
to exist, or as an exist watch when it is known to be missing, *in the same request* as
the persistent entry: the server then fires the catch-up event for a change made while
the client was away, and the persistent watcher receives it. "Known" comes from the
replies and events about the path since the watch was added (:meth:`note_exists`).

Pure: no I/O, no clocks; watchers are opaque hashable objects.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from coord.protocol import EventType, OpCode, SetWatches, SetWatches2

__all__ = ["SET_WATCHES_MAX_BYTES", "WatchKind", "WatchRegistry"]

W = TypeVar("W", bound=Hashable)

#: Upper bound (approximately, as the Java client) of the paths in one setWatches request.
SET_WATCHES_MAX_BYTES = 128 * 1024


class WatchKind(enum.IntEnum):
    """The client-side tables of :class:`WatchRegistry`."""

    DATA = 1
    EXIST = 2
    CHILD = 3
    PERSISTENT = 4
    PERSISTENT_RECURSIVE = 5


_ONE_SHOT = (WatchKind.DATA, WatchKind.EXIST, WatchKind.CHILD)
_PERSISTENT = (WatchKind.PERSISTENT, WatchKind.PERSISTENT_RECURSIVE)


def _ancestors_and_self(path: str) -> Iterable[str]:
    yield path
    while path != "/":
        path = path.rsplit("/", 1)[0] or "/"
        yield path


class WatchRegistry(Generic[W]):
    """Watchers by kind and server path (see the module docstring)."""

    __slots__ = ("_known", "_tables")

    def __init__(self) -> None:
        self._tables: dict[WatchKind, dict[str, dict[W, None]]] = {k: {} for k in WatchKind}
        self._known: dict[str, bool] = {}

    # --- registration ----------------------------------------------------------------

    def add(self, kind: WatchKind, path: str, watcher: W) -> None:
        """Register ``watcher`` under ``kind`` on ``path``."""
        self._tables[kind].setdefault(path, {})[watcher] = None

    def remove(self, kind: WatchKind, path: str, watcher: W) -> bool:
        """Unregister ``watcher``; True if no watcher of ``kind`` is left on ``path``."""
        table = self._tables[kind]
        watchers = table.get(path)
        if watchers is None:
            return True
        watchers.pop(watcher, None)
        if watchers:
            return False
        del table[path]
        if kind in _PERSISTENT and not self.is_persistent(path):
            self._known.pop(path, None)
        return True

    def has(self, kind: WatchKind, path: str) -> bool:
        """Whether any watcher of ``kind`` is registered on ``path``."""
        return path in self._tables[kind]

    def watchers(self, kind: WatchKind, path: str) -> list[W]:
        """The watchers of ``kind`` on ``path``."""
        return list(self._tables[kind].get(path, ()))

    def is_persistent(self, path: str) -> bool:
        """Whether ``path`` has a persistent or persistent-recursive watch."""
        return any(path in self._tables[k] for k in _PERSISTENT)

    def is_empty(self) -> bool:
        """No watcher at all."""
        return not any(self._tables.values())

    def note_exists(self, path: str, exists: bool) -> None:
        """Record whether the node at ``path`` exists, as a reply or event just said.

        Only kept for paths with persistent watches (used by :meth:`set_watches`).
        """
        if self.is_persistent(path):
            self._known[path] = exists

    def known_exists(self, path: str) -> bool | None:
        """Whether the node of a persistent watch is known to exist (None: unknown)."""
        return self._known.get(path)

    def drain(self) -> list[W]:
        """Remove and return every watcher (the session ended)."""
        seen: dict[W, None] = {}
        for table in self._tables.values():
            for watchers in table.values():
                seen.update(watchers)
            table.clear()
        self._known.clear()
        return list(seen)

    # --- notifications -----------------------------------------------------------------

    def materialize(self, event_type: int, path: str) -> list[W]:
        """The watchers to notify of ``event_type`` on ``path``, removing fired one-shots."""
        tables = self._tables
        result: dict[W, None] = {}
        if event_type in (EventType.NODE_CREATED, EventType.NODE_DATA_CHANGED):
            result.update(tables[WatchKind.DATA].pop(path, {}))
            result.update(tables[WatchKind.EXIST].pop(path, {}))
        elif event_type == EventType.NODE_CHILDREN_CHANGED:
            result.update(tables[WatchKind.CHILD].pop(path, {}))
        elif event_type == EventType.NODE_DELETED:
            result.update(tables[WatchKind.DATA].pop(path, {}))
            result.update(tables[WatchKind.EXIST].pop(path, {}))
            result.update(tables[WatchKind.CHILD].pop(path, {}))
        else:
            return []
        result.update(tables[WatchKind.PERSISTENT].get(path, {}))
        if event_type != EventType.NODE_CHILDREN_CHANGED:
            recursive = tables[WatchKind.PERSISTENT_RECURSIVE]
            if recursive:
                for ancestor in _ancestors_and_self(path):
                    result.update(recursive.get(ancestor, {}))
        if path in self._known:
            self._known[path] = event_type != EventType.NODE_DELETED
        return list(result)

    # --- reconnects ----------------------------------------------------------------------

    def set_watches(
        self, relative_zxid: int, max_bytes: int = SET_WATCHES_MAX_BYTES
    ) -> list[tuple[OpCode, SetWatches | SetWatches2]]:
        """The requests that re-register every watch after a reconnect.

        Args:
            relative_zxid: the last zxid the client is sure its watches saw.
            max_bytes: close a batch once its paths reach this many bytes.

        Returns:
            ``(opcode, record)`` pairs, empty when there is no watch.
        """
        tables = self._tables
        paths = sorted({path for table in tables.values() for path in table})
        requests: list[tuple[OpCode, SetWatches | SetWatches2]] = []
        lists: tuple[list[str], list[str], list[str], list[str], list[str]] = ([], [], [], [], [])
        size = 0

        def flush() -> None:
            nonlocal lists, size
            data, exist, child, persistent, recursive = lists
            if persistent or recursive:
                requests.append(
                    (
                        OpCode.SET_WATCHES2,
                        SetWatches2(
                            relative_zxid,
                            tuple(data),
                            tuple(exist),
                            tuple(child),
                            tuple(persistent),
                            tuple(recursive),
                        ),
                    )
                )
            else:
                requests.append(
                    (
                        OpCode.SET_WATCHES,
                        SetWatches(relative_zxid, tuple(data), tuple(exist), tuple(child)),
                    )
                )
            lists = ([], [], [], [], [])
            size = 0

        for path in paths:
            data = path in tables[WatchKind.DATA]
            exist = path in tables[WatchKind.EXIST]
            child = path in tables[WatchKind.CHILD]
            persistent = path in tables[WatchKind.PERSISTENT]
            recursive = path in tables[WatchKind.PERSISTENT_RECURSIVE]
            if persistent or recursive:
                known = self._known.get(path)
                if known is True:
                    data = True
                    child = child or persistent
                elif known is False:
                    exist = True
            flags = (data, exist, child, persistent, recursive)
            # All entries of one path travel in one request: ZooKeeper applies the
            # persistent entries after the one-shot ones of the same request.
            for target, flag in zip(lists, flags):
                if flag:
                    target.append(path)
            size += (len(path.encode()) + 4) * sum(flags)
            if size >= max_bytes:
                flush()
        if size:
            flush()
        return requests
