"""The HTTP API's watch history: every tree event since the server started, up to a bound,
and the live event streams fed from it.

Theory of operation
-------------------
The server calls :meth:`EventHistory.observe` after applying each entry that produced
watch events (``Server.apply_observers``), in zxid order, on every member of an ensemble.
The history keeps the last ``capacity`` events and knows its *horizon*: it holds every
event with a zxid greater than the horizon (events at or below it may be gone).

An event stream subscribes with the zxid it has seen (``since``). Subscribing copies the
retained events after ``since`` and registers the stream for later events in one step
without an await, so on one event loop nothing can be applied in between: the catch-up
and the live events neither miss nor repeat an event. A ``since`` below the horizon cannot
be served (:class:`Compacted`, answered 410 Gone, as etcd answers a compacted revision):
the client must read the current state and watch from its zxid.

Which events a stream gets mirrors ZooKeeper's persistent watches (``addWatch``): a
recursive stream gets created/deleted/changed events of the node and every descendant (no
children events, as PERSISTENT_RECURSIVE); a plain one gets all four kinds for the node
itself. As ZooKeeper 3.9 does for watches, an event is delivered only to a stream whose
identities may READ the node (the node's ACL at the time of the event).

A stream that does not keep up (its buffer of :data:`STREAM_BUFFER` events is full) is
ended with ``overflowed`` set; its client resumes from its last event id. When the
server replaces its state by a snapshot (an ensemble member far behind), events were
skipped: the history restarts from there (:meth:`EventHistory.observe` notices the new
state object) and every live stream is ended the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from coord.protocol import ACL, EventType, Id, Perm, Stat

__all__ = ["EVENT_NAMES", "Compacted", "EventHistory", "Subscription", "TreeEvent"]

#: Event type -> the SSE event name.
EVENT_NAMES: Final = {
    EventType.NODE_CREATED: "created",
    EventType.NODE_DELETED: "deleted",
    EventType.NODE_DATA_CHANGED: "changed",
    EventType.NODE_CHILDREN_CHANGED: "children",
}
#: Events a live stream may have unread before it is ended as overflowed.
STREAM_BUFFER: Final = 4096
_RECURSIVE_TYPES: Final = frozenset(
    {EventType.NODE_CREATED, EventType.NODE_DELETED, EventType.NODE_DATA_CHANGED}
)


@dataclass(frozen=True, slots=True)
class TreeEvent:
    """One change of the tree.

    Attributes:
        zxid: the zxid of the entry that made it.
        type: the ZooKeeper event type.
        path: the node.
        acl: the node's ACL (who may see the event).
        stat_bytes: the jute encoding of the node's Stat once that entry was applied
            (created and changed events); kept encoded, as replies keep it, because
            decoding costs more than the rest of recording an event.
    """

    zxid: int
    type: int
    path: str
    acl: tuple[ACL, ...]
    stat_bytes: bytes | None

    @property
    def stat(self) -> Stat | None:
        """The node's Stat once that entry was applied, if recorded."""
        return None if self.stat_bytes is None else Stat.from_bytes(self.stat_bytes)


class Compacted(Exception):
    """The events after the requested zxid are no longer all kept.

    Attributes:
        horizon: the lowest zxid a stream can resume from.
    """

    def __init__(self, horizon: int) -> None:
        super().__init__(f"events up to zxid {horizon} are no longer kept")
        self.horizon = horizon


class Subscription:
    """A live event stream's registration (iterate :attr:`events`)."""

    def __init__(self, path: str, recursive: bool, ids: tuple[Id, ...]) -> None:
        self.path = path
        self.recursive = recursive
        self.ids = ids
        self.overflowed = False
        self._prefix = "/" if path == "/" else path + "/"
        send, receive = anyio.create_memory_object_stream[TreeEvent](STREAM_BUFFER)
        self._send: MemoryObjectSendStream[TreeEvent] = send
        #: The events, in zxid order; ends when the subscription is closed or overflowed.
        self.events: MemoryObjectReceiveStream[TreeEvent] = receive

    def matches(self, event: TreeEvent) -> bool:
        """Whether the event is on this stream's node (or below it, when recursive)."""
        if self.recursive:
            return event.type in _RECURSIVE_TYPES and (
                event.path == self.path or event.path.startswith(self._prefix)
            )
        return event.path == self.path

    def _deliver(self, event: TreeEvent) -> bool:
        """Queue ``event``; False (and the stream ended) when it cannot keep up."""
        try:
            self._send.send_nowait(event)
        except anyio.WouldBlock:
            self.overflowed = True
            self._send.close()
            return False
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    def close(self) -> None:
        """End the stream (the reader sees the end after the queued events)."""
        self._send.close()


class EventHistory:
    """The last ``capacity`` tree events, and the subscriptions fed from them.

    Args:
        capacity: how many events to keep.
        horizon: the zxid of the state when recording starts.
        allows: ``allows(acl, perm, ids)``: the server's ACL check.
        stat_of: the jute-encoded current Stat of a path (None when it does not exist).
        state: the server's current state object (a new one means a snapshot was loaded).
    """

    def __init__(
        self,
        capacity: int,
        horizon: int,
        allows: Callable[[tuple[ACL, ...], int, Iterable[Id]], bool],
        stat_of: Callable[[str], bytes | None],
        state: Callable[[], object],
    ) -> None:
        self.capacity = capacity
        self.horizon = horizon
        self.last_zxid = horizon
        self._allows = allows
        self._stat_of = stat_of
        self._state = state
        self._seen_state = state()
        self._events: deque[TreeEvent] = deque()
        self.subscriptions: set[Subscription] = set()

    def observe(self, zxid: int, events: list[tuple[int, str, tuple[ACL, ...]]]) -> None:
        """Record the events of the entry ``zxid`` and deliver them (the apply observer)."""
        current = self._state()
        if current is not self._seen_state:
            # A snapshot replaced the state: the events in between were never seen.
            self._seen_state = current
            self._events.clear()
            self.horizon = zxid - 1
            for subscription in list(self.subscriptions):
                subscription.overflowed = True
                subscription.close()
            self.subscriptions.clear()
        stat_of = self._stat_of
        recorded = []
        for event_type, path, acl in events:
            stat = None
            if event_type in (EventType.NODE_CREATED, EventType.NODE_DATA_CHANGED):
                stat = stat_of(path)
            recorded.append(TreeEvent(zxid, event_type, path, acl, stat))
        history = self._events
        history.extend(recorded)
        while len(history) > self.capacity:
            self.horizon = history.popleft().zxid
        self.last_zxid = zxid
        if not self.subscriptions:
            return
        allows = self._allows
        for subscription in list(self.subscriptions):
            for event in recorded:
                if (
                    subscription.matches(event)
                    and allows(event.acl, Perm.READ, subscription.ids)
                    and not subscription._deliver(event)
                ):
                    self.subscriptions.discard(subscription)
                    break

    def subscribe(
        self, path: str, *, recursive: bool, ids: tuple[Id, ...], since: int | None
    ) -> Subscription:
        """Register a stream; with ``since``, the retained events after it come first.

        Raises:
            Compacted: ``since`` is below the horizon.
        """
        if since is not None and since < self.horizon:
            raise Compacted(self.horizon)
        subscription = Subscription(path, recursive, ids)
        if since is not None:
            allows = self._allows
            for event in self._events:
                if (
                    event.zxid > since
                    and subscription.matches(event)
                    and allows(event.acl, Perm.READ, ids)
                    and not subscription._deliver(event)
                ):
                    return subscription  # overflowed already: the caller sees it
        self.subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a stream (its client left)."""
        self.subscriptions.discard(subscription)
        subscription.close()
