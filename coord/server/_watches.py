"""Watch registrations of one server's connections, and who an event notifies.

Theory of operation
-------------------
Watches live on the server holding the connection (as in ZooKeeper) and are keyed by the
connection's *watcher* object. Four tables, as ZooKeeper's ``WatchManager`` with its
``WatcherMode``: one-shot data watches (set by getData and by exists -- also on a missing
node), one-shot child watches (getChildren), persistent watches (addWatch mode 0: every
event on the path itself, child changes included) and persistent-recursive watches (mode
1: every event on the path or below, except NodeChildrenChanged).

:meth:`WatchManager.trigger` maps an event to the watchers to notify, each at most once per
event, removing the one-shot registrations it fires -- including a child watch on a deleted
node whose data watch already fired (ZooKeeper's suppression set). The module is pure: no
I/O, watchers are opaque hashable objects.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from coord.protocol import EventType, WatcherType

__all__ = ["WatchManager"]

_DATA_EVENTS = (EventType.NODE_CREATED, EventType.NODE_DATA_CHANGED, EventType.NODE_DELETED)


class WatchManager:
    """The watch tables of one server."""

    def __init__(self) -> None:
        self.data: dict[str, set[Hashable]] = {}
        self.child: dict[str, set[Hashable]] = {}
        self.persistent: dict[str, set[Hashable]] = {}
        self.recursive: dict[str, set[Hashable]] = {}
        self._by_watcher: dict[Hashable, set[tuple[int, str]]] = {}

    # --- registration ------------------------------------------------------------------

    def _table(self, kind: int) -> dict[str, set[Hashable]]:
        if kind == WatcherType.DATA:
            return self.data
        if kind == WatcherType.CHILDREN:
            return self.child
        if kind == WatcherType.PERSISTENT:
            return self.persistent
        return self.recursive

    def add(self, kind: int, path: str, watcher: Hashable) -> None:
        """Register ``watcher`` for events of ``kind`` (a :class:`WatcherType`) on ``path``."""
        self._table(kind).setdefault(path, set()).add(watcher)
        self._by_watcher.setdefault(watcher, set()).add((kind, path))

    def has(self, kind: int, path: str, watcher: Hashable) -> bool:
        """Whether ``watcher`` has a watch of ``kind`` (ANY: of any kind) on ``path``."""
        kinds = _expand(kind)
        return any(watcher in self._table(k).get(path, ()) for k in kinds)

    def remove(self, kind: int, path: str, watcher: Hashable) -> bool:
        """Remove ``watcher``'s watches of ``kind`` on ``path``; False if there were none.

        ``DATA`` also covers an exist watch, ``ANY`` every kind (as ZooKeeper's
        ``removeWatches``).
        """
        removed = False
        for k in _expand(kind):
            table = self._table(k)
            watchers = table.get(path)
            if watchers is not None and watcher in watchers:
                self._discard(table, path, watcher, k)
                removed = True
        return removed

    def remove_watcher(self, watcher: Hashable) -> None:
        """Forget every registration of ``watcher`` (its connection closed)."""
        for kind, path in self._by_watcher.pop(watcher, ()):
            table = self._table(kind)
            watchers = table.get(path)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del table[path]

    def _discard(
        self, table: dict[str, set[Hashable]], path: str, watcher: Hashable, kind: int
    ) -> None:
        watchers = table[path]
        watchers.discard(watcher)
        if not watchers:
            del table[path]
        owned = self._by_watcher.get(watcher)
        if owned is not None:
            owned.discard((kind, path))
            if not owned:
                del self._by_watcher[watcher]

    # --- triggering --------------------------------------------------------------------

    def trigger(self, event_type: int, path: str) -> set[Hashable]:
        """The watchers an event notifies; fired one-shot registrations are removed."""
        notified: set[Hashable] = set()
        if event_type in _DATA_EVENTS:
            self._fire(self.data, path, WatcherType.DATA, notified)
        if event_type in (EventType.NODE_CHILDREN_CHANGED, EventType.NODE_DELETED):
            self._fire(self.child, path, WatcherType.CHILDREN, notified)
        persistent = self.persistent.get(path)
        if persistent:
            notified.update(persistent)
        if self.recursive and event_type != EventType.NODE_CHILDREN_CHANGED:
            recursive = self.recursive
            prefix = path
            while True:
                watchers = recursive.get(prefix)
                if watchers:
                    notified.update(watchers)
                if prefix == "/":
                    break
                cut = prefix.rfind("/")
                prefix = prefix[:cut] or "/"
        return notified

    def _fire(
        self, table: dict[str, set[Hashable]], path: str, kind: int, notified: set[Hashable]
    ) -> None:
        watchers = table.pop(path, None)
        if not watchers:
            return
        notified.update(watchers)
        by_watcher = self._by_watcher
        key = (kind, path)
        for watcher in watchers:
            owned = by_watcher.get(watcher)
            if owned is not None:
                owned.discard(key)
                if not owned:
                    del by_watcher[watcher]

    # --- introspection (4lw wchs/wchc/wchp) --------------------------------------------

    def count(self) -> int:
        """Total registrations."""
        return sum(len(owned) for owned in self._by_watcher.values())

    def paths(self) -> set[str]:
        """Every watched path."""
        out: set[str] = set()
        for table in (self.data, self.child, self.persistent, self.recursive):
            out.update(table)
        return out

    def watchers(self) -> Iterable[Hashable]:
        """Every watcher with at least one registration."""
        return self._by_watcher.keys()

    def watched_by(self, watcher: Hashable) -> set[str]:
        """The paths ``watcher`` watches."""
        return {path for _, path in self._by_watcher.get(watcher, ())}

    def watchers_of(self, path: str) -> set[Hashable]:
        """The watchers registered on ``path``."""
        out: set[Hashable] = set()
        for table in (self.data, self.child, self.persistent, self.recursive):
            out.update(table.get(path, ()))
        return out


def _expand(kind: int) -> tuple[int, ...]:
    if kind == WatcherType.ANY:
        return (
            WatcherType.DATA,
            WatcherType.CHILDREN,
            WatcherType.PERSISTENT,
            WatcherType.PERSISTENT_RECURSIVE,
        )
    return (kind,)
