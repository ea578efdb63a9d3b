"""Differential tests of watches, on coord and Apache ZooKeeper.

Kazoo hands events to a callback thread, so event *order relative to replies* is checked
with :class:`RawClient`, which records notifications in the order they come off the wire.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from compat_support import WAIT, EventLog, RawClient
from kazoo.client import KazooClient
from kazoo.protocol.states import EventType as KzEvent
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from coord.protocol import (
    ACL,
    AddWatchMode,
    AddWatchRequest,
    CheckWatchesRequest,
    CreateRequest,
    DeleteRequest,
    ErrorCode,
    EventType,
    ExistsRequest,
    GetChildrenRequest,
    GetDataRequest,
    Id,
    MultiOp,
    MultiRequest,
    OpCode,
    Perm,
    RemoveWatchesRequest,
    SetDataRequest,
    WatcherType,
)

OPEN = (ACL(Perm.ALL, Id("world", "anyone")),)


def events(raw: RawClient) -> list[tuple[int, str]]:
    """The notifications ``raw`` received so far, as (EventType, path), then forget them."""
    out = [(n.type, n.path) for n in raw.notifications]
    raw.notifications.clear()
    return out


def test_watch_data_on_set_and_delete(connect: Callable[..., KazooClient], root: str) -> None:
    """A data watch (get) fires CHANGED on set; a new one fires DELETED on delete."""
    zk, other = connect(), connect()
    zk.create(root, b"a")
    log = EventLog()
    zk.get(root, watch=log)
    other.set(root, b"b")
    assert log.wait(1) == [(KzEvent.CHANGED, root)]
    zk.get(root, watch=log)
    other.delete(root)
    assert log.wait(2) == [(KzEvent.CHANGED, root), (KzEvent.DELETED, root)]


def test_watch_exists_on_create(connect: Callable[..., KazooClient], root: str) -> None:
    """exists on a missing node leaves a watch that fires CREATED."""
    zk, other = connect(), connect()
    log = EventLog()
    assert zk.exists(root, watch=log) is None
    other.create(root)
    assert log.wait(1) == [(KzEvent.CREATED, root)]


def test_watch_children_on_create_and_delete(
    connect: Callable[..., KazooClient], root: str
) -> None:
    """A child watch fires CHILD on a child's create, then (re-set) on its delete; a data
    change of a child or of the node itself does not fire it."""
    zk, other = connect(), connect()
    zk.create(root)
    log = EventLog()
    zk.get_children(root, watch=log)
    other.set(root, b"data")
    other.create(root + "/c")
    assert log.wait(1) == [(KzEvent.CHILD, root)]
    zk.get_children(root, watch=log)
    other.set(root + "/c", b"x")
    other.delete(root + "/c")
    assert log.wait(2) == [(KzEvent.CHILD, root), (KzEvent.CHILD, root)]


def test_watch_one_shot(target: Any, root: str) -> None:
    """A standard watch fires once; later changes send nothing until it is set again."""
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        raw.call(OpCode.GET_DATA, GetDataRequest(root, True))
        raw.call(OpCode.SET_DATA, SetDataRequest(root, b"1", -1))
        raw.call(OpCode.SET_DATA, SetDataRequest(root, b"2", -1))
        raw.call(OpCode.GET_DATA, GetDataRequest(root, False))
        assert events(raw) == [(EventType.NODE_DATA_CHANGED, root)]


def test_watch_event_precedes_own_write_reply(target: Any, root: str) -> None:
    """A session's own write triggers its watch before the write's reply arrives."""
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        raw.call(OpCode.GET_DATA, GetDataRequest(root, True))
        raw.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, True))
        raw.call(OpCode.EXISTS, ExistsRequest(root + "/c", True))
        raw.call(OpCode.CREATE, CreateRequest(root + "/c", b"", OPEN, 0))
        assert events(raw) == [
            (EventType.NODE_CREATED, root + "/c"),
            (EventType.NODE_CHILDREN_CHANGED, root),
        ]
        raw.call(OpCode.SET_DATA, SetDataRequest(root, b"x", -1))
        assert events(raw) == [(EventType.NODE_DATA_CHANGED, root)]


def test_watch_event_precedes_read_reflecting_change(
    connect: Callable[..., KazooClient], target: Any, root: str
) -> None:
    """When another client changes a watched node, the event reaches the watcher before
    the reply of any later read that shows the change."""
    other = connect()
    other.create(root, b"old")
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.GET_DATA, GetDataRequest(root, True))
        other.set(root, b"new")
        for _ in range(1000):
            reply = raw.call(OpCode.GET_DATA, GetDataRequest(root, False))
            if b"new" in reply.body:
                break
        else:
            raise AssertionError("the change never became visible")
        assert events(raw) == [(EventType.NODE_DATA_CHANGED, root)]


def test_watch_node_deleted_fires_data_and_child_watchers(
    connect: Callable[..., KazooClient], target: Any, root: str
) -> None:
    """Deleting a node fires DELETED to its data and its child watchers: one notification
    per connection on the wire, which kazoo delivers to both callbacks."""
    zk, other = connect(), connect()
    zk.create(root + "/n", makepath=True)
    data_log, child_log, parent_log = EventLog(), EventLog(), EventLog()
    zk.get(root + "/n", watch=data_log)
    zk.get_children(root + "/n", watch=child_log)
    zk.get_children(root, watch=parent_log)
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.GET_DATA, GetDataRequest(root + "/n", True))
        raw.call(OpCode.GET_CHILDREN, GetChildrenRequest(root + "/n", True))
        raw.call(OpCode.EXISTS, ExistsRequest(root + "/n", True))
        raw.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, True))
        other.delete(root + "/n")
        assert data_log.wait(1) == [(KzEvent.DELETED, root + "/n")]
        assert child_log.wait(1) == [(KzEvent.DELETED, root + "/n")]
        assert parent_log.wait(1) == [(KzEvent.CHILD, root)]
        raw.call(OpCode.EXISTS, ExistsRequest(root, False))
        assert events(raw) == [
            (EventType.NODE_DELETED, root + "/n"),
            (EventType.NODE_CHILDREN_CHANGED, root),
        ]
        # All three registrations on the node were consumed by that one event.
        other.create(root + "/n")
        raw.call(OpCode.EXISTS, ExistsRequest(root, False))
        assert events(raw) == []


def test_watch_multi_events_in_op_order(target: Any, root: str) -> None:
    """A multi triggers its watches op by op, all before its reply."""
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        raw.call(OpCode.CREATE, CreateRequest(root + "/b", b"", OPEN, 0))
        raw.call(OpCode.EXISTS, ExistsRequest(root + "/a", True))
        raw.call(OpCode.GET_DATA, GetDataRequest(root + "/b", True))
        raw.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, True))
        reply = raw.call(
            OpCode.MULTI,
            MultiRequest(
                (
                    MultiOp(OpCode.CREATE, CreateRequest(root + "/a", b"", OPEN, 0)),
                    MultiOp(OpCode.SET_DATA, SetDataRequest(root + "/b", b"x", -1)),
                    MultiOp(OpCode.DELETE, DeleteRequest(root + "/a", -1)),
                )
            ),
        )
        assert reply.header.err == 0
        assert events(raw) == [
            (EventType.NODE_CREATED, root + "/a"),
            (EventType.NODE_CHILDREN_CHANGED, root),
            (EventType.NODE_DATA_CHANGED, root + "/b"),
        ]


def test_watch_failed_multi_fires_nothing(target: Any, root: str) -> None:
    """A multi that fails changes nothing and triggers no watch."""
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        raw.call(OpCode.EXISTS, ExistsRequest(root + "/a", True))
        raw.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, True))
        raw.call(
            OpCode.MULTI,
            MultiRequest(
                (
                    MultiOp(OpCode.CREATE, CreateRequest(root + "/a", b"", OPEN, 0)),
                    MultiOp(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0)),
                )
            ),
        )
        raw.call(OpCode.CREATE, CreateRequest(root + "/a", b"", OPEN, 0))
        assert events(raw) == [
            (EventType.NODE_CREATED, root + "/a"),
            (EventType.NODE_CHILDREN_CHANGED, root),
        ]


def test_watch_persistent(target: Any, root: str) -> None:
    """A persistent watch (addWatch mode 0) fires for every event on its path, child
    changes included, and is not consumed; removeWatches ends it."""
    with RawClient(target.host, target.port) as raw:
        reply = raw.call(OpCode.ADD_WATCH, AddWatchRequest(root, AddWatchMode.PERSISTENT))
        assert (reply.header.err, reply.body) == (0, b"\0\0\0\0")
        raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        raw.call(OpCode.SET_DATA, SetDataRequest(root, b"1", -1))
        raw.call(OpCode.SET_DATA, SetDataRequest(root, b"2", -1))
        raw.call(OpCode.CREATE, CreateRequest(root + "/c", b"", OPEN, 0))
        raw.call(OpCode.SET_DATA, SetDataRequest(root + "/c", b"x", -1))
        raw.call(OpCode.DELETE, DeleteRequest(root + "/c", -1))
        raw.call(OpCode.DELETE, DeleteRequest(root, -1))
        assert events(raw) == [
            (EventType.NODE_CREATED, root),
            (EventType.NODE_DATA_CHANGED, root),
            (EventType.NODE_DATA_CHANGED, root),
            (EventType.NODE_CHILDREN_CHANGED, root),
            (EventType.NODE_CHILDREN_CHANGED, root),
            (EventType.NODE_DELETED, root),
        ]
        check = raw.call(OpCode.CHECK_WATCHES, CheckWatchesRequest(root, WatcherType.ANY))
        assert check.header.err == 0
        removed = raw.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, WatcherType.ANY))
        assert removed.header.err == 0
        raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        assert events(raw) == []
        again = raw.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, WatcherType.ANY))
        assert again.header.err == ErrorCode.NO_WATCHER


def test_watch_persistent_recursive(target: Any, root: str) -> None:
    """A recursive watch fires for every event on its path and below, except
    NodeChildrenChanged."""
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        raw.call(OpCode.ADD_WATCH, AddWatchRequest(root, AddWatchMode.PERSISTENT_RECURSIVE))
        raw.call(OpCode.CREATE, CreateRequest(root + "/a", b"", OPEN, 0))
        raw.call(OpCode.CREATE, CreateRequest(root + "/a/b", b"", OPEN, 0))
        raw.call(OpCode.SET_DATA, SetDataRequest(root + "/a/b", b"x", -1))
        raw.call(OpCode.DELETE, DeleteRequest(root + "/a/b", -1))
        raw.call(OpCode.SET_DATA, SetDataRequest(root, b"y", -1))
        raw.call(OpCode.CREATE, CreateRequest(root + "-sibling", b"", OPEN, 0))
        raw.call(OpCode.DELETE, DeleteRequest(root + "-sibling", -1))
        assert events(raw) == [
            (EventType.NODE_CREATED, root + "/a"),
            (EventType.NODE_CREATED, root + "/a/b"),
            (EventType.NODE_DATA_CHANGED, root + "/a/b"),
            (EventType.NODE_DELETED, root + "/a/b"),
            (EventType.NODE_DATA_CHANGED, root),
        ]


def test_watch_remove_watches_by_type(target: Any, root: str) -> None:
    """removeWatches removes only the named kind; a kind not set is NoWatcher."""
    with RawClient(target.host, target.port) as raw:
        raw.call(OpCode.CREATE, CreateRequest(root, b"", OPEN, 0))
        raw.call(OpCode.GET_DATA, GetDataRequest(root, True))
        missing = raw.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, WatcherType.CHILDREN))
        assert missing.header.err == ErrorCode.NO_WATCHER
        raw.call(OpCode.GET_CHILDREN, GetChildrenRequest(root, True))
        removed = raw.call(OpCode.REMOVE_WATCHES, RemoveWatchesRequest(root, WatcherType.DATA))
        assert removed.header.err == 0
        raw.call(OpCode.SET_DATA, SetDataRequest(root, b"x", -1))
        raw.call(OpCode.CREATE, CreateRequest(root + "/c", b"", OPEN, 0))
        assert events(raw) == [(EventType.NODE_CHILDREN_CHANGED, root)]


def test_watch_data_watch_recipe(connect: Callable[..., KazooClient], root: str) -> None:
    """kazoo's DataWatch sees the same sequence of (data, version) on both servers."""
    zk, other = connect(), connect()
    seen: list[tuple[bytes | None, int | None]] = []
    changed = threading.Condition()

    def on_change(data: bytes | None, stat: Any) -> None:
        with changed:
            seen.append((data, None if stat is None else stat.version))
            changed.notify_all()

    def wait_for(count: int) -> list[tuple[bytes | None, int | None]]:
        with changed:
            changed.wait_for(lambda: len(seen) >= count, WAIT)
            return list(seen)

    DataWatch(zk, root, on_change)
    assert wait_for(1) == [(None, None)]
    other.create(root, b"one")
    assert wait_for(2)[-1] == (b"one", 0)
    other.set(root, b"two")
    assert wait_for(3)[-1] == (b"two", 1)
    other.delete(root)
    assert wait_for(4) == [(None, None), (b"one", 0), (b"two", 1), (None, None)]


def test_watch_children_watch_recipe(connect: Callable[..., KazooClient], root: str) -> None:
    """kazoo's ChildrenWatch sees the same sequence of child lists on both servers."""
    zk, other = connect(), connect()
    zk.create(root)
    seen: list[list[str]] = []
    changed = threading.Condition()

    def on_children(children: list[str]) -> None:
        with changed:
            seen.append(sorted(children))
            changed.notify_all()

    def wait_for(count: int) -> list[list[str]]:
        with changed:
            changed.wait_for(lambda: len(seen) >= count, WAIT)
            return list(seen)

    ChildrenWatch(zk, root, on_children)
    assert wait_for(1) == [[]]
    other.create(root + "/a")
    assert wait_for(2)[-1] == ["a"]
    other.create(root + "/b")
    assert wait_for(3)[-1] == ["a", "b"]
    other.delete(root + "/a")
    assert wait_for(4) == [[], ["a"], ["a", "b"], ["b"]]
